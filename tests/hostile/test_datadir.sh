#!/usr/bin/env bash
# Issue 12 item 7, the data directory trusted blindly: another local user
# (nobody, uid 65534) plants things in or around a node's data directory.
# - a `lock` symlink to a victim file: the node refuses to start, names the
#   link, and the victim is unchanged;
# - an entry owned by the other user (node.key, node.db, ...: HOSTILE_SIZE
#   small 2, full 6), after a normal first start and restart: refused,
#   named, nothing written;
# - a data directory writable by the group or others, or owned by the other
#   user (small 2 modes, full 4): refused, nothing written;
# - control.sock and relay.sock replaced by the other user's node: the CLI,
#   run as root, refuses them (the socket's owner, then the server's uid by
#   SO_PEERCRED) and the other node's answer never appears; root asking the
#   other user's node in its own directory still works;
# - the other user connecting to a real node's sockets opened to all (0666):
#   both servers refuse it by SO_PEERCRED; root still gets its answer.
# Needs root (chown, setpriv from util-linux); otherwise it says so and
# skips. GVBIN (default $BUILD/grapevine) picks the binary under test.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh

GVB=${GVBIN:-$GV}
OTHER=65534 # nobody
case ${HOSTILE_SIZE:-small} in
full)
  PLANTS="node.key node.db node.db-wal relay.db relay.db-wal team-0011223344556677.key"
  MODES="0770 0707 1777 nobody"
  ;;
*)
  PLANTS="node.key node.db"
  MODES="0770 nobody"
  ;;
esac

if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
  echo "# needs root and setpriv (util-linux): skipped"
  ok "data directory test skipped: not root # SKIP"
  finish
  exit
fi
chmod 0711 "$TMP" # the other user may pass through, not write

# "${AS_OTHER[@]}" CMD...: CMD as the other user, with a home of its own.
# A command, not a function: started in the background, its pid is the
# command's own (setpriv and env exec it), so the exit trap kills it.
AS_OTHER=(setpriv --reuid=$OTHER --regid=$OTHER --clear-groups
  env HOME="$TMP/other" XDG_DATA_HOME="$TMP/other" XDG_CONFIG_HOME="$TMP/other")
# snap DIR: what a refused start must leave as it was.
snap() { find "$1" -printf '%P %y %s %m %U %T@\n' 2>/dev/null | sort; }
# refused NAME DIR PATTERN: `grapevine node` on DIR exits non-zero within
# 5 s, says PATTERN, and changes nothing in DIR.
refused() {
  local name=$1 dir=$2 pat=$3 before rc
  before=$(snap "$dir")
  timeout 5 "$GVB" node --data-dir "$dir" >"$TMP/refused.out" 2>&1
  rc=$?
  if [ $rc = 0 ] || [ $rc = 124 ]; then
    not_ok "$name: refused" "exit $rc$([ $rc = 124 ] && echo ' (still running after 5 s)'): $(tail -3 "$TMP/refused.out")"
  elif ! grep -q -- "$pat" "$TMP/refused.out"; then
    not_ok "$name: refused, saying '$pat'" "$(cat "$TMP/refused.out")"
  elif [ "$before" != "$(snap "$dir")" ]; then
    not_ok "$name: refused, nothing written" "$(diff <(echo "$before") <(snap "$dir"))"
  else
    ok "$name: refused ($(head -1 "$TMP/refused.out" | sed 's/^grapevine node: //'))"
  fi
}
# run_node DIR [PREFIX...]: starts a node on DIR (run by PREFIX, e.g.
# "${AS_OTHER[@]}"), waits (10 s) until its control socket answers root;
# sets NODE_PID.
run_node() {
  local dir=$1
  shift
  "$@" "$GVB" node --data-dir "$dir" >>"$dir.log" 2>&1 &
  NODE_PID=$!
  pids+=($NODE_PID)
  for _ in $(seq 1 100); do
    "$GVB" status --data-dir "$dir" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "# node on $dir did not start:"; tail -5 "$dir.log"
  return 1
}

# --- 1. a planted lock symlink
D=$TMP/lock
mkdir -m 0700 "$D"
echo precious >"$TMP/victim"
ln -s "$TMP/victim" "$D/lock"
refused "lock -> victim file" "$D" "lock: a symbolic link"
if [ "$(cat "$TMP/victim")" = precious ]; then
  ok "lock -> victim file: the victim is unchanged"
