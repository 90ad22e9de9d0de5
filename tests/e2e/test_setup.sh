#!/bin/sh
# End to end: setup-target, setup-source and verify-setup against the simulator (--sim=STATE).
# Fresh pair succeeds; second runs change nothing (no plan changes, no audit entries, same state);
# --plan on a fresh pair changes nothing; each known failure has an actionable message; the
# legacy Key Vault procedure; convergence under injected faults.
. tests/cli/lib.sh
TEST=setup
D=$(mktemp -d)
trap 'rm -rf "$D" "$OUT" "$ERR"' EXIT
STATE_SUMMARY="tests/e2e/setup_state.lua"
EDIT="tests/e2e/state_edit.lua"

skip_all() {
  for n in fresh-pair rerun-idempotent plan-fresh keyvault keyvault-deleted keyvault-taken invite before-consent \
           dehydrated exchange-role \
           scope-group expired-secret orgrel-by-domain wrong-cloud faults; do
    echo "ok - $TEST: $n # SKIP $1"
  done
  exit 0
}

# Is the in-process simulator in this build?
t2t_run --sim="$D/probe.json" run doctor
if grep -q "not available" "$ERR" || [ ! -f "$D/probe.json" ]; then
  skip_all "the simulator's --sim=STATE (issue 5) is not in this build yet"
fi

summary() { "$T2T" "$STATE_SUMMARY" "$1"; }
# sim S ARGS...: run t2t against state file S (seeded on first use)
sim() { s=$1; shift; t2t_run --sim="$s" "$@"; }
same_state() { # same_state A B NAME
  summary "$1" > "$D/a.txt"; summary "$2" > "$D/b.txt"
  if cmp -s "$D/a.txt" "$D/b.txt"; then ok "$3"
  else notok "$3"; diff "$D/a.txt" "$D/b.txt" | head -20 | sed 's/^/#   /'; fi
}
# full S H [extra global options]: target (first half), source, target (endpoint)
full() {
  s=$1; h=$2; shift 2
  sim "$s" "$@" run setup-target --handoff "$h" --secret-file "$h.secret" --skip-endpoint || return 1
  [ "$RC" = 0 ] || return 1
  sim "$s" "$@" run setup-source --handoff "$h" --consent --create-scope-group
  [ "$RC" = 0 ] || return 1
  sim "$s" "$@" run setup-target --handoff "$h" --secret-file "$h.secret"
  [ "$RC" = 0 ]
}

# --- fresh pair --------------------------------------------------------------------------------
S="$D/s.json"; H="$D/h.json"
cp "$D/probe.json" "$S"
cp "$S" "$D/seeded.json"

# The fault run mostly waits (Retry-After, backoff, replication lag): start it now, in the
# background, and compare its final state with the clean run's at the end.
F="$D/f.json"; HF="$D/hf.json"
cp "$D/seeded.json" "$F"
FAULTS="429=0.1,503=0.05,reset=0.02,lost=0.02,lag=3s"
"$T2T" tests/e2e/setup_faults.lua "$F" "$HF" "$FAULTS" >"$D/faults.out" 2>&1 &
FPID=$!

# --plan on a fresh pair: lists the changes, changes nothing
sim "$S" --plan run setup-target --handoff "$H" --skip-endpoint
if [ "$RC" = 0 ] && grep -q "would + create application" "$OUT" && grep -q "would + create organization relationship" "$OUT"; then
  ok "plan-fresh: --plan lists the application and the organization relationship"
else notok "plan-fresh: --plan lists the changes"; fi
same_state "$D/seeded.json" "$S" "plan-fresh: the simulator state is untouched by --plan"
[ -f "$H" ] && notok "plan-fresh: --plan wrote no hand-off file" || ok "plan-fresh: --plan wrote no hand-off file"

if full "$S" "$H" --audit "$D/audit1"; then ok "fresh-pair: setup-target, setup-source, setup-target succeed"
else notok "fresh-pair: the three runs succeed"; fi
expect_out "MigrationEndpoint" "fresh-pair: the endpoint is created"
[ "$(stat -c %a "$H.secret" 2>/dev/null)" = 600 ] && ok "fresh-pair: secret file is mode 0600" \
  || notok "fresh-pair: secret file is mode 0600"
SECRET=$(cat "$H.secret" 2>/dev/null)
if [ -n "$SECRET" ] && grep -qF -- "$SECRET" "$OUT" "$ERR"; then notok "fresh-pair: the secret is not in the run's output"
else ok "fresh-pair: the secret is not in the run's output (only in the 0600 file)"; fi
if [ -n "$SECRET" ] && grep -qF -- "$SECRET" "$D/audit1" "$H"; then notok "fresh-pair: the secret is in the audit or hand-off file"
else ok "fresh-pair: the secret is in neither the audit file nor the hand-off file"; fi
sim "$S" run verify-setup --handoff "$H"
expect_rc 0 "fresh-pair: verify-setup passes"
expect_out "[Passed]" "fresh-pair: verify-setup prints [Passed] lines"
expect_no "[Failed]" "fresh-pair: verify-setup has no [Failed] line"

