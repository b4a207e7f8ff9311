#!/usr/bin/env bash
# make run: a local Grapevine network on loopback, in the foreground.
#
# A tracker (if built), 2 bootstrap nodes, 2 broadcasting nodes and 3 silent
# ones, each with its own data directory under run/ (identities are kept, so
# a re-run shows the same ids). A compact live view every second shows each
# node's links and table size; after a few seconds a silent node asks who
# holds a repository that another node holds, and the answer is shown.
# Then two AI-agent names talk through the relay: boot1 makes a team that
# bcast1 and the silent silent2 join, demo:alice on bcast1 sends demo:bob
# on silent2 a message, bob takes it and answers, and alice's trace shows
# every state of hers. Then the silent silent2 shares a file, and the
# silent silent3 fetches it through a tunnel via a broadcasting node.
# Ctrl-C stops everything cleanly.
#
# Environment: BUILD (default build), RUN_DIR (default run), BASE_PORT
# (default 7400), DEMO_SECONDS (stop by itself after that many seconds;
# default: run until Ctrl-C).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RUN=${RUN_DIR:-run}
BASE=${BASE_PORT:-7400}
GV=$BUILD/grapevine
TRK=$BUILD/grapevine-tracker
node_pids=()
tracker_pid=""
names=()

stop_all() {
  trap - INT TERM
  echo
  echo "stopping: SIGTERM to ${#node_pids[@]} node(s), then the tracker"
  kill -TERM "${node_pids[@]}" 2>/dev/null
  for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null; done
  # The tracker goes last, so that bootstrap nodes can unregister.
  [ -n "$tracker_pid" ] && kill -TERM "$tracker_pid" && wait "$tracker_pid" 2>/dev/null
  echo "stopped cleanly; logs are in $RUN/*/log"
  exit 0
}
trap stop_all INT TERM

for p in $(seq "$BASE" $((BASE + 8))); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "make run: port $p on 127.0.0.1 is in use; set BASE_PORT to another range" >&2
    exit 1
  fi
done

mkdir -p "$RUN"
tracker_flags=()
if [ -x "$TRK" ]; then
  mkdir -p "$RUN/tracker"
  "$TRK" --listen "127.0.0.1:$BASE" --db "$RUN/tracker/tracker.db" \
    > "$RUN/tracker/log" 2>&1 &
  tracker_pid=$!
  tracker_flags=(--tracker "http://127.0.0.1:$BASE")
  for _ in $(seq 1 100); do # up to 10 s for it to listen
    (exec 3<>"/dev/tcp/127.0.0.1/$BASE") 2>/dev/null && break
    sleep 0.1
  done
  echo "tracker    http://127.0.0.1:$BASE"
fi

# node NAME FLAGS...
node() {
  local name=$1
  shift
  mkdir -p "$RUN/$name"
  "$GV" node --data-dir "$RUN/$name" "${tracker_flags[@]}" "$@" \
    > "$RUN/$name/log" 2>&1 &
  node_pids+=($!)
  names+=("$name")
}
seed=(--peer "127.0.0.1:$((BASE + 1))")
node boot1 --bootstrap --listen "127.0.0.1:$((BASE + 1))" --repo demo/hello
node boot2 --bootstrap --listen "127.0.0.1:$((BASE + 2))" "${seed[@]}"
node bcast1 --broadcast --listen "127.0.0.1:$((BASE + 3))" --repo linux "${seed[@]}"
node bcast2 --broadcast --listen "127.0.0.1:$((BASE + 4))" "${seed[@]}"
node silent1 "${seed[@]}"
node silent2 --repo photos "${seed[@]}"
node silent3 "${seed[@]}"
echo "nodes      ${names[*]} (data and logs under $RUN/)"
echo

view() { # one line per node: mode, links, table
  printf '%-8s %-22s %5s %5s\n' "node" "mode" "links" "table"
  for n in "${names[@]}"; do
    out=$("$GV" status --data-dir "$RUN/$n" --json 2>/dev/null)
    if [ -z "$out" ]; then
      printf '%-8s %-22s %5s %5s\n' "$n" "(starting)" - -
      continue
    fi
    python3 - "$n" "$out" <<'EOF'
import json, sys
d = json.loads(sys.argv[2])
mode = ("bootstrap " + d["listen"] if d["bootstrap"] else
        "broadcast " + d["listen"] if d["broadcasting"] else "silent")
print(f"{sys.argv[1]:<8} {mode:<22} {d['links']:>5} {d['table']:>5}")
EOF
  done
}

