#!/usr/bin/env bash
# The torrent wrapper's benchmark (issue 11), in one run: one seeder to one
# fetcher on loopback, each in its own process, TOR_BENCH_MIB (256) MiB of
# random bytes, best of TOR_BENCH_RUNS (3):
#   - the anchor: tests/bench/tor_bare.cpp, a bare libtorrent pair with the
#     tuned settings (high_performance_seed, 100 ms tick, TCP only) and no
#     encryption;
#   - ours: tests/tor_peer, the same transfer through the gv_tor C API on a
#     libuv loop (notify -> uv_async -> gv_tor_poll), with encryption off
#     for the comparison, and again with our default (RC4 both ways);
#   - through Grapevine: two real nodes (`grapevine node`, broadcasting on
#     127.0.0.1), `grapevine share` on one, `grapevine fetch` on the other
#     once the seeder's record is in its table, plaintext
#     (torrent-encryption disabled, beside the plaintext anchor) and RC4;
#     the node's own clock: from the fetch's add to its last verified piece
#     (fetch_ms) and to its first (first_piece_ms);
#   - tunnelled: a silent seeder and a silent fetcher linked only to a
#     broadcasting relay node, so the peer stream goes through channel-3
#     tunnels (docs/TUNNEL.md), plaintext and RC4, beside the direct pair.
# Prints MB/s (10^6 bytes) and the ratio to the anchor (goal >= 0.9), and
# the time from adding the torrent with a known peer to the first verified
# piece (goal < 200 ms), and the tunnelled path's ratio to the direct one.
# Never fails for being slow; fails if a transfer
# does not complete or its bytes differ.
#
#   tests/bench/bench_torrent.sh [BUILD_DIR]   (make bench runs it)
set -u
here=$(cd "$(dirname "$0")" && pwd)
B=${1:-$here/../../build}
MIB=${TOR_BENCH_MIB:-256}
RUNS=${TOR_BENCH_RUNS:-3}
TMP=$(mktemp -d /tmp/gv-bench-tor-XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
for x in "$B/bench/tor_bare" "$B/tests/tor_peer" "$B/grapevine"; do
  [ -x "$x" ] || { echo "bench_torrent: build $x first" >&2; exit 1; }
done

mkdir -p "$TMP/src"
head -c $((MIB * 1024 * 1024)) /dev/urandom >"$TMP/src/data.bin"
want=$(sha256sum <"$TMP/src/data.bin" | cut -d' ' -f1)

# seeder NAME CMD...: starts a seeder printing "port N" then "ready" into
# $TMP/NAME.seed; sets PORT. 120 s at most (it hashes the file twice).
seeder() {
  local name=$1
  shift
  "$@" >"$TMP/$name.seed" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 1200); do
    grep -q '^ready' "$TMP/$name.seed" && break
    sleep 0.1
  done
  PORT=$(awk '/^port/ {print $2}' "$TMP/$name.seed")
  grep -q '^ready' "$TMP/$name.seed" || {
    echo "bench_torrent: $name seeder did not start:" >&2
    tail -3 "$TMP/$name.seed" >&2
    exit 1
  }
}

# best NAME CMD...: runs the fetch CMD RUNS times (fresh output and state),
# checks the bytes, sets MBS (best) and FIRST (its first-piece ms).
best() {
  local name=$1 i line ms first mbs
  shift
  MBS=0 FIRST=0
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$TMP/out" "$TMP/state"
    line=$("$@" 2>&1 | grep '^finished')
    [ -n "$line" ] || { echo "bench_torrent: $name fetch failed" >&2; exit 1; }
    [ "$(sha256sum <"$TMP/out/data.bin" | cut -d' ' -f1)" = "$want" ] || {
      echo "bench_torrent: $name fetched different bytes" >&2
      exit 1
    }
    ms=$(sed -n 's/.* ms=\([0-9.]*\).*/\1/p' <<<"$line")
    first=$(sed -n 's/.*first_piece_ms=\([0-9.-]*\).*/\1/p' <<<"$line")
    mbs=$(awk -v m="$MIB" -v t="$ms" 'BEGIN {printf "%.1f", m * 1048576 / 1e6 / (t / 1000)}')
    echo "  $name run $i: $mbs MB/s, first piece after $first ms"
    if awk -v a="$mbs" -v b="$MBS" 'BEGIN {exit !(a > b)}'; then
      MBS=$mbs FIRST=$first
    fi
  done
}

