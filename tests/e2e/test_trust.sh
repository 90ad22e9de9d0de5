#!/bin/sh
# Trust (issue 9): no duplicate object and no silent loss under faults, crashes and failed writes.
#   - a fault matrix: the setup sequence (setup-target first half, setup-source, setup-target)
#     under injected faults (lost=0.4 among them) for 10 seeds ends in the clean run's state,
#     with no duplicate, and no non-idempotent request reaching the simulator more often than t2t
#     attempted it (the simulator's request log, by client-request-id);
#   - kill -9 at 20 points of the same sequence against --sim=STATE (after each audit line, and
#     during start-up), then a re-run: the clean run's state, no torn audit line, no partial
#     state file, no temporary file of a killed save left;
#   - a runbook that outlives its tokens (3 s lifetime, 350 ms answers, clock jumps that expire the
#     token in hand) succeeds and no 401 reaches it;
#   - outputs that cannot be written stop a run before its first change, with exit 1;
#   - `t2t sim` saves its state on SIGTERM;
#   - credentials expiring within --warn-expiry are named by every runbook.
# The fault runs, the kills and the long run mostly wait: they run in the background while the
# rest does.
. tests/cli/lib.sh
. tests/e2e/trust_lib.sh
TEST=trust
D=$(mktemp -d)
trap 'kill -9 $SIM 2>/dev/null; rm -rf "$D" "$OUT" "$ERR"' EXIT

# report_runs PREFIX N GOOD LABEL SAYS SHOW: one ok line per run PREFIX1..PREFIXn whose line in
# the log ("# kill k3 ...", "# run m3 ...") holds GOOD; else how its state differs from the clean
# run's and its output's lines matching SHOW.
report_runs() {
  i=1
  while [ $i -le "$2" ]; do
    line=$(grep -h "^# [a-z]* $1$i " "$D/kills.log" "$D/matrix.log")
    case "$line" in
      *"$3"*) ok "$4 $i: $5" ;;
      *) echo "not ok - $TEST: $4 $i: ${line:-no result}"
         diff "$D/clean.sum" "$D/$1$i.sum" | sed 's/^/#   /' | head -10
         grep -E "$6" "$D/$1$i.out" | sed 's/^/#   /' | head -10 ;;
    esac
    i=$((i + 1))
  done
}

trust_init "$D"
if [ "$TRUST_CLEAN_RC" = 0 ]; then ok "clean run of the setup sequence ($TRUST_CLEAN_LINES audit lines)"
else notok "clean run of the setup sequence"; tail -20 "$D/clean.out" | sed 's/^/#   /'; fi

trust_matrix "$D" "${TRUST_SEEDS:-10}" >"$D/matrix.log" 2>&1 &
MPID=$!
cp "$D/seed.json" "$D/long.json"
"$T2T" tests/e2e/trust_long.lua "$D/long.json" "$D/long.h" 350 3 >"$D/long.out" 2>&1 &
LPID=$!
trust_kills "$D" "${TRUST_KILLS:-20}" >"$D/kills.log" 2>&1 &
KPID=$!

# --- outputs checked before the first change ---------------------------------------------------
: >"$D/afile"
t2t_run --sim="$D/afile/state.json" run setup-target --handoff "$D/h1.json" --skip-endpoint
expect_rc 1 "an unwritable --sim state file fails the run"
expect_err "the simulator's state file (--sim) cannot be written" "it says which file"
expect_err "nothing was changed" "and that nothing was changed"
expect_no "changes applied" "no change was applied"
if [ "$(wc -l <"$ERR")" = 1 ]; then ok "one line says so (no second 'could not save' at exit)"
else notok "one line says so (no second 'could not save' at exit)"; fi

# a save killed half-way leaves STATE.t2tXXXXXX: the next run removes it, never a live writer's
cp "$D/seed.json" "$D/s5.json"
echo stale >"$D/s5.json.t2tAbC123"
exec 9>>"$D/s5.json.t2tLiVe99"
flock 9                                        # this shell is the live writer
t2t_run --sim="$D/s5.json" run verify-setup --handoff "$D/none.json"
exec 9>&-
if [ ! -e "$D/s5.json.t2tAbC123" ] && [ -e "$D/s5.json.t2tLiVe99" ]; then
  ok "a stale temporary state file is removed, a locked one (a live writer's) is kept"
