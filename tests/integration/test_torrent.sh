#!/usr/bin/env bash
# Torrents through real nodes on loopback, started as users start them,
# each broadcasting on its own 127.0.0.x (docs/TORRENT.md): share on two
# seeders, fetch on a third (found by gossip, dialed on IP:tport), the
# records' bt: names and tport, a silent record without tport, kill -9 of
# a seeder mid-fetch, kill -9 of the fetcher and its resume (and the
# temporary files of interrupted writes swept at restart), bad input,
# no holder, unshare. Every wait is bounded.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
free_ports 6 || { not_ok "no 6 free ports"; finish; exit; }
RATE=1048576 # seeders' upload limit (bytes/s): slow enough to kill mid-way
ip() { echo "127.0.0.$((40 + $1))"; }
addr() { echo "$(ip "$1"):$((BASE + $1))"; }
node() { # node NAME I ARGS...: broadcasting on addr I, linked to s1 (1)
  local name=$1 i=$2
  shift 2
  start "$name" --broadcast --listen "$(addr "$i")" \
    $([ "$i" != 1 ] && echo --peer "$(addr 1)") "$@"
}
peers_of() { "$GV" peers --json --data-dir "$TMP/$1"; }
# holds NODE ID NAME: NODE's table has ID's record listing NAME and a tport.
holds() {
  peers_of "$1" | J "any(p['id']=='$2' and '$3' in p['repositories'] and
    p.get('tport',0)>0 for p in d)" | grep -qx True
}
lacks() { peers_of "$1" | J "any(p['id']=='$2' and '$3' not in p['repositories'] for p in d)" | grep -qx True; }
progress_of() { # progress_of NODE V1: percent done, 0 if unknown
  "$GV" torrents --json --data-dir "$TMP/$1" 2>/dev/null |
    J "int(max([t['progress']*100 for t in d if t['v1']=='$2'] or [0]))" 2>/dev/null || echo 0
}
at_least() { [ "$(progress_of "$1" "$v1")" -ge "$2" ]; } # at_least NODE PERCENT

node s1 1 --torrent-upload-rate $RATE || { not_ok "s1 starts"; finish; exit; }
node s2 2 --torrent-upload-rate $RATE || { not_ok "s2 starts"; finish; exit; }
node f 3 || { not_ok "f starts"; finish; exit; }
node x 4 || { not_ok "x starts"; finish; exit; }
mkdir -p "$TMP/d1" "$TMP/d2" "$TMP/out"
head -c $((8 << 20)) /dev/urandom >"$TMP/d1/data.bin"
cp "$TMP/d1/data.bin" "$TMP/d2/data.bin"
want=$(sha256sum <"$TMP/d1/data.bin" | cut -d' ' -f1)
id_s1=$("$GV" id --data-dir "$TMP/s1")
id_s2=$("$GV" id --data-dir "$TMP/s2")
id_x=$("$GV" id --data-dir "$TMP/x")

