#!/bin/sh
# The setup runbooks against the simulator (--sim=STATE), held to Microsoft's scripts
# (ms-setup-and-prep.md §1–2, §4): --keyvault checks the subscription and the location before
# the first change; a dehydrated tenant is customized before anything else; names come from the
# tenants (a renamed profile finds the same app); the source's scope groups replace the
# relationship's current ones unless --merge-scopes.
. tests/cli/lib.sh
TEST=setup-fidelity
D=$(mktemp -d)
trap 'rm -rf "$D" "$OUT" "$ERR"' EXIT
EDIT="tests/e2e/state_edit.lua"
sim() { s=$1; shift; t2t_run --sim="$s" "$@"; }
# apps S: how many applications the target (fabrikam...) holds with _Friends_ in their name
cat > "$D/apps.lua" <<'LUA'
local s = require("cjson").decode(io.open(arg[1]):read("a"))
local n = 0
for _, t in pairs(s.tenants) do
  for _, o in pairs(t.dir.objects) do
    if t.name:find("^fabrikam") and o["@odata.type"] == "#microsoft.graph.application"
       and tostring(o.displayName):find("_Friends_", 1, true) then n = n + 1 end
  end
end
print(n)
LUA
# rename S: every tenant's short name (what --sim offers as profile names) gains "-renamed"
cat > "$D/rename.lua" <<'LUA'
local cjson = require "cjson"
local s = cjson.decode(io.open(arg[1]):read("a"))
for _, t in pairs(s.tenants) do t.name = t.name .. "-renamed" end
local f = io.open(arg[1], "w")
f:write(cjson.encode(s))
f:close()
LUA
apps() { "$T2T" "$D/apps.lua" "$1"; }

# --keyvault: a bad subscription and a location that is no Azure region fail before any change
S="$D/kv.json"
sim "$S" run setup-target --handoff "$D/h1.json" --keyvault --subscription 00000000-1111-2222-3333-444444444444 \
  --resource-group rg --vault t2tkv$$ --skip-endpoint
expect_rc 1 "keyvault: an unknown subscription fails"
expect_err "subscription 00000000-1111-2222-3333-444444444444 was not found for tenant" "keyvault: the message names the subscription"
if [ "$(apps "$S")" = 0 ]; then ok "keyvault: no app was made before the check"
else notok "keyvault: no app was made before the check ($(apps "$S") apps)"; fi
sim "$S" run setup-target --handoff "$D/h1.json" --keyvault --location Narnia --resource-group rg --vault t2tkv$$ \
  --skip-endpoint
expect_rc 1 "keyvault: --location Narnia fails"
expect_err "'Narnia' is not an Azure location of subscription" "keyvault: the message says the location is not a region"
if [ "$(apps "$S")" = 0 ]; then ok "keyvault: no app was made before the location check"
else notok "keyvault: no app was made before the location check"; fi
sim "$S" run setup-target --handoff "$D/h1.json" --keyvault --location "West Europe" --resource-group rg \
  --vault t2tkv$$ --skip-endpoint
expect_rc 0 "keyvault: a display name (West Europe) is a location too"

# a dehydrated target is customized first, before the Entra ID changes
S="$D/dh.json"
sim "$S" run doctor >/dev/null
"$T2T" "$EDIT" "$S" dehydrate fabrikam
sim "$S" --audit "$D/dh.audit" run setup-target --handoff "$D/h2.json" --secret-file "$D/h2.secret" --skip-endpoint
expect_rc 0 "dehydrated: setup-target succeeds"
first=$(head -1 "$D/dh.audit" | grep -o '"operation":"[^"]*"')
if [ "$first" = '"operation":"ensure_org_customization"' ]; then ok "dehydrated: the first change is Enable-OrganizationCustomization"
else notok "dehydrated: the first change is Enable-OrganizationCustomization (got $first)"; fi

# names from the tenants: profiles renamed, the same app, named after the initial domains
S="$D/nm.json"
sim "$S" run doctor >/dev/null
sim "$S" run setup-target --handoff "$D/h3.json" --secret-file "$D/h3.secret" --skip-endpoint
expect_out "fabrikam_Friends_contoso" "names: the app is named after the tenants' initial domains"
"$T2T" "$D/rename.lua" "$S"
sim "$S" run setup-target --target fabrikam-renamed --source contoso-renamed --handoff "$D/h3.json" \
  --secret-file "$D/h3.secret" --skip-endpoint
expect_rc 0 "names: setup-target runs with renamed profiles"
expect_out "fabrikam_Friends_contoso" "names: still the app of the same tenants"
if [ "$(apps "$S")" = 1 ]; then ok "names: a renamed profile does not make a second app"
else notok "names: a renamed profile does not make a second app ($(apps "$S") apps)"; fi

# scope groups: replaced by default, shown before -> after; merged with --merge-scopes
S="$D/sc.json"
sim "$S" run setup-target --handoff "$D/h4.json" --secret-file "$D/h4.secret" --skip-endpoint
sim "$S" run setup-source --handoff "$D/h4.json" --consent --create-scope-group --scope-group ScopeA
expect_rc 0 "scopes: setup-source with ScopeA"
sim "$S" run setup-source --handoff "$D/h4.json" --create-scope-group --scope-group ScopeB --plan
expect_out "ScopeA" "scopes: the plan shows the current scope (before)"
expect_out "ScopeB" "scopes: and the new one (after)"
sim "$S" run setup-source --handoff "$D/h4.json" --create-scope-group --scope-group ScopeB
sim "$S" -e 'local c = connect("contoso").exo
  for _, r in ipairs(assert(c:invoke("Get-OrganizationRelationship", {}))) do
    print("scopes", table.concat(r.MailboxMovePublishedScopes or {}, ",")) end'
if grep -q "^scopes	CN=ScopeB," "$OUT" && ! grep -q "ScopeA" "$OUT"; then
  ok "scopes: ScopeB replaced ScopeA (as the script and the docs do)"
else notok "scopes: ScopeB replaced ScopeA (as the script and the docs do)"; fi
sim "$S" run setup-source --handoff "$D/h4.json" --create-scope-group --scope-group ScopeA --merge-scopes
sim "$S" -e 'local c = connect("contoso").exo
  for _, r in ipairs(assert(c:invoke("Get-OrganizationRelationship", {}))) do
    print("scopes", table.concat(r.MailboxMovePublishedScopes or {}, ",")) end'
if grep -q "^scopes	CN=ScopeB,.*CN=ScopeA," "$OUT"; then ok "scopes: --merge-scopes keeps ScopeB and adds ScopeA"
else notok "scopes: --merge-scopes keeps ScopeB and adds ScopeA"; fi
