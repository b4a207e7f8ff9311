#!/usr/bin/env bash
# A silent destination answers a broadcasting origin through its relay
# (docs/RELAY.md section 5.7): three network namespaces, R in the middle,
# which forwards no IP. S (silent) and O (broadcasting) each reach R's
# listen address only; S has no route to O, so its only way to O is the
# relay. O sends to S's agent: the message reaches the agent, and O's send
# reaches stored and delivered within 30 s. (S's STORED and DELIVERED were
# dropped: S knows O's record, broadcasting, has no link to it, and an
# answer does not dial; O retransmitted, S answered again, dropped again,
# and the sender never saw stored.) Needs root and iproute2; otherwise it
# says so and skips. Namespaces are named gvra-*-PID so runs never collide.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
NS_R=gvra-r$$ NS_S=gvra-s$$ NS_O=gvra-o$$
IF_RS=gvrars$$ IF_SR=gvrasr$$ IF_RO=gvraro$$ IF_OR=gvraor$$
X=$((20 + RANDOM % 200))
IP_R=10.$X.0.1 IP_S=10.$X.1.2 IP_O=10.$X.2.2
PORT=7411
AG="python3 $PWD/tests/integration/relay_agent.py"
pids=()
cleanup() {
  exec 2>/dev/null # the shell's "Killed" notices
  for p in "${pids[@]}"; do kill -9 "$p"; done
  wait
  ip netns del "$NS_R"
  ip netns del "$NS_S"
  ip netns del "$NS_O"
  rm -rf "$TMP"
}
trap cleanup EXIT

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null ||
   ! ip netns add "$NS_R" 2>/dev/null; then
  echo "# network namespaces unavailable (needs root and iproute2): skipped"
  ok "relay answers test skipped: no network namespaces here # SKIP"
  finish
  exit 0
fi
# R: its listen address on lo, a veth to each of S and O, no forwarding.
ip netns add "$NS_S" && ip netns add "$NS_O" &&
  ip link add "$IF_RS" type veth peer name "$IF_SR" &&
  ip link add "$IF_RO" type veth peer name "$IF_OR" &&
  ip link set "$IF_RS" netns "$NS_R" && ip link set "$IF_RO" netns "$NS_R" &&
  ip link set "$IF_SR" netns "$NS_S" && ip link set "$IF_OR" netns "$NS_O" &&
  ip netns exec "$NS_R" sysctl -qw net.ipv4.ip_forward=0 &&
  ip -n "$NS_R" addr add "$IP_R/32" dev lo &&
  ip -n "$NS_R" addr add "10.$X.1.1/24" dev "$IF_RS" &&
  ip -n "$NS_R" addr add "10.$X.2.1/24" dev "$IF_RO" &&
  ip -n "$NS_S" addr add "$IP_S/24" dev "$IF_SR" &&
  ip -n "$NS_O" addr add "$IP_O/24" dev "$IF_OR" &&
  ip -n "$NS_R" link set lo up && ip -n "$NS_S" link set lo up &&
  ip -n "$NS_O" link set lo up &&
  ip -n "$NS_R" link set "$IF_RS" up && ip -n "$NS_R" link set "$IF_RO" up &&
  ip -n "$NS_S" link set "$IF_SR" up && ip -n "$NS_O" link set "$IF_OR" up &&
  ip -n "$NS_S" route add "$IP_R/32" via "10.$X.1.1" &&
  ip -n "$NS_O" route add "$IP_R/32" via "10.$X.2.1" ||
  { not_ok "three namespaces, R in the middle"; finish; exit; }
# The premise: S has no route to O (its dials to O fail at once); S and O
# have one to R.
routed() { ip -n "$1" route get "$2" >/dev/null 2>&1; }
routed "$NS_S" "$IP_R" && routed "$NS_O" "$IP_R" && ! routed "$NS_S" "$IP_O" &&
  ok "S and O have a route to R; S has none to O" ||
  { not_ok "S and O have a route to R; S has none to O"; finish; exit; }

node_in "$NS_R" R --broadcast --listen "$IP_R:$PORT" &&
  node_in "$NS_O" O --broadcast --listen "$IP_O:$PORT" --peer "$IP_R:$PORT" &&
  node_in "$NS_S" S --peer "$IP_R:$PORT" ||
  { not_ok "R, O and S start" "$(tail -3 "$TMP"/*.log)"; finish; exit; }
