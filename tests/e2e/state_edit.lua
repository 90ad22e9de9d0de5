-- Break a simulator state file in one of the ways the setup runbooks must explain:
--   build/t2t tests/e2e/state_edit.lua STATE.json WHAT [ARG]
-- WHAT: dehydrate TENANT | no-manageasapp TENANT | no-exchange-role TENANT | orgrel-by-domain TENANT DOMAIN
--       | scope-dl TENANT NAME | expire-secrets TENANT
local cjson = require "cjson"
local path, what, tname, extra = arg[1], arg[2], arg[3], arg[4]
local f = assert(io.open(path, "r"))
local state = cjson.decode(f:read("a"))
f:close()
local t
for _, x in pairs(state.tenants) do if x.name == tname then t = x end end
assert(t, "no tenant " .. tostring(tname))
local MANAGE = "dc50a0fb-09a3-484d-be87-e023b12c6440"
local EXADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"
if what == "dehydrate" then
  t.exo.org_config.IsDehydrated = true
elseif what == "no-manageasapp" then
  for id, a in pairs(t.dir.app_role_assignments) do
    if a.appRoleId == MANAGE then t.dir.app_role_assignments[id] = nil end
  end
elseif what == "no-exchange-role" then
  for id, a in pairs(t.dir.role_assignments) do
    if a.roleDefinitionId == EXADMIN then t.dir.role_assignments[id] = nil end
  end
elseif what == "orgrel-by-domain" then
  t.exo.org_relationships = t.exo.org_relationships or {}
  t.exo.org_relationships["Community"] = { Identity = "Community", Name = "Community", DomainNames = { extra },
    Enabled = true, MailboxMoveEnabled = true, MailboxMoveCapability = "Inbound", created = 0 }
elseif what == "scope-dl" then
  local id = "0000aaaa-0000-0000-0000-00000000d100"
  t.exo.recipients[id] = { Guid = id, Identity = extra, Name = extra, Alias = extra, DisplayName = extra,
    RecipientTypeDetails = "MailUniversalDistributionGroup", PrimarySmtpAddress = extra .. "@" .. t.initial_domain,
    EmailAddresses = { "SMTP:" .. extra .. "@" .. t.initial_domain }, created = 0 }
elseif what == "expire-secrets" then
  for _, o in pairs(t.dir.objects) do
    if o["@odata.type"] == "#microsoft.graph.application" and o.displayName:find("_Friends_", 1, true) then
      for _, c in ipairs(o.passwordCredentials or {}) do c.endDateTime = "2020-01-01T00:00:00Z" end
    end
  end
else
  error("unknown edit " .. tostring(what))
end
f = assert(io.open(path, "w"))
f:write(cjson.encode(state))
f:close()