# ---- share on two seeders ----
out=$("$GV" share "$TMP/d1/data.bin" --repo data@1 --json --data-dir "$TMP/s1")
v1=$(J "d['v1']" <<<"$out" 2>/dev/null)
v2=$(J "d['v2']" <<<"$out" 2>/dev/null)
if [ ${#v1} = 40 ] && [ ${#v2} = 64 ] && grep -q '"magnet":"magnet:?xt=urn:btih:' <<<"$out"; then
  ok "share prints v1, v2 and a magnet link"
else not_ok "share --json" "$out"; fi
out2=$("$GV" share "$TMP/d2/data.bin" --data-dir "$TMP/s2")
grep -q "^v1 *$v1$" <<<"$out2" && ok "the same file shared on a second seeder has the same v1" ||
  not_ok "share on s2" "$out2"
out=$("$GV" share "$TMP/d1/data.bin" --data-dir "$TMP/s1" 2>&1); rc=$?
[ $rc = 0 ] && grep -q "already shared" <<<"$out" && grep -q "$v1" <<<"$out" &&
  ok "sharing it again says so and prints the hashes" || not_ok "share again" "$rc $out"
out=$("$GV" share "$TMP/nope.bin" --data-dir "$TMP/s1" 2>&1); rc=$?
[ $rc != 0 ] && grep -q "No such file" <<<"$out" &&
  ok "sharing a missing path fails with the reason" || not_ok "share missing" "$rc $out"

if wait_for 15 holds f "$id_s1" "bt:$v1" && wait_for 15 holds f "$id_s2" "bt:$v1" &&
   holds f "$id_s1" "bt2:${v2:0:60}" && holds f "$id_s1" "data@1"; then
  ok "the fetcher's table shows both seeders with bt:<v1>, bt2:<v2/60> and a tport"
else not_ok "records carry bt: and tport" "$(peers_of f)"; fi

# ---- fetch on a third node ----
out=$(cd "$TMP" && timeout 90 "$GV" fetch "$v1" --out out --timeout 30s --data-dir "$TMP/f" 2>&1); rc=$?
got=$(sha256sum <"$TMP/out/data.bin" 2>/dev/null | cut -d' ' -f1)
[ $rc = 0 ] && [ "$got" = "$want" ] && [ "$(tail -1 <<<"$out")" = "$TMP/out/data.bin" ] &&
  ok "fetch completes, sha256 matches, the last line is the path" ||
  not_ok "fetch" "rc=$rc $out"
seeding() {
  "$GV" torrents --json --data-dir "$TMP/$1" |
    J "any(t['v1']=='$v1' and t['state']=='seeding' and t['kind']=='shared' for t in d)" | grep -qx True
}
seeding s1 && seeding s2 && ok "torrents --json shows it seeding on both seeders" ||
  not_ok "torrents on the seeders" "$("$GV" torrents --json --data-dir "$TMP/s1")"
up=$("$GV" torrents --json --data-dir "$TMP/s1" | J "d[0]['up_rate']>=0 and d[0]['ratio']>=0")
[ "$up" = True ] && ok "torrents reports rates and ratio" || not_ok "torrents fields" "$up"

# ---- a silent record carries no tport ----
x_tport() { peers_of f | J "any(p['id']=='$id_x' and p.get('tport',0)>0 for p in d)" | grep -qx True; }
if wait_for 10 x_tport; then
  ok "a broadcasting node's record has a tport"
else not_ok "x's tport" "$(peers_of f)"; fi
"$GV" broadcast off --wait 0 --data-dir "$TMP/x" >/dev/null
silent_no_tport() {
  peers_of f | J "any(p['id']=='$id_x' and not p['broadcasting'] and 'tport' not in p and not p['addresses'] for p in d)" | grep -qx True
}
wait_for 15 silent_no_tport && ok "after broadcast off, its record on another node has no tport" ||
  not_ok "silent record" "$(peers_of f)"

# ---- kill -9 a seeder mid-fetch ----
node g 5 || { not_ok "g starts"; finish; exit; }
wait_for 15 holds g "$id_s2" "bt:$v1"
(cd "$TMP" && timeout 120 "$GV" fetch "$v1" --out outg --timeout 60s --json --data-dir "$TMP/g" >"$TMP/g.fetch" 2>&1; echo "rc=$?" >>"$TMP/g.fetch") &
fpid=$!
wait_for 30 at_least g 10
p=$(progress_of g "$v1")
{ kill -9 "$pid_s2"; wait "$pid_s2"; } 2>/dev/null
wait "$fpid"
got=$(sha256sum <"$TMP/outg/data.bin" 2>/dev/null | cut -d' ' -f1)
if [ "$p" -ge 10 ] && [ "$p" -lt 100 ] && grep -q "rc=0" "$TMP/g.fetch" && [ "$got" = "$want" ] &&
   tail -2 "$TMP/g.fetch" | head -1 | grep -q '"event":"result","ok":true'; then
  ok "kill -9 of a seeder at $p%: the fetch completes from the other (sha256)"
else not_ok "seeder killed mid-fetch" "at $p%: $(tail -3 "$TMP/g.fetch")"; fi

# ---- kill -9 the fetcher halfway, restart it, fetch again ----
node h 6 || { not_ok "h starts"; finish; exit; }
wait_for 15 holds h "$id_s1" "bt:$v1"
(cd "$TMP" && timeout 120 "$GV" fetch "$v1" --out outh --timeout 60s --data-dir "$TMP/h" >/dev/null 2>&1) &
fpid=$!
wait_for 40 at_least h 40
p=$(progress_of h "$v1")
sleep 1.2 # past GV_TOR_RESUME_MS: the verified pieces are in the resume file
{ kill -9 "$pid_h"; wait "$pid_h"; } 2>/dev/null
wait "$fpid" 2>/dev/null
# What writes cut short by a kill -9 leave (a team file, the list, a resume
# file): the restart removes those over a minute old and keeps a younger
# one, which may be another process's write in progress.
stale="h/.team.tmp.Aa0Bb1 h/torrents/.list.tmp.Cc2Dd3 h/torrents/state/.f.resume.tmp.Ee4Ff5"
for f in $stale h/torrents/.list.tmp.Gg6Hh7; do (umask 077 && echo partial >"$TMP/$f"); done
for f in $stale; do touch -d '2 minutes ago' "$TMP/$f"; done
start h --broadcast --listen "$(addr 6)" --peer "$(addr 1)"
left=$(for f in $stale; do [ -e "$TMP/$f" ] && echo "$f"; done)
if [ -z "$left" ] && [ -e "$TMP/h/torrents/.list.tmp.Gg6Hh7" ] &&
   [ "$(grep -c 'removed 1 temporary file of interrupted writes in ' "$TMP/h.log")" = 3 ]; then
  ok "the restart removed the temporary files of interrupted writes, and kept a young one"
else not_ok "leftover temporary files" "left: $left; $(grep -i 'temporary' "$TMP/h.log")"; fi
listed=$("$GV" torrents --json --data-dir "$TMP/h" | J "any(t['v1']=='$v1' for t in d)")
[ "$listed" = True ] && ok "the restarted node has the fetch back from its list before it is asked" ||
  not_ok "fetch listed after restart" "$("$GV" torrents --json --data-dir "$TMP/h")"
out=$(cd "$TMP" && timeout 120 "$GV" fetch "$v1" --out outh --timeout 60s --json --data-dir "$TMP/h" 2>&1); rc=$?
first=$(head -1 <<<"$out" | J "d['done']" 2>/dev/null)
got=$(sha256sum <"$TMP/outh/data.bin" 2>/dev/null | cut -d' ' -f1)
if [ "$p" -ge 40 ] && [ "$p" -lt 100 ] && [ $rc = 0 ] && [ "$got" = "$want" ] &&
   [ "${first%.*}" -gt 0 ] 2>/dev/null; then
  ok "kill -9 of the fetcher at $p%, restart: fetch resumes from ${first%.*} bytes and completes (sha256)"
else not_ok "fetcher killed and resumed" "at $p%, first done=$first rc=$rc $(tail -2 <<<"$out")"; fi

# ---- kill -9 a seeder, restart it: it shares again, on a new port ----
old=$(peers_of f | J "[p.get('tport',0) for p in d if p['id']=='$id_s1'][0]")
{ kill -9 "$pid_s1"; wait "$pid_s1"; } 2>/dev/null
start s1 --broadcast --listen "$(addr 1)" --torrent-upload-rate $RATE
new_tport() { peers_of f | J "any(p['id']=='$id_s1' and p.get('tport',0) not in (0,$old) and 'bt:$v1' in p['repositories'] for p in d)" | grep -qx True; }
"$GV" unshare "$v1" --delete --data-dir "$TMP/f" >/dev/null
if wait_for 20 new_tport; then
  out=$(cd "$TMP" && timeout 90 "$GV" fetch "$v1" --out out2 --timeout 30s --data-dir "$TMP/f" 2>&1); rc=$?
  got=$(sha256sum <"$TMP/out2/data.bin" 2>/dev/null | cut -d' ' -f1)
  [ $rc = 0 ] && [ "$got" = "$want" ] &&
    ok "a seeder killed and restarted shares again (new tport in its record) and serves (sha256)" ||
    not_ok "fetch from the restarted seeder" "rc=$rc $out"
else not_ok "restarted seeder's record" "old tport $old: $(peers_of f)"; fi

# ---- bad input, no holder ----
out=$("$GV" fetch zz --data-dir "$TMP/nonode" 2>&1); rc=$?
[ $rc = 2 ] && grep -q "not an info-hash or magnet" <<<"$out" &&
  ok "a bad hash: exit 2 and a clear message, before any node is asked" || not_ok "bad hash" "$rc $out"
out=$("$GV" fetch 'magnet:?xt=urn:btih:xyz' --data-dir "$TMP/nonode" 2>&1); rc=$?
[ $rc = 2 ] && grep -q "not an info-hash or magnet" <<<"$out" &&
  ok "a bad magnet: exit 2 and a clear message" || not_ok "bad magnet" "$rc $out"
out=$("$GV" unshare 1234 --data-dir "$TMP/nonode" 2>&1); rc=$?
[ $rc = 2 ] && ok "unshare of a bad hash: exit 2" || not_ok "unshare bad hash" "$rc $out"
nobody=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
out=$(cd "$TMP" && timeout 30 "$GV" fetch "$nobody" --out outn --timeout 3s --data-dir "$TMP/f" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "no holder found within 3s" <<<"$out" &&
  ok "a hash nobody holds: exit 1, 'no holder found within 3s'" || not_ok "no holder" "$rc $out"
out=$("$GV" fetch "$v1" --data-dir "$TMP/nonode" 2>&1); rc=$?
[ $rc = 3 ] && grep -q "no node is running" <<<"$out" &&
  ok "no node running: exit 3 and says so" || not_ok "no node" "$rc $out"

# ---- unshare ----
out=$("$GV" unshare "$v1" --data-dir "$TMP/s1" 2>&1); rc=$?
if [ $rc = 0 ] && wait_for 15 lacks f "$id_s1" "bt:$v1" && [ -f "$TMP/d1/data.bin" ] &&
   "$GV" torrents --json --data-dir "$TMP/s1" | J "len(d)==0" | grep -qx True; then
  ok "unshare: the name leaves the record on another node, the file stays"
else not_ok "unshare" "$rc $out $(peers_of f)"; fi

# ---- the cap: 24 shares, then a clear refusal ----
mkdir -p "$TMP/many"
n_ok=0
for i in $(seq 1 25); do
  echo "small file $i" >"$TMP/many/f$i"
  "$GV" share "$TMP/many/f$i" --data-dir "$TMP/s1" >/dev/null 2>"$TMP/many.err" && n_ok=$((n_ok + 1))
done
names() { peers_of f | J "[len([r for r in p['repositories'] if r.startswith('bt')]) for p in d if p['id']=='$id_s1'][0]"; }
full() { [ "$(names)" = 48 ]; }
if [ $n_ok = 24 ] && grep -q "shares the most torrents" "$TMP/many.err" && wait_for 15 full; then
  ok "24 shares (48 names in the record), the 25th refused with the reason"
else not_ok "share cap" "$n_ok shared; $(cat "$TMP/many.err"); names $(names)"; fi

stop_pids "$pid_s1" "$pid_f" "$pid_x" "$pid_h"

# ---- a damaged list: a line twice, a bad hash, a relative path ----
stop_pids "$pid_g"
list=$TMP/g/torrents/list
line=$(head -1 "$list")
{ echo "$line"; echo "$line"; printf 'fetch\t+1%s\t\tx\t/tmp\n' "${v1:2}"
  printf 'fetch\t%s\t\t\trelative\n' "$nobody"; } >>"$list"
start g --broadcast --listen "$(addr 5)" --peer "$(addr 1)"
n=$("$GV" torrents --json --data-dir "$TMP/g" | J "len(d)")
refused=$(grep -c "a line of .*/list is refused" "$TMP/g.log")
[ "$n" = 1 ] && [ "$refused" -ge 3 ] &&
  ok "a damaged list: the torrent listed twice loads once, bad lines are refused ($refused)" ||
  not_ok "damaged list" "torrents=$n refused=$refused"
stop_pids "$pid_g"
# Under `make asan`, any sanitizer report in any node's log fails the run.
if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$TMP"/*.log; then
  not_ok "a sanitizer reported" "$(grep -hE -A8 "ERROR: |runtime error:" "$TMP"/*.log | head -20)"
else ok "no sanitizer report in any node's log"; fi
finish
