#!/usr/bin/env bash
# The relay benchmark (issue 9): 1 KiB durable messages, one producer -> one
# consumer, in one run, on loopback:
#   mosquitto     persistence on (the most durable autosave it allows), QoS 1
#   nats-server   JetStream, file store, publish acks, explicit-ack consumer
#   ours          agent A on node 1 -> agent B on node 2 over relay.sock
# This script starts each server in a temporary directory on a free port,
# then runs build/bench/bench_relay, which measures and prints the table
# (throughput to stored and to delivered; p50/p99 at a fixed rate; the
# ratios ours/anchor). A system that cannot run is printed as
# "not available (reason)". Never fails for being slow; exits non-zero only
# when the driver itself cannot run.
#
#   tests/bench/bench_relay.sh          (make bench runs it)
#
# Environment: BUILD (build), and the driver's knobs, see
# tests/bench/bench_relay.c: RELAY_BENCH_COUNT, RELAY_BENCH_WINDOW,
# RELAY_BENCH_RATE, RELAY_BENCH_LAT_SECONDS, RELAY_BENCH_PHASE_SECONDS.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
GV=$PWD/$BUILD/grapevine
DRIVER=$PWD/$BUILD/bench/bench_relay
WIN=${RELAY_BENCH_WINDOW:-256}
TMP=$(mktemp -d /tmp/gv-bench-relay-XXXXXX)
pids=()
# Stops what this script started: SIGTERM, then SIGKILL after 3 s.
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 1 30); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$DRIVER" ] || { echo "bench_relay: build $DRIVER first (make bench)" >&2; exit 1; }

used_ports=" "
# free_port: prints a loopback TCP port nobody listens on (nor was handed
# out by this script).
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 30000))
    case $used_ports in *" $p "*) continue ;; esac
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    used_ports="$used_ports$p "
    echo "$p"
    return 0
  done
  return 1
}
# listening PORT: waits at most 5 s for a listener on 127.0.0.1:PORT.
listening() {
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# why LOG: the last line of a server's log, for a "not available" reason.
why() { tail -n 1 "$1" 2>/dev/null | tr -d '\r' | cut -c1-150; }
# bin NAME: the path of a server binary (Debian puts them in /usr/sbin).
bin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; }; }

args=()
echo "relay benchmark: 1 KiB durable messages, one producer -> one consumer, loopback"

# ---- mosquitto ----
MQ=$(bin mosquitto)
if [ -z "$MQ" ]; then
  args+=(--mqtt-na "mosquitto is not installed: run scripts/deps.sh")
else
  P=$(free_port)
  mkdir -p "$TMP/mq"
  cat > "$TMP/mq.conf" <<EOF
listener $P 127.0.0.1
allow_anonymous true
persistence true
persistence_location $TMP/mq/
autosave_on_changes true
autosave_interval 1
max_inflight_messages $WIN
max_queued_messages 0
log_type error
EOF
  "$MQ" -c "$TMP/mq.conf" > "$TMP/mq.log" 2>&1 &
  pids+=($!)
  if listening "$P"; then
    args+=(--mqtt "127.0.0.1:$P")
  else
    args+=(--mqtt-na "mosquitto did not listen: $(why "$TMP/mq.log")")
  fi
  echo "  mosquitto: $("$MQ" -h 2>/dev/null | head -n 1 | sed 's/^mosquitto //'), MQTT 3.1.1, QoS 1 publish and subscription,"
  echo "    persistence true, autosave_on_changes true, autosave_interval 1 (its most"
  echo "    durable setting): the whole store is rewritten after each pass of the"
  echo "    broker's loop that saw a change; a PUBACK is not held until that write,"
  echo "    so it is not a durability ack"
fi

# ---- nats-server JetStream ----
NS=$(bin nats-server)
if [ -z "$NS" ]; then
  args+=(--nats-na "nats-server is not installed: run scripts/deps.sh")
else
  P=$(free_port)
  "$NS" -js -sd "$TMP/js" -a 127.0.0.1 -p "$P" > "$TMP/nats.log" 2>&1 &
  pids+=($!)
  if listening "$P"; then
    args+=(--nats "127.0.0.1:$P")
  else
    args+=(--nats-na "nats-server did not listen: $(why "$TMP/nats.log")")
  fi
  echo "  nats-js: nats-server $("$NS" --version 2>/dev/null | sed 's/.* //'), JetStream file store, one stream, a"
  echo "    publish ack per message (sent once stored; the file store fsyncs on its"
  echo "    own schedule, not per ack), push consumer with explicit acks"
fi

# ---- ours: two nodes, A on node 1, B on node 2 ----
ours_na=""
if [ ! -x "$GV" ]; then
  ours_na="$GV is not built"
else
  P=$(free_port)
  "$GV" node --data-dir "$TMP/n1" --broadcast --listen "127.0.0.1:$P" \
    --log-level warn > "$TMP/n1.log" 2>&1 &
  pids+=($!)
  "$GV" node --data-dir "$TMP/n2" --peer "127.0.0.1:$P" \
    --log-level warn > "$TMP/n2.log" 2>&1 &
  pids+=($!)
  for n in n1 n2; do
    for _ in $(seq 1 50); do
      "$GV" status --data-dir "$TMP/$n" > /dev/null 2>&1 && break
      sleep 0.1
    done
    "$GV" status --data-dir "$TMP/$n" > /dev/null 2>&1 ||
      { ours_na="node $n did not start: $(why "$TMP/$n.log")"; break; }
  done
  if [ -z "$ours_na" ]; then
    for _ in $(seq 1 30); do
      [ -S "$TMP/n1/relay.sock" ] && [ -S "$TMP/n2/relay.sock" ] && break
      sleep 0.1
    done
    [ -S "$TMP/n1/relay.sock" ] && [ -S "$TMP/n2/relay.sock" ] ||
      ours_na="the node does not answer: no relay.sock in its data directory"
  fi
  if [ -z "$ours_na" ]; then # one team: node 1 creates it, node 2 joins
    if ! tok=$("$GV" team create --data-dir "$TMP/n1" 2> "$TMP/team.err" |
      grep -o 'gvteam1\.[A-Za-z0-9_-]*' | head -n 1) || [ -z "$tok" ]; then
      ours_na="grapevine team create: $(why "$TMP/team.err")"
    elif ! "$GV" team join "$tok" --data-dir "$TMP/n2" > /dev/null 2> "$TMP/team.err"; then
      ours_na="grapevine team join: $(why "$TMP/team.err")"
    fi
  fi
  if [ -z "$ours_na" ]; then
    args+=(--ours "$TMP/n1/relay.sock" "$TMP/n2/relay.sock" \
      "bench:b@$("$GV" id --data-dir "$TMP/n2")")
  else
    args+=(--ours-na "$ours_na")
  fi
  echo "  ours: grapevine, two nodes, agent bench:a on node 1 -> bench:b on node 2,"
  echo "    send on relay.sock (accepted after COMMIT), stored = the destination's"
  echo "    commit (end to end), B acks each pushed message (batched per read)"
fi
echo

"$DRIVER" "${args[@]}"