else notok "a stale temporary state file is removed, a locked one (a live writer's) is kept"; ls "$D" | sed 's/^/#   /'; fi

cp "$D/seed.json" "$D/s2.json"
t2t_run --sim="$D/s2.json" --audit /dev/full run setup-target --handoff "$D/h2.json" --skip-endpoint
expect_rc 1 "--audit /dev/full fails the run"
expect_err "the audit file (--audit) cannot be written" "it names the audit file"
if [ "$(trust_summary "$D/s2.json")" = "$(trust_summary "$D/seed.json")" ]; then
  ok "--audit /dev/full: the tenants are unchanged"
else notok "--audit /dev/full: the tenants are unchanged"; fi

cp "$D/seed.json" "$D/s3.json"
t2t_run --sim="$D/s3.json" --audit "$D/audit3" run setup-target --handoff "$D/afile/h.json" --skip-endpoint
expect_rc 1 "an unwritable hand-off file fails the run before any change"
expect_err "the hand-off file (--handoff) cannot be written" "it names the hand-off file"
if [ -s "$D/audit3" ]; then notok "no audit line: nothing was changed"; else ok "no audit line: nothing was changed"; fi

# write-ahead audit: each change has an intent line, then its outcome
cp "$D/seed.json" "$D/s4.json"
t2t_run --sim="$D/s4.json" --audit "$D/audit4" run setup-target --handoff "$D/h4.json" --skip-endpoint
expect_rc 0 "setup-target with --audit"
intents=$(grep -c '"phase":"intent"' "$D/audit4"); outcomes=$(grep -c '"phase":"outcome"' "$D/audit4")
if [ "$intents" -gt 0 ] && [ "$intents" = "$outcomes" ]; then ok "the audit has an intent and an outcome line per change ($intents)"
else notok "the audit has an intent and an outcome line per change ($intents intents, $outcomes outcomes)"; fi

# --- t2t sim saves its state on SIGTERM ---------------------------------------------------------
"$T2T" sim --state "$D/term.json" --users 2 >"$D/sim.out" 2>&1 &
SIM=$!
i=0; while [ $i -lt 300 ] && ! grep -q "CA certificate" "$D/sim.out"; do sleep 0.1; i=$((i + 1)); done
kill -TERM $SIM
i=0; while [ $i -lt 300 ] && kill -0 $SIM 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
wait $SIM; rc=$?
if [ "$rc" = 0 ] && [ -s "$D/term.json" ]; then ok "t2t sim saves --state on SIGTERM (exit 0)"
else notok "t2t sim saves --state on SIGTERM (exit $rc)"; sed 's/^/#   /' "$D/sim.out" | tail -5; fi

# --- a credential expiring within --warn-expiry is named with its date ----------------------------
cp "$D/clean.json" "$D/x.json"
"$T2T" -e "
  local model = require 't2t.sim.model'
  local st = assert(model.load('$D/x.json'))
  local soon = os.date('!%Y-%m-%dT%H:%M:%SZ', os.time() + 10 * 86400)
  for _, t in pairs(st.tenants) do
    local admin = t.seeded and t.seeded.admin_app and t.dir.objects[t.seeded.admin_app.object_id]
    if admin then admin.passwordCredentials[1].endDateTime = soon end
    for _, o in pairs(t.dir.objects) do
      if o.displayName == 'fabrikam_Friends_contoso' and o['@odata.type'] == '#microsoft.graph.application' then
        o.passwordCredentials[1].endDateTime = soon
      end
    end
  end
  assert(model.save(st, '$D/x.json'))"
