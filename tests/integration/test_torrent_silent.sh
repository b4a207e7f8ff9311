#!/usr/bin/env bash
# Torrents where a node is silent (docs/TORRENT.md, "The connection
# matrix"): real nodes on loopback, started as users start them. R is the
# one broadcasting node between silent ones, and their guard (a bootstrap
# node they name with --peer); B and C broadcast and share. A silent node
# never dials for tunnels: F and F2 open links to R only, and R carries
# (and dials where it must) every stream they open.
#  1. Three seeders, one of them silent (S), and a silent fetcher (F): the
#     file arrives whole, and S served part of it through a tunnel.
#  2. A silent seeder (S2) and a silent fetcher (F2) with only R between
#     them: the file arrives whole, through R.
#  3. A broadcasting fetcher (G) and the silent seeder S2: through R.
#  1b. A file only broadcasting seeders hold: B, and D, started with
#     --peer B only: F gets it through R, which dials D if it has no link.
#  4. SIGTERM to a silent seeder while a tunnel stream is open: exit 0.
# In all, no silent node's address (each silent node listens on its own
# 127.0.0.x, so a leak would show it) appears in any node's peers --json,
# in a record, or in any libtorrent peer list (torrents --json peer_addrs).
# Every wait is bounded.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
free_ports 9 || { not_ok "no 9 free ports"; finish; exit; }
ip() { echo "127.0.0.$((70 + $1))"; }
addr() { echo "$(ip "$1"):$((BASE + $1))"; }
RATE=262144 # B's and C's upload limit (bytes/s): S, unlimited, must serve

start R --bootstrap --listen "$(addr 0)" || { not_ok "R starts"; finish; exit; }
start B --broadcast --listen "$(addr 1)" --peer "$(addr 0)" --torrent-upload-rate $RATE ||
  { not_ok "B starts"; finish; exit; }
start C --broadcast --listen "$(addr 2)" --peer "$(addr 0)" --torrent-upload-rate $RATE ||
  { not_ok "C starts"; finish; exit; }
