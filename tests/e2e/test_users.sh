#!/bin/sh
# End to end: export-users, prepare-users and validate-users on a seeded pair with a mixed
# population (tests/e2e/users_mixed.json: one user per rule of ms-setup-and-prep.md §3.2 and §5)
# and a user list as admins write it.  Every user ends ready, or not ready with the right rule,
# message and fix; nothing is licensed before its GUID; a second run changes nothing; the same
# final state under injected faults and after kill -9 at random points; the target admin's run
# from the source admin's collection file.
. tests/cli/lib.sh
TEST=users
D=$(mktemp -d)
SIMPID=
cleanup() { [ -n "$SIMPID" ] && kill "$SIMPID" 2>/dev/null; rm -rf "$D" "$OUT" "$ERR"; }
trap cleanup EXIT
STATE="tests/e2e/users_state.lua"
CHECK="tests/e2e/users_check.lua"
MAP="--domain-map contoso.com=fabrikam.com,contoso.net=fabrikam.co.uk"
LIC="--license ctudm,ENTERPRISEPACK"

summary() { "$T2T" "$STATE" "$1"; }
same_state() { # same_state A B NAME
  summary "$1" > "$D/a.txt"; summary "$2" > "$D/b.txt"
  if cmp -s "$D/a.txt" "$D/b.txt"; then ok "$3"
  else notok "$3"; diff "$D/a.txt" "$D/b.txt" | head -20 | sed 's/^/#   /'; fi
}
sim() { s=$1; shift; t2t_run --sim="$s" "$@"; }

# --- the pair: seeded population, then the tenant setup ---------------------------------------
"$T2T" tests/e2e/users_seed.lua "$D/s0.json" || { notok "seed the mixed population"; exit 0; }
S="$D/s1.json"; H="$D/h.json"
cp "$D/s0.json" "$S"
sim "$S" run setup-target --handoff "$H" --secret-file "$H.secret" --skip-endpoint && [ "$RC" = 0 ] &&
sim "$S" run setup-source --handoff "$H" --consent --create-scope-group && [ "$RC" = 0 ] &&
sim "$S" run setup-target --handoff "$H" --secret-file "$H.secret"
expect_rc 0 "the tenant setup for the users test"

# The list as an admin exports it: BOM, CRLF, ';' from a European Excel, quotes, spaces, a
# blank line, a duplicate row, an extra column, two bad rows, two users mapped onto one target.
printf '\357\273\277sourceuser;TargetUser;Department\r\n' > "$D/users.csv"
for u in ok1 "d'arcy.nunez" shared1 room1 ctudmsrc aux13 lit delay delayrel tag inplace ediscovery orghold \
         substrate dumpster demoted contact synced prev mbx dupe nobody; do
  printf '%s@contoso.com ; ;"Sales; EMEA"\r\n' "$u" >> "$D/users.csv"
done
printf '\r\nok1@contoso.com;;dup\r\ncoll1@contoso.com;same@fabrikam.com;x\r\n"coll2@contoso.com";"same@fabrikam.com";x\r\n' >> "$D/users.csv"
cp "$D/users.csv" "$D/validate.csv"
printf 'outscope@contoso.com;;\r\n' >> "$D/validate.csv"
printf 'bad@contoso.com;not an address;x\r\n"broken;x;y\r\n' >> "$D/users.csv"
printf 'EmailAddress\noutscope@contoso.com\n' > "$D/outscope.csv"

# Faults run in the background from the post-setup state (it mostly waits on retries and lag).
F="$D/f.json"
cp "$S" "$F"
cp "$D/users.csv" "$D/fusers.csv"
"$T2T" tests/e2e/users_faults.lua "$F" "429=0.05,503=0.02,reset=0.01,lost=0.01,lag=2s" "$D/frep.json" \
  --csv "$D/fusers.csv" $MAP $LIC >"$D/faults.out" 2>&1 &
FPID=$!

# --- --plan on the fresh pair ------------------------------------------------------------------
P="$D/p.json"
cp "$S" "$P"
sim "$P" --plan run prepare-users --csv "$D/users.csv" $MAP $LIC
expect_out "would + create mail user 'ok1' (ok1@fabrikam.com)" "plan: the mail users it would create are listed"
same_state "$S" "$P" "plan: --plan changes nothing"

