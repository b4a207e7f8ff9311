#!/usr/bin/env bash
# Resume after kill -9 (issue 11): a seeder limited to 2 MiB/s, a fetcher
# (tests/tor_peer, the gv_tor API on a libuv loop) killed with SIGKILL once
# half the pieces are verified and a resume file was written, then started
# again on the same state directory: it completes, the sha256 matches, and
# it downloaded less than the whole file the second time. Every wait is
# bounded.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
PEER=$PWD/$BUILD/tests/tor_peer
SIZE=$((8 * 1024 * 1024))
mkdir -p "$TMP/src"
head -c $SIZE /dev/urandom >"$TMP/src/data.bin"

"$PEER" seed --file "$TMP/src/data.bin" --state "$TMP/seed" \
  --torrent-out "$TMP/t.torrent" --piece 65536 --rate 2097152 \
  >"$TMP/seed.out" 2>&1 &
pids+=($!)
seed=$!
for _ in $(seq 1 100); do
  grep -q '^ready' "$TMP/seed.out" && break
  sleep 0.1
done
PORT=$(awk '/^port/ {print $2}' "$TMP/seed.out")
check "seeder ready on a port" grep -q '^ready' "$TMP/seed.out"

fetch() {
  "$PEER" fetch --torrent "$TMP/t.torrent" --out "$TMP/out" \
    --state "$TMP/fstate" --peer "127.0.0.1:$PORT" --progress --timeout 60 \
    >"$TMP/$1.out" 2>&1
}

# Halfway: at least 64 of 128 pieces verified, and a resume file saved.
fetch f1 &
f1=$!
pids+=($f1)
half=0
for _ in $(seq 1 200); do
  done_n=$(awk -F'[ /]' '/^piece/ {n = $2} END {print n + 0}' "$TMP/f1.out")
  if [ "$done_n" -ge 64 ] && grep -q '^resume_saved err=0' "$TMP/f1.out"; then
    half=1
    break
  fi
  sleep 0.05
done
kill -9 $f1
wait $f1 2>/dev/null
if [ $half = 1 ] && ! grep -q '^finished' "$TMP/f1.out"; then
  ok "fetcher killed halfway ($done_n of 128 pieces verified)"
else
  not_ok "fetcher killed halfway" "$(tail -3 "$TMP/f1.out")"
fi
check "a resume file was left in the state directory" \
  sh -c "ls '$TMP/fstate'/*.resume"

fetch f2
rc=$?
check "the restarted fetcher completes" test $rc = 0
got=$(sha256sum <"$TMP/out/data.bin" | cut -d' ' -f1)
want=$(sha256sum <"$TMP/src/data.bin" | cut -d' ' -f1)
check "sha256 matches" test "$got" = "$want"
down=$(sed -n 's/^finished .*downloaded=\([0-9]*\).*/\1/p' "$TMP/f2.out")
if [ -n "$down" ] && [ "$down" -lt $((SIZE * 3 / 4)) ]; then
  ok "second run downloaded $down of $SIZE bytes (verified pieces kept)"
else
  not_ok "second run downloaded less than 3/4 of the file" \
    "$(tail -3 "$TMP/f2.out")"
fi
stop_pids $seed
finish
