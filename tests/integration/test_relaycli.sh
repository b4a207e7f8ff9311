#!/usr/bin/env bash
# The relay CLI (node/relaycli.c): argument handling that needs no node,
# the no-node message and exit status, the 1 MiB stdin bound, the team
# commands; and the CLI's side of the agent protocol (RELAY.md §7) against
# a scripted stand-in for relay.sock that records what it is sent. The
# end-to-end tests against a real relay come with the core.
. "$(dirname "$0")/lib.sh"
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$TMP"' EXIT

D=$TMP/none
mkdir -p "$D"

# exit_is WANT NAME CMD...: passes when CMD exits WANT.
exit_is() {
  local want=$1 name=$2 out rc
  shift 2
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" = "$want" ]; then ok "$name"; else not_ok "$name" "exit $rc, want $want: $out"; fi
}

for c in send inbox agents trace team; do
  check "$c --help" "$GV" "$c" --help
  "$GV" "$c" --help | grep -q -- '--json' && ok "$c --help names --json" ||
    not_ok "$c --help names --json"
done
exit_is 2 "send without arguments is a usage error" "$GV" send
exit_is 2 "send with one argument is a usage error" "$GV" send bob
exit_is 2 "send --ttl without a unit is a usage error" "$GV" send bob hi --ttl 5
exit_is 2 "send --ttl over 30 days is a usage error" "$GV" send bob hi --ttl 31d
exit_is 2 "send --timeout over 1h is a usage error" "$GV" send bob hi --timeout 2h
exit_is 2 "send --wait failed is a usage error" "$GV" send bob hi --wait failed
exit_is 2 "send --as with a bad name is a usage error" "$GV" send bob hi --as 'a b:c'
exit_is 2 "inbox --limit 0 is a usage error" "$GV" inbox --limit 0
exit_is 2 "inbox with an argument is a usage error" "$GV" inbox extra
exit_is 2 "trace of a non-id is a usage error" "$GV" trace 1234
exit_is 2 "agents --project '*' is a usage error" "$GV" agents --project '*'
exit_is 2 "team without a subcommand is a usage error" "$GV" team
exit_is 2 "team join without a token is a usage error" "$GV" team join
exit_is 2 "team join of a bad token is a usage error" "$GV" team join gvteam1.abc --data-dir "$D"

# 1 MiB + 1 on stdin: refused before connecting (no node here at all).
out=$(head -c 1048577 /dev/zero | tr '\0' a | "$GV" send bob - --data-dir "$D" 2>&1)
rc=$?
[ $rc = 1 ] && [[ $out == "error: PAYLOAD_TOO_LARGE:"* ]] &&
  ok "1 MiB + 1 on stdin is PAYLOAD_TOO_LARGE before sending" ||
  not_ok "1 MiB + 1 on stdin is PAYLOAD_TOO_LARGE before sending" "exit $rc: $out"
# Exactly 1 MiB passes the bound and reaches the (missing) node: exit 3.
out=$(head -c 1048576 /dev/zero | tr '\0' a | "$GV" send bob - --data-dir "$D" 2>&1)
rc=$?
[ $rc = 3 ] && [[ $out == *"no node is running"*"$D/relay.sock"* ]] &&
  ok "1 MiB on stdin passes the bound; no node: exit 3 naming the socket" ||
  not_ok "1 MiB on stdin passes the bound; no node: exit 3 naming the socket" "exit $rc: $out"
for c in "inbox" "agents" "trace 00112233445566778899aabbccddeeff"; do
  # shellcheck disable=SC2086
  exit_is 3 "$c without a node exits 3" "$GV" $c --data-dir "$D"
done

