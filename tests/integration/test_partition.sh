#!/usr/bin/env bash
# A partition between two hosts: network namespaces joined by a veth pair,
# three nodes on each side. Cut the link, change something on one side,
# restore the link: both sides converge to the full table again. Needs
# root and iproute2 (CI runs as root); otherwise it says so and skips.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
NS_A=gvA$$ NS_B=gvB$$
A=10.251.$((RANDOM % 200)).1 B=
B=${A%.1}.2
pids=()
cleanup() {
  exec 2>/dev/null # the shell's "Killed" notices
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  ip netns del "$NS_A" 2>/dev/null
  ip netns del "$NS_B" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null ||
   ! ip netns add "$NS_A" 2>/dev/null; then
  echo "# network namespaces unavailable (needs root and iproute2): skipped"
  ok "partition test skipped: no network namespaces here # SKIP"
  finish
  exit 0
fi
ip netns add "$NS_B"
ip link add "va$$" type veth peer name "vb$$"
ip link set "va$$" netns "$NS_A"
ip link set "vb$$" netns "$NS_B"
ip -n "$NS_A" addr add "$A/24" dev "va$$"
ip -n "$NS_B" addr add "$B/24" dev "vb$$"
for ns in "$NS_A" "$NS_B"; do
  ip -n "$ns" link set lo up
done
ip -n "$NS_A" link set "va$$" up
ip -n "$NS_B" link set "vb$$" up

start() { # NS NAME ARGS...
  local ns=$1 name=$2
  shift 2
  ip netns exec "$ns" "$GV" node --data-dir "$TMP/$name" --log-level debug "$@" > "$TMP/$name.log" 2>&1 &
  pids+=($!)
}
start "$NS_A" a1 --broadcast --listen "$A:7411"
start "$NS_A" a2 --broadcast --listen "$A:7412" --peer "$A:7411"
start "$NS_A" a3 --peer "$A:7411"
start "$NS_B" b1 --broadcast --listen "$B:7411" --peer "$A:7411"
start "$NS_B" b2 --broadcast --listen "$B:7412" --peer "$B:7411"
start "$NS_B" b3 --peer "$B:7411"
nodes="a1 a2 a3 b1 b2 b3"

full() { # every node's table lists the 5 others
  for n in $nodes; do
    t=$("$GV" status --data-dir "$TMP/$n" --json 2>/dev/null |
        python3 -c "import json,sys; print(json.load(sys.stdin)['table'])" 2>/dev/null)
    [ "${t:-0}" -ge 5 ] || return 1
  done
}
sees() { # NODE REPO: NODE's table lists a node holding REPO
  "$GV" peers --data-dir "$TMP/$1" --json 2>/dev/null | grep -q "\"$2\""
}

wait_for 30 full && ok "two hosts, six nodes: every table complete" ||
  not_ok "initial convergence" "$(for n in $nodes; do echo "$n: $("$GV" id --short --data-dir "$TMP/$n") sees"; "$GV" peers --data-dir "$TMP/$n" 2>&1 | cut -c1-12 | tail -n +2 | tr '\n' ' '; echo; done)"

# Cut the link between the hosts; change something on side B.
ip -n "$NS_A" link set "va$$" down
"$GV" repo add during-cut --data-dir "$TMP/b3" >/dev/null
sleep 3
if ! sees a3 during-cut && sees b1 during-cut; then
  ok "link cut: side B learns b3's change, side A cannot"
else not_ok "during the cut" "$("$GV" peers --data-dir "$TMP/a3")"; fi

# Restore it: both sides converge to the full table again.
ip -n "$NS_A" link set "va$$" up
all_see() { for n in a1 a2 a3; do sees $n during-cut || return 1; done; full; }
wait_for 90 all_see && ok "link restored: side A learns the change, every table complete again" ||
  not_ok "after the heal" "$(for n in a1 a3; do "$GV" peers --data-dir "$TMP/$n"; done)"
stop_pids "${pids[@]}"
finish
