#!/usr/bin/env bash
# Issue 12 item 3, black-hole dial-backs: ADDRS source addresses
# (127.0.2.x) each send 8 registrations, under throw-away keys, for a port
# that never answers (on each address, a listener that never accepts,
# backlog 1), so each dial-back hangs for the tracker's whole 5 s timeout. Then a genuine
# node registers through the node's own client (node/trkclient.c, 15 s
# timeout). Before the fix the dial-backs ran first come first served, 64
# at a time, and the genuine register waited behind every black hole,
# past its timeout. Now an address may have 2 verifications at once (the
# rest get 429), and when the dialer is busy a register is answered 202
# at once and verified in the background: the genuine node is answered
# within its timeout (quickly), registering again meanwhile is 202 again
# (not 409; from another port, 409 naming the address under test), and it
# is listed once its dial-back passes.
# The tracker runs with --max-verifying-per-ip 8, so that every black hole
# is verified (64 in flight, the rest queued) and the queue is deeper than
# one round of dials: dial-backs first come first served listed the
# genuine node only after every queued black hole had had its 5 s (19.6 s
# at the small size); taken in turns over the source addresses, its dial
# starts in the first round that frees slots, and it is listed within
# 9 s (the dial timeout of the black holes in flight, plus slack; 4.7 s
# measured).
# HOSTILE_SIZE=small: 32 addresses (256 black holes); full: 96 (768).
# TRK (default $BUILD/grapevine-tracker) picks the binary under test.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

TRK=${TRK:-$PWD/$BUILD/grapevine-tracker}
CLI=$PWD/$BUILD/tests/tracker_client
PEER=$PWD/$BUILD/tests/tracker_peer
case ${HOSTILE_SIZE:-small} in
full) ADDRS=96 ;;
*) ADDRS=32 ;;
esac
PER=8

# The black holes: a dial-back goes to the request's source address, so
# each attacking address gets one, all on the same port, each listening
# with a backlog of 1 and never accepting.
python3 tests/hostile/blackholes.py holes 127.0.2 "$ADDRS" 120 >"$TMP/hole" &
pids+=($!)
tracker_up --listen 127.0.0.1:0 --db "$TMP/db" --max-per-ip "$PER" \
  --max-verifying-per-ip "$PER" --max-conns-per-ip 64
for _ in $(seq 1 200); do
  [ -s "$TMP/hole" ] && break
  sleep 0.05
done
HOLE=$(cat "$TMP/hole")
[ -n "$HOLE" ] || { not_ok "the black hole starts"; finish; exit; }

# The attack: every register sent at once, each on its own connection;
# the answers are read at the end (30 s at most).
python3 tests/hostile/blackholes.py register "${URL##*:}" "$HOLE" 127.0.2 1 \
  "$ADDRS" "$PER" 30 "$TMP/go" >"$TMP/attack.out" 2>&1 &
APID=$!
pids+=("$APID")
for _ in $(seq 1 200); do
  [ -e "$TMP/go" ] && break
  sleep 0.05
done
[ -e "$TMP/go" ] || { not_ok "the attack starts" "$(cat "$TMP/attack.out")"; finish; exit; }
sleep 0.3 # every black-hole register is read and its dial-back queued

# The genuine node, through the node's client (15 s timeout).
peer_up good
GPORT=$PORT
GID=$("$CLI" id --key "$TMP/good.key")
t0=$(date +%s%N)
out=$("$CLI" "$URL" register --key "$TMP/good.key" --port "$GPORT" 2>&1 | head -1)
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
echo "# $ADDRS addresses x $PER black holes; genuine register: ${ms} ms: $out"
if grep -qE '^rc=OK http=20[02] ' <<<"$out" && [ "$ms" -lt 15000 ]; then
  ok "the genuine register is answered within the node client's 15 s (${ms} ms)"
else
  not_ok "genuine register" "${ms} ms: $out"
