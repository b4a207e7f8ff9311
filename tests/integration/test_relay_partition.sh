#!/usr/bin/env bash
# A partition under the relay (issue 9, docs/RELAY.md section 5): a sender
# node S and a broadcasting receiver node V in two network namespaces
# joined by a veth pair, S dialing V. Cut the link, send N messages (each
# is accepted: durable in S's outbox), check that none reaches V's agent
# while cut, heal, and check all of them arrive, in order, exactly once,
# within a bounded time. Needs root and iproute2; otherwise it says so and
# skips. Namespaces are named gvr2-*-PID so runs never collide.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
N=${RELAY_PARTITION_COUNT:-200}
NS_S=gvr2-s$$ NS_V=gvr2-v$$ IF_S=gvr2s$$ IF_V=gvr2v$$
IP_V=10.252.$((RANDOM % 200)).1
IP_S=${IP_V%.1}.2
AGENT=tests/integration/relay_chaos_agent.py
pids=() agents=()
cleanup() {
  exec 2>/dev/null # the shell's "Killed" notices
  for p in "${agents[@]}" "${pids[@]}"; do kill -9 "$p"; done
  wait
  ip netns del "$NS_S"
  ip netns del "$NS_V"
  rm -rf "$TMP"
}
trap cleanup EXIT

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null ||
   ! ip netns add "$NS_S" 2>/dev/null; then
  echo "# network namespaces unavailable (needs root and iproute2): skipped"
  ok "relay partition test skipped: no network namespaces here # SKIP"
  finish
  exit 0
fi
ip netns add "$NS_V" &&
  ip link add "$IF_S" type veth peer name "$IF_V" &&
  ip link set "$IF_S" netns "$NS_S" && ip link set "$IF_V" netns "$NS_V" &&
  ip -n "$NS_S" addr add "$IP_S/24" dev "$IF_S" &&
  ip -n "$NS_V" addr add "$IP_V/24" dev "$IF_V" &&
  ip -n "$NS_S" link set lo up && ip -n "$NS_V" link set lo up &&
  ip -n "$NS_S" link set "$IF_S" up && ip -n "$NS_V" link set "$IF_V" up ||
  { not_ok "two namespaces joined by a veth pair"; finish; exit; }

node_in "$NS_V" V --broadcast --listen "$IP_V:7411" &&
  node_in "$NS_S" S --peer "$IP_V:7411" ||
  { not_ok "both nodes start" "$(tail -3 "$TMP"/*.log)"; finish; exit; }
"$GV" team create --data-dir "$TMP/S" >/dev/null &&
  "$GV" team join "$(cat "$TMP"/S/team-*.key)" --data-dir "$TMP/V" >/dev/null ||
  { not_ok "S and V form a team"; finish; exit; }
VID=$("$GV" id --data-dir "$TMP/V")

# The receiving agent (on V's socket: a Unix socket, no network needed).
python3 $AGENT recv "$TMP/V/relay.sock" api:bob "$TMP/recv.log" 300 &
agents+=($!)
recv_pid=$!
knows_bob() { "$GV" agents --data-dir "$TMP/S" 2>/dev/null | grep -q "^api:bob@$VID"; }
wait_for 30 knows_bob && ok "S's directory lists api:bob on V, across the veth" ||
  not_ok "S's directory lists api:bob on V" "$("$GV" agents --data-dir "$TMP/S" 2>&1)"
# One message before the cut: the path works.
python3 $AGENT send "$TMP/S/relay.sock" web:alice "api:bob@$VID" 1 1 "$TMP/acc" 30 &&
  wait_for 30 grep -q '^M .* web:alice_#1$' "$TMP/recv.log" &&
  ok "before the cut, a message arrives" || not_ok "before the cut, a message arrives"

# Cut, send N, none arrives.
ip -n "$NS_S" link set "$IF_S" down
if python3 $AGENT send "$TMP/S/relay.sock" web:alice "api:bob@$VID" 2 $((N + 1)) "$TMP/acc" 60 &&
   [ "$(wc -l < "$TMP/acc")" = $((N + 1)) ]; then
  ok "link cut: all $N sends accepted (durable in S's outbox)"
else
  not_ok "link cut: all $N sends accepted" "$(wc -l < "$TMP/acc") lines in acc"
fi
sleep 5
n_cut=$(grep -c '^M' "$TMP/recv.log")
[ "$n_cut" = 1 ] && ok "link cut: none of them reaches V's agent in 5 s" ||
  not_ok "link cut: none of them reaches V's agent" "$((n_cut - 1)) arrived through a cut link"
out=$("$GV" trace "$(sed -n 2p "$TMP/acc" | cut -d' ' -f2)" --as web:alice --data-dir "$TMP/S" 2>&1)
[[ $out == *accepted* && $out != *stored* ]] &&
  ok "link cut: the first one queued is accepted at S, not stored at V" ||
  not_ok "link cut: the first one queued is accepted at S, not stored at V" "$out"

# Heal: all arrive, in order, once, within 60 s.
ip -n "$NS_S" link set "$IF_S" up
t0=$SECONDS
all_in() { [ "$(cat "$TMP/recv.log.count" 2>/dev/null)" = $((N + 1)) ]; }
wait_for 60 all_in && ok "healed: all $N arrive within 60 s (took $((SECONDS - t0)) s)" ||
  not_ok "healed: all $N arrive within 60 s" "$(cat "$TMP/recv.log.count" 2>/dev/null) of $((N + 1))"
sleep 1 # a late duplicate would show now
kill -TERM "$recv_pid"
wait "$recv_pid"
out=$(python3 $AGENT check "$TMP/acc" -- "$TMP/recv.log")
rc=$?
printf '%s\n' "$out" | head -20
[ $rc = 0 ] && ok "healed: every message once, in seq order" ||
  not_ok "healed: every message once, in seq order" "$(tail -1 <<< "$out")"
stop_pids "${pids[@]}"
pids=()
finish
