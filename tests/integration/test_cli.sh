#!/usr/bin/env bash
# The grapevine binary as a user runs it: help, keys, msg-check, demo.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

# --- help on every command ---
check "grapevine --help lists the commands" \
  bash -c '"$0" --help | grep -q "msg-check" && "$0" --help | grep -q demo' "$GV"
for c in demo id keygen msg-check; do
  check "grapevine $c --help" bash -c '"$0" "$1" --help | grep -q "^usage: grapevine $1"' "$GV" "$c"
done
out=$("$GV" frobnicate 2>&1); rc=$?
if [ $rc -eq 2 ] && grep -q "unknown command 'frobnicate'" <<<"$out"; then
  ok "unknown command: exit 2 and says so"
else not_ok "unknown command" "$rc $out"; fi

# --- keys ---
D=$TMP/node
out=$("$GV" id --data-dir "$D" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "grapevine keygen" <<<"$out"; then
  ok "id without a key: one-line hint to run keygen"
else not_ok "id without a key" "$rc $out"; fi
id1=$("$GV" keygen --data-dir "$D" 2>/dev/null)
mode=$(stat -c %a "$D/node.key" 2>/dev/null)
size=$(stat -c %s "$D/node.key" 2>/dev/null)
if [[ $id1 =~ ^[0-9a-f]{64}$ ]] && [ "$mode" = 600 ] && [ "$size" = 64 ]; then
  ok "keygen writes a 64-byte key, mode 0600, prints a 64-hex id"
else not_ok "keygen" "id=$id1 mode=$mode size=$size"; fi
id2=$("$GV" keygen --data-dir "$D" 2>/dev/null)
id3=$(GRAPEVINE_DIR=$D "$GV" id)
short=$("$GV" id --data-dir "$D" --short)
json=$("$GV" id --data-dir "$D" --json)
if [ "$id1" = "$id2" ] && [ "$id1" = "$id3" ] && [ "$short" = "${id1:0:12}" ] &&
   grep -q "\"id\":\"$id1\"" <<<"$json"; then
  ok "keygen twice keeps the key; id, GRAPEVINE_DIR, --short and --json agree"
else not_ok "id forms" "$id1 $id2 $id3 $short $json"; fi

chmod 644 "$D/node.key"
out=$("$GV" id --data-dir "$D" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "chmod 600" <<<"$out" && [ "$(wc -l <<<"$out")" -eq 1 ]; then
  ok "a key readable by others is refused with the fix in one line"
else not_ok "loose key permissions" "$rc $out"; fi
chmod 600 "$D/node.key"
head -c 40 "$D/node.key" > "$TMP/short.key" && chmod 600 "$TMP/short.key"
out=$("$GV" id --key "$TMP/short.key" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "40 bytes, a key file has exactly 64" <<<"$out"; then
  ok "a key file of the wrong length is refused"
else not_ok "short key" "$rc $out"; fi

# --- msg-check on the worked examples (fixed clock) ---
V=$TMP/vectors
mkdir -p "$V" && "$BUILD/tests/gen_vectors" --out "$V" >/dev/null
NOW=1767225600000
all_valid=1
for f in "$V"/*.json; do
  "$GV" msg-check --now $NOW "$f" >/dev/null 2>&1 || { all_valid=0; echo "# invalid: $f"; }
done
[ $all_valid = 1 ] && ok "msg-check accepts every worked example" || not_ok "worked examples"

expect_reject() { # NAME FILE ERROR [NOW]
  local out rc
  out=$("$GV" msg-check --now "${4:-$NOW}" --json "$2" 2>&1); rc=$?
  if [ $rc -eq 1 ] && grep -q "\"error\":\"$3\"" <<<"$out" && grep -q '"reason":"[^"]' <<<"$out"; then
    ok "msg-check: $1 -> $3 with a reason"
  else not_ok "msg-check: $1" "$rc $out"; fi
}
sed 's/demo\/hello/demo\/HELLO/' "$V/announcement.json" > "$TMP/tampered.json"
expect_reject "a tampered body" "$TMP/tampered.json" GV_EBADSIG
sed 's/"ttl":32/"ttl":33/' "$V/announcement.json" > "$TMP/ttl.json"
expect_reject "ttl 33 on an announcement" "$TMP/ttl.json" GV_ETTL
expect_reject "a message from 31 s in the future" "$V/announcement.json" GV_EFUTURE $((NOW - 31000))
expect_reject "a message 11 min old" "$V/announcement.json" GV_ESTALE $((NOW + 660000))
printf '{"v":1,"type":' > "$TMP/trunc.json"
expect_reject "truncated JSON" "$TMP/trunc.json" GV_EJSON
head -c 600000 /dev/zero | tr '\0' ' ' > "$TMP/big.json"
expect_reject "a 600 KB message" "$TMP/big.json" GV_ETOOBIG
printf '{"v":1,"type":"ROUTE"}' > "$TMP/route.json"
expect_reject "a relay type is not a gossip or link message" "$TMP/route.json" GV_ETYPE
out=$(printf '{"v":1,"type":"PING","nonce":5}' | "$GV" msg-check --json); rc=$?
if [ $rc -eq 0 ] && grep -q '"type":"PING"' <<<"$out"; then
  ok "msg-check reads standard input"
else not_ok "msg-check stdin" "$rc $out"; fi

# --- the demo, twice: identities are reused ---
R=$TMP/demo
out1=$("$GV" demo --dir "$R" --json); rc1=$?
out2=$("$GV" demo --dir "$R" --json); rc2=$?
a1=$(grep -o '"alice":"[0-9a-f]*"' <<<"$out1"); a2=$(grep -o '"alice":"[0-9a-f]*"' <<<"$out2")
if [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && grep -q '"ok":true' <<<"$out2" &&
   grep -q '"clean_close":true' <<<"$out2" && [ -n "$a1" ] && [ "$a1" = "$a2" ]; then
  ok "demo runs cleanly and a re-run reuses the identities"
else not_ok "demo" "$out1 / $out2"; fi
if grep -q '"tampered_copy":"GV_EBADSIG"' <<<"$out1" &&
   grep -q '"broadcasting":false,"addrs":\[\]' <<<"$out1" &&
   grep -Eq '"broadcasting":true,"addrs":\["127\.0\.0\.1:[0-9]+"\]' <<<"$out1"; then
  ok "demo: tampered copy rejected; silent alice shares no address, bob does"
else not_ok "demo details" "$out1"; fi
out=$("$GV" demo --dir "$R"); rc=$?
if [ $rc -eq 0 ] && grep -q "^demo ok" <<<"$out" && grep -q "link closed cleanly" <<<"$out"; then
  ok "demo narration ends with 'demo ok'"
else not_ok "demo narration" "$out"; fi
chmod 644 "$R/alice.key"
out=$("$GV" demo --dir "$R" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "chmod 600" <<<"$out"; then
  ok "demo refuses a loose key file with a clear message"
else not_ok "demo loose key" "$rc $out"; fi

# --- the worked examples in docs/PROTOCOL.md are current ---
"$BUILD/tests/gen_vectors" --markdown > "$TMP/vectors.md"
awk '/VECTORS:BEGIN/{f=1;next}/VECTORS:END/{f=0}f' docs/PROTOCOL.md > "$TMP/doc.md"
if diff -q "$TMP/vectors.md" "$TMP/doc.md" >/dev/null; then
  ok "PROTOCOL.md worked examples match the implementation (make vectors)"
else not_ok "PROTOCOL.md vectors are stale: run make vectors" "$(diff "$TMP/vectors.md" "$TMP/doc.md" | head)"; fi
finish