echo "torrent: $MIB MiB on loopback, one seeder to one fetcher, TCP, best of $RUNS"
seeder bare "$B/bench/tor_bare" seed --file "$TMP/src/data.bin" \
  --torrent-out "$TMP/bare.torrent"
best bare "$B/bench/tor_bare" fetch --torrent "$TMP/bare.torrent" \
  --out "$TMP/out" --peer "127.0.0.1:$PORT"
bare=$MBS bare_first=$FIRST

seeder plain "$B/tests/tor_peer" seed --file "$TMP/src/data.bin" \
  --state "$TMP/seed-plain" --torrent-out "$TMP/plain.torrent" --plain
best "gv_tor plaintext" "$B/tests/tor_peer" fetch --torrent "$TMP/plain.torrent" \
  --out "$TMP/out" --state "$TMP/state" --peer "127.0.0.1:$PORT" --plain
plain=$MBS plain_first=$FIRST

seeder rc4 "$B/tests/tor_peer" seed --file "$TMP/src/data.bin" \
  --state "$TMP/seed-rc4" --torrent-out "$TMP/rc4.torrent"
best "gv_tor RC4" "$B/tests/tor_peer" fetch --torrent "$TMP/rc4.torrent" \
  --out "$TMP/out" --state "$TMP/state" --peer "127.0.0.1:$PORT"
rc4=$MBS rc4_first=$FIRST