# ---- team ----
exit_is 1 "team create without a node key fails" "$GV" team create --data-dir "$D"
"$GV" keygen --data-dir "$TMP/a" >/dev/null 2>&1
out=$("$GV" team create --data-dir "$TMP/a" --json)
tok=$(printf '%s' "$out" | J 'd["token"]')
team=$(printf '%s' "$out" | J 'd["team"]')
[ "$(printf '%s' "$out" | J 'd["node"]')" = not_running ] && [ ${#tok} = 94 ] &&
  ok "team create prints a 94-character token; no node to tell" ||
  not_ok "team create prints a 94-character token; no node to tell" "$out"
f=$TMP/a/team-$team.key
[ "$(stat -c %a "$f")" = 600 ] && [ "$(cat "$f")" = "$tok" ] &&
  ok "team file is mode 0600 and holds the token" ||
  not_ok "team file is mode 0600 and holds the token" "$(ls -l "$TMP/a")"
out=$("$GV" team join "$tok" --data-dir "$TMP/b" 2>&1)
[[ $out == "joined team $team"* ]] && cmp -s "$f" "$TMP/b/team-$team.key" &&
  ok "team join on another data directory writes the same file" ||
  not_ok "team join on another data directory writes the same file" "$out"
[ "$("$GV" team join "$tok" --data-dir "$TMP/b" --json | J 'd["already"]')" = True ] &&
  ok "joining twice says already in the team" || not_ok "joining twice says already in the team"
[ "$("$GV" team list --data-dir "$TMP/b" --json | J 'd[0]["team"]')" = "$team" ] &&
  ok "team list --json names the team" || not_ok "team list --json names the team"
chmod 644 "$TMP/b/team-$team.key"
out=$("$GV" team list --data-dir "$TMP/b" 2>&1)
[ $? = 1 ] && [[ $out == *"lets others in"* ]] &&
  ok "team list refuses a team file others can read" ||
  not_ok "team list refuses a team file others can read" "$out"

# A running node is told to load the team (it may not take it yet: the
# relay is wired in separately); either way the CLI says the node answered.
if start n1; then
  out=$("$GV" team create --data-dir "$TMP/n1" 2>&1)
  [[ $out == *"the running node"* ]] &&
    ok "team create tells the running node" || not_ok "team create tells the running node" "$out"
  stop_pids "$pid_n1"
  pids=()
else
  not_ok "node n1 starts"
fi

# ---- the protocol, against a scripted stand-in for relay.sock ----
S=$TMP/fake
mkdir -p "$S"
python3 - "$S/relay.sock" "$S/log" <<'EOF' &
import json, os, socket, sys
path, log = sys.argv[1], open(sys.argv[2], "w")
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(8)
srv.settimeout(60)
ID = "00112233445566778899aabbccddeeff"
PUSHED = {"event": "message", "id": "ff" * 16, "from": "web:al@" + "ab" * 32,
          "to": "p:follow", "thread": "", "body": "pushed", "seq": 2}
def serve(f):
    who = ""
    for raw in f:
        r = json.loads(raw)
        log.write(json.dumps(r, sort_keys=True) + "\n")
        log.flush()
        cmd = r["cmd"]
        if cmd == "hello":
            who = r["as"]
            a = {"ok": True, "as": r["as"], "node": "ab" * 32, "session": "cd" * 32}
        elif cmd == "send" and r["to"] == "Bob":
            a = {"ok": False, "error": "AMBIGUOUS", "reason": "2 agents",
                 "candidates": ["web:Bob@" + "ab" * 32, "api:Bob@" + "ab" * 32]}
        elif cmd == "send":
            a = {"ok": True, "id": ID, "to": r["to"] + "@" + "ab" * 32, "state": "accepted"}
        elif cmd == "inbox":
            a = {"ok": True, "messages": [{"id": ID, "from": "web:al@" + "ab" * 32,
                 "to": "p:me", "thread": "t1", "body": "hi there", "seq": 1}]}
        elif cmd == "status":
            a = {"ok": True, "state": "sent", "trace": [
                {"state": "accepted", "at_ms": 1767225600123},
                {"state": "sent", "at_ms": 1767225601000, "hop": "ef" * 32}]}
        elif cmd == "agents":
            a = {"ok": True, "agents": [{"address": "web:al@" + "ab" * 32, "project": "web",
                 "name": "al", "node": "ab" * 32, "online": True}]}
        else:
            a = {"ok": True}
        f.write((json.dumps(a) + "\n").encode())
        if who == "p:follow" and cmd == "inbox":
            f.write((json.dumps(PUSHED) + "\n").encode())
        f.flush()
        if cmd == "ack" and r["ids"] == [PUSHED["id"]]:
            return  # --follow: the node goes away
while True:
    try:
        c, _ = srv.accept()
    except OSError:
        break
    try:
        serve(c.makefile("rwb"))
    except OSError:
        pass  # the client went away: on to the next one
    c.close()
EOF
fake=$!
pids+=("$fake")
for _ in $(seq 1 50); do [ -S "$S/relay.sock" ] && break; sleep 0.1; done

out=$("$GV" send web:al 'hello "al"' --as p:me --thread t1 --ttl 5m --wait stored --timeout 2s --data-dir "$S")
rc=$?
[ $rc = 0 ] && [ "$out" = "00112233445566778899aabbccddeeff accepted -> web:al@$(printf 'ab%.0s' $(seq 32))" ] &&
  ok "send prints the id and the state" || not_ok "send prints the id and the state" "exit $rc: $out"
want='{"as": "p:me", "cmd": "hello"}
{"cmd": "send", "message": "hello \"al\"", "thread": "t1", "timeout_ms": 2000, "to": "web:al", "ttl_ms": 300000, "wait": "stored"}'
[ "$(head -2 "$S/log")" = "$want" ] && ok "send says hello, then send with every field" ||
  not_ok "send says hello, then send with every field" "$(head -2 "$S/log")"
out=$(GRAPEVINE_AS=q:env "$GV" send Bob hi --data-dir "$S" 2>&1)
rc=$?
[ $rc = 1 ] && [[ $out == *"error: AMBIGUOUS: 2 agents"*"candidate: web:Bob@"*"candidate: api:Bob@"* ]] &&
  ok "AMBIGUOUS: exit 1, error line and candidates" || not_ok "AMBIGUOUS: exit 1, error line and candidates" "exit $rc: $out"
grep -q '"as": "q:env"' "$S/log" && ok "send --as defaults to \$GRAPEVINE_AS" ||
  not_ok "send --as defaults to \$GRAPEVINE_AS"
: > "$S/log"
out=$(printf 'from stdin' | (cd "$TMP" && "$GV" send web:al - --json --data-dir "$S"))
[ "$(printf '%s' "$out" | J 'd["state"]')" = accepted ] &&
  grep -q '"message": "from stdin"' "$S/log" && grep -q "\"as\": \"$(basename "$TMP"):cli\"" "$S/log" &&
  ok "send - reads stdin; --json prints the answer; --as defaults to <cwd>:cli" ||
  not_ok "send - reads stdin; --json prints the answer; --as defaults to <cwd>:cli" "$out $(cat "$S/log")"
: > "$S/log"
out=$("$GV" inbox --as p:me --data-dir "$S")
[ "$out" = "[00112233] web:al@$(printf 'ab%.0s' $(seq 32)) -> p:me (t1): hi there" ] &&
  ok "inbox prints [id8] from -> to (thread): body" || not_ok "inbox prints [id8] from -> to (thread): body" "$out"
grep -q '"cmd": "ack", "ids": \["00112233445566778899aabbccddeeff"\]' "$S/log" &&
  ok "inbox acks what it printed" || not_ok "inbox acks what it printed" "$(cat "$S/log")"
: > "$S/log"
"$GV" inbox --as p:me --peek --data-dir "$S" >/dev/null
grep -q '"ack"' "$S/log" && not_ok "inbox --peek does not ack" || ok "inbox --peek does not ack"
: > "$S/log"
out=$(timeout 10 "$GV" inbox --as p:follow --follow --data-dir "$S" 2>&1)
rc=$?
[ $rc = 1 ] && [[ $out == *"(t1): hi there"*"-> p:follow: pushed"*"closed the connection"* ]] &&
  grep -q '"ids": \["ffffffffffffffffffffffffffffffff"\]' "$S/log" &&
  ok "inbox --follow prints and acks a pushed message; exit 1 when the node goes" ||
  not_ok "inbox --follow prints and acks a pushed message; exit 1 when the node goes" "exit $rc: $out"
out=$("$GV" trace 00112233445566778899aabbccddeeff --as p:me --data-dir "$S")
[[ $out == *"2026-01-01T00:00:00.123Z  accepted"* && $out == *"2026-01-01T00:00:01.000Z  sent       via efefefefefef"* ]] &&
  ok "trace prints each step with ISO-8601 ms time and hop" ||
  not_ok "trace prints each step with ISO-8601 ms time and hop" "$out"
out=$("$GV" agents --data-dir "$S")
[[ $out == *"web:al@"*"yes"* ]] && ok "agents prints the table" || not_ok "agents prints the table" "$out"
kill "$fake" 2>/dev/null
wait "$fake" 2>/dev/null
finish
