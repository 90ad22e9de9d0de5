-- t2t.tenant.exchange: the Exchange Online half of t2t.tenant (installed into it as methods):
-- organization customization, organization relationships keyed by the partner's tenant id,
-- the scope group and its members, the migration endpoint.  See t2t.tenant for the contract.
return function(M, H)
local failure, copy, contains_ci, exo_code = H.failure, H.copy, H.contains_ci, H.exo_code
local not_found, already_exists, lower = H.not_found, H.already_exists, H.lower
local odata_quote = H.odata_quote

-- A definite answer: nothing was made and retrying the same call cannot succeed.
local function refused(err) err.refused = true return err end

-- ensure_org_customization(): Enable-OrganizationCustomization when the tenant is dehydrated.
function M:ensure_org_customization()
  local cfg, err = self:xo("Get-OrganizationConfig", {})
  if not cfg then return nil, err end
  cfg = cfg[1] or {}
  if cfg.IsDehydrated ~= true then
    self:note("= organization customization is enabled (the tenant is not dehydrated)")
    return true
  end
  local r
  r, err = self:checked({
    kind = "update", target = "organization config", tenant = self.name,
    operation = "ensure_org_customization", before = { IsDehydrated = true }, after = { IsDehydrated = false },
    note = "the tenant is dehydrated: Enable-OrganizationCustomization",
    apply = function()
      local ok, e = self:xo("Enable-OrganizationCustomization", {})
      if ok then return true end
      local f = failure("Dehydrated", "the tenant %s is dehydrated and Enable-OrganizationCustomization " ..
        "failed (%s): it can take a while after the first call; wait a few minutes and run again", self.name,
        tostring(e))
      f.status = type(e) == "table" and e.status or nil      -- an answer, or an unknown outcome
      return nil, f
    end,
  }, function()
    local c2 = self:xo("Get-OrganizationConfig", {})
    return c2 and c2[1] and c2[1].IsDehydrated ~= true or nil
  end)
  if err == "planned" then return true end
  return r, err
end