# --- re-runs change nothing ----------------------------------------------------------------------
cp "$S" "$D/after1.json"
for rb in setup-target setup-source; do
  if [ "$rb" = setup-source ]; then args="--handoff $H --consent --create-scope-group"
  else args="--handoff $H --secret-file $H.secret"; fi
  sim "$S" --audit "$D/audit2" run $rb $args
  expect_rc 0 "rerun-idempotent: $rb runs again"
  sim "$S" --plan run $rb $args
  if grep -qE '^would [-+~*] ' "$OUT"; then notok "rerun-idempotent: $rb --plan has no changes"
  else ok "rerun-idempotent: $rb --plan has no changes"; fi
  if grep -qE "changes planned +0\$" "$OUT"; then ok "rerun-idempotent: $rb --plan counts 0 changes"
  else notok "rerun-idempotent: $rb --plan counts 0 changes"; fi
done
# the simulator's request log of a third pair of runs: nothing but reads (and tokens)
cp "$S" "$D/s3.json"
t2t_run tests/e2e/setup_rerun_log.lua "$D/s3.json" "$H" "$H.secret"
expect_rc 0 "rerun-idempotent: the request log of re-runs has no Graph/ARM/Key Vault write"
expect_out "changing requests: 0" "rerun-idempotent: no changing request in the log"
if grep -q "without a cmdlet name in the log: 0" "$OUT"; then ok "rerun-idempotent: every EXO request in the log is a Get-/Test- cmdlet"
else notok "rerun-idempotent: every EXO request in the log is a Get-/Test- cmdlet"; fi
if [ -s "$D/audit2" ]; then notok "rerun-idempotent: the audit file has no new entries"; sed 's/^/#   /' "$D/audit2" | head
else ok "rerun-idempotent: the audit file has no new entries"; fi
same_state "$D/after1.json" "$S" "rerun-idempotent: the state is unchanged after second runs"

# --- B2B invitation (redirect to the consent URL), sent once --------------------------------------
B="$D/b.json"; HB="$D/hb.json"
cp "$D/seeded.json" "$B"
sim "$B" run setup-target --handoff "$HB" --skip-endpoint --invite admin@contoso.com
expect_out "Successfully sent invitation to admin@contoso.com" "invite: the invitation is sent"
expect_out 'inviteRedirectUrl: "https://login.microsoftonline.com/contoso.onmicrosoft.com/adminconsent?client_id=' \
  "invite: it redirects to the source consent URL"
sim "$B" run setup-target --handoff "$HB" --skip-endpoint --invite admin@contoso.com
expect_out "admin@contoso.com is already invited" "invite: a second run does not invite again"

# --- known failures ----------------------------------------------------------------------------
B="$D/b.json"; HB="$D/hb.json"
cp "$D/seeded.json" "$B"
sim "$B" run setup-target --handoff "$HB" --secret-file "$HB.secret"
expect_rc 1 "before-consent: setup-target before the source is ready fails"
expect_err "setup-source" "before-consent: the message says the source admin must run setup-source"
expect_err "consent" "before-consent: the message mentions the consent"

cp "$D/seeded.json" "$B"; "$T2T" "$EDIT" "$B" dehydrate fabrikam
sim "$B" run setup-target --handoff "$HB" --secret-file "$HB.secret" --skip-endpoint
expect_rc 0 "dehydrated: setup-target succeeds on a dehydrated tenant"
expect_out "Enable-OrganizationCustomization" "dehydrated: it enables organization customization"

cp "$D/seeded.json" "$B"; "$T2T" "$EDIT" "$B" no-manageasapp fabrikam
sim "$B" run setup-target --handoff "$HB" --skip-endpoint
expect_rc 1 "exchange-role: without Exchange.ManageAsApp setup-target fails"
expect_err "Exchange.ManageAsApp" "exchange-role: the message names Exchange.ManageAsApp"
cp "$D/seeded.json" "$B"; "$T2T" "$EDIT" "$B" no-exchange-role fabrikam
sim "$B" run setup-target --handoff "$HB" --skip-endpoint
expect_rc 1 "exchange-role: without the Exchange Administrator role setup-target fails"
expect_err "Exchange Administrator" "exchange-role: the message names the Exchange Administrator role"

cp "$S" "$B"
sim "$B" run setup-source --handoff "$H" --scope-group NoSuchGroup
expect_rc 1 "scope-group: a missing scope group fails"
expect_err "New-DistributionGroup -Type Security" "scope-group: the message says how to create it"
"$T2T" "$EDIT" "$B" scope-dl contoso T2T-Sales-DL
sim "$B" run setup-source --handoff "$H" --scope-group T2T-Sales-DL
expect_rc 1 "scope-group: a distribution group as scope fails"
expect_err "not a mail-enabled security group" "scope-group: the message says it must be a security group"

