-- t2t.sim.exo.orgrel: organization relationships, migration endpoints and
-- Test-MigrationServerAvailability, with the cross-tenant rules of ms-setup-and-prep.md §4 and
-- §7: endpoint creation verifies the app's secret, the source tenant's consent and the source
-- organization relationship; the per-user test checks the target MailUser against the source.
local model = require "t2t.sim.model"
local U = require "t2t.sim.exo.util"
local R = require "t2t.sim.exo.recipients"

local M = {}
local lower = string.lower
local EXO_APPID = "00000002-0000-0ff1-ce00-000000000000"
local ZERO = model.ZERO_GUID

local function by_name(map, identity)
  if identity == nil then return nil end
  local id = lower(tostring(identity))
  for k, o in pairs(map) do
    if lower(k) == id or lower(o.Name or "") == id or lower(o.Guid or "") == id then return k, o end
  end
end

-- get_or_list(ctx, map, identity, keep) -> the object named identity (not found -> the EXO
-- error), or every visible object that keep(o) accepts (all when keep is nil), as a list.
local function get_or_list(ctx, map, identity, keep)
  if identity ~= nil then
    local _, o = by_name(map, identity)
    if not o or not U.visible(ctx, o) then U.not_found(ctx, identity) end
    return { o }
  end
  local out = {}
  for _, o in pairs(map) do
    if U.visible(ctx, o) and (not keep or keep(o)) then out[#out + 1] = o end
  end
  return out
end

local function need_hydrated(ctx)
  if R.dehydrated(ctx.t) then
    U.fail(400, U.EX.Dehydrated, "This operation is not available in the current organization " ..
      "context because the organization is dehydrated. Run Enable-OrganizationCustomization " ..
      "before running this operation.")
  end
end

local function present(o)
  return U.present(o, { Identity = o.Name, Id = o.Name })
end

---------------------------------------------------------------------------------------------
-- Organization relationships.

-- The published scopes, each a mail-enabled security group (stored by DistinguishedName).
local function scopes(ctx, v)
  local out = {}
  for _, id in ipairs(U.list(v)) do
    local g = U.find(ctx, id, U.GROUP)
    if g.RecipientTypeDetails ~= "MailUniversalSecurityGroup" then
      U.fail(400, U.EX.Validation, "The group '%s' isn't a mail-enabled security group. " ..
        "MailboxMovePublishedScopes accepts only mail-enabled security groups.", g.Name)
    end
    out[#out + 1] = g.DistinguishedName or g.Name
  end
  return out
end

local function capability(v)
  local out = {}
  for _, c in ipairs(U.list(v)) do if c ~= "None" then out[#out + 1] = c end end
  if #out == 0 then out[1] = "None" end
  return out
end

local FIELDS = { "Enabled", "MailboxMoveEnabled", "OAuthApplicationId", "ArchiveAccessEnabled",
  "DeliveryReportEnabled", "FreeBusyAccessEnabled", "FreeBusyAccessLevel", "MailTipsAccessEnabled",
  "MailTipsAccessLevel", "PhotosEnabled", "TargetApplicationUri", "TargetAutodiscoverEpr",
  "TargetOwaURL", "TargetSharingEpr", "OrganizationContact" }

local function apply(ctx, o, p)
  for _, k in ipairs(FIELDS) do if p[k] ~= nil then o[k] = p[k] end end
  if p.DomainNames ~= nil then
    local doms = U.edit_list(o.DomainNames, p.DomainNames)
    for _, d in ipairs(doms) do
      for _, other in pairs(ctx.t.exo.org_relationships) do
        if other ~= o then
          for _, od in ipairs(other.DomainNames or {}) do
            if lower(od) == lower(d) then
              U.fail(400, U.EX.Validation, "The domain '%s' is already used by the organization " ..
                "relationship '%s'.", d, other.Name)
            end
          end
        end
      end
    end
    o.DomainNames = doms
  end
  if p.MailboxMoveCapability ~= nil then o.MailboxMoveCapability = capability(p.MailboxMoveCapability) end
  if p.MailboxMovePublishedScopes ~= nil then
    o.MailboxMovePublishedScopes = scopes(ctx, p.MailboxMovePublishedScopes)
  end
end

M["Get-OrganizationRelationship"] = function(ctx, p)
  return get_or_list(ctx, ctx.t.exo.org_relationships, p.Identity), present
end

M["New-OrganizationRelationship"] = function(ctx, p)
  need_hydrated(ctx)
  local map = ctx.t.exo.org_relationships
  if by_name(map, p.Name) then
    U.fail(400, U.EX.AlreadyExists, "The organization relationship '%s' already exists.", p.Name)
  end
  local o = { Name = p.Name, Guid = ctx.sim.rng:guid(), DomainNames = {}, Enabled = false,
              MailboxMoveEnabled = false, MailboxMoveCapability = { "None" },
              MailboxMovePublishedScopes = {}, FreeBusyAccessEnabled = false,
              FreeBusyAccessLevel = "None", MailTipsAccessEnabled = false,
              MailTipsAccessLevel = "None", ArchiveAccessEnabled = false,
              DeliveryReportEnabled = false, PhotosEnabled = false, created = ctx.now }
  apply(ctx, o, p)
  map[p.Name] = o
  return { present(o) }
end

M["Set-OrganizationRelationship"] = function(ctx, p)
  need_hydrated(ctx)
  local map = ctx.t.exo.org_relationships
  local key, o = by_name(map, p.Identity)
  if not o or not U.visible(ctx, o) then U.not_found(ctx, p.Identity) end
  apply(ctx, o, p)
  if p.Name and p.Name ~= key then
    if by_name(map, p.Name) then
      U.fail(400, U.EX.AlreadyExists, "The organization relationship '%s' already exists.", p.Name)
    end
    map[key] = nil
    o.Name = p.Name
    map[p.Name] = o
  end
  return {}
end

M["Remove-OrganizationRelationship"] = function(ctx, p)
  local map = ctx.t.exo.org_relationships
  local key = by_name(map, p.Identity)
  if not key then U.not_found(ctx, p.Identity) end
  map[key] = nil
  return {}
end

---------------------------------------------------------------------------------------------
-- Cross-tenant checks.

local function oauth_fail(fmt, ...)
  U.fail(400, U.EX.Migration, "The OAuth setup was completed incorrectly: " .. fmt, ...)
end

-- secret_ok(state, appId, secret) -> app's home tenant, or nil: the secret is a current
-- password credential of the app (seeded or added through Graph addPassword).
local function secret_ok(ctx, app_id, secret)
  local ref = ctx.state.apps_by_appid[app_id]
  local home = ref and ctx.state.tenants[ref.tenant]
  local app = home and home.dir.objects[ref.id]
  if not app then return nil, "unknown" end
  for _, c in ipairs(app.passwordCredentials or {}) do
    local v = c._secret or c.secretText
    if v == secret and (not c.endDateTime or type(c.endDateTime) ~= "number" or c.endDateTime > ctx.now) then
      return home
    end
  end
  return nil, "secret"
end

-- The source tenant's organization relationship that authorizes pulls for app_id into the
-- target tenant (DomainNames ∋ target id, enabled, RemoteOutbound, OAuthApplicationId), or nil.
function M.source_orgrel(src, target, app_id)
  for _, o in pairs(src.exo.org_relationships) do
    local dom = false
    for _, d in ipairs(o.DomainNames or {}) do
      if lower(d) == lower(target.id) then dom = true end
    end
    local cap = false
    for _, c in ipairs(o.MailboxMoveCapability or {}) do
      if c == "RemoteOutbound" then cap = true end
    end
    if dom and cap and o.Enabled and o.MailboxMoveEnabled and
       lower(o.OAuthApplicationId or "") == lower(app_id or "") then
      return o
    end
  end
end

-- verify(ctx, src, app_id): the source consented the app and authorizes the pull.
local function verify_source(ctx, src, app_id)
  local sp = model.sp_by_appid(src, app_id)
  local consented = false
  if sp then
    for _, r in ipairs(model.roles_for(src, sp.id, EXO_APPID)) do
      if r == "Mailbox.Migration" then consented = true end
    end
  end
  if not consented then
    oauth_fail("the application '%s' has not been granted admin consent for Mailbox.Migration in " ..
      "the source tenant '%s'. The source tenant admin must consent to it: " ..
      "https://login.microsoftonline.com/%s/adminconsent?client_id=%s&redirect_uri=https://office.com",
      app_id, src.initial_domain, src.initial_domain, app_id)
  end
  if not M.source_orgrel(src, ctx.t, app_id) then
    U.fail(400, U.EX.Migration, "Tenant authorization error. The tenants are not configured to " ..
      "support migration. The source tenant '%s' needs an organization relationship whose " ..
      "DomainNames contains '%s', with MailboxMoveEnabled, MailboxMoveCapability RemoteOutbound " ..
      "and OAuthApplicationId '%s'.", src.initial_domain, ctx.t.id, app_id)
  end
end

local KV_URL = "^https://[%w_%-]+%.vault%.azure%.[nu][es]t?:?%d*/certificates/[%w_%-]+/%w+$"

-- verify_endpoint(ctx, e, creds): the checks New-MigrationEndpoint runs unless -SkipVerification.
local function verify_endpoint(ctx, e, creds)
  if not e.RemoteTenant then
    U.fail(400, U.EX.Migration, "The connection to the server '%s' could not be completed.",
           tostring(e.RemoteServer))
  end
  local src = model.tenant(ctx.state, e.RemoteTenant)
  if not src then
    U.fail(400, U.EX.Migration, "The remote tenant '%s' couldn't be found.", e.RemoteTenant)
  end
  if not e.ApplicationId then
    oauth_fail("-ApplicationId is required for a cross-tenant endpoint.")
  end
  if e.AppSecretKeyVaultUrl then                      -- legacy Key Vault procedure
    if not e.AppSecretKeyVaultUrl:match(KV_URL) then
      oauth_fail("'%s' isn't a Key Vault certificate URL.", e.AppSecretKeyVaultUrl)
    end
  elseif type(creds) == "table" then
    local user = creds.UserName or creds.Username
    if user and lower(user) ~= lower(e.ApplicationId) then
      oauth_fail("the credential user name '%s' isn't the application id '%s'.", user, e.ApplicationId)
    end
    local home, why = secret_ok(ctx, e.ApplicationId, creds.Password)
    if not home then
      oauth_fail(why == "unknown" and "AADSTS700016: Application with identifier '%s' was not found."
        or "AADSTS7000215: Invalid client secret provided for application '%s'.", e.ApplicationId)
    end
  else
    oauth_fail("either -Credentials (application id and secret) or -AppSecretKeyVaultUrl is required.")
  end
  verify_source(ctx, src, e.ApplicationId)
end

---------------------------------------------------------------------------------------------
-- Migration endpoints.

M["Get-MigrationEndpoint"] = function(ctx, p)
  return get_or_list(ctx, ctx.t.exo.migration_endpoints, p.Identity,
                     p.Type and function(e) return e.EndpointType == p.Type end), present
end

M["New-MigrationEndpoint"] = function(ctx, p)
  need_hydrated(ctx)
  local map = ctx.t.exo.migration_endpoints
  if by_name(map, p.Name) then
    U.fail(400, U.EX.AlreadyExists, "The migration endpoint '%s' already exists.", p.Name)
  end
  if not p.ExchangeRemoteMove then
    U.fail(400, U.EX.Migration, "The simulator supports ExchangeRemoteMove endpoints only.")
  end
  local e = { Name = p.Name, Guid = ctx.sim.rng:guid(), EndpointType = "ExchangeRemoteMove",
              RemoteServer = p.RemoteServer, RemoteTenant = p.RemoteTenant,
              ApplicationId = p.ApplicationId, AppSecretKeyVaultUrl = p.AppSecretKeyVaultUrl,
              Username = type(p.Credentials) == "table" and p.Credentials.UserName or nil,
              MaxConcurrentMigrations = p.MaxConcurrentMigrations or 100,
              MaxConcurrentIncrementalSyncs = p.MaxConcurrentIncrementalSyncs or 20,
              IsRemote = true, created = ctx.now,
              _secret = type(p.Credentials) == "table" and p.Credentials.Password or nil }
  if not p.SkipVerification then verify_endpoint(ctx, e, p.Credentials) end
  map[p.Name] = e
  return { present(e) }
end

M["Set-MigrationEndpoint"] = function(ctx, p)
  local _, e = by_name(ctx.t.exo.migration_endpoints, p.Identity)
  if not e then U.not_found(ctx, p.Identity) end
  local n = setmetatable({}, { __index = e })
  for _, k in ipairs { "RemoteServer", "ApplicationId", "AppSecretKeyVaultUrl",
                       "MaxConcurrentMigrations", "MaxConcurrentIncrementalSyncs" } do
    if p[k] ~= nil then n[k] = p[k] end
  end
  if p.Credentials ~= nil then
    n.Username, n._secret = p.Credentials.UserName, p.Credentials.Password
  end
  if not p.SkipVerification and (p.Credentials or p.ApplicationId or p.AppSecretKeyVaultUrl) then
    verify_endpoint(ctx, n, p.Credentials or { UserName = n.Username, Password = n._secret })
  end
  for k, v in pairs(n) do e[k] = v end
  return {}
end

M["Remove-MigrationEndpoint"] = function(ctx, p)
  local map = ctx.t.exo.migration_endpoints
  local key = by_name(map, p.Identity)
  if not key then U.not_found(ctx, p.Identity) end
  for _, b in pairs(ctx.t.exo.batches) do
    if b.SourceEndpoint == key then
      U.fail(400, U.EX.Migration, "The migration endpoint '%s' is used by migration batch '%s'.",
             key, b.Name)
    end
  end
  map[key] = nil
  return {}
end

-- endpoint(ctx, identity) -> endpoint (raises 404).
function M.endpoint(ctx, identity)
  local _, e = by_name(ctx.t.exo.migration_endpoints, identity)
  if not e then U.not_found(ctx, identity) end
  return e
end

---------------------------------------------------------------------------------------------
-- Per-user readiness (EXCH-08 causes, ms-setup-and-prep.md §7-8).

local function members_of(t, group_ident)
  local g = model.find_recipient(t, group_ident)
  local set = g and g.ExternalDirectoryObjectId and t.dir.members[g.ExternalDirectoryObjectId]
  return set or {}
end

-- check_user(ctx, src, app_id, target MailUser) -> source mailbox or nil, exception, text.
function M.check_user(ctx, src, app_id, tr)
  local ext = tr.ExternalEmailAddress and tr.ExternalEmailAddress:gsub("^%a+:", "")
  local sr = tr.ExchangeGuid and tr.ExchangeGuid ~= ZERO and model.find_recipient(src, tr.ExchangeGuid)
  if not sr or not U.MAILBOX[sr.RecipientTypeDetails] then
    local by_ext = ext and model.find_recipient(src, ext)
    if by_ext and U.MAILBOX[by_ext.RecipientTypeDetails] then
      return nil, "MissingExchangeGuidException", string.format("There's a mismatch between the " ..
        "source and target object on the ExchangeGuid: the target object '%s' has '%s', the " ..
        "source mailbox has '%s'.", tr.Name, tostring(tr.ExchangeGuid), by_ext.ExchangeGuid)
    end
    return nil, "MissingExchangeGuidException", string.format("The target object '%s' is either " ..
      "missing an ExchangeGuid or an ArchiveGuid value, or no source mailbox has its ExchangeGuid.",
      tr.Name)
  end
  if sr.ArchiveGuid and sr.ArchiveGuid ~= ZERO and lower(tr.ArchiveGuid or ZERO) ~= lower(sr.ArchiveGuid) then
    return nil, "MissingArchiveGuidException", string.format("The target object '%s' is either " ..
      "missing an ExchangeGuid or an ArchiveGuid value.", tr.Name)
  end
  local x500 = lower("x500:" .. sr.LegacyExchangeDN)
  local has = false
  for _, a in ipairs(tr.EmailAddresses or {}) do if lower(a) == x500 then has = true end end
  if not has then
    return nil, "MissingLegacyExchangeDNProxyException", string.format("The target object '%s' " ..
      "doesn't have the source LegacyExchangeDN as an X500 proxy address.", tr.Name)
  end
  local o = M.source_orgrel(src, ctx.t, app_id)
  local in_scope = false
  for _, g in ipairs(o and o.MailboxMovePublishedScopes or {}) do
    if members_of(src, g)[sr.ExternalDirectoryObjectId] then in_scope = true end
  end
  if not in_scope then
    return nil, "MailboxNotInCrossTenantMigrationScopeException", string.format("Please make " ..
      "sure source mailbox '%s' is in the migration scope, scope identifier is set in " ..
      "Organization Relationship and the source mailbox is a member of it.", sr.Name)
  end
  return sr
end

M["Test-MigrationServerAvailability"] = function(ctx, p)
  local res = { Result = "Success", Message = "", ErrorDetail = "", SupportsCutover = false,
                IsValid = true }
  local ok, err = pcall(function()
    if p.Endpoint == nil then
      local home = p.Credentials and secret_ok(ctx, p.Credentials.UserName, p.Credentials.Password)
      if not home then oauth_fail("the credentials aren't valid.") end
      return
    end
    local e = M.endpoint(ctx, p.Endpoint)
    verify_endpoint(ctx, e, { UserName = e.Username or e.ApplicationId, Password = e._secret })
    res.TestedEndpoint = e.Name
    if p.TestMailbox ~= nil then
      local tr = U.find(ctx, p.TestMailbox, U.MAILUSER, true)
      if not tr then
        U.fail(400, U.EX.Migration, "The target object '%s' isn't found.", tostring(p.TestMailbox))
      end
      local src = model.tenant(ctx.state, e.RemoteTenant)
      local sr, exn, text = M.check_user(ctx, src, e.ApplicationId, tr)
      if not sr then U.fail(400, "Microsoft.Exchange.Migration." .. exn, text) end
    end
  end)
  if not ok then
    if type(err) ~= "table" or not err.exo_fail then error(err, 0) end
    if err.status == 404 then error(err, 0) end
    res.Result, res.IsValid = "Failed", false
    res.Message, res.ErrorDetail = err.text, err.exception .. ": " .. err.text
  end
  return { U.present(res) }
end

return M