pid_R=${pids[0]} pid_O=${pids[1]} pid_S=${pids[2]}
R_ID=$("$GV" id --data-dir "$TMP/R")
S_ID=$("$GV" id --data-dir "$TMP/S")
O_ID=$("$GV" id --data-dir "$TMP/O")
sees() { # NODE AGENT: NODE's directory lists AGENT
  "$GV" agents --data-dir "$TMP/$1" --json | grep -qF "\"$2@"
}
# peer NODE ID PYEXPR: PYEXPR holds of p, ID's entry in NODE's peer table.
peer() {
  "$GV" peers --json --data-dir "$TMP/$1" |
    python3 -c "import json,sys; d=json.load(sys.stdin)
p=[e for e in (d if isinstance(d, list) else d['peers']) if e['id']=='$2']
sys.exit(0 if p and ($3) else 1)" 2>/dev/null
}

# One team, R its inviter. S's agent sam is in R's directory before O
# joins, so R's answer to O's JOIN lists sam (S's own directory packets
# to O are answers of the same kind as its STORED: they need the fix).
"$GV" team create --data-dir "$TMP/R" >/dev/null &&
  "$GV" team join "$(cat "$TMP"/R/team-*.key)" --data-dir "$TMP/S" >/dev/null ||
  { not_ok "R and S form a team"; finish; exit; }
$AG listen "$TMP/S/relay.sock" ops:sam "$TMP/sam.out" 300 ack &
pids+=($!)
sam=$!
wait_for 60 sees R ops:sam || not_ok "R's directory lists sam" "$("$GV" agents --data-dir "$TMP/R" 2>&1)"
"$GV" team join "$(cat "$TMP"/R/team-*.key)" --data-dir "$TMP/O" >/dev/null ||
  { not_ok "O joins the team"; finish; exit; }
wait_for 60 sees O ops:sam && ok "O's directory lists sam on S" ||
  { not_ok "O's directory lists sam on S" "$("$GV" agents --data-dir "$TMP/O" 2>&1)"; finish; exit; }
# The case: S knows O's record (broadcasting, no link), O knows S's relay.
wait_for 60 peer S "$O_ID" "p[0]['broadcasting']" &&
  wait_for 60 peer O "$S_ID" "'$R_ID' in p[0].get('relays', [])" &&
  ok "S holds O's record (broadcasting); O holds S's (relay R)" ||
  not_ok "S holds O's record (broadcasting); O holds S's (relay R)" \
    "$("$GV" peers --data-dir "$TMP/S" 2>&1; "$GV" peers --data-dir "$TMP/O" 2>&1)"

BODY="answer-me-$RANDOM$RANDOM"
t0=$SECONDS
out=$("$GV" send "ops:sam@$S_ID" "$BODY" --as dev:olga --wait stored --timeout 30s --json --data-dir "$TMP/O" 2>&1)
id=$(printf '%s' "$out" | J 'd["id"]' 2>/dev/null)
st=$(printf '%s' "$out" | J 'd["state"]' 2>/dev/null)
case $st in
stored | delivered | read) ok "O's send reaches stored within 30 s (took $((SECONDS - t0)) s)" ;;
*) not_ok "O's send reaches stored within 30 s" "$out" ;;
esac
wait_for 30 grep -qF "\"body\":\"$BODY\"" "$TMP/sam.out" && ok "the message reaches sam on S" ||
  not_ok "the message reaches sam on S" "$(tail -3 "$TMP/sam.out")"
state() { "$GV" trace "$id" --as dev:olga --json --data-dir "$TMP/O" | J 'd["state"]'; }
is_delivered() { [[ $(state) == delivered || $(state) == read ]]; }
wait_for 30 is_delivered && ok "O's send reaches delivered within 30 s (sam acked)" ||
  not_ok "O's send reaches delivered within 30 s" "$(state 2>&1)"
# Not a check: the log is rate-limited (20 lines of a kind per 10 s), and
# the team's directory packets take their share of R's frame log.
n=$(grep -c "relay: forwarded [0-9]* bytes of message $id to $O_ID" "$TMP/R.log")
echo "# R's frame log shows $n packet(s) of id ${id:0:8} forwarded to O (S's answers)"
n=$(grep -cF "\"body\":\"$BODY\"" "$TMP/sam.out")
[ "$n" = 1 ] && ok "sam got it once" || not_ok "sam got it once" "$n times"

kill "$sam" 2>/dev/null # the scripted agent: SIGTERM ends it
wait "$sam" 2>/dev/null
stop_pids "$pid_R" "$pid_O" "$pid_S"
pids=()
finish