# --- prepare (clean), then again --------------------------------------------------------------
C="$D/c.json"
cp "$S" "$C"
sim "$C" --audit "$D/audit1" run prepare-users --csv "$D/users.csv" $MAP $LIC --report "$D/prep.json"
expect_rc 3 "prepare: some users failed (the planted problems), the others are prepared"
expect_err "users.csv: line 28: TargetUser 'not an address' is not an e-mail address" "prepare: a bad row names its line and reason"
expect_err "users.csv: line 29: a quoted field is not closed" "prepare: an unclosed quote names its line"
expect_err "line 25: duplicate of line 2 (skipped)" "prepare: a duplicate row is skipped and named"
"$T2T" "$CHECK" prepare "$D/prep.json"
sim "$C" --audit "$D/audit1" run prepare-users --csv "$D/outscope.csv" $MAP $LIC --no-scope
expect_rc 0 "prepare: a user left out of the scope group on purpose"
if "$T2T" tests/e2e/users_audit.lua "$D/audit1" > "$D/audit.out"; then
  ok "prepare: every licence comes after its mail user's ExchangeGuid was stamped (audit order)"
else notok "prepare: every licence comes after its mail user's ExchangeGuid was stamped (audit order)"; sed 's/^/#   /' "$D/audit.out"; fi
summary "$C" > "$D/c.txt"
grep -q "^provisioned by licence: 0$" "$D/c.txt" && grep -q "^licensed before GUID: 0$" "$D/c.txt" \
  && ok "prepare: nothing licensed before its GUID (no mailbox provisioned by a licence)" \
  || { notok "prepare: nothing licensed before its GUID"; tail -3 "$D/c.txt" | sed 's/^/#   /'; }
grep -q "^duplicates: 0$" "$D/c.txt" && ok "prepare: no duplicate mail users" || notok "prepare: no duplicate mail users"
grep -q "^MailUser ok1@fabrikam.com guid=source:ok1 .*X500:/o=\|^MailUser ok1@fabrikam.com guid=source:ok1 .*x500:/o=" "$D/c.txt" \
  && ok "prepare: ok1's mail user carries its GUID and its X500" || notok "prepare: ok1's mail user carries its GUID and its X500"
cp "$C" "$D/c1.json"
sim "$C" --audit "$D/audit2" run prepare-users --csv "$D/users.csv" $MAP $LIC
sim "$C" --audit "$D/audit2" run prepare-users --csv "$D/outscope.csv" $MAP $LIC --no-scope
if [ -s "$D/audit2" ]; then notok "rerun: a second run changes nothing"; sed 's/^/#   /' "$D/audit2" | head -5
else ok "rerun: a second run changes nothing (no audit entries)"; fi
same_state "$D/c1.json" "$C" "rerun: the state is the same after the second run"

# --- --only-failed re-runs exactly the users that were not done -------------------------------
sim "$C" run prepare-users --csv "$D/users.csv" $MAP $LIC --report "$D/prep.json" --only-failed
expect_out "--only-failed: 7 users to run again" "only-failed: the 7 users not done are run again, no more"

# --- validate ----------------------------------------------------------------------------------
sim "$C" run validate-users --csv "$D/validate.csv" $MAP --report "$D/val.json"
expect_rc 3 "validate: some users are not ready"
"$T2T" "$CHECK" validate "$D/val.json"
printf 'SourceUser\nok1@contoso.com\noutscope@contoso.com\n' > "$D/move.csv"
sim "$C" run validate-users --csv "$D/move.csv" $MAP --test-move
expect_out "[18 Test-MigrationServerAvailability] Test-MigrationServerAvailability failed: Please make sure source mailbox 'outscope' is in the migration scope" \
  "validate --test-move: the service's own test names the scope problem"
if grep -qE '^ok1@contoso.com +ok1@fabrikam.com +ready' "$OUT"; then ok "validate --test-move: a ready user passes the test move"
else notok "validate --test-move: a ready user passes the test move"; fi
# break ok1's target the way a hand edit would; validate names it; --fix repairs what CSS-val repairs
B="$D/b.json"
cp "$C" "$B"
"$T2T" tests/e2e/users_break.lua "$B" ok1@fabrikam.com
printf 'SourceUser\nok1@contoso.com\nsynced@contoso.com\n' > "$D/two.csv"
sim "$B" run validate-users --csv "$D/two.csv" $MAP
expect_out "[10 LegacyExchangeDN as X500]" "validate: a missing X500 is rule 10"
expect_out "[14 ExternalEmailAddress]" "validate: a wrong ExternalEmailAddress is rule 14"
sim "$B" --audit "$D/audit3" run validate-users --csv "$D/two.csv" $MAP --fix
if [ "$(grep '"phase":"outcome"' "$D/audit3" | grep -c '"operation":"validate_fix"')" = 1 ]; then
  ok "validate --fix: one fix, on ok1 only (never on the dir-synced one)"