# relay_demo: alice (bcast1) and bob (silent2), agents of one team.
relay_demo() {
  local tok id out
  echo
  if ! ls "$RUN"/silent2/team-*.key > /dev/null 2>&1; then
    tok=$("$GV" team create --data-dir "$RUN/boot1" |
      grep -o 'gvteam1\.[A-Za-z0-9_-]*' | head -n 1)
    "$GV" team join "$tok" --data-dir "$RUN/bcast1" > /dev/null
    "$GV" team join "$tok" --data-dir "$RUN/silent2" > /dev/null
    echo "relay: boot1 made a team; bcast1 and silent2 joined it"
  fi
  # Each agent says hello once, so the team's directory knows it.
  GRAPEVINE_AS=demo:bob "$GV" inbox --peek --data-dir "$RUN/silent2" > /dev/null
  GRAPEVINE_AS=demo:alice "$GV" inbox --peek --data-dir "$RUN/bcast1" > /dev/null
  sleep 2
  echo "relay: agents of the team:"
  "$GV" agents --data-dir "$RUN/bcast1" | sed 's/^/  /'
  echo "relay: demo:alice on bcast1 -> bob (on silent2, which is silent)"
  out=$(GRAPEVINE_AS=demo:alice "$GV" send bob "hello bob, alice here" \
    --thread demo --wait stored --data-dir "$RUN/bcast1" 2>&1)
  echo "  $out"
  id=${out%% *}
  echo "relay: demo:bob takes his inbox on silent2, and answers"
  GRAPEVINE_AS=demo:bob "$GV" inbox --data-dir "$RUN/silent2" 2>&1 | sed 's/^/  /'
  GRAPEVINE_AS=demo:bob "$GV" send alice "hi alice, got it" --thread demo \
    --wait stored --data-dir "$RUN/silent2" 2>&1 | sed 's/^/  /'
  echo "relay: demo:alice takes hers"
  GRAPEVINE_AS=demo:alice "$GV" inbox --data-dir "$RUN/bcast1" 2>&1 | sed 's/^/  /'
  echo "relay: the trace of alice's message (grapevine trace $id)"
  GRAPEVINE_AS=demo:alice "$GV" trace "$id" --data-dir "$RUN/bcast1" 2>&1 | sed 's/^/  /'
  echo
}

# torrent_demo: silent2 shares a file; silent3, silent too, fetches it. Both
# are silent, so the bytes go through a tunnel via a broadcasting node.
torrent_demo() {
  local v1 out
  echo
  # under the nodes' own directories: run/ holds one directory per process
  local src=$RUN/silent2/share/demo.bin dst=$RUN/silent3/fetched
  mkdir -p "${src%/*}" "$dst"
  [ -f "$src" ] || head -c $((16 << 20)) /dev/urandom >"$src"
  echo "torrent: silent2 shares $src (16 MiB)"
  out=$("$GV" share "$src" --json --data-dir "$RUN/silent2" 2>&1)
  v1=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["v1"])' "$out" 2>/dev/null)
  if [ -z "$v1" ]; then
    echo "  share failed: $out"
    return
  fi
  echo "  v1 $v1"
  python3 -c 'import json,sys; print("  magnet", json.loads(sys.argv[1])["magnet"])' "$out"
  sleep 2
  echo "torrent: silent3 (silent) fetches it: grapevine fetch $v1"
  "$GV" fetch "$v1" --out "$dst" --timeout 60s --data-dir "$RUN/silent3" 2>&1 |
    tr '\r' '\n' | grep -v '^$' | tail -n 4 | sed 's/^/  /'
  if cmp -s "$src" "$dst/demo.bin"; then
    echo "torrent: the fetched file is identical (sha256 $(sha256sum <"$dst/demo.bin" | cut -c1-16)...)"
  else
    echo "torrent: the fetch did not complete; see $RUN/silent3/log"
  fi
  echo
}

t=0
asked=0
while :; do
  sleep 1
  t=$((t + 1))
  printf '\033[2m--- t=%ss ---\033[0m\n' "$t"
  view
  if [ "$t" -ge 6 ] && [ "$asked" -eq 0 ]; then
    asked=1
    echo
    echo "silent1 asks: who holds 'linux'?"
    "$GV" request linux --data-dir "$RUN/silent1" --wait 2000
    echo
  fi
  if [ "$t" -eq 8 ]; then
    relay_demo
    torrent_demo
  fi
  if [ -n "${DEMO_SECONDS:-}" ] && [ "$t" -ge "$DEMO_SECONDS" ]; then
    stop_all
  fi
done
