#!/usr/bin/env bash
# grapevine wrap (issue 10 §2) in a real terminal: the scripted agent
# tests/integration/fake_agent.py runs under the wrapper inside tmux (its own
# server socket, fixed window size); `send-keys` types as a person,
# `capture-pane` reads the screen, the agent's --log says exactly which
# lines it received. Two nodes in one team: web:alice on A, api:bob on B.
#   1. the command line: --help, usage, a COMMAND that cannot run (127);
#   2. transparency: prompt, echo, Ctrl-C, window size, exit status, the
#      person's terminal restored after SIGTERM;
#   3. two wrapped agents converse (ping/pong both ways); delivered, read;
#   4. a message waits while the person types and while the agent is busy;
#      a person's half-typed line is never split;
#   5. a fenced block (on the screen) sends nothing, the line after it is
#      sent; a block is sent; an unknown recipient comes back as a notice;
#   6. kill -9 of a wrapper while messages wait in its queue: after a
#      restart they arrive exactly once each, in order.
#   7. an agent that closed its terminal gets nothing acknowledged.
# Every wait is bounded.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
FAKE=$PWD/tests/integration/fake_agent.py
TSOCK=gvwrap-$$-$RANDOM
T() { tmux -L "$TSOCK" -f /dev/null "$@"; }
pids=()
cleanup() {
  exec 2>/dev/null
  T kill-server
  for p in "${pids[@]}"; do kill -9 "$p"; done
  wait
  rm -rf "$TMP"
}
trap cleanup EXIT
[ -n "${KEEP_LOGS:-}" ] && trap 'cp -r "$TMP" "$KEEP_LOGS"/ 2>/dev/null; cleanup' EXIT

if ! command -v tmux >/dev/null; then
  not_ok "tmux is installed (scripts/deps.sh)"
  finish
  exit
fi
on_screen() { T capture-pane -p -t "$1" | grep -qF -- "$2"; }
has() { [ -f "$1" ] && grep -qF -- "$2" "$1"; }
line_no() { grep -nF -- "$2" "$1" 2>/dev/null | head -1 | cut -d: -f1; }
type_line() { T send-keys -t "$1" -l "$2"; T send-keys -t "$1" Enter; }
state_of() { # NODE ID: the message's state on NODE
  "$GV" trace "$2" --as web:tester --data-dir "$TMP/$1" --json 2>/dev/null | J 'd["state"]'
}
states_of() { # NODE ID: every state of its trace, space-separated
  "$GV" trace "$2" --as web:tester --data-dir "$TMP/$1" --json 2>/dev/null |
    J '" ".join(s["state"] for s in d["trace"])'
}
has_state() { [[ " $(states_of "$1" "$2") " == *" $3 "* ]]; }
send_cli() { # NODE TO BODY: sends as web:carol; prints the id
  "$GV" send --as web:carol "$2" "$3" --data-dir "$TMP/$1" | awk '{print $1}'
}
# wrap_win WIN AS NODE: a window running the wrapper around the fake agent;
# afterwards its exit status goes to WIN.rc and `stty -a` to WIN.stty.
wrap_win() {
  T new-window -d -n "$1" "$GV wrap --as $2 --data-dir $TMP/$3 --quiet 500ms \
--typing 1s -- python3 $FAKE --log $TMP/$1.log --pidfile $TMP/$1.pid \
--think 0.4; echo \$? > $TMP/$1.rc; stty -a > $TMP/$1.stty; sleep 600"
}
cooked() { # FILE of `stty -a`: canonical mode and echo on
  grep -qE '(^|[ ;])icanon([ ;]|$)' "$1" && grep -qE '(^|[ ;])echo([ ;]|$)' "$1"
}
wrapper_pid() { awk '{print $2}' "$TMP/$1.pid"; }

# ---- 1. the command line ----
check "wrap --help" "$GV" wrap --help
"$GV" wrap --help | grep -q -- '->relay:' && ok "wrap --help explains the markers" ||
  not_ok "wrap --help explains the markers"
"$GV" wrap --data-dir "$TMP/none" </dev/null >/dev/null 2>&1
[ $? = 2 ] && ok "wrap without a command is a usage error" ||
  not_ok "wrap without a command is a usage error"
"$GV" wrap --quiet 5 --data-dir "$TMP/none" -- true </dev/null >/dev/null 2>&1
[ $? = 2 ] && ok "wrap --quiet without a unit is a usage error" ||
  not_ok "wrap --quiet without a unit is a usage error"
out=$("$GV" wrap --as t:x --data-dir "$TMP/none" -- /nonexistent/agent </dev/null 2>&1)
rc=$?
[ $rc = 127 ] && [[ $out == *"cannot run '/nonexistent/agent'"* ]] &&
  ok "a COMMAND that cannot run: exit 127 and why" ||
  not_ok "a COMMAND that cannot run: exit 127 and why" "exit $rc: $out"