else
  not_ok "lock -> victim file: the victim is unchanged" "now: '$(cat "$TMP/victim")'"
fi

# --- 2. entries owned by the other user, after a first start and a restart
for e in $PLANTS; do
  D=$TMP/plant-$e
  if run_node "$D" && stop_pids $NODE_PID && run_node "$D" && stop_pids $NODE_PID; then
    ok "$e: first start and restart"
  else
    not_ok "$e: first start and restart" "$(tail -3 "$D.log")"
  fi
  [ -e "$D/$e" ] || install -m 0600 /dev/null "$D/$e"
  chown $OTHER "$D/$e"
  refused "$e owned by uid $OTHER" "$D" "$e: owned by uid $OTHER"
done
D=$TMP/plant-node.key
out=$("$GVB" id --data-dir "$D" 2>&1) &&
  not_ok "id: a key owned by uid $OTHER is refused" "$out" ||
  ok "id: a key owned by uid $OTHER is refused"

# --- 3. a data directory others can write, or another user's
for m in $MODES; do
  D=$TMP/mode-$m
  mkdir -m 0700 "$D"
  if [ "$m" = nobody ]; then
    chown $OTHER "$D"
    refused "data directory owned by uid $OTHER" "$D" "owned by uid $OTHER"
  else
    chmod "$m" "$D"
    refused "data directory mode $m" "$D" "mode $m lets .* write it"
  fi
done

# --- 4. control.sock and relay.sock replaced by the other user's node
O=$TMP/other
install -d -m 0700 -o $OTHER -g $OTHER "$O"
if run_node "$O/node" "${AS_OTHER[@]}"; then
  ok "root asks the other user's node in its own directory"
else
  not_ok "root asks the other user's node in its own directory"
fi
FAKE=$("${AS_OTHER[@]}" "$GVB" id --data-dir "$O/node" 2>&1)
R=$TMP/root
mkdir -m 0700 "$R"
mv "$O/node/control.sock" "$R/control.sock"
mv "$O/node/relay.sock" "$R/relay.sock"
# cli CMD NAME PATTERN: as root on $R, CMD fails, says PATTERN, and the
# other node's id never appears.
cli() {
  local cmd=$1 name=$2 pat=$3 out rc
  out=$(timeout 10 "$GVB" $cmd --data-dir "$R" 2>&1)
  rc=$?
  if [ $rc = 0 ] || ! grep -q -- "$pat" <<<"$out"; then
    not_ok "$name" "exit $rc: $out"
  elif grep -q "${FAKE:0:12}" <<<"$out"; then
    not_ok "$name: the other node's answer never appears" "$out"
  else
    ok "$name ($out)"
  fi
}
cli status "control.sock owned by uid $OTHER: the CLI refuses it" \
  "control.sock: owned by uid $OTHER"
cli "status --json" "control.sock owned by uid $OTHER: --json refuses it too" \
  "control.sock: owned by uid $OTHER"
cli agents "relay.sock owned by uid $OTHER: the relay CLI refuses it" \
  "relay.sock: owned by uid $OTHER"
chown 0 "$R/control.sock" "$R/relay.sock" # the files look like root's now
cli status "control.sock served by uid $OTHER: refused by SO_PEERCRED" \
  "server runs as uid $OTHER"
cli agents "relay.sock served by uid $OTHER: refused by SO_PEERCRED" \
  "server runs as uid $OTHER"

# --- 5. the other user connects to a real node's sockets, opened to all
S=$TMP/srv
if run_node "$S"; then
  chmod 0711 "$S"
  chmod 0666 "$S/control.sock" "$S/relay.sock"
  for cmd in status agents; do
    out=$("${AS_OTHER[@]}" timeout 10 "$GVB" $cmd --data-dir "$S" 2>&1)
    rc=$?
    if [ $rc != 0 ] && grep -q "uid $OTHER may not use this node" <<<"$out"; then
      ok "$cmd as uid $OTHER on a 0666 socket: the node refuses it ($out)"
    else
      not_ok "$cmd as uid $OTHER on a 0666 socket: the node refuses it" "exit $rc: $out"
    fi
  done
  check "root still gets its answer" "$GVB" status --data-dir "$S"
else
  not_ok "node on $S starts"
fi
finish
