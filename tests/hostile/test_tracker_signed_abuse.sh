#!/usr/bin/env bash
# Signed-request abuse (issue 12, the hostile suite: an attack that already
# holds). A real tracker on loopback; the attacker holds a genuine node's
# captured signed requests and keys of its own, and tries: the same signed
# register replayed, timestamps skewed past the ±30 s window both ways, a
# body altered after signing, a signature by another key than the id the
# body claims (a forged id), a signature over another path or method, an
# unregister signed by another key, and a register naming an address that
# is not the sender's. Each is refused with the code and error of
# docs/TRACKER.md §7 (the address is ignored: the source address is
# listed), and the genuine node still registers and unregisters.
# HOSTILE_SIZE=small: each trick once; full: 20 times, each with a fresh
# body, so the refusals hold beyond the first try.
# TRK (default $BUILD/grapevine-tracker) picks the binary under test.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

TRK=${TRK:-$PWD/$BUILD/grapevine-tracker}
CLI=$PWD/$BUILD/tests/tracker_client
PEER=$PWD/$BUILD/tests/tracker_peer
case ${HOSTILE_SIZE:-small} in
full) ROUNDS=20 ;;
*) ROUNDS=1 ;;
esac
REG=/api/bootstrap/register
UNREG=/api/bootstrap/unregister

tracker_up --listen 127.0.0.1:0 --db "$TMP/db" --rate-limit 0 \
  --dial-timeout-ms 2000
peer_up good
GPORT=$PORT
GID=$("$CLI" id --key "$TMP/good.key")
"$CLI" id --key "$TMP/evil.key" >/dev/null # creates the attacker's key

now_ms() { date +%s%3N; }
nonce() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
# regbody [TS]: a register body for the genuine node, fresh nonce.
regbody() { "$CLI" body --key "$TMP/good.key" --port "$GPORT" --repos demo/x ${1:+--ts "$1"}; }
# unregbody ID: an unregister body, fresh nonce and ts.
unregbody() { printf '{"id":"%s","ts":%s,"nonce":"%s"}' "$1" "$(now_ms)" "$(nonce)"; }
# sign KEY METHOD PATH BODY
sign() { "$CLI" sign --key "$1" --method "$2" --path "$3" --body "$4"; }
# send METHOD PATH BODY SIG: sets CODE and RESP (10 s at most).
send() {
  CODE=$(curl -s -o "$TMP/resp" -w '%{http_code}' -m 10 -X "$1" \
    -H 'Content-Type: application/json' -H "X-Grapevine-Sig: $4" \
    --data-binary "$3" "$URL$2")
  RESP=$(cat "$TMP/resp")
}
# refused NAME CODE ERROR: the last answer was CODE {"error":ERROR,"reason":...}.
fails=() # names of the tricks that were not refused as expected, per round
refused() {
  if [ "$CODE" = "$2" ] && grep -q "\"error\":\"$3\",\"reason\":\"[^\"]" <<<"$RESP"; then
    tally[$1]=$((${tally[$1]:-0} + 1))
  else
    fails+=("$1: want $2 $3, got $CODE $RESP")
  fi
}
declare -A tally=()
names=()
# trick NAME CODE ERROR: records the name in order (once).
trick() { [[ " ${names[*]} " == *" $1 "* ]] || names+=("$1"); refused "$@"; }

# The genuine register works before the abuse.
out=$("$CLI" "$URL" register --key "$TMP/good.key" --port "$GPORT" --repos demo/x 2>&1)
if grep -q "^rc=OK http=200 .*addr=127.0.0.1:$GPORT " <<<"$out"; then
  ok "the genuine node registers (200, listed at its source address)"
else not_ok "genuine register" "$out"; fi