out=$(printf 'hi\n' | "$GV" wrap --as t:x --data-dir "$TMP/none" -- sh -c 'read l; echo "got $l"; exit 3' 2>/dev/null)
rc=$?
[ $rc = 3 ] && [[ $out == *"got hi"* ]] &&
  ok "stdin and stdout need not be terminals; the exit status passes" ||
  not_ok "stdin and stdout need not be terminals; the exit status passes" "exit $rc: $out"
[ "$(stat -c %a "$TMP/none/wrap-t-x.log" 2>/dev/null)" = 600 ] &&
  ok "the wrapper logs to DIR/wrap-<project>-<name>.log, mode 0600" ||
  not_ok "the wrapper logs to DIR/wrap-<project>-<name>.log, mode 0600" "$(ls -l "$TMP/none")"

# ---- the two nodes, the tmux server ----
free_ports 2 || { echo "no free ports"; exit 1; }
start A --broadcast --listen "127.0.0.1:$BASE" || not_ok "start A"
start B --peer "127.0.0.1:$BASE" || not_ok "start B"
"$GV" team create --data-dir "$TMP/A" >/dev/null
"$GV" team join "$(cat "$TMP"/A/team-*.key)" --data-dir "$TMP/B" >/dev/null
T new-session -d -s gv -x 100 -y 30 "sleep 600"
T set -g status off
T set -g default-size 100x30
wrap_win alice web:alice A
wrap_win bob api:bob B
online() { # NODE AGENT: NODE's directory shows AGENT online
  "$GV" agents --data-dir "$TMP/$1" --json |
    J "any(a['online'] for a in (d['agents'] if isinstance(d, dict) else d) if a['address'].startswith('$2@'))" |
    grep -q True
}
offline() { ! online "$@"; }
sees() { "$GV" agents --data-dir "$TMP/$1" --json | grep -qF "\"$2@"; }
if wait_for 20 sees A api:bob && wait_for 20 sees B web:alice; then
  ok "both wrapped agents are in the team's directory"
else not_ok "both wrapped agents are in the team's directory" "$("$GV" agents --data-dir "$TMP/A")"; fi

# ---- 2. transparency ----
wait_for 10 on_screen alice "agent>" && ok "the agent's prompt is on the screen" ||
  not_ok "the agent's prompt is on the screen" "$(T capture-pane -p -t alice)"
type_line alice "hello there"
wait_for 5 on_screen alice "you said: hello there" && ok "a typed line is echoed and answered" ||
  not_ok "a typed line is echoed and answered" "$(T capture-pane -p -t alice)"
T send-keys -t alice C-c
wait_for 5 on_screen alice "interrupted" && ok "Ctrl-C reaches the agent as SIGINT" ||
  not_ok "Ctrl-C reaches the agent as SIGINT" "$(T capture-pane -p -t alice)"
type_line alice "size"
wait_for 5 on_screen alice "size 100x30" && ok "the agent starts with the window's size" ||
  not_ok "the agent starts with the window's size" "$(T capture-pane -p -t alice)"
T resize-window -t alice -x 90 -y 25
sleep 0.3
type_line alice "size"
wait_for 5 on_screen alice "size 90x25" && ok "a window resize reaches the agent" ||
  not_ok "a window resize reaches the agent" "$(T capture-pane -p -t alice)"

# ---- 3. a conversation ----
type_line alice "say api:bob ping from alice"
if wait_for 20 has "$TMP/bob.log" "ping from alice" &&
  wait_for 20 has "$TMP/alice.log" ": pong"; then
  ok "alice pings bob, bob's agent answers pong, alice gets it"
else not_ok "alice pings bob" "$(cat "$TMP/bob.log" "$TMP/alice.log")"; fi
has "$TMP/bob.log" "Relay message from web:alice@" && ok "the message is injected as 'Relay message from SENDER'" ||
  not_ok "the message is injected as 'Relay message from SENDER'" "$(cat "$TMP/bob.log")"
type_line bob "say web:alice ping from bob"
if wait_for 20 has "$TMP/alice.log" "ping from bob" &&
  wait_for 20 grep -q "web:alice@.*: pong" "$TMP/bob.log"; then
  ok "bob pings alice, alice's agent answers pong"