# through Grapevine. gvnode DIR ARGS...: a node in the background;
# gvwait DIR...: until each answers status (10 s at most).
G=$B/grapevine
gvnode() {
  local d=$1
  shift
  "$G" node --data-dir "$d" "$@" >"$d.log" 2>&1 &
  pids+=($!)
}
gvwait() {
  local d
  for d in "$@"; do
    for _ in $(seq 1 100); do
      "$G" status --data-dir "$d" >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
}
# gvfetch LABEL SEEDER FETCHER: share on SEEDER, wait until FETCHER's table
# has its bt: name, then fetch RUNS times (unshare --delete between runs);
# sets MBS (best) and FIRST (its first-piece ms).
gvfetch() {
  local label=$1 s=$2 f=$3 i out ms first mbs v1
  v1=$("$G" share "$TMP/src/data.bin" --json --data-dir "$s" |
    sed -n 's/.*"v1":"\([0-9a-f]*\)".*/\1/p')
  [ -n "$v1" ] || { echo "bench_torrent: share failed ($label)" >&2; exit 1; }
  for _ in $(seq 1 150); do
    "$G" peers --json --data-dir "$f" | grep -q "bt:$v1" && break
    sleep 0.2
  done
  MBS=0 FIRST=0
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$TMP/out"
    out=$(timeout 300 "$G" fetch "$v1" --out "$TMP/out" --json --timeout 60s \
      --data-dir "$f" | tail -1)
    grep -q '"event":"result","ok":true' <<<"$out" &&
      [ "$(sha256sum <"$TMP/out/data.bin" | cut -d' ' -f1)" = "$want" ] || {
      echo "bench_torrent: fetch through grapevine failed ($label): $out" >&2
      exit 1
    }
    ms=$(sed -n 's/.*"fetch_ms":\([0-9.]*\).*/\1/p' <<<"$out")
    first=$(sed -n 's/.*"first_piece_ms":\([0-9.]*\).*/\1/p' <<<"$out")
    first=$(awk -v f="$first" 'BEGIN {printf "%.1f", f}')
    mbs=$(awk -v m="$MIB" -v t="$ms" 'BEGIN {printf "%.1f", m * 1048576 / 1e6 / (t / 1000)}')
    echo "  grapevine $label run $i: $mbs MB/s, first piece after $first ms"
    if awk -v a="$mbs" -v b="$MBS" 'BEGIN {exit !(a > b)}'; then
      MBS=$mbs FIRST=$first
    fi
    "$G" unshare "$v1" --delete --data-dir "$f" >/dev/null
  done
}
# gvpair MODE [NODE ARGS...]: a broadcasting seeder and a broadcasting
# fetcher linked to it: libtorrent connects directly.
gvpair() {
  local mode=$1 base=$((20000 + RANDOM % 10000))
  shift
  gvnode "$TMP/gv-$mode-s" --broadcast --listen "127.0.0.1:$base" "$@"
  gvnode "$TMP/gv-$mode-f" --broadcast --listen "127.0.0.1:$((base + 1))" \
    --peer "127.0.0.1:$base" "$@"
  gvwait "$TMP/gv-$mode-s" "$TMP/gv-$mode-f"
  gvfetch "$mode" "$TMP/gv-$mode-s" "$TMP/gv-$mode-f"
}
# gvtunnel MODE [NODE ARGS...]: a silent seeder and a silent fetcher, both
# linked only to a broadcasting relay: the bytes go through a tunnel.
gvtunnel() {
  local mode=$1 base=$((20000 + RANDOM % 10000)) d=$TMP/gv-tun-$1
  shift
  gvnode "$d-r" --broadcast --listen "127.0.0.1:$base" "$@"
  gvwait "$d-r"
  gvnode "$d-s" --peer "127.0.0.1:$base" "$@"
  gvnode "$d-f" --peer "127.0.0.1:$base" "$@"
  gvwait "$d-s" "$d-f"
  gvfetch "tunnelled $mode" "$d-s" "$d-f"
}
gvpair plaintext --torrent-encryption disabled
gvp=$MBS gvp_first=$FIRST
gvpair rc4
gvr=$MBS gvr_first=$FIRST
gvtunnel plaintext --torrent-encryption disabled
gvtp=$MBS gvtp_first=$FIRST
gvtunnel rc4
gvtr=$MBS gvtr_first=$FIRST

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
printf '%-36s %8s %10s %18s\n' "" "MB/s" "ratio" "first piece (ms)"
printf '%-36s %8s %10s %18s\n' "anchor: bare libtorrent, plaintext" "$bare" "1.00" "$bare_first"
printf '%-36s %8s %10s %18s\n' "gv_tor, plaintext" "$plain" "$(ratio "$plain" "$bare")" "$plain_first"
printf '%-36s %8s %10s %18s\n' "gv_tor, RC4 (default)" "$rc4" "$(ratio "$rc4" "$bare")" "$rc4_first"
printf '%-36s %8s %10s %18s\n' "grapevine share+fetch, plaintext" "$gvp" "$(ratio "$gvp" "$bare")" "$gvp_first"
printf '%-36s %8s %10s %18s\n' "grapevine share+fetch, RC4 (default)" "$gvr" "$(ratio "$gvr" "$bare")" "$gvr_first"
echo "goals: ratio >= 0.9 (plaintext against the anchor), first piece < 200 ms"
echo "tunnelled: silent seeder to silent fetcher through a broadcasting relay"
printf '%-36s %8s %18s %18s\n' "" "MB/s" "ratio to direct" "first piece (ms)"
printf '%-36s %8s %18s %18s\n' "tunnelled, plaintext" "$gvtp" "$(ratio "$gvtp" "$gvp")" "$gvtp_first"
printf '%-36s %8s %18s %18s\n' "tunnelled, RC4 (default)" "$gvtr" "$(ratio "$gvtr" "$gvr")" "$gvtr_first"
