-- Print a canonical summary of the setup-relevant simulator state (docs/simulator.md model):
--   build/t2t tests/e2e/setup_state.lua STATE.json
-- Ids that differ between runs (app ids, object ids) are replaced by names, so a clean run and a
-- run under faults can be compared line by line; duplicates show as counts > 1.
local cjson = require "cjson"
local f = assert(io.open(arg[1], "r"))
local state = cjson.decode(f:read("a"))
f:close()
local lines = {}
local function add(fmt, ...) lines[#lines + 1] = string.format(fmt, ...) end
local tenant_name, app_name = {}, {}
for tid, t in pairs(state.tenants or {}) do tenant_name[tid] = t.name end
for _, t in pairs(state.tenants or {}) do
  for _, o in pairs(t.dir and t.dir.objects or {}) do
    if o["@odata.type"] == "#microsoft.graph.application" then app_name[o.appId] = o.displayName end
  end
end
local function n(v) return v == cjson.null and "null" or tostring(v) end
local function list(v)
  if type(v) ~= "table" then return n(v) end
  local out = {}
  for _, x in ipairs(v) do out[#out + 1] = tenant_name[x] and ("<" .. tenant_name[x] .. ">") or app_name[x] or n(x) end
  table.sort(out)
  return table.concat(out, ",")
end
for _, t in pairs(state.tenants or {}) do
  local counts = {}
  local function count(key) counts[key] = (counts[key] or 0) + 1 end
  local sp_app = {}
  for id, o in pairs(t.dir and t.dir.objects or {}) do
    local ty = o["@odata.type"]
    if ty == "#microsoft.graph.application" and not o.displayName:find("admin", 1, true) then
      count(string.format("application %s audience=%s redirect=%s secrets=%d", o.displayName, n(o.signInAudience),
        list(o.web and o.web.redirectUris), #(o.passwordCredentials or {})))
    elseif ty == "#microsoft.graph.servicePrincipal" then
      sp_app[id] = app_name[o.appId] or o.appId
      if app_name[o.appId] and not app_name[o.appId]:find("admin", 1, true) then
        count("servicePrincipal " .. app_name[o.appId])
      end
    elseif ty == "#microsoft.graph.user" and o.userType == "Guest" then
      count("guest " .. n(o.mail))
    end
  end
  for _, a in pairs(t.dir and t.dir.app_role_assignments or {}) do
    local who = sp_app[a.principalId]
    if who and not tostring(who):find("admin", 1, true) then
      count("appRoleAssignment " .. tostring(who) .. " role=" .. n(a.appRoleId))
    end
  end
  local exo = t.exo or {}
  for _, r in pairs(exo.org_relationships or {}) do
    count(string.format("orgrel %s domains=%s enabled=%s move=%s cap=%s app=%s scopes=%s", n(r.Name or r.Identity),
      list(r.DomainNames), n(r.Enabled), n(r.MailboxMoveEnabled), list(r.MailboxMoveCapability),
      app_name[r.OAuthApplicationId] or n(r.OAuthApplicationId), list(r.MailboxMovePublishedScopes)))
  end
  for _, e in pairs(exo.migration_endpoints or {}) do
    count(string.format("endpoint %s server=%s tenant=%s app=%s kv=%s", n(e.Name or e.Identity), n(e.RemoteServer),
      n(e.RemoteTenant), app_name[e.ApplicationId] or n(e.ApplicationId), e.AppSecretKeyVaultUrl and "yes" or "no"))
  end
  for _, r in pairs(exo.recipients or {}) do
    if r.RecipientTypeDetails == "MailUniversalSecurityGroup" then count("scopegroup " .. n(r.Name)) end
  end
  count("dehydrated=" .. n(exo.org_config and exo.org_config.IsDehydrated))
  for k, c in pairs(counts) do add("%s: %s x%d", t.name, k, c) end
end
table.sort(lines)
io.write(table.concat(lines, "\n"), "\n")
