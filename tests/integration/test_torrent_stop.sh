#!/usr/bin/env bash
# The torrent service at the node's edges (docs/TORRENT.md): SIGTERM while
# a share is hashing stops the hashing (the node exits 0 within 3 s, the
# waiting `share` says "node stopping"); a silent node's libtorrent
# listens on 127.0.0.1 only, not on its --listen IP, until `broadcast on`
# (and again not after `broadcast off`), on the same port. Every wait is
# bounded.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
free_ports 1 || { not_ok "no free port"; finish; exit; }

# ---- SIGTERM during a share's hashing ----
start st || { not_ok "st starts"; finish; exit; }
mkdir -p "$TMP/big"
truncate -s 2G "$TMP/big/sparse.bin" # seconds of hashing, no disk used
"$GV" share "$TMP/big/sparse.bin" --data-dir "$TMP/st" >"$TMP/share.out" 2>&1 &
share_pid=$!
sleep 0.3
kill -TERM "$pid_st"
t0=$(date +%s%N)
for _ in $(seq 1 30); do kill -0 "$pid_st" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid_st" 2>/dev/null; then
  not_ok "SIGTERM mid-hash: the node exits within 3 s" "still running"
  kill -9 "$pid_st"
  wait "$pid_st" 2>/dev/null
else
  wait "$pid_st"
  rc=$? ms=$((($(date +%s%N) - t0) / 1000000))
  [ $rc = 0 ] && ok "SIGTERM mid-hash: the node exits 0 within 3 s ($ms ms)" ||
    not_ok "SIGTERM mid-hash: the node exits 0" "exit status $rc"
fi
for _ in $(seq 1 30); do kill -0 "$share_pid" 2>/dev/null || break; sleep 0.1; done
wait "$share_pid"
src=$?
if [ $src != 0 ] && grep -q "node stopping" "$TMP/share.out"; then
  ok "the waiting share says \"node stopping\" and fails (exit $src)"
else not_ok "the waiting share's answer" "exit $src: $(cat "$TMP/share.out")"; fi

# ---- libtorrent's listen addresses follow broadcast on/off ----
IP=127.0.0.61
tport() { "$GV" status --json --data-dir "$TMP/sl" | J "d['torrent_port']"; }
# listens ADDR: some socket listens on ADDR (IP:PORT), as ss shows it.
listens() { ss -Hltn "src $1" | grep -q LISTEN; }
start sl --listen "$IP:$BASE" || { not_ok "sl starts"; finish; exit; }
port=$(tport)
if [ "${port:-0}" -gt 0 ] && listens "127.0.0.1:$port" && ! listens "$IP:$port"; then
  ok "a silent node's libtorrent listens on 127.0.0.1:$port, not on its --listen IP"
else not_ok "silent node's torrent sockets" "port $port: $(ss -Hltn | grep ":$port ")"; fi
"$GV" broadcast on --data-dir "$TMP/sl" >/dev/null 2>&1
if [ "$(tport)" = "$port" ] && listens "$IP:$port" && listens "127.0.0.1:$port"; then
  ok "after broadcast on: also on $IP:$port, the same port"
else not_ok "broadcast on: torrent sockets" "$(ss -Hltn | grep ":$port ")"; fi
"$GV" broadcast off --data-dir "$TMP/sl" >/dev/null 2>&1
if ! listens "$IP:$port" && listens "127.0.0.1:$port"; then
  ok "after broadcast off: 127.0.0.1:$port only"
else not_ok "broadcast off: torrent sockets" "$(ss -Hltn | grep ":$port ")"; fi
stop_pids "$pid_sl"

finish