cp "$S" "$B"; "$T2T" "$EDIT" "$B" expire-secrets fabrikam
sim "$B" run verify-setup --handoff "$H"
expect_rc 1 "expired-secret: verify-setup fails"
expect_out "expired on" "expired-secret: it says the secret expired"

cp "$D/seeded.json" "$B"; "$T2T" "$EDIT" "$B" orgrel-by-domain fabrikam contoso.onmicrosoft.com
sim "$B" run setup-target --handoff "$HB" --secret-file "$HB.secret" --skip-endpoint
expect_out "community-script mistake" "orgrel-by-domain: setup-target explains the domain-keyed relationship"
sim "$B" run verify-setup --side target --handoff "$HB"
expect_out "[Warnings] Organization relationship 'Community' also names the partner by domain" \
  "orgrel-by-domain: verify-setup reports it"

sed 's/"cloud": "global"/"cloud": "usgovhigh"/' "$H" > "$D/hg.json"
cp "$S" "$B"
sim "$B" run setup-source --handoff "$D/hg.json"
expect_rc 1 "wrong-cloud: a hand-off file from another cloud is refused"
expect_err "wrong cloud" "wrong-cloud: the message says so"

# --- legacy Key Vault procedure ----------------------------------------------------------------
K="$D/k.json"; HK="$D/hk.json"
cp "$D/seeded.json" "$K"
if ! "$T2T" -e 'assert(require "t2t.azure")' >/dev/null 2>&1; then
  echo "ok - $TEST: keyvault # SKIP the azure client (issue 5) is not in this build yet"
else
  sim "$K" run setup-target --handoff "$HK" --keyvault --resource-group t2t-rg --vault t2tvault$$ --skip-endpoint
  expect_rc 0 "keyvault: setup-target --keyvault (first half)"
  sim "$K" run setup-source --handoff "$HK" --consent --create-scope-group
  sim "$K" run setup-target --handoff "$HK" --keyvault --resource-group t2t-rg --vault t2tvault$$
  expect_rc 0 "keyvault: setup-target --keyvault creates the endpoint with the certificate URL"
  sim "$K" run verify-setup --handoff "$HK"
  expect_rc 0 "keyvault: verify-setup passes"
  expect_out "Key Vault certificate" "keyvault: verify checks the endpoint's Key Vault URL"
  # a deleted vault keeps its name (soft delete): say so at once, and how to recover or purge it
  ARMV="/resourceGroups/t2t-rg/providers/Microsoft.KeyVault/vaults"
  sim "$K" -e "local c = assert(require('t2t.connect').profile('fabrikam'))
    assert(c.azure:arm('DELETE', '/subscriptions/' .. c.azure.subscription .. '$ARMV/t2tvault$$?api-version=2023-07-01'))"
  expect_rc 0 "keyvault-deleted: the vault is deleted"
  sim "$K" run setup-target --handoff "$HK" --keyvault --resource-group t2t-rg --vault t2tvault$$
  expect_rc 1 "keyvault-deleted: a soft-deleted vault's name is refused"
  expect_err "az keyvault recover --name t2tvault$$" "keyvault-deleted: the message says how to recover or purge it"
  expect_no "retry 2" "keyvault-deleted: no create is attempted, let alone retried"
  # a vault name another tenant holds (names are global)
  sim "$K" -e "local c = assert(require('t2t.connect').profile('contoso'))
    local sub = '/subscriptions/' .. c.azure.subscription
    assert(c.azure:arm('PUT', sub .. '/resourcegroups/rg-other?api-version=2021-04-01', { location = 'westeurope' }))
    assert(c.azure:arm('PUT', sub .. '/resourceGroups/rg-other/providers/Microsoft.KeyVault/vaults/t2tother$$' ..
      '?api-version=2023-07-01', { location = 'westeurope',
      properties = { tenantId = c.profile.tenant_id, sku = { family = 'A', name = 'standard' } } }))"
  expect_rc 0 "keyvault-taken: the source tenant holds a vault name"
  sim "$K" run setup-target --handoff "$HK" --keyvault --resource-group t2t-rg --vault t2tother$$
  expect_rc 1 "keyvault-taken: the target cannot have that name"
  expect_err "the key vault name 't2tother$$' is taken" "keyvault-taken: the message says to pick another --vault"
  expect_no "retry 2" "keyvault-taken: the refusal is not retried"
fi

# --- faults: converge to the clean run's state, nothing duplicated -----------------------------
wait $FPID
FRC=$?
if [ $FRC = 0 ]; then ok "faults: the runbooks succeed under $FAULTS (each re-run at most twice)"
else echo "not ok - $TEST: faults: the runbooks succeed under $FAULTS (exit $FRC)"; tail -20 "$D/faults.out" | sed 's/^/#   /'; fi
same_state "$S" "$F" "faults: same final state as the clean run, nothing duplicated"
