#!/usr/bin/env bash
# Issue 12 item 3, the global verification pool: ADDRS source addresses
# (127.0.3.x) each send 2 registrations (their --max-verifying-per-ip)
# for a port that never answers, which fills a pool of
# --max-verifying = 2 x ADDRS; the dialer runs ADDRS at once, so half of
# them are in flight (5 s each) and half queued. Then a genuine node
# registers from 127.0.0.1. Before the fix the pool was first come, first
# served: the genuine register got 503 until the black holes timed out
# (main at 00c370f: "http=503 error=overloaded"). Now a full pool takes
# the newest queued verification of the heaviest address for a newcomer
# from a lighter one: the genuine node is answered 200/202, it is listed
# once its dial-back passes, one black hole was taken back
# (verifications_taken_back_total), and another register from an
# attacking address still at the heaviest count gets exactly 503: the
# tracker runs with --max-verifying-per-ip PER + 1, so the per-address
# cap (429) is not what refuses it, the pool's fairness is.
# Under 30 s. TRK (default $BUILD/grapevine-tracker) picks the binary.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

TRK=${TRK:-$PWD/$BUILD/grapevine-tracker}
CLI=$PWD/$BUILD/tests/tracker_client
PEER=$PWD/$BUILD/tests/tracker_peer
ADDRS=32
PER=2

# The black holes: one listener per attacking address, backlog 1, never
# accepting, so each dial-back hangs for the whole dial timeout.
python3 tests/hostile/blackholes.py holes 127.0.3 "$ADDRS" 60 >"$TMP/hole" &
pids+=($!)
tracker_up --listen 127.0.0.1:0 --db "$TMP/db" --max-verifying $((ADDRS * PER)) \
  --max-verifying-per-ip $((PER + 1)) --dial-concurrency "$ADDRS" \
  --max-conns-per-ip 64
for _ in $(seq 1 200); do
  [ -s "$TMP/hole" ] && break
  sleep 0.05
done
HOLE=$(cat "$TMP/hole")
[ -n "$HOLE" ] || { not_ok "the black hole starts"; finish; exit; }

# The first ADDRS take the dialer's slots and wait for their dial-backs;
# the rest are answered 202 at once (queued). The pool fills.
python3 tests/hostile/blackholes.py register "${URL##*:}" "$HOLE" 127.0.3 1 "$ADDRS" \
  "$PER" 12 >"$TMP/attack.out" 2>&1 &
APID=$!
pids+=("$APID")
verifying=
for _ in $(seq 1 100); do
  verifying=$(curl -s "$URL/health" | grep -oE '"verifying":[0-9]+' | cut -d: -f2)
  [ "${verifying:-0}" -ge $((ADDRS * PER)) ] && break
  sleep 0.05
done
if [ "${verifying:-0}" -eq $((ADDRS * PER)) ]; then
  ok "the black holes fill the pool ($verifying of $((ADDRS * PER)))"
else not_ok "pool filled" "verifying=${verifying:-?}"; fi

# The genuine node, through the node's client.
peer_up good
GPORT=$PORT
GID=$("$CLI" id --key "$TMP/good.key")
t0=$(date +%s%N)
out=$("$CLI" "$URL" register --key "$TMP/good.key" --port "$GPORT" 2>&1 | head -1)
echo "# pool of $((ADDRS * PER)) full of black holes; genuine register: $out"
if grep -qE '^rc=OK http=20[02] ' <<<"$out"; then
  ok "the genuine register is accepted, not 503 ($(grep -oE 'http=[0-9]+' <<<"$out"))"
else not_ok "genuine register accepted" "$out"; fi
taken=$(curl -s "$URL/metrics" |
  grep -E '^grapevine_tracker_verifications_taken_back_total ' | cut -d' ' -f2)
echo "# verifications taken back: ${taken:-none}"
if [ "${taken:-0}" -ge 1 ]; then ok "an attacking address's queued verification made room ($taken)"
else not_ok "taken back" "${taken:-no metric}"; fi
# An attacking address still at the heaviest count (not the one the log
# names in "verification taken back ... addr=") registering again: 503.
victim=$(grep -oE 'verification taken back id=[^ ]+ addr=127\.0\.3\.[0-9]+:' \
  "$TMP/trk.log" | grep -oE '127\.0\.3\.[0-9]+' | sort -u)
heavy=
for a in $(seq "$ADDRS" -1 1); do
  grep -qx "127.0.3.$a" <<<"$victim" || { heavy=$a; break; }
done
again=$(timeout 12 python3 tests/hostile/blackholes.py register "${URL##*:}" "$HOLE" \
  127.0.3 "$heavy" "$heavy" 1 1 2>&1)
echo "# taken back from: ${victim:-none}; a third register from 127.0.3.$heavy: $again"
if [ "$again" = 503 ]; then
  ok "the heaviest address gets no more room ($again)"
else not_ok "heaviest address refused with 503" "$again"; fi
# Listed once its dial-back passes: 15 s at most (one round of 5 s).
listed=
for _ in $(seq 1 150); do
  if "$CLI" "$URL" peers --max 256 2>/dev/null | grep -q "$GID"; then
    listed=$((($(date +%s%N) - t0) / 1000000))
    break
  fi
  sleep 0.1
done
echo "# listed after ${listed:-never} ms"
if [ -n "$listed" ]; then ok "the genuine node is listed (${listed} ms)"
else not_ok "genuine node listed" "$(tail -5 "$TMP/trk.log")"; fi
wait "$APID"
echo "# the black-hole registers were answered:" \
  "$(tr ' ' '\n' <"$TMP/attack.out" | sort | uniq -c | awk '{printf "%s=%d ", $2, $1}')"
if ! "$CLI" "$URL" peers --max 256 2>/dev/null | grep -q "127.0.3."; then
  ok "no black hole is listed"
else not_ok "black hole listed" "$("$CLI" "$URL" peers --max 256)"; fi
stop_pids "$TPID"
finish