else not_ok "bob pings alice" "$(cat "$TMP/bob.log" "$TMP/alice.log")"; fi
id=$(grep -F 'sent ' "$TMP/A/wrap-web-alice.log" | grep -F 'api:bob' | head -1 | awk '{print $5}')
if [ ${#id} = 32 ] && wait_for 15 has_state A "$id" read && has_state A "$id" delivered; then
  ok "alice's ping reaches delivered, then read (trace on A)"
else not_ok "alice's ping reaches delivered, then read" "id '$id': $(states_of A "$id")"; fi

# ---- 4. waiting for the person and for the agent ----
wait_for 10 on_screen bob "agent>"
T send-keys -t bob -l "half a li"
sleep 0.3
id=$(send_cli A api:bob "while typing")
sleep 3 # past the quiet (0.5 s) and typing (1 s) periods: the line is not empty
if [ "$(state_of A "$id")" = stored ] && ! has "$TMP/bob.log" "while typing"; then
  ok "a message waits while the person's line is half typed"
else not_ok "a message waits while the person's line is half typed" "state $(state_of A "$id")"; fi
type_line bob "ne, then the rest"
if wait_for 15 has "$TMP/bob.log" "while typing"; then
  p=$(line_no "$TMP/bob.log" "half a line, then the rest")
  m=$(line_no "$TMP/bob.log" "while typing")
  [ -n "$p" ] && [ "$p" -lt "$m" ] &&
    ok "the person's line arrives whole, the message after it" ||
    not_ok "the person's line arrives whole, the message after it" "$(cat "$TMP/bob.log")"
else not_ok "the message arrives once the person is done" "$(cat "$TMP/bob.log")"; fi

type_line bob "busy 4"
sleep 0.5
id=$(send_cli A api:bob "while busy")
sleep 2
if [ "$(state_of A "$id")" = stored ]; then
  ok "a message waits while the agent is busy"
else not_ok "a message waits while the agent is busy" "state $(state_of A "$id")"; fi
if wait_for 15 has "$TMP/bob.log" "while busy" && has_state A "$id" delivered; then
  ok "and is delivered once the agent is idle"
else not_ok "and is delivered once the agent is idle" "$(states_of A "$id")"; fi

# ---- 5. what the agent writes ----
# The fence must really be on the screen, and the parser live after it:
# a line after the fence is sent, nothing from inside it is.
before=$(grep -c 'the agent sends' "$TMP/A/wrap-web-alice.log")
type_line alice "fence api:bob"
if wait_for 10 on_screen alice "inside a fence" && wait_for 5 on_screen alice '```'; then
  ok "the agent printed a fenced block with ->relay: lines"
else not_ok "the agent printed a fenced block with ->relay: lines" "$(T capture-pane -p -t alice)"; fi
type_line alice "say api:bob after the fence"
if wait_for 15 has "$TMP/bob.log" "after the fence"; then
  ok "a ->relay: line after the fence is sent"
else not_ok "a ->relay: line after the fence is sent" "$(tail -3 "$TMP/bob.log")"; fi
sleep 1 # anything from inside the fence would have come with it
after=$(grep -c 'the agent sends' "$TMP/A/wrap-web-alice.log")
[ $((after - before)) = 1 ] && ! has "$TMP/bob.log" "inside a fence" &&
  ! grep -q "web:alice@.*: y$" "$TMP/bob.log" &&
  ok "nothing inside the fenced block was sent" ||
  not_ok "nothing inside the fenced block was sent" "$before -> $after sends; $(tail -3 "$TMP/bob.log")"
type_line alice "block api:bob"
wait_for 15 has "$TMP/bob.log" "first line of the block" &&
  ok "a ->relay: <<< >>> block is sent as one message" ||
  not_ok "a ->relay: <<< >>> block is sent as one message" "$(tail -3 "$TMP/bob.log")"
type_line alice "say nobody hello"
wait_for 15 has "$TMP/alice.log" "Relay notice: message to nobody failed: UNKNOWN_RECIPIENT" &&
  ok "an unknown recipient comes back to the agent as a Relay notice" ||
  not_ok "an unknown recipient comes back as a Relay notice" "$(tail -3 "$TMP/alice.log")"

# ---- 6. kill -9 of a wrapper, mid-conversation ----
# The messages are pushed to the wrapper while its agent is busy, so they
# sit in its queue, unacknowledged, when it dies.
pushed() { # ID...: bob's wrapper has queued each
  local i
  for i in "$@"; do grep -qF "message $i from" "$TMP/B/wrap-api-bob.log" || return 1; done
}
wait_for 10 on_screen bob "agent>"
type_line bob "busy 4"
wait_for 5 on_screen bob "working 1"
ids=()
for i in 1 2 3; do ids+=("$(send_cli A api:bob "queued $i")"); done
busy_now() { T capture-pane -p -t bob | grep -v '^$' | tail -1 | grep -q '^working'; }
if wait_for 3 pushed "${ids[@]}" && busy_now &&
  [ "$(state_of A "${ids[0]}")" = stored ] && [ "$(state_of A "${ids[2]}")" = stored ]; then
  ok "three messages wait in the wrapper's queue while the agent is busy"
else not_ok "three messages wait in the wrapper's queue while the agent is busy" \
  "$(states_of A "${ids[0]}"); $(tail -3 "$TMP/B/wrap-api-bob.log")"; fi
kill -9 "$(wrapper_pid bob)"
wait_for 10 offline B api:bob
sleep 1
if [ "$(state_of A "${ids[2]}")" = stored ] && ! has "$TMP/bob.log" "queued 1"; then
  ok "messages in a killed wrapper's queue stay stored, not delivered"
else not_ok "messages in a killed wrapper's queue stay stored, not delivered" "$(state_of A "${ids[2]}")"; fi
wrap_win bob2 api:bob B
if wait_for 30 has "$TMP/bob2.log" "queued 3" && wait_for 10 has_state A "${ids[2]}" delivered; then
  sleep 1 # a repeat would come right behind
  a=$(line_no "$TMP/bob2.log" "queued 1") b=$(line_no "$TMP/bob2.log" "queued 2")
  c=$(line_no "$TMP/bob2.log" "queued 3")
  n=$(cat "$TMP/bob.log" "$TMP/bob2.log" | grep -cE ': queued [123]$')
  [ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ] && [ "$b" -lt "$c" ] && [ "$n" = 3 ] &&
    ok "after a restart they arrive exactly once each, in order" ||
    not_ok "after a restart they arrive exactly once each, in order" "$n lines: $(cat "$TMP/bob2.log")"
else not_ok "after a restart they arrive and are delivered" "$(states_of A "${ids[2]}"): $(cat "$TMP/bob2.log" 2>/dev/null)"; fi
has_state A "${ids[0]}" delivered && has_state A "${ids[1]}" delivered &&
  ok "and each is delivered" ||
  not_ok "and each is delivered" "$(states_of A "${ids[0]}"); $(states_of A "${ids[1]}")"

# ---- 7. an agent that closed its terminal ----
# Its terminal is gone (the master reads EOF) while it runs on: a message
# for it must stay with the node, never be acknowledged as delivered.
T new-window -d -n deaf "$GV wrap --as api:deaf --data-dir $TMP/B --quiet 500ms \
--typing 1s -- sh -c 'exec </dev/null >/dev/null 2>&1; sleep 8'; echo \$? > $TMP/deaf.rc; sleep 600"
if wait_for 20 sees A api:deaf && wait_for 10 online A api:deaf; then
  id=$(send_cli A api:deaf "into the void")
  sleep 3 # past the quiet period (0.5 s): the wrapper would have injected
  [ ${#id} = 32 ] && [ "$(state_of A "$id")" = stored ] && ! has_state A "$id" delivered &&
    ok "a message for an agent whose terminal is gone stays stored, not delivered" ||
    not_ok "a message for an agent whose terminal is gone stays stored, not delivered" \
      "id '$id': $(states_of A "$id"); $(grep -F "$id" "$TMP/B/wrap-api-deaf.log")"
  wait_for 15 test -s "$TMP/deaf.rc"
  [ "$(cat "$TMP/deaf.rc" 2>/dev/null)" = 0 ] && [ "$(state_of A "$id")" = stored ] &&
    ok "and stays stored after the agent exits" ||
    not_ok "and stays stored after the agent exits" "rc $(cat "$TMP/deaf.rc" 2>/dev/null): $(states_of A "$id")"
else not_ok "the wrapper of an agent without a terminal joins the directory"; fi

# ---- exit status and the terminal ----
type_line alice "exit 7"
wait_for 10 test -s "$TMP/alice.rc"
[ "$(cat "$TMP/alice.rc" 2>/dev/null)" = 7 ] && ok "the wrapper exits with the agent's status" ||
  not_ok "the wrapper exits with the agent's status" "$(cat "$TMP/alice.rc" 2>/dev/null)"
wait_for 10 test -s "$TMP/alice.stty"
cooked "$TMP/alice.stty" &&
  ok "the person's terminal is back in cooked mode after the agent exits" ||
  not_ok "the person's terminal is back in cooked mode" "$(head -5 "$TMP/alice.stty" 2>/dev/null)"
kill -TERM "$(wrapper_pid bob2)"
wait_for 10 test -s "$TMP/bob2.stty"
[ "$(cat "$TMP/bob2.rc" 2>/dev/null)" = 143 ] && cooked "$TMP/bob2.stty" &&
  ok "SIGTERM to the wrapper: terminal restored, exit 128+15" ||
  not_ok "SIGTERM to the wrapper: terminal restored, exit 128+15" "rc $(cat "$TMP/bob2.rc" 2>/dev/null)"
stop_pids "${pids[@]}"
pids=()
finish