else notok "validate --fix: one fix, on ok1 only"; sed 's/^/#   /' "$D/audit3" | head; fi
if grep -qE '^ok1@contoso.com +ok1@fabrikam.com +ready' "$OUT"; then ok "validate --fix: ok1 is ready again"
else notok "validate --fix: ok1 is ready again"; fi

# --- the target admin's run from the source admin's file ----------------------------------------
E="$D/e.json"
cp "$S" "$E"
sim "$E" run export-users --csv "$D/users.csv" --out "$D/coll.jsonl"
expect_rc 3 "export-users: the user that does not exist fails, the others are exported"
[ "$(stat -c %a "$D/coll.jsonl" 2>/dev/null)" = 600 ] && ok "export-users: the collection file is mode 0600" \
  || notok "export-users: the collection file is mode 0600"
sim "$E" run prepare-users --target fabrikam --from "$D/coll.jsonl" $MAP $LIC
expect_out "are not in the scope group T2T-Migration-Scope: the source admin adds them" "from a file: the scope group is left to the source admin"
summary "$E" | grep -v '^scope' | grep -v 'outscope' > "$D/e.txt"
summary "$D/c1.json" | grep -v '^scope' | grep -v 'outscope' > "$D/c.txt"
if cmp -s "$D/e.txt" "$D/c.txt"; then ok "from a file: the same target mail users as from the source tenant"
else notok "from a file: the same target mail users"; diff "$D/c.txt" "$D/e.txt" | head | sed 's/^/#   /'; fi
sim "$E" run validate-users --target fabrikam --from "$D/coll.jsonl" $MAP
expect_out "[4 no holds] the SOURCE mailbox is under an organization-wide retention policy" \
  "validate from a file: the organization-wide hold read by the source admin is reported"

# --- kill -9 during prepare-users, then a re-run converges -------------------------------------
K="$D/k.json"
cp "$S" "$K"
"$T2T" sim --state "$K" --write-config "$D/cfg.lua" > "$D/sim.out" 2>&1 &
SIMPID=$!
i=0; while [ ! -s "$D/cfg.lua" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
KARGS="--config $D/cfg.lua run prepare-users --source contoso --target fabrikam $MAP $LIC"
n=0
# a full run takes ~2.5 s here (the simulator saves its state file at every write): kill it from
# start-up to the last users, each run continuing from what the killed ones left
for at in 0.4 1.7 0.9 2.1 1.3; do
  "$T2T" $KARGS --csv "$D/users.csv" >/dev/null 2>&1 &
  pid=$!
  sleep "$at"
  kill -9 "$pid" 2>/dev/null && n=$((n + 1))
  wait "$pid" 2>/dev/null
done
t2t_run $KARGS --csv "$D/users.csv"
expect_rc 3 "kill -9: the run after $n kills finishes (the planted failures remain)"
t2t_run $KARGS --csv "$D/outscope.csv" --no-scope
kill -INT "$SIMPID"; wait "$SIMPID" 2>/dev/null; SIMPID=
same_state "$D/c1.json" "$K" "kill -9: killed at $n points and re-run, the same final state as a clean run"

# --- faults ------------------------------------------------------------------------------------
wait "$FPID"
cp "$D/outscope.csv" "$D/fout.csv"
"$T2T" tests/e2e/users_faults.lua "$F" "503=0.05,lost=0.05" "$D/frep2.json" --csv "$D/fout.csv" $MAP $LIC --no-scope \
  >>"$D/faults.out" 2>&1
summary "$F" > "$D/f.txt"
grep -q "^duplicates: 0$" "$D/f.txt" && ok "faults: 0 duplicate mail users" \
  || { notok "faults: 0 duplicate mail users"; sed 's/^/#   /' "$D/faults.out" | tail -5; }
same_state "$D/c1.json" "$F" "faults: 429/503/reset/lost/lag give the same final state as a clean run"
