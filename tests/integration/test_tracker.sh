#!/usr/bin/env bash
# grapevine-tracker as its clients see it, over loopback HTTP: every
# endpoint, every bad input of docs/TRACKER.md §4, replay, rate and
# per-address limits, dial-backs that fail, the node-side client
# (node/trkclient.c via tests/tracker_client), kill -9 and restart, and a
# clean shutdown. Every wait is bounded; every process is stopped with
# SIGTERM, and killed on exit only if it is left over.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

TRK=$PWD/$BUILD/grapevine-tracker
PEER=$PWD/$BUILD/tests/tracker_peer
CLIBIN=$PWD/$BUILD/tests/tracker_client
pids=() peer_
# The client; its stderr is kept for the sanitizer check at the end.
cli() { "$CLIBIN" "$@" 2>>"$TMP/client.err"; }

# wait_for FILE REGEX: up to 20 s (sanitizer builds start slowly).
wait_for() {
  local i
  for ((i = 0; i < 400; i++)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# start_tracker LOG ARGS...: a tracker on a free port; sets URL and TPID.
start_tracker() {
  local log=$TMP/$1.log
  shift
  "$TRK" --listen 127.0.0.1:0 --dial-timeout-ms 2000 --log-level debug \
    "$@" 2>"$log" &
  TPID=$!
  pids+=("$TPID")
  URL=
  wait_for "$log" 'listening on http://' || return 1
  URL=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$log" | head -1)
}

# start_peer NAME: a node accepting links with key NAME.key; sets PORT.
start_peer() {
  "$PEER" --key "$TMP/$1.key" >"$TMP/$1.out" 2>&1 &
  pids+=("$!") peer_pids+=("$!")
  PORT=
  wait_for "$TMP/$1.out" '^port ' || return 1
  PORT=$(awk '/^port /{print $2; exit}' "$TMP/$1.out")
}

# req METHOD PATH [BODYFILE [SIG]]: sets CODE, RESP and HDRS.
req() {
  local args=(-s -o "$TMP/resp" -D "$TMP/hdrs" -w '%{http_code}' -X "$1")
  [ "$1" = HEAD ] && args=(-s -o "$TMP/resp" -D "$TMP/hdrs" -w '%{http_code}' --head)
  [ -n "${3:-}" ] && args+=(--data-binary "@$3" -H 'Content-Type: application/json')
  [ -n "${4:-}" ] && args+=(-H "X-Grapevine-Sig: $4")
  CODE=$(curl "${args[@]}" "$URL$2")
  RESP=$(cat "$TMP/resp")
  HDRS=$(cat "$TMP/hdrs")
}

# expect NAME STATUS ERROR: the last answer had this status and, unless
# ERROR is -, {"error": ERROR, "reason": ...}.
expect() {
  if [ "$CODE" = "$2" ] &&
     { [ "$3" = - ] || { grep -q "\"error\":\"$3\"" <<<"$RESP" &&
                          grep -q '"reason":"[^"]' <<<"$RESP"; }; }; then
    ok "$1"
  else
    not_ok "$1" "got $CODE $RESP, want $2 $3"
  fi
}

now_ms() { date +%s%3N; }
nonce() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

# mkbody FILE KEY PORT REPOS_JSON [TS]: a register body written by hand.
mkbody() {
  printf '{"id":"%s","port":%s,"repos":%s,"caps":[],"ts":%s,"nonce":"%s"}' \
    "$(cli id --key "$2")" "$3" "$4" "${5:-$(now_ms)}" "$(nonce)" >"$1"
}

# sign KEY METHOD PATH FILE
sign() { cli sign --key "$1" --method "$2" --path "$3" --body "$(cat "$4")"; }

REG=/api/bootstrap/register
UNREG=/api/bootstrap/unregister

# --- command line ---
check "--help describes every flag" bash -c \
  '"$0" --help | grep -q -- --rate-limit && "$0" --help | grep -q -- --max-per-ip' "$TRK"
out=$("$TRK" --bogus 2>&1); rc=$?
if [ $rc -eq 2 ] && grep -q '^usage:' <<<"$out"; then ok "an unknown flag: usage, exit 2"
else not_ok "unknown flag" "$rc $out"; fi
out=$("$TRK" --max-results 0 2>&1); rc=$?
if [ $rc -eq 2 ] && grep -q 'max-results takes 1..256' <<<"$out"; then ok "an out-of-range flag: one line, exit 2"
else not_ok "out-of-range flag" "$rc $out"; fi

start_tracker main --db "$TMP/main.db" --rate-limit 0 ||
  not_ok "tracker starts" "$(cat "$TMP/main.log")"
MAIN=$URL MAIN_PID=$TPID
mport=${MAIN##*:}
out=$("$TRK" --listen "127.0.0.1:$mport" --db "$TMP/other.db" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "cannot listen on 127.0.0.1:$mport: Address already in use" <<<"$out" &&
   [ "$(wc -l <<<"$out")" -eq 1 ]; then ok "a port in use: one clear line, exit 1"
else not_ok "port in use" "$rc $out"; fi
out=$("$TRK" --listen 127.0.0.1:0 --db "$TMP/main.db" --key "$TMP/x.key" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "in use by another grapevine-tracker" <<<"$out"; then
  ok "a database in use by another tracker is refused"
else not_ok "db in use" "$rc $out"; fi
out=$("$TRK" --listen 127.0.0.1:0 --db /proc/nonexistent/t.db --key "$TMP/y.key" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "/proc/nonexistent/t.db" <<<"$out" && [ "$(wc -l <<<"$out")" -eq 1 ]; then
  ok "an unwritable database: one clear line, exit 1"
else not_ok "unwritable db" "$rc $out"; fi
if [ "$(stat -c %a "$TMP/tracker.key" 2>/dev/null)" = 600 ]; then
  ok "the tracker's key is created next to the db, mode 0600"
else not_ok "tracker key" "$(ls -l "$TMP")"; fi

# --- read endpoints ---
URL=$MAIN
req GET /health
if [ "$CODE" = 200 ] && grep -q '"status":"ok"' <<<"$RESP" && grep -q '"journal":"wal"' <<<"$RESP"; then
  ok "GET /health: status, counts and store state"
else not_ok "health" "$CODE $RESP"; fi
req HEAD /health
expect "HEAD /health" 200 -
req GET /api/bootstrap/peers
if [ "$CODE" = 200 ] && [ "$RESP" = '{"total":0,"count":0,"peers":[]}' ]; then ok "GET peers on an empty tracker"
else not_ok "empty peers" "$CODE $RESP"; fi
req GET '/api/bootstrap/discover?repos=demo/hello'
expect "GET discover on an empty tracker" 200 -
req GET /api/bootstrap/nope
expect "an unknown path is 404 not_found" 404 not_found
req PUT /api/bootstrap/peers
if [ "$CODE" = 405 ] && grep -qi '^Allow: GET, HEAD' <<<"$HDRS" &&
   grep -q '"error":"method_not_allowed"' <<<"$RESP"; then ok "a wrong method is 405 with Allow"
else not_ok "405" "$CODE $HDRS $RESP"; fi
req GET /api/bootstrap/register
expect "GET on register is 405" 405 method_not_allowed
req GET '/api/bootstrap/discover'
expect "discover without repos is 400 bad_query" 400 bad_query
req GET '/api/bootstrap/discover?repos=a,,b'
expect "discover with an empty name is 400" 400 bad_query
req GET '/api/bootstrap/peers?max=0'
expect "peers with max=0 is 400" 400 bad_query

# --- registration with dial-back ---
start_peer alice || not_ok "peer starts" "$(cat "$TMP/alice.out")"
APORT=$PORT
AID=$(cli id --key "$TMP/alice.key")
out=$(cli "$MAIN" register --key "$TMP/alice.key" --port "$APORT" \
  --repos demo/hello,linux@v6.1 --caps relay)
if grep -q "^rc=OK http=200 .*addr=127.0.0.1:$APORT renewed=0" <<<"$out" &&
   grep -q "^open " "$TMP/alice.out" && grep -q "^goodbye tracker dial-back" "$TMP/alice.out"; then
  ok "register: dial-back handshake pinned to the id, then 200 listed"
else not_ok "register" "$out $(cat "$TMP/alice.out")"; fi
out=$(cli "$MAIN" peers)
if grep -q "^peer $AID 127.0.0.1:$APORT demo/hello,linux@v6.1$" <<<"$out"; then
  ok "peers lists the node at its source address"
else not_ok "peers after register" "$out"; fi
out=$(cli "$MAIN" discover linux@v6.1,other)
out2=$(cli "$MAIN" discover other)
if grep -q "^peer $AID " <<<"$out" && grep -q '^peers 0 ' <<<"$out2"; then
  ok "discover finds holders of any named repository, and only them"
else not_ok "discover" "$out / $out2"; fi
out=$(cli "$MAIN" register --key "$TMP/alice.key" --port "$APORT" --repos demo/hello)
if grep -q "^rc=OK http=200 .*renewed=1" <<<"$out"; then ok "registering again renews"
else not_ok "renew" "$out"; fi

# The address comes from TCP, never from the body.
mkbody "$TMP/b.json" "$TMP/alice.key" "$APORT" '["demo/hello"]'
sed -i 's/}$/,"addr":"198.51.100.7:1","ip":"198.51.100.7"}/' "$TMP/b.json"
req POST $REG "$TMP/b.json" "$(sign "$TMP/alice.key" POST $REG "$TMP/b.json")"
if [ "$CODE" = 200 ] && grep -q "\"addr\":\"127.0.0.1:$APORT\"" <<<"$RESP"; then
  ok "an address in the body is ignored; the source address is listed"
else not_ok "source address" "$CODE $RESP"; fi
# Replay: the very same signed request again.
req POST $REG "$TMP/b.json" "$(sign "$TMP/alice.key" POST $REG "$TMP/b.json")"
expect "the same signed request twice is 409 replay" 409 replay
mkbody "$TMP/b.json" "$TMP/alice.key" "$APORT" '[]' $(($(now_ms) - 60000))
req POST $REG "$TMP/b.json" "$(sign "$TMP/alice.key" POST $REG "$TMP/b.json")"
expect "a ts 60 s old is 409 stale" 409 stale
mkbody "$TMP/b.json" "$TMP/alice.key" "$APORT" '[]' $(($(now_ms) + 60000))
req POST $REG "$TMP/b.json" "$(sign "$TMP/alice.key" POST $REG "$TMP/b.json")"
expect "a ts 60 s ahead is 409 future" 409 future

# Nodes that do not pass the dial-back are never listed.
BID=$(cli id --key "$TMP/bob.key")
out=$(cli "$MAIN" register --key "$TMP/bob.key" --port 9 --repos demo/hello)
if grep -q "^rc=GV_EHANDSHAKE http=422 error=dialback_failed .*refused" <<<"$out"; then
  ok "a node that is not listening: 422 dialback_failed"
else not_ok "not listening" "$out"; fi
out=$(cli "$MAIN" register --key "$TMP/carol.key" --port "$APORT")
CID=$(cli id --key "$TMP/carol.key")
if grep -q "^rc=GV_EHANDSHAKE http=422 .*pinned" <<<"$out"; then
  ok "a listener holding another key: 422 (pinned id mismatch)"
else not_ok "wrong key" "$out"; fi
out=$(cli "$MAIN" peers --max 256)
if ! grep -q "$BID" <<<"$out" && ! grep -q "$CID" <<<"$out" && grep -q '^peers 1 total 1' <<<"$out"; then
  ok "neither is ever listed"
else not_ok "failed nodes listed" "$out"; fi

# --- bad input: every answer a 4xx with {"error","reason"} ---
printf '{' >"$TMP/b.json"
req POST $REG "$TMP/b.json" "$(sign "$TMP/alice.key" POST $REG "$TMP/b.json")"
expect "malformed JSON is 400 malformed_json" 400 malformed_json
printf '[1,2]' >"$TMP/b.json"
req POST $REG "$TMP/b.json"
expect "a JSON array is 400 malformed_json" 400 malformed_json
mkbody "$TMP/b.json" "$TMP/alice.key" "\"$APORT\"" '[]'
req POST $REG "$TMP/b.json" "$(sign "$TMP/alice.key" POST $REG "$TMP/b.json")"
expect "a port given as a string is 400 bad_field" 400 bad_field
mkbody "$TMP/b.json" "$TMP/alice.key" "$APORT" '"demo/hello"'
req POST $REG "$TMP/b.json" "$(sign "$TMP/alice.key" POST $REG "$TMP/b.json")"
expect "repos given as a string is 400 bad_field" 400 bad_field
mkbody "$TMP/b.json" "$TMP/alice.key" 70000 '[]'
req POST $REG "$TMP/b.json" "$(sign "$TMP/alice.key" POST $REG "$TMP/b.json")"
expect "port 70000 is 400 bad_field" 400 bad_field
repos=$(seq -f '"r%g"' 1 65 | paste -sd, -)
mkbody "$TMP/b.json" "$TMP/alice.key" "$APORT" "[$repos]"
req POST $REG "$TMP/b.json" "$(sign "$TMP/alice.key" POST $REG "$TMP/b.json")"
expect "65 repositories is 400 too_many" 400 too_many
long=$(printf 'x%.0s' $(seq 65))
mkbody "$TMP/b.json" "$TMP/alice.key" "$APORT" "[\"$long\"]"
req POST $REG "$TMP/b.json" "$(sign "$TMP/alice.key" POST $REG "$TMP/b.json")"
expect "a 65-byte repository name is 400 bad_field" 400 bad_field
mkbody "$TMP/b.json" "$TMP/alice.key" "$APORT" '[]'
req POST $REG "$TMP/b.json"
expect "no signature is 401 missing_signature" 401 missing_signature
req POST $REG "$TMP/b.json" "$(sign "$TMP/bob.key" POST $REG "$TMP/b.json")"
expect "a signature by another key is 401 bad_signature" 401 bad_signature
req POST $REG "$TMP/b.json" "$(sign "$TMP/alice.key" DELETE $UNREG "$TMP/b.json")"
expect "a signature for another method and path is 401" 401 bad_signature
req POST $REG "$TMP/b.json" "zz"
expect "a malformed signature header is 401 missing_signature" 401 missing_signature
head -c 70000 /dev/zero | tr '\0' ' ' >"$TMP/big.json"
req POST $REG "$TMP/big.json"
expect "a body over 64 KiB is 413 body_too_large" 413 body_too_large
curl -s -o "$TMP/resp" -w '%{http_code}' -X POST -H 'Transfer-Encoding: chunked' \
  --data-binary "@$TMP/big.json" "$MAIN$REG" >"$TMP/code"
CODE=$(cat "$TMP/code") RESP=$(cat "$TMP/resp")
expect "a chunked body over 64 KiB is 413 too" 413 body_too_large
req GET /health
expect "the tracker still answers after all that" 200 -

# --- unregister ---
printf '{"id":"%s","ts":%s,"nonce":"%s"}' "$AID" "$(now_ms)" "$(nonce)" >"$TMP/u.json"
req DELETE $UNREG "$TMP/u.json" "$(sign "$TMP/bob.key" DELETE $UNREG "$TMP/u.json")"
expect "unregister signed by another key is 401" 401 bad_signature
# A peers answer drawn just before (answers are shared for up to 100 ms
# while the listing stays put) must not outlive the change.
out0=$(cli "$MAIN" peers)
out=$(cli "$MAIN" unregister --key "$TMP/alice.key")
out2=$(cli "$MAIN" peers)
if grep -q '^peers 1 total 1' <<<"$out0" &&
   grep -q '^rc=OK http=200' <<<"$out" && grep -q '^peers 0 total 0' <<<"$out2"; then
  ok "unregister removes the node from the listing"
else not_ok "unregister" "$out $out2"; fi
out=$(cli "$MAIN" unregister --key "$TMP/alice.key")
if grep -q '^rc=ENOENT http=404 error=not_registered' <<<"$out"; then ok "unregister of an unknown id is 404 not_registered"
else not_ok "unregister unknown" "$out"; fi

# --- metrics ---
req GET /metrics
m() { grep -E "^grapevine_tracker_$1 " <<<"$RESP" | awk '{print $2}'; }
if [ "$CODE" = 200 ] && grep -qi '^Content-Type: text/plain; version=0.0.4' <<<"$HDRS" &&
   [ "$(m 'requests_total\{route="register",code="200"\}')" -ge 3 ] &&
   [ "$(m 'dialbacks_total\{result="ok"\}')" -ge 3 ] &&
   [ "$(m 'dialbacks_total\{result="refused"\}')" -ge 1 ] &&
   [ "$(m 'dialbacks_total\{result="peer_id"\}')" -ge 1 ] &&
   [ "$(m 'replay_rejections_total')" -ge 3 ] &&
   [ "$(m 'unregistrations_total')" = 1 ] && [ "$(m registrations)" = 0 ]; then
  ok "GET /metrics: requests, registrations, dial-back results, rejections"
else not_ok "metrics" "$CODE $RESP"; fi

# --- limits ---
start_tracker rl --db "$TMP/rl.db" --rate-limit 2 --rate-burst 3
codes=$(curl -s -o /dev/null -w '%{http_code}\n' "$URL/health" "$URL/health" \
  "$URL/health" "$URL/health" "$URL/health" "$URL/health")
req GET /api/bootstrap/peers
if grep -q 429 <<<"$codes" && [ "$CODE" = 429 ] && grep -qiE '^Retry-After: [1-9]' <<<"$HDRS" &&
   grep -q '"error":"rate_limited"' <<<"$RESP"; then
  ok "past the token bucket: 429 rate_limited with Retry-After"
else not_ok "rate limit" "$codes / $CODE $HDRS $RESP"; fi
sleep 1.1
req GET /health
expect "the bucket refills" 200 -
stop_pids "$TPID"

start_tracker proxy --db "$TMP/proxy.db" --rate-limit 1 --rate-burst 1 --trust-proxy
a=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Forwarded-For: 203.0.113.1, 10.0.0.1' "$URL/health")
b=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Forwarded-For: 10.0.0.1' "$URL/health")
c=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Forwarded-For: 10.0.0.2' "$URL/health")
if [ "$a$b$c" = 200429200 ]; then ok "--trust-proxy: clients are told apart by the last X-Forwarded-For"
else not_ok "trust proxy" "$a $b $c"; fi
stop_pids "$TPID"

start_tracker perip --db "$TMP/perip.db" --max-per-ip 1
start_peer dave
out=$(cli "$URL" register --key "$TMP/alice.key" --port "$APORT")
out2=$(cli "$URL" register --key "$TMP/dave.key" --port "$PORT")
if grep -q '^rc=OK' <<<"$out" && grep -q '^rc=GV_ELIMIT http=403 error=ip_limit' <<<"$out2"; then
  ok "at most --max-per-ip ids per address: 403 ip_limit"
else not_ok "per-ip" "$out / $out2"; fi
stop_pids "$TPID"

# --- kill -9 keeps every acknowledged registration ---
start_tracker dur1 --db "$TMP/dur.db"
DUR=$URL
acked=()
for node in n1 n2 n3; do
  start_peer "$node"
  out=$(cli "$DUR" register --key "$TMP/$node.key" --port "$PORT" --repos "repo/$node")
  grep -q '^rc=OK http=200' <<<"$out" && acked+=("$(cli id --key "$TMP/$node.key")")
done
{ kill -9 "$TPID" && wait "$TPID"; } 2>/dev/null
start_tracker dur2 --db "$TMP/dur.db"
out=$(cli "$URL" peers --max 10)
missing=0
for id in "${acked[@]}"; do grep -q "^peer $id " <<<"$out" || missing=$((missing + 1)); done
if [ "${#acked[@]}" -eq 3 ] && [ "$missing" -eq 0 ] && grep -q '3 registrations loaded' "$TMP/dur2.log"; then
  ok "kill -9 and restart: all ${#acked[@]} acknowledged registrations are listed"
else not_ok "durability" "acked=${#acked[@]} missing=$missing $out"; fi
out=$(cli "$URL" discover repo/n2)
if grep -q '^peers 1 ' <<<"$out"; then ok "after restart, discover works from the reloaded index"
else not_ok "discover after restart" "$out"; fi

# --- clean shutdown ---
kill -TERM "$TPID"
rc=124
for ((i = 0; i < 200; i++)); do
  kill -0 "$TPID" 2>/dev/null || { wait "$TPID"; rc=$?; break; }
  sleep 0.05
done
if [ "$rc" -eq 0 ] && grep -q 'SIGTERM: shutting down' "$TMP/dur2.log" && grep -q ' stopped$' "$TMP/dur2.log"; then
  ok "SIGTERM: clean shutdown, exit 0"
else not_ok "SIGTERM" "rc=$rc $(tail -5 "$TMP/dur2.log")"; fi
kill -TERM "$MAIN_PID"
rc=124
for ((i = 0; i < 200; i++)); do
  kill -0 "$MAIN_PID" 2>/dev/null || { wait "$MAIN_PID"; rc=$?; break; }
  sleep 0.05
done
if [ "$rc" -eq 0 ]; then ok "the tracker that took every bad input also exits 0"
else not_ok "main shutdown" "rc=$rc $(tail -5 "$TMP/main.log")"; fi
# The test peers stop as the trackers do.
stop_pids "${peer_pids[@]}"
# Sanitizer builds: no report from any process, exited or killed.
if grep -lE 'Sanitizer|runtime error' "$TMP"/*.log "$TMP"/*.out "$TMP/client.err" 2>/dev/null; then
  not_ok "no sanitizer report from tracker, peers or client" \
    "$(grep -hE -A3 'Sanitizer|runtime error' "$TMP"/*.log "$TMP"/*.out "$TMP/client.err" | head)"
else ok "no sanitizer report from tracker, peers or client"; fi
finish