start D --broadcast --listen "$(addr 8)" --peer "$(addr 1)" || { not_ok "D starts"; finish; exit; }
# Silent: a listen address (their libtorrent's), never shared; they dial R.
for n in S:3 F:4 S2:5 F2:6; do
  start "${n%:*}" --listen "$(addr "${n#*:}")" --peer "$(addr 0)" ||
    { not_ok "${n%:*} starts"; finish; exit; }
done
silent_ips=("$(ip 3)" "$(ip 4)" "$(ip 5)" "$(ip 6)")
id_S=$("$GV" id --data-dir "$TMP/S")
id_S2=$("$GV" id --data-dir "$TMP/S2")
id_R=$("$GV" id --data-dir "$TMP/R")
peers_of() { "$GV" peers --json --data-dir "$TMP/$1"; }
# holds NODE ID NAME: NODE's table has ID's record listing NAME.
holds() { peers_of "$1" | J "any(p['id']=='$2' and '$3' in p['repositories'] for p in d)" | grep -qx True; }
# relayed ID: R's record of silent ID names a relay (its way in).
has_relay() { peers_of "$1" | J "any(p['id']=='$2' and p.get('relays') for p in d)" | grep -qx True; }

# fetch_ok NODE V1 DIR FILE WANT MSG SHORT [ARG...]: NODE fetches V1 into
# DIR (bounded); ok MSG if it exits 0 and DIR/FILE's sha256 is WANT.
fetch_ok() {
  local node=$1 v=$2 dir=$3 file=$4 want=$5 msg=$6 short=$7 out rc got
  shift 7
  out=$(cd "$TMP" && timeout 120 "$GV" fetch "$v" --out "$dir" --timeout 60s "$@" --data-dir "$TMP/$node" 2>&1); rc=$?
  got=$(sha256sum <"$TMP/$dir/$file" 2>/dev/null | cut -d' ' -f1)
  [ $rc = 0 ] && [ "$got" = "$want" ] && ok "$msg" || not_ok "$short" "rc=$rc $(tail -3 <<<"$out")"
}

mkdir -p "$TMP/b" "$TMP/c" "$TMP/d" "$TMP/s" "$TMP/s2" "$TMP/out"
head -c $((1 << 20)) /dev/urandom >"$TMP/b/bd.bin"
cp "$TMP/b/bd.bin" "$TMP/d/bd.bin"
want_bd=$(sha256sum <"$TMP/b/bd.bin" | cut -d' ' -f1)
head -c $((6 << 20)) /dev/urandom >"$TMP/b/one.bin"
cp "$TMP/b/one.bin" "$TMP/c/one.bin"
cp "$TMP/b/one.bin" "$TMP/s/one.bin"
head -c $((6 << 20)) /dev/urandom >"$TMP/s2/two.bin"
want1=$(sha256sum <"$TMP/b/one.bin" | cut -d' ' -f1)
want2=$(sha256sum <"$TMP/s2/two.bin" | cut -d' ' -f1)

# ---- 1. three seeders (one silent), a silent fetcher ----
v1=$("$GV" share "$TMP/b/one.bin" --json --data-dir "$TMP/B" | J "d['v1']")
"$GV" share "$TMP/c/one.bin" --data-dir "$TMP/C" >/dev/null
"$GV" share "$TMP/s/one.bin" --data-dir "$TMP/S" >/dev/null
if wait_for 20 holds F "$id_S" "bt:$v1" && wait_for 20 has_relay F "$id_S"; then
  ok "the silent fetcher knows the silent seeder's record (bt: name, relays)"
else not_ok "F knows S" "$(peers_of F)"; fi
fetch_ok F "$v1" out one.bin "$want1" \
  "a silent fetcher gets the file from three seeders, one silent (sha256)" "fetch with a silent seeder"
# uploaded counts across restarts; libtorrent adds to it once a second
uploaded_S() { "$GV" torrents --json --data-dir "$TMP/S" | J "int(sum(t['uploaded'] for t in d))"; }
served() { [ "$(uploaded_S)" -gt 0 ]; }
wait_for 5 served
upS=$(uploaded_S)
[ "${upS:-0}" -gt 0 ] 2>/dev/null &&
  ok "the silent seeder served $((${upS%.*} >> 10)) KiB of it, through a tunnel" ||
  not_ok "S served nothing" "$upS"

# ---- 2. silent seeder, silent fetcher, only R between them ----
v1b=$("$GV" share "$TMP/s2/two.bin" --json --data-dir "$TMP/S2" | J "d['v1']")
wait_for 20 holds F2 "$id_S2" "bt:$v1b"
fetch_ok F2 "$v1b" out2 two.bin "$want2" \
  "silent to silent through the broadcasting R: the file arrives whole (sha256)" "silent to silent" --json
metrics_ok=$("$GV" torrents --json --data-dir "$TMP/F2" |
  J "all(a.startswith('127.0.0.1:') for t in d for a in t['peer_addrs'])")
[ "$metrics_ok" = True ] && ok "the silent fetcher's libtorrent sees only 127.0.0.1 (its tunnel ports)" ||
  not_ok "F2 peer list" "$("$GV" torrents --json --data-dir "$TMP/F2")"

# ---- 1b. only broadcasting seeders: F fetches through R ----
id_D=$("$GV" id --data-dir "$TMP/D")
vbd=$("$GV" share "$TMP/b/bd.bin" --json --data-dir "$TMP/B" | J "d['v1']")
"$GV" share "$TMP/d/bd.bin" --data-dir "$TMP/D" >/dev/null
wait_for 20 holds F "$id_D" "bt:$vbd"
fetch_ok F "$vbd" outbd bd.bin "$want_bd" \
  "a silent fetcher gets a file only broadcasting seeders hold, through its guard (sha256)" \
  "silent fetcher, broadcasting seeders"
uploaded() { "$GV" torrents --json --data-dir "$TMP/$1" | J "int(sum(t['uploaded'] for t in d))"; }
served_BD() { [ "$(($(uploaded B) + $(uploaded D)))" -gt 0 ]; }
wait_for 5 served_BD && ok "B and D served it ($(($(uploaded B) >> 10)) and $(($(uploaded D) >> 10)) KiB)" ||
  not_ok "B and D served F nothing" "B=$(uploaded B) D=$(uploaded D)"
# Whether R had to dial D depends on whether gossip linked them first (D
# may dial R on its own): said, not asserted; check_tun covers the dial.
grep -q "tunnel: dialing ${id_D:0:16} to relay a stream" "$TMP/R.log" &&
  echo "# R dialed D to carry F's stream" || echo "# R and D were linked already"

# ---- the silent fetchers linked to their guard R only ----
# links_up NAME: the short ids of the peers of every link NAME's log shows
# coming up (links.c: "link N up with ID (dialed|inbound)").
links_up() { grep -o 'link [0-9]* up with [0-9a-f]*' "$TMP/$1.log" | awk '{print $5}' | sort -u; }
for n in F F2; do
  guarded() { "$GV" status --json --data-dir "$TMP/$1" | J "any(g['id']=='$id_R' for g in d['guards'])" | grep -qx True; }
  wait_for 10 guarded "$n" && is_guard=True || is_guard=False
  peers_up=$(links_up "$n" | tr '\n' ' ')
  if [ "$is_guard" = True ] && [ "$peers_up" = "${id_R:0:12} " ]; then
    ok "silent $n opened links to its guard R only, and fetched through it"
  else not_ok "silent $n linked beyond its guard" "guard=$is_guard links: $peers_up (R ${id_R:0:12})"; fi
done

# ---- 3. a broadcasting fetcher, the silent seeder S2 ----
start G --broadcast --listen "$(addr 7)" --peer "$(addr 0)" || not_ok "G starts"
wait_for 20 holds G "$id_S2" "bt:$v1b"
fetch_ok G "$v1b" out3 two.bin "$want2" \
  "a broadcasting fetcher gets a silent seeder's file through its relay (sha256)" \
  "broadcasting fetcher, silent seeder"

# ---- no silent address anywhere ----
leaks=""
for n in R B C D S F S2 F2 G; do
  text="$(peers_of "$n") $("$GV" torrents --json --data-dir "$TMP/$n")"
  for sip in "${silent_ips[@]}"; do
    grep -qF "\"$sip:" <<<"$text" && leaks+="$n shows $sip; "
  done
done
silent_bare=$(peers_of R | J "all(not p['addresses'] and 'tport' not in p for p in d if not p['broadcasting'])")
if [ -z "$leaks" ] && [ "$silent_bare" = True ]; then
  ok "no silent address in any node's peers --json, records or libtorrent peer lists"
else not_ok "a silent address leaked" "$leaks $silent_bare"; fi

# ---- 4. SIGTERM to a silent seeder mid-tunnel: it stops cleanly ----
# S2 seeds a second file slowly to F2; it is stopped with the stream open.
stop_pids "$pid_S2"
start S2 --listen "$(addr 5)" --peer "$(addr 0)" --torrent-upload-rate 524288 ||
  not_ok "S2 restarts"
head -c $((8 << 20)) /dev/urandom >"$TMP/s2/three.bin"
v1c=$("$GV" share "$TMP/s2/three.bin" --json --data-dir "$TMP/S2" | J "d['v1']")
wait_for 20 holds F2 "$id_S2" "bt:$v1c"
(cd "$TMP" && timeout 60 "$GV" fetch "$v1c" --out out4 --timeout 30s --data-dir "$TMP/F2" >/dev/null 2>&1) &
fpid=$!
streaming() { "$GV" torrents --json --data-dir "$TMP/F2" | J "any(t['v1']=='$v1c' and t['done']>0 for t in d)" | grep -qx True; }
wait_for 30 streaming || not_ok "no byte of the slow file arrived" "$("$GV" torrents --json --data-dir "$TMP/F2")"
STOP_SECONDS=5 stop_pids "$pid_S2" # not ok if it crashes (the tunnel's sockets were open)
kill "$fpid" 2>/dev/null
wait "$fpid" 2>/dev/null

stop_pids "$pid_R" "$pid_B" "$pid_C" "$pid_D" "$pid_S" "$pid_F" "$pid_F2" "$pid_G"
finish