-- MailboxMoveCapability as a set and an ordered list ("Inbound, RemoteOutbound" or a list).
local function caps_of(v)
  local list = {}
  if type(v) == "string" then
    for c in v:gmatch("[^,%s]+") do list[#list + 1] = c end
  elseif type(v) == "table" then
    for _, c in ipairs(v) do list[#list + 1] = c end
  end
  return list
end
M.caps_of = caps_of

-- The existing capabilities plus cap (None dropped): a list, as EXO takes a flags value.
local function caps_merge(existing, cap)
  local out = {}
  for _, c in ipairs(caps_of(existing)) do
    if c ~= "None" and not contains_ci(out, c) then out[#out + 1] = c end
  end
  if not contains_ci(out, cap) then out[#out + 1] = cap end
  return out
end
M.caps_merge = caps_merge

-- Organization relationships: all of them, the one keyed by tenant id tid (DomainNames ∋ tid),
-- and those that name the partner by one of its domain names instead.
function M:org_relationships(tid, partner_domains)
  local all, err = self:xo("Get-OrganizationRelationship", {})
  if not all then return nil, err end
  local keyed, by_domain = nil, {}
  for _, r in ipairs(all) do
    local names = r.DomainNames
    if type(names) == "string" then names = { names } end
    if contains_ci(names, tid) then
      keyed = keyed or r
    else
      for _, d in ipairs(partner_domains or {}) do
        if contains_ci(names, d) then by_domain[#by_domain + 1] = r break end
      end
    end
  end
  return { all = all, keyed = keyed, by_domain = by_domain }
end

local function relname(r) return r.Identity or r.Name end

-- Is scope h (as EXO reports it: a name or a DN "CN=name,...") the group named s?
local function same_scope(h, s)
  return lower(h) == lower(s) or lower(h):find("cn=" .. lower(s) .. ",", 1, true) == 1
end

-- scopes_after(have, wanted, merge) -> the MailboxMovePublishedScopes to set.  By default the
-- wanted groups replace the current ones, as the script and the current docs do (§2.2, §4.5);
-- merge keeps the current ones and adds the others.  When nothing would change the current
-- list comes back as it is (so a re-run changes nothing).
function M.scopes_after(have, wanted, merge)
  local function has(list, s)
    for _, h in ipairs(list) do if same_scope(h, s) then return true end end
    return false
  end
  if merge then
    local out = copy(have)
    for _, s in ipairs(wanted) do if not has(out, s) then out[#out + 1] = s end end
    return out
  end
  local same = #have == #wanted
  for _, s in ipairs(wanted) do if not has(have, s) then same = false end end
  return same and copy(have) or copy(wanted)
end

-- ensure_org_relationship{partner_id, partner_domains, capability = "Inbound"|"RemoteOutbound",
-- name, oauth_app_id, scopes}: keyed by the partner's TENANT ID in DomainNames; the capability
-- is merged into the existing one, never replaced.
function M:ensure_org_relationship(o)
  local rels, err = self:org_relationships(o.partner_id, o.partner_domains)
  if not rels then return nil, err end
  for _, r in ipairs(rels.by_domain) do
    self:warn("organization relationship '%s' names the partner by domain (%s), not by its tenant ID: " ..
      "cross-tenant moves match DomainNames against the tenant ID (%s), so that one is ignored for " ..
      "mailbox moves -- the common community-script mistake. t2t uses one keyed by the tenant ID; " ..
      "remove '%s' (Remove-OrganizationRelationship) if nothing else needs it", relname(r),
      table.concat(caps_of(r.DomainNames), ", "), o.partner_id, relname(r))
  end
  local cur = rels.keyed
  if not cur then
    local name = o.name
    for _, r in ipairs(rels.all) do
      if lower(relname(r)) == lower(name) then name = name .. "_" .. o.partner_id:sub(1, 8) break end
    end
    local params = { Name = name, DomainNames = { o.partner_id }, Enabled = true, MailboxMoveEnabled = true,
                     MailboxMoveCapability = o.capability }
    if o.oauth_app_id then params.OAuthApplicationId = o.oauth_app_id end
    if o.scopes then params.MailboxMovePublishedScopes = o.scopes end
    local r
    r, err = self:create({
      target = "organization relationship '" .. name .. "'", tenant = self.name,
      operation = "ensure_org_relationship", after = params,
      apply = function()
        local l, e = self:xo("New-OrganizationRelationship", params)
        if l then return l[1] or params end
        if already_exists(e) then
          local again = self:org_relationships(o.partner_id)
          if again and again.keyed then return again.keyed end
        end
        return nil, M.explain_orgrel_error(self, e)
      end,
    }, function()
      local again = self:org_relationships(o.partner_id)
      return again and again.keyed
    end)
    if err == "planned" then return params end
    return r, err
  end
  local before = { Enabled = cur.Enabled, MailboxMoveEnabled = cur.MailboxMoveEnabled,
                   MailboxMoveCapability = caps_of(cur.MailboxMoveCapability) }
  local after = { Enabled = true, MailboxMoveEnabled = true,
                  MailboxMoveCapability = caps_merge(cur.MailboxMoveCapability, o.capability) }
  if o.oauth_app_id then
    before.OAuthApplicationId = cur.OAuthApplicationId
    after.OAuthApplicationId = o.oauth_app_id
    if cur.OAuthApplicationId and cur.OAuthApplicationId ~= "" and lower(cur.OAuthApplicationId) ~= lower(o.oauth_app_id) then
      self:warn("organization relationship '%s' allowed app %s; it now allows %s (one app per relationship)",
                relname(cur), cur.OAuthApplicationId, o.oauth_app_id)
    end
  end
  if o.scopes then
    local have = caps_of(cur.MailboxMovePublishedScopes)
    before.MailboxMovePublishedScopes = have
    after.MailboxMovePublishedScopes = M.scopes_after(have, o.scopes, o.merge_scopes)
  end
  local _, uerr = self:checked({
    kind = "update", target = "organization relationship '" .. relname(cur) .. "'", tenant = self.name,
    operation = "ensure_org_relationship", before = before, after = after,
    apply = function()
      local params = { Identity = relname(cur) }
      for k, v in pairs(after) do params[k] = v end
      local l, e = self:xo("Set-OrganizationRelationship", params)
      if l then return true end
      return nil, M.explain_orgrel_error(self, e)
    end,
  }, function()                        -- done when the relationship now holds what was asked
    local again = self:org_relationships(o.partner_id)
    local k = again and again.keyed
    if not k or k.Enabled ~= true or k.MailboxMoveEnabled ~= true then return nil end
    for _, c in ipairs(after.MailboxMoveCapability) do
      if not contains_ci(caps_of(k.MailboxMoveCapability), c) then return nil end
    end
    if after.OAuthApplicationId and lower(k.OAuthApplicationId) ~= lower(after.OAuthApplicationId) then return nil end
    return true
  end)
  if uerr == "unchanged" then
    self:note("= organization relationship '%s' (%s) is up to date", relname(cur),
              table.concat(after.MailboxMoveCapability, ", "))
  elseif uerr and uerr ~= "planned" then
    return nil, uerr
  end
  return cur
end

-- A message for an OrgRel cmdlet failure: dehydration and missing Organization Management.
function M.explain_orgrel_error(self, e)
  local code = exo_code(e) or ""
  local msg = tostring(e)
  if msg:find("Enable%-OrganizationCustomization") or code:find("Dehydrat") then
    return refused(failure("Dehydrated", "tenant %s is dehydrated: run Enable-OrganizationCustomization (setup " ..
      "does this itself unless --plan), wait a few minutes, and run again (%s)", self.name, msg))
  end
  if type(e) == "table" and (e.status == 403 or e.status == 401) then
    return refused(failure("NoExchangeRole", "Exchange refused the organization relationship change in %s " ..
      "(%s): the app needs the Exchange.ManageAsApp role on Office 365 Exchange Online and the Exchange " ..
      "Administrator role (Organization Management for MailboxMoveCapability)", self.name, msg))
  end
  return e
end

local MAIL_SECURITY = "MailUniversalSecurityGroup"

-- ensure_scope_group(name, {create = bool}): the mail-enabled security group that scopes the
-- migration (created with New-DistributionGroup -Type Security; Graph cannot create one).
function M:ensure_scope_group(name, o)
  o = o or {}
  local l, err = self:xo("Get-DistributionGroup", { Identity = name })
  if l and l[1] then
    local g = l[1]
    if g.RecipientTypeDetails and g.RecipientTypeDetails ~= MAIL_SECURITY then
      return nil, failure("ScopeNotSecurity", "scope group '%s' is a %s, not a mail-enabled security group: " ..
        "MailboxMovePublishedScopes needs a security group. Create one with New-DistributionGroup -Type " ..
        "Security -Name <name> (or let setup-source create it with --create-scope-group) and use that",
        name, tostring(g.RecipientTypeDetails))
    end
    self:note("= scope group '%s' is a mail-enabled security group", name)
    return g
  end
  if l == nil and not not_found(err) then return nil, err end
  -- Not in Exchange: is it a security group that is not mail-enabled?
  if self.graph then
    local gs = self:glist("/groups?$filter=displayName eq '" .. odata_quote(name) .. "'")
    for _, g in ipairs(gs or {}) do
      if g.securityEnabled and not g.mailEnabled then
        return nil, failure("ScopeNotMailEnabled", "scope group '%s' is a security group that is not " ..
          "mail-enabled: Exchange cannot use it as MailboxMovePublishedScopes and it cannot be mail-enabled " ..
          "afterwards. Create a mail-enabled security group (New-DistributionGroup -Type Security, or " ..
          "setup-source --create-scope-group with another name), add the migrating mailboxes, and use it", name)
      end
    end
  end
  if not o.create then
    return nil, failure("ScopeMissing", "scope group '%s' does not exist in %s: create a mail-enabled security " ..
      "group (setup-source --create-scope-group, or New-DistributionGroup -Type Security -Name '%s') and add " ..
      "the mailboxes to migrate", name, self.name, name)
  end
  local params = { Name = name, Type = "Security" }
  local g
  g, err = self:create({
    target = "mail-enabled security group '" .. name .. "'", tenant = self.name, operation = "ensure_scope_group",
    after = params,
    apply = function()
      local r, e = self:xo("New-DistributionGroup", params)
      if r then return r[1] or params end
      if already_exists(e) then
        local again = self:xo("Get-DistributionGroup", { Identity = name })
        if again and again[1] then return again[1] end
      end
      return nil, e
    end,
  }, function()
    local again = self:xo("Get-DistributionGroup", { Identity = name })
    return again and again[1]
  end)
  if err == "planned" then return { planned = true, Name = name } end
  return g, err
end

-- Keys by which Get-DistributionGroupMember's entries may name a mailbox.
local MEMBER_KEYS = { "PrimarySmtpAddress", "Name", "Alias", "Identity", "ExternalDirectoryObjectId", "Guid" }

local function member_set(list)
  local have = {}
  for _, m in ipairs(list or {}) do
    for _, k in ipairs(MEMBER_KEYS) do
      if type(m[k]) == "string" then have[m[k]:lower()] = true end
    end
  end
  return have
end

-- is_member(group, m) -> true | nil: whether mailbox m is a member of group now.
function M:is_member(group, m)
  local l = self:xo("Get-DistributionGroupMember", { Identity = group, ResultSize = "Unlimited" })
  return l and member_set(l)[m:lower()] or nil
end

-- ensure_members(group, members): add the mailboxes that are not members yet (one change each).
function M:ensure_members(group, members, planned)
  local have = {}
  if not planned then
    local l, err = self:xo("Get-DistributionGroupMember", { Identity = group, ResultSize = "Unlimited" })
    if not l then return nil, err end
    have = member_set(l)
  end
  local added = 0
  for _, m in ipairs(members) do
    if not have[m:lower()] then
      local _, err = self:checked({
        kind = "add", target = "member " .. m .. " to '" .. group .. "'", tenant = self.name,
        operation = "ensure_members",
        apply = function()
          local r, e = self:xo("Add-DistributionGroupMember", { Identity = group, Member = m })
          if r or (exo_code(e) or ""):find("MemberAlreadyExists", 1, true) then return true end
          return nil, e
        end,
      }, function() return self:is_member(group, m) end)
      if err and err ~= "planned" then return nil, err end
      added = added + 1
    end
  end
  if added == 0 then self:note("= the %d mailbox(es) are members of '%s'", #members, group) end
  return true
end

-- The endpoint's fields that decide whether it must be recreated.
local function endpoint_view(e)
  return { RemoteServer = lower(e.RemoteServer), RemoteTenant = lower(e.RemoteTenant),
           ApplicationId = lower(e.ApplicationId), EndpointType = e.EndpointType,
           AppSecretKeyVaultUrl = e.AppSecretKeyVaultUrl and lower(e.AppSecretKeyVaultUrl) or nil }
end

function M:find_endpoint(name)
  local l, err = self:xo("Get-MigrationEndpoint", { Identity = name })
  if l then return l[1] end
  if not_found(err) then return nil end
  return nil, err
end

-- ensure_endpoint{name, remote_tenant, app_id, secret | kv_url, max_concurrent, skip_verification}:
-- the ExchangeRemoteMove endpoint; recreated only when it differs.  `secret` may be a function
-- returning the secret (called only when the endpoint must be made).
function M:ensure_endpoint(o)
  local cur, err = self:find_endpoint(o.name)
  if err then return nil, err end
  local want = { RemoteServer = o.remote_server or self:remote_server(), RemoteTenant = o.remote_tenant,
                 ApplicationId = o.app_id, EndpointType = "ExchangeRemoteMove", AppSecretKeyVaultUrl = o.kv_url }
  if cur and not o.recreate then
    local have = endpoint_view(cur)
    if require("t2t.plan").equal(have, endpoint_view(want)) then
      self:note("= migration endpoint '%s' is up to date (%s, app %s)", o.name, tostring(cur.RemoteTenant), o.app_id)
      return cur
    end
  end
  local secret = not o.kv_url and o.secret or nil
  if type(secret) == "function" then secret = secret() end
  if not o.kv_url and not secret and not self.plan.dry_run then
    return nil, failure("NeedSecret", "migration endpoint '%s' must be %s but no client secret is at hand: pass " ..
      "--client-secret (env:NAME, file:PATH or -) with the app's secret, or --new-secret to make one",
      o.name, cur and "recreated" or "created")
  end
  local params = { Name = o.name, ExchangeRemoteMove = true, RemoteServer = want.RemoteServer,
                   RemoteTenant = o.remote_tenant, ApplicationId = o.app_id }
  if o.kv_url then params.AppSecretKeyVaultUrl = o.kv_url
  elseif secret then params.Credentials = { UserName = o.app_id, Password = secret } end
  if o.max_concurrent and o.max_concurrent > 0 then params.MaxConcurrentMigrations = o.max_concurrent end
  if o.skip_verification then params.SkipVerification = true end
  local shown = copy(params)
  if shown.Credentials then shown.Credentials = "(app id + client secret)" end
  if cur then
    local _, derr = self:checked({
      kind = "delete", target = "migration endpoint '" .. o.name .. "'", tenant = self.name,
      operation = "ensure_endpoint", before = endpoint_view(cur),
      note = o.recreate and "recreated with the new client secret" or
        "it differs from what is wanted; Exchange cannot change these in place, so it is recreated",
      apply = function()
        local l, e = self:xo("Remove-MigrationEndpoint", { Identity = o.name, Confirm = false })
        if l or not_found(e) then return true end
        return nil, e
      end,
    }, function()
      local gone, ferr = self:find_endpoint(o.name)
      return (gone == nil and ferr == nil) or nil
    end)
    if derr and derr ~= "planned" then return nil, derr end
  end
  local r
  r, err = self:create({
    target = "migration endpoint '" .. o.name .. "'", tenant = self.name, operation = "ensure_endpoint",
    after = shown,
    apply = function()
      local l, e = self:xo("New-MigrationEndpoint", params)
      if l then return l[1] or params end
      if already_exists(e) then
        local again = self:find_endpoint(o.name)
        if again then return again end
      end
      return nil, M.explain_endpoint_error(self, e, o)
    end,
  }, function() return (self:find_endpoint(o.name)) end, 2)
  if err == "planned" then return shown end
  return r, err
end

-- A message for a failed New-MigrationEndpoint.  Exchange signs in to the source tenant as the
-- app, so the token endpoint's answer (AADSTS code) in its message says what is wrong: the
-- secret (retrying does not help), no consent or no app there (the source is not ready), the
-- tenant; only a throttled or failing service is worth another try (err.refused = false).
function M.explain_endpoint_error(self, e, o)
  local code = exo_code(e) or ""
  local msg = tostring(type(e) == "table" and e.message or e)
  if code:find("MaximumConcurrentMigrationLimitExceeded") then
    return refused(failure("EndpointLimit", "%s: lower MaxConcurrentMigrations on the existing endpoints, " ..
      "then re-run with --max-concurrent-migrations N", msg))
  end
  if type(e) == "table" and (e.status == 403 or e.status == 401) then
    return refused(failure("NoExchangeRole", "Exchange refused New-MigrationEndpoint in %s (%s): the app needs " ..
      "Exchange.ManageAsApp and the Exchange Administrator role", self.name, msg))
  end
  local st = type(e) == "table" and tonumber(e.status) or 0
  if st == 0 or st >= 500 or st == 429 or (type(e) == "table" and e.retryable) then
    return e                                    -- no answer, or a failing service: outcome unknown
  end
  local num = tonumber(msg:match("AADSTS(%d+)"))
  local kind, retry = require("t2t.auth").classify(num, num and 400 or nil)
  if num and retry then return e end
  if kind == "credentials" then
    return refused(failure("EndpointCredentials", "creating migration endpoint '%s' failed: Exchange could not " ..
      "sign in to the source tenant %s as app %s with the client secret it was given (%s). The secret is " ..
      "wrong or expired -- waiting will not help: pass the app's current secret with --client-secret " ..
      "(env:NAME, file:PATH or -), fix --secret-file, or make a new one with --new-secret",
      o.name, tostring(o.remote_tenant), tostring(o.app_id), msg))
  end
  if kind == "tenant" then
    return refused(failure("EndpointTenant", "creating migration endpoint '%s' failed: %s -- check " ..
      "--source-domain (%s): it must be the source tenant's initial domain, NAME.onmicrosoft.com, in the " ..
      "same cloud", o.name, msg, tostring(o.remote_tenant)))
  end
  return refused(failure("EndpointVerification", "creating migration endpoint '%s' failed: %s\n" ..
    "  Exchange checks the endpoint end to end, so this usually means the SOURCE tenant (%s) is not " ..
    "ready yet. The source admin must (1) open the consent URL and accept (admin consent for app %s) and " ..
    "(2) run `t2t run setup-source --handoff <file>` so that its organization relationship names this app " ..
    "(OAuthApplicationId) and the scope group. Then run setup-target again. (--skip-verification creates " ..
    "the endpoint now; test it later with Test-MigrationServerAvailability.)", o.name, msg,
    tostring(o.remote_tenant), tostring(o.app_id)))
end

end
