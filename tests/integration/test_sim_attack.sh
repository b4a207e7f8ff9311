#!/usr/bin/env bash
# grapevine-sim's attack scenarios (issue 13) at a small size: bad flags
# refused, determinism, and what each attack must show: attackers take the
# eclipse victim's links and it recovers once they stop; sybil ids fill
# honest tables; spam costs honest bandwidth; forged records are never sent
# on and their senders are banned. Honest nodes keep receiving throughout.
cd "$(dirname "$0")/../.." && . tests/integration/lib.sh
SIM=$PWD/$BUILD/grapevine-sim
# py EXPR JSON: exit 0 when EXPR holds of d, the JSON object.
# val KEY JSON: d[KEY].
val() { python3 -c "import json,sys; print(json.loads(sys.argv[2])[sys.argv[1]])" "$1" "$2"; }
py() { python3 -c "import json,sys; d=json.loads(sys.argv[2]); sys.exit(0 if ($1) else 1)" "$1" "$2"; }

# Bad values: exit 2 and a message that names the problem.
bad() {
  local want=$1 out rc
  shift
  out=$("$SIM" "$@" 2>&1); rc=$?
  if [ $rc -eq 2 ] && grep -q -- "$want" <<<"$out"; then ok "refused: $*"
  else not_ok "refused: $*" "rc $rc: $out"; fi
}
bad "needs real ones: drop --stub-sigs" --scenario forged --stub-sigs
bad "two honest nodes" --scenario eclipse --nodes 50 --attackers 49
bad "whole count" --scenario spam --attackers 2.5
bad "above 0" --scenario forged --attackers 0
bad -- "--attackers takes" --scenario sybil --attackers -1
bad -- "--attackers takes" --scenario sybil --attackers nan
bad -- "--sybils takes" --scenario sybil --sybils 0
bad -- "--rate takes" --scenario spam --rate -3
bad -- "--duration-s takes" --scenario eclipse --duration-s 0
bad "for harvest" --scenario harvest --attackers 3

# Eclipse: half the nodes attack one victim, which restarts a third into
# the attack. Twice with one seed: byte-identical report and CSV.
E="--scenario eclipse --nodes 120 --attackers 0.5 --duration-s 30 --stub-sigs --no-timing"
a=$("$SIM" $E --json --out "$TMP/e1" 2>/dev/null)
b=$("$SIM" $E --json --out "$TMP/e2" 2>/dev/null)
if [ -n "$a" ] && [ "$a" = "$b" ] && cmp -s "$TMP/e1/attack_eclipse.csv" "$TMP/e2/attack_eclipse.csv" &&
   ! grep -q wall_s <<<"$a"; then
  ok "eclipse: same seed, identical report and CSV"
else not_ok "eclipse determinism" "$a / $b"; fi
c=$("$SIM" $E --json --seed 2 2>/dev/null)
[ -n "$c" ] && [ "$c" != "$a" ] && ok "eclipse: another seed, another run" || not_ok "eclipse seed" "$c"
if py 'd["attackers"] == 60 and d["honest"] == 60 and d["reliability"]["base"]["mean"] == 1
       and d["reliability"]["base"]["broadcasts"] == 6 and d["reliability"]["attack"]["broadcasts"] == 6
       and d["victim_link_share_max"] > 0.5 and d["victim_link_share_max"] <= 1
       and 0 < d["victim_table_share_max"] <= 1
       and d["reliability"]["attack"]["min"] >= 0.95
       and 0 <= d["recovery_s"] < 60 and d["reliability"]["after"]["mean"] == 1 and d["ip_leaks"] == 0' "$a"; then
  ok "eclipse: attackers hold up to $(val victim_link_share_max "$a") of the victim's links; it recovers in $(val recovery_s "$a") s"