fi
if [ "$ms" -lt 2000 ]; then ok "and at once: no one's black holes are in its way"
else not_ok "genuine register latency" "${ms} ms"; fi
# And a real bootstrap node, started now, while the black holes still
# hang: its tracker job (node/trkjobs.c) must log it registered, pending
# or not, and never time out.
free_ports 1
NPORT=$BASE
"$GV" node --data-dir "$TMP/boot" --bootstrap --listen "127.0.0.1:$NPORT" \
  --tracker "$URL" >"$TMP/boot.log" 2>&1 &
pids+=($!)
NODE_PID=$!
# Registering again while it is being verified: 202 again, never 409,
# naming the address under test. From another port (the node restarted
# elsewhere) it is not that address that is tested: 409
# verifying_other_address, naming the one that is (before the fix: 202
# with the new port).
if grep -q 'http=202' <<<"$out"; then
  again=$("$CLI" "$URL" register --key "$TMP/good.key" --port "$GPORT" 2>&1 | head -1)
  if grep -qE '^rc=OK http=20[02] ' <<<"$again"; then
    ok "registering again while verifying is accepted ($(grep -oE 'http=[0-9]+' <<<"$again"))"
  else
    not_ok "register again while verifying" "$again"
  fi
  if grep -q 'http=202' <<<"$again"; then
    other=$((GPORT == 65535 ? GPORT - 1 : GPORT + 1))
    moved=$("$CLI" "$URL" register --key "$TMP/good.key" --port "$other" 2>&1 | head -1)
    echo "# from port $other while $GPORT is verified: $moved"
    if grep -q 'http=409 error=verifying_other_address ' <<<"$moved" &&
       grep -q "127.0.0.1:$GPORT is being verified" <<<"$moved"; then
      ok "registering from another port while verifying is 409, naming the address under test"
    else
      not_ok "register from another port while verifying" "$moved"
    fi
  fi
fi
# Listed once its dial-back passes: poll, 25 s at most.
listed=
for i in $(seq 1 250); do
  if "$CLI" "$URL" peers --max 256 2>/dev/null | grep -q "$GID"; then
    listed=$(((($(date +%s%N) - t0) / 1000000)))
    break
  fi
  sleep 0.1
done
echo "# listed after ${listed:-never} ms"
if [ -n "$listed" ]; then ok "the genuine node is listed once its dial-back passes (${listed} ms)"
else not_ok "genuine node listed" "$(tail -5 "$TMP/trk.log")"; fi
# In turns: its address waits for at most one dial-back (5 s) of each
# address ahead of it, 64 dialing at once: one round at the small size (32
# addresses), two at full (96); first come first served, every black hole
# queued before it (19.6 s at the small size).
rounds=$(((ADDRS + 64) / 64))
bound=$((rounds * 5000 + 4000))
if [ -n "$listed" ] && [ "$listed" -lt "$bound" ]; then
  ok "listed within $rounds round(s) of dial-backs (${listed} ms < $bound)"
else not_ok "genuine node listed within $rounds round(s)" "${listed:-never} ms"; fi
NID=$("$GV" id --data-dir "$TMP/boot" 2>/dev/null)
for _ in $(seq 1 150); do
  "$CLI" "$URL" peers --max 256 2>/dev/null | grep -q "${NID:-none}" && break
  sleep 0.1
done
reg=$(grep -E 'tracker: (registered|register:)' "$TMP/boot.log" | head -1)
echo "# the node: ${reg#*tracker: }"
if grep -qE 'tracker: registered' <<<"$reg" && [ -n "$NID" ] &&
   "$CLI" "$URL" peers --max 256 2>/dev/null | grep -q "$NID"; then
  ok "a real bootstrap node registers without a timeout and is listed"
else
  not_ok "bootstrap node" "$(grep tracker "$TMP/boot.log" | tail -3)"
fi
stop_pids "$NODE_PID"
wait "$APID"
echo "# the black-hole registers were answered:" \
  "$(tr ' ' '\n' <"$TMP/attack.out" | sort | uniq -c | awk '{printf "%s=%d ", $2, $1}')"
if ! "$CLI" "$URL" peers --max 256 2>/dev/null | grep -q "127.0.2."; then
  ok "no black hole is listed"
else not_ok "black hole listed" "$("$CLI" "$URL" peers --max 256)"; fi
stop_pids "$TPID"
finish