for ((r = 0; r < ROUNDS; r++)); do
  # Replay: a captured, genuinely signed register sent again.
  b=$(regbody)
  s=$(sign "$TMP/good.key" POST $REG "$b")
  send POST $REG "$b" "$s"
  [ "$CODE" = 200 ] || fails+=("the original of the replay: $CODE $RESP")
  send POST $REG "$b" "$s"
  trick replay 409 replay
  # Skew: signed by the genuine key, ts outside the window.
  for d in 31000 3600000; do
    b=$(regbody $(($(now_ms) - d)))
    send POST $REG "$b" "$(sign "$TMP/good.key" POST $REG "$b")"
    trick "ts_-${d}ms" 409 stale
    b=$(regbody $(($(now_ms) + d)))
    send POST $REG "$b" "$(sign "$TMP/good.key" POST $REG "$b")"
    trick "ts_+${d}ms" 409 future
  done
  # A body altered after signing: the repositories, and the port.
  b=$(regbody)
  s=$(sign "$TMP/good.key" POST $REG "$b")
  send POST $REG "${b/demo\/x/evil\/y}" "$s"
  trick altered_repos 401 bad_signature
  send POST $REG "${b/\"port\":$GPORT/\"port\":$((GPORT ^ 1))}" "$s"
  trick altered_port 401 bad_signature
  # A forged id: the genuine id in the body, the attacker's signature.
  b=$(regbody)
  send POST $REG "$b" "$(sign "$TMP/evil.key" POST $REG "$b")"
  trick forged_id 401 bad_signature
  # A genuine signature, over another method or path.
  b=$(regbody)
  send POST $REG "$b" "$(sign "$TMP/good.key" DELETE $REG "$b")"
  trick other_method 401 bad_signature
  send POST $REG "$b" "$(sign "$TMP/good.key" POST $UNREG "$b")"
  trick other_path 401 bad_signature
  send POST $REG "$b" "$(sign "$TMP/good.key" POST "$REG?x=1" "$b")"
  trick path_with_query 401 bad_signature
  # An unregister of the genuine id, signed by the attacker.
  b=$(unregbody "$GID")
  send DELETE $UNREG "$b" "$(sign "$TMP/evil.key" DELETE $UNREG "$b")"
  trick unregister_other_key 401 bad_signature
  # A captured genuine unregister replayed after a re-register: the
  # second time it is refused even though the id is listed again.
  b=$(unregbody "$GID")
  s=$(sign "$TMP/good.key" DELETE $UNREG "$b")
  send DELETE $UNREG "$b" "$s"
  [ "$CODE" = 200 ] || fails+=("the original unregister: $CODE $RESP")
  b2=$(regbody)
  send POST $REG "$b2" "$(sign "$TMP/good.key" POST $REG "$b2")"
  [ "$CODE" = 200 ] || fails+=("re-register: $CODE $RESP")
  send DELETE $UNREG "$b" "$s"
  trick unregister_replay 409 replay
done
for n in "${names[@]}"; do
  if [ "${tally[$n]:-0}" = "$ROUNDS" ]; then ok "$n refused ($ROUNDS of $ROUNDS)"
  else not_ok "$n refused" "$(printf '%s\n' "${fails[@]}" | grep -F "$n" | head -3)"; fi
done
extra=$(printf '%s\n' "${fails[@]}" | grep -vF -e "$(printf '%s\n' "${names[@]/%/:}")")
[ -z "$extra" ] && ok "the genuine originals of the replays were served (200)" ||
  not_ok "genuine originals" "$extra"

# Another address than the sender's: the body names one; the tracker
# ignores it and lists the TCP source address, never the named one.
b=$(regbody)
b=${b%\}},\"addr\":\"198.51.100.7:$GPORT\",\"ip\":\"198.51.100.7\"}
send POST $REG "$b" "$(sign "$TMP/good.key" POST $REG "$b")"
out=$("$CLI" "$URL" peers --max 256)
if [ "$CODE" = 200 ] && grep -q "\"addr\":\"127.0.0.1:$GPORT\"" <<<"$RESP" &&
   ! grep -q 198.51.100.7 <<<"$out$RESP" && grep -q "^peer $GID 127.0.0.1:$GPORT " <<<"$out"; then
  ok "an address named in the body is ignored: the source address is listed"
else not_ok "address in the body" "$CODE $RESP / $out"; fi
# Nothing the attacker did listed anything else.
if grep -q '^peers 1 total 1' <<<"$out"; then ok "the listing holds the genuine node alone"
else not_ok "listing after the abuse" "$out"; fi

# The genuine node is still served: unregister, then register again.
out=$("$CLI" "$URL" unregister --key "$TMP/good.key" 2>&1)
out2=$("$CLI" "$URL" peers)
if grep -q '^rc=OK http=200' <<<"$out" && grep -q '^peers 0 total 0' <<<"$out2"; then
  ok "the genuine unregister still works"
else not_ok "genuine unregister" "$out / $out2"; fi
out=$("$CLI" "$URL" register --key "$TMP/good.key" --port "$GPORT" 2>&1)
if grep -q '^rc=OK http=200 ' <<<"$out"; then ok "the genuine register still works"
else not_ok "genuine register after the abuse" "$out"; fi
kill -0 "$TPID" && ok "the tracker is alive" || not_ok "tracker alive" "$(tail -5 "$TMP/trk.log")"
stop_pids "$TPID"
finish