else not_ok "eclipse figures" "$a"; fi
# The CSV: its header, one row every 5 s (-30 .. 30, then the recovery's),
# shares within [0, 1], most of the victim's links the attackers' at times.
if python3 - "$TMP/e1/attack_eclipse.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
need = ["t_s", "phase", "reliability", "victim_got", "victim_links", "attacker_link_share", "attacker_table_share"]
assert all(k in rows[0] for k in need), rows[0].keys()
ts = [float(r["t_s"]) for r in rows]
assert ts[:13] == [-30 + 5 * i for i in range(13)], ts
assert [r["phase"] for r in rows].count("attack") == 6
assert all(0 <= float(r["attacker_link_share"]) <= 1 for r in rows)
assert all(float(r["attacker_link_share"]) == 0 for r in rows if r["phase"] == "base")
assert any(float(r["attacker_link_share"]) > 0.5 for r in rows if r["phase"] == "attack")
assert rows[-1]["phase"] == "after" and rows[-1]["victim_got"] == "1"
EOF
then ok "eclipse CSV: columns, a row every 5 s, shares in range"
else not_ok "eclipse CSV" "$(head -30 "$TMP/e1/attack_eclipse.csv")"; fi
if command -v gnuplot >/dev/null; then
  [ -s "$TMP/e1/attack_eclipse.svg" ] && ok "eclipse figure written" || not_ok "eclipse svg"
fi

# Sybil: 5 hosts announce 1000 fresh ids into 55 honest tables (1024
# entries): the tables fill with them; honest delivery does not suffer.
s=$("$SIM" --scenario sybil --nodes 60 --sybils 1000 --duration-s 20 --stub-sigs --no-timing --json 2>/dev/null)
if py 'd["sybils_sent"] == 1000 and 0.5 < d["sybil_table_share_max"] <= 1
       and d["honest_entries_before"] >= 50 and 0 <= d["honest_evicted"] <= 1
       and d["reliability"]["attack"]["min"] >= 0.95 and d["kbytes_per_node_s_attack"] > d["kbytes_per_node_s_base"]' "$s"; then
  ok "sybil: 1000 ids take $(val sybil_table_share_max "$s") of honest tables, honest reliability holds"
else not_ok "sybil" "$s"; fi

# Spam: one attacker, 20 fresh announcements a second for 10 s: every one
# is valid, so the honest nodes carry them all (CSV: header, 15 rows).
p=$("$SIM" --scenario spam --nodes 100 --duration-s 10 --rate 20 --stub-sigs --no-timing --json --out "$TMP/sp" 2>/dev/null)
if py 'd["attackers"] == 1 and d["spam_sent"] == 200 and d["extra_kbytes_per_node_s"] > 10 * d["kbytes_per_node_s_base"]
       and d["reliability"]["attack"]["min"] >= 0.95' "$p" &&
   [ "$(head -1 "$TMP/sp/attack_spam.csv")" = "t_s,phase,reliability,kbytes_per_node_s,bans,rate_limited,rejected" ] &&
   [ "$(wc -l <"$TMP/sp/attack_spam.csv")" -eq 16 ]; then
  ok "spam: 200 announcements, $(val extra_kbytes_per_node_s "$p") kB/s more per honest node"
else not_ok "spam" "$p"; fi

# Forged (real signatures): nothing forged is sent on or taken into a
# table; the forgers are banned.
f=$("$SIM" --scenario forged --nodes 60 --duration-s 10 --no-timing --json 2>/dev/null)
if py 'd["stub_sigs"] == False and d["forged_sent"] > 0 and d["forged_forwarded"] == 0 and d["forged_accepted"] == 0
       and d["bans"] > 0 and d["rejected"] > 0 and d["reliability"]["attack"]["min"] >= 0.95' "$f"; then
  ok "forged: $(val forged_sent "$f") made, 0 sent on, $(val bans "$f") bans"
else not_ok "forged" "$f"; fi
# The other kinds are deterministic too: stdout and CSV, twice, small.
for args in "sybil --nodes 40 --sybils 300 --duration-s 6 --stub-sigs" \
            "spam --nodes 40 --duration-s 6 --stub-sigs" "forged --nodes 30 --duration-s 6"; do
  k=${args%% *}
  x=$("$SIM" --scenario $args --no-timing --json --out "$TMP/$k.1" 2>/dev/null)
  y=$("$SIM" --scenario $args --no-timing --json --out "$TMP/$k.2" 2>/dev/null)
  if [ -n "$x" ] && [ "$x" = "$y" ] && cmp -s "$TMP/$k.1/attack_$k.csv" "$TMP/$k.2/attack_$k.csv"; then
    ok "$k: same seed, identical report and CSV"
  else not_ok "$k determinism" "$x / $y"; fi
done
finish