SOON=$("$T2T" -e "print(os.date('!%Y-%m-%d', os.time() + 10 * 86400))")
t2t_run --sim="$D/x.json" run verify-setup --handoff "$D/clean.h"
expect_out "expires on $SOON" "verify-setup names the app's secret expiring within 30 days, with its date"
t2t_run --sim="$D/x.json" run setup-source --handoff "$D/clean.h" --consent --create-scope-group
expect_rc 0 "setup-source runs"
expect_out "which profile 'contoso' signs in with, expires on $SOON" "setup-source names its profile's expiring secret at the start"
t2t_run --sim="$D/x.json" run setup-source --handoff "$D/clean.h" --consent --create-scope-group --warn-expiry 5
expect_no "expires on $SOON" "--warn-expiry 5: a secret expiring in 10 days is not named"
# --warn-expiry is a global option, and every runbook names the credential it signs in with
t2t_run --sim="$D/x.json" --warn-expiry 20 run access-check
expect_out "which profile 'contoso' signs in with, expires on $SOON" "access-check names its profile's expiring secret"
t2t_run --sim="$D/x.json" --warn-expiry 5 run batch-status
expect_no "expires on $SOON" "--warn-expiry 5 before the command: batch-status names nothing"
expect_err "no migration batches" "and it ran"
t2t_run --sim="$D/x.json" run batch-status
expect_out "which profile 'fabrikam' signs in with, expires on $SOON" "batch-status names its profile's expiring secret (default 30 days)"
cat >"$D/peek.lua" <<'LUA'
return runbook { name = "peek", description = "reads the organization", params = {},
  run = function(ctx)
    for _ = 1, 2 do ctx:say("org %s", connect("contoso").graph:get("/organization").value[1].id) end
  end }
LUA
t2t_run --sim="$D/x.json" run "$D/peek.lua"
if [ "$(grep -c "which profile 'contoso' signs in with, expires on $SOON" "$OUT")" = 1 ]; then
  ok "connect() in a runbook file names the expiring secret, once per run"
else notok "connect() in a runbook file names the expiring secret, once per run"; fi
t2t_run --sim="$D/x.json" --warn-expiry soon run access-check
expect_rc 2 "--warn-expiry takes a number of days"
expect_err "'soon' is not a number of days" "it says so"

# --- kill -9 at 20 points, then a re-run ---------------------------------------------------------
wait $KPID
KILL_HIT=$(grep -c "^# kill k[0-9]* (killed " "$D/kills.log")
report_runs k "${TRUST_KILLS:-20}" "rc=0 divergent=0 torn=0" "kill -9 point" \
  "the re-run converges to the clean state, nothing torn" "^torn|^trust|t2t:"
if [ "$KILL_HIT" -ge $(( ${TRUST_KILLS:-20} * 3 / 4 )) ]; then ok "the kill points hit a running process ($KILL_HIT)"
else notok "the kill points hit a running process ($KILL_HIT of ${TRUST_KILLS:-20})"; fi

# --- a run that outlives its tokens ---------------------------------------------------------------
wait $LPID
for rb in setup-target setup-source; do
  line=$(grep "^long $rb:" "$D/long.out")
  lifetimes=$(echo "$line" | sed -n 's/.* lifetimes=\([0-9]*\) .*/\1/p')
  refused=$(echo "$line" | sed -n 's/.* refused=\([0-9]*\) .*/\1/p')
  case "$line" in
    *"rc=0 failed=0 "*" seen=0") if [ "${lifetimes:-0}" -ge 3 ] && [ "${refused:-0}" -ge 1 ]; then
        ok "$rb outlives its tokens ($lifetimes lifetimes; $refused tokens a clock jump expired were refused, then renewed) and no 401 reaches it"
      else notok "$rb outlives its tokens: ${lifetimes:-0} lifetimes (3 or more wanted), ${refused:-0} refused (1 or more wanted)"; fi ;;
    *) echo "not ok - $TEST: $rb outlives its tokens: ${line:-no result}"
       grep -E "t2t:|401" "$D/long.out" | sed 's/^/#   /' | head -10 ;;
  esac
done

# --- the fault matrix ---------------------------------------------------------------------------
wait $MPID
report_runs m "${TRUST_SEEDS:-10}" "rc=0 duplicates=0 divergent=0 resent=0" "faults seed" \
  "the clean state, no duplicate, nothing re-sent" "re-sent|exited|t2t:"
