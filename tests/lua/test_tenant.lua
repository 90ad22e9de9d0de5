-- t2t.tenant against an in-memory fake of the Graph and EXO clients (same call shapes as
-- t2t.graph / t2t.exo): idempotency, plan mode, lost responses, the known failures' messages.
-- The end-to-end tests against the simulator are tests/e2e/test_setup.sh.
local lu = require "luaunit"
local tenant = require "t2t.tenant"
local verify = require "t2t.tenant.verify"
local plan = require "t2t.plan"

local TID, SID = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"

-- A fake directory + Exchange organization.  fake.lose[n] = true: the n-th mutation is applied
-- and then its response is lost.  fake.late[n] = k: its response is lost and what it does is
-- seen only after k more Graph reads (replication).  fake.log counts mutations by kind.
local function fake_tenant(tid, domain)
  local f = { n = 0, ids = 0, lose = {}, late = {}, deferred = {}, creates = 0, mutations = 0,
              apps = {}, sps = {}, assignments = {}, users = {}, groups = {},
              org = { IsDehydrated = false }, orgrels = {}, dgs = {}, members = {}, endpoints = {} }
  local function id() f.ids = f.ids + 1 return string.format("%08d-0000-0000-0000-%012d", f.ids, f.ids) end
  local function mutate(kind, fn)
    f.n = f.n + 1
    f.mutations = f.mutations + 1
    if kind == "create" then f.creates = f.creates + 1 end
    local e500 = f.err500 and f.err500[f.n]
    if e500 == "before" then             -- the service failed before doing anything
      return nil, { status = 500, code = "HTTP500", message = "HTTP 500", unknown_outcome = true }
    end
    if f.late[f.n] then
      f.deferred[#f.deferred + 1] = { reads = f.late[f.n], fn = fn }
      return nil, { status = 0, code = "reset", message = "connection reset (lost)", retryable = true }
    end
    local r = fn()
    if f.lose[f.n] then return nil, { status = 0, code = "reset", message = "connection reset (lost)", retryable = true } end
    if e500 == "after" then              -- ... or after doing it
      return nil, { status = 500, code = "HTTP500", message = "HTTP 500", unknown_outcome = true }
    end
    return r
  end
  local exo_sp = { id = id(), appId = tenant.EXO_APP_ID, displayName = "Office 365 Exchange Online",
                   appOwnerOrganizationId = "f8cdef31-a31e-4b4a-93e4-5f571e91255a" }
  local graph_sp = { id = id(), appId = tenant.GRAPH_APP_ID, displayName = "Microsoft Graph" }
  f.sps[#f.sps + 1] = exo_sp
  f.sps[#f.sps + 1] = graph_sp
  local g = {}
  local function val(list) return { value = list } end
  local get
  function g:get(path)                   -- each read brings late mutations closer to being seen
    local a, b = get(path)
    a = tenant.copy(a)                   -- what was read, not the live object
    for i = #f.deferred, 1, -1 do
      local d = f.deferred[i]
      d.reads = d.reads - 1
      if d.reads <= 0 then table.remove(f.deferred, i); d.fn() end
    end
    return a, b
  end
  function get(path)
    path = path:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    local name = path:match("^/applications%?%$filter=displayName eq '(.*)'$")
    if name then
      local out = {}
      for _, a in ipairs(f.apps) do if a.displayName == name then out[#out + 1] = a end end
      return val(out)
    end
    local unique = path:match("^/applications%(uniqueName='(.*)'%)$")
    if unique then
      for _, a in ipairs(f.apps) do if a.uniqueName == unique then return a end end
      return nil, { status = 404, code = "Request_ResourceNotFound" }
    end
    local appid = path:match("^/applications%(appId='(.*)'%)$")
    if appid then
      for _, a in ipairs(f.apps) do if a.appId == appid then return a end end
      return nil, { status = 404, code = "Request_ResourceNotFound" }
    end
    local oid = path:match("^/applications/([^/]+)$")
    if oid then
      for _, a in ipairs(f.apps) do if a.id == oid then return a end end
      return nil, { status = 404 }
    end
    appid = path:match("^/servicePrincipals%?%$filter=appId eq '(.*)'$")
    if appid then
      local out = {}
      for _, s in ipairs(f.sps) do if s.appId == appid then out[#out + 1] = s end end
      return val(out)
    end
    local spid = path:match("^/servicePrincipals/([^/]+)/appRoleAssignments$")
    if spid then
      local out = {}
      for _, a in ipairs(f.assignments) do if a.principalId == spid then out[#out + 1] = a end end
      return val(out)
    end
    if path == "/organization" then
      return val { { id = tid, verifiedDomains = { { name = domain, isInitial = true } } } }
    end
    local mail = path:match("^/users%?%$filter=mail eq '(.*)'$")
    if mail then
      local out = {}
      for _, u in ipairs(f.users) do if u.mail == mail then out[#out + 1] = u end end
      return val(out)
    end
    local gname = path:match("^/groups%?%$filter=displayName eq '(.*)'$")
    if gname then
      local out = {}
      for _, x in ipairs(f.groups) do if x.displayName == gname then out[#out + 1] = x end end
      return val(out)
    end
    error("fake graph: GET " .. path)
  end
  function g:post(path, body)
    if path == "/applications" then
      return mutate("create", function()
        local a = tenant.copy(body)
        a.id, a.appId, a.createdDateTime = id(), id(), string.format("2026-01-01T00:00:%02dZ", f.ids % 60)
        a.passwordCredentials, a.keyCredentials = {}, {}
        f.apps[#f.apps + 1] = a
        return tenant.copy(a)
      end)
    end
    local oid = path:match("^/applications/([^/]+)/addPassword$")
    if oid then
      return mutate("create", function()
        for _, a in ipairs(f.apps) do
          if a.id == oid then
            local c = { keyId = id(), displayName = body.passwordCredential.displayName,
                        endDateTime = body.passwordCredential.endDateTime }
            a.passwordCredentials[#a.passwordCredentials + 1] = c
            return { keyId = c.keyId, secretText = "s3cr3t-" .. c.keyId, endDateTime = c.endDateTime }
          end
        end
      end)
    end
    oid = path:match("^/applications/([^/]+)/removePassword$")
    if oid then
      return mutate("delete", function()
        for _, a in ipairs(f.apps) do
          if a.id == oid then
            for i, c in ipairs(a.passwordCredentials) do
              if c.keyId == body.keyId then table.remove(a.passwordCredentials, i) break end
            end
          end
        end
        return {}
      end)
    end
    if path == "/servicePrincipals" then
      for _, s in ipairs(f.sps) do
        if s.appId == body.appId then return nil, { status = 409, message = "already exists" } end
      end
      return mutate("create", function()
        local owner
        for _, a in ipairs(f.apps) do if a.appId == body.appId then owner = tid end end
        local s = { id = id(), appId = body.appId, appOwnerOrganizationId = owner or f.foreign_owner }
        f.sps[#f.sps + 1] = s
        return s
      end)
    end
    local res = path:match("^/servicePrincipals/([^/]+)/appRoleAssignedTo$")
    if res then
      for _, a in ipairs(f.assignments) do
        if a.principalId == body.principalId and a.appRoleId == body.appRoleId and a.resourceId == res then
          return nil, { status = 400, message = "Permission being assigned already exists on the object" }
        end
      end
      return mutate("create", function()
        local a = tenant.copy(body)
        a.id = id()
        f.assignments[#f.assignments + 1] = a
        return a
      end)
    end
    if path == "/invitations" then
      return mutate("create", function()
        f.users[#f.users + 1] = { id = id(), mail = body.invitedUserEmailAddress, userType = "Guest" }
        f.last_invitation = body
        return { id = id(), status = "PendingAcceptance" }
      end)
    end
    error("fake graph: POST " .. path)
  end
  function g:patch(path, body, opts)
    local unique = path:match("^/applications%(uniqueName='(.*)'%)$")
    if unique then                     -- Graph's upsert (Prefer: create-if-missing)
      assert(opts and opts.headers and opts.headers.Prefer == "create-if-missing" and opts.idempotent)
      for _, a in ipairs(f.apps) do
        if a.uniqueName == unique then
          return mutate("update", function()
            for k, v in pairs(body) do a[k] = tenant.copy(v) end
            return true
          end)
        end
      end
      return mutate("create", function()
        local a = tenant.copy(body)
        a.id, a.appId, a.createdDateTime = id(), id(), string.format("2026-01-01T00:00:%02dZ", f.ids % 60)
        a.uniqueName, a.passwordCredentials, a.keyCredentials = unique, {}, {}
        f.apps[#f.apps + 1] = a
        return tenant.copy(a)
      end)
    end
    local oid = path:match("^/applications/([^/]+)$")
    return mutate("update", function()
      for _, a in ipairs(f.apps) do
        if a.id == oid then
          for k, v in pairs(body) do a[k] = tenant.copy(v) end
        end
      end
      return true
    end)
  end

  local x = {}
  local function nf(what) return nil, { code = "ManagementObjectNotFoundException", status = 404,
                                        message = "The operation couldn't be performed because object '" .. what ..
                                        "' couldn't be found" } end
  local cmd = {}
  cmd["Get-OrganizationConfig"] = function() return { tenant.copy(f.org) } end
  cmd["Enable-OrganizationCustomization"] = function()
    return mutate("update", function() f.org.IsDehydrated = false return {} end)
  end
  cmd["Get-OrganizationRelationship"] = function()
    local out = {}
    for _, r in ipairs(f.orgrels) do out[#out + 1] = tenant.copy(r) end
    return out
  end
  cmd["New-OrganizationRelationship"] = function(p)
    if f.org.IsDehydrated then
      return nil, { code = "InvalidOperationException", message = "run Enable-OrganizationCustomization first" }
    end
    for _, r in ipairs(f.orgrels) do
      if r.Identity == p.Name then return nil, { code = "ADObjectAlreadyExistsException", message = "already exists" } end
    end
    return mutate("create", function()
      local r = tenant.copy(p)
      r.Identity, r.Name = p.Name, nil
      f.orgrels[#f.orgrels + 1] = r
      return { tenant.copy(r) }
    end)
  end
  cmd["Set-OrganizationRelationship"] = function(p)
    return mutate("update", function()
      for _, r in ipairs(f.orgrels) do
        if r.Identity == p.Identity then
          for k, v in pairs(p) do if k ~= "Identity" then r[k] = tenant.copy(v) end end
        end
      end
      return {}
    end)
  end
  cmd["Get-DistributionGroup"] = function(p)
    for _, d in ipairs(f.dgs) do if d.Name == p.Identity then return { tenant.copy(d) } end end
    return nf(p.Identity)
  end
  cmd["New-DistributionGroup"] = function(p)
    return mutate("create", function()
      local d = { Name = p.Name, RecipientTypeDetails = p.Type == "Security" and "MailUniversalSecurityGroup"
                  or "MailUniversalDistributionGroup" }
      f.dgs[#f.dgs + 1] = d
      f.members[p.Name] = {}
      return { d }
    end)
  end
  cmd["Get-DistributionGroupMember"] = function(p)
    local out = {}
    for m in pairs(f.members[p.Identity] or {}) do out[#out + 1] = { PrimarySmtpAddress = m } end
    return out
  end
  cmd["Add-DistributionGroupMember"] = function(p)
    return mutate("update", function() f.members[p.Identity][p.Member] = true return {} end)
  end
  cmd["Get-MigrationEndpoint"] = function(p)
    if p.Identity then
      for _, e in ipairs(f.endpoints) do if e.Identity == p.Identity then return { tenant.copy(e) } end end
      return nf(p.Identity)
    end
    return tenant.copy(f.endpoints)
  end
  cmd["New-MigrationEndpoint"] = function(p)
    f.endpoint_calls = (f.endpoint_calls or 0) + 1
    if f.endpoint_error then
      return nil, { status = 400, code = "MigrationPermanentException", message = f.endpoint_error }
    end
    if f.source_ready == false then
      return nil, { status = 400, code = "MigrationPermanentException", message = "The OAuth setup was completed incorrectly" }
    end
    return mutate("create", function()
      local e = { Identity = p.Name, RemoteServer = p.RemoteServer, RemoteTenant = p.RemoteTenant,
                  ApplicationId = p.ApplicationId, EndpointType = "ExchangeRemoteMove", IsRemote = true,
                  AppSecretKeyVaultUrl = p.AppSecretKeyVaultUrl }
      f.last_credentials = p.Credentials
      f.endpoints[#f.endpoints + 1] = e
      return { tenant.copy(e) }
    end)
  end
  cmd["Remove-MigrationEndpoint"] = function(p)
    return mutate("delete", function()
      for i, e in ipairs(f.endpoints) do if e.Identity == p.Identity then table.remove(f.endpoints, i) break end end
      return {}
    end)
  end
  function x:invoke(name, params)
    local c = cmd[name] or error("fake exo: " .. name)
    return c(params or {})
  end
  f.graph, f.exo = g, x
  return f
end

local function new(f, o)
  o = o or {}
  local lines = {}
  local pl = plan.new { dry_run = o.dry_run, out = function(l) lines[#lines + 1] = l end }
  local clock = 1000000
  local t = tenant.new { name = o.name or "fabrikam", id = o.id or TID, domain = o.domain or "fabrikam.onmicrosoft.com",
                         graph = f.graph, exo = f.exo, plan = pl, settle = 3, poll = 1,
                         now = function() return clock end, sleep = function(s) clock = clock + s end,
                         say = function(l) lines[#lines + 1] = l end }
  return t, lines, pl
end

local function target_flow(t)
  local app = assert(t:ensure_app { name = "fabrikam_Friends_contoso" })
  local sp = assert(t:ensure_sp(app))
  assert(t:grant_consent(sp, tenant.EXO_APP_ID, "Mailbox.Migration"))
  assert(t:ensure_org_customization())
  assert(t:ensure_org_relationship { partner_id = SID, partner_domains = { "contoso.onmicrosoft.com" },
                                     capability = "Inbound", name = "fabrikam_contoso" })
  assert(t:ensure_endpoint { name = "fabrikam_contoso", remote_tenant = "contoso.onmicrosoft.com",
                             app_id = app.appId, secret = function() return "the-secret-value" end })
  return app
end

TestTenant = {}

function TestTenant.test_target_flow_then_rerun_changes_nothing()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  local t, _, pl = new(f)
  local app = target_flow(t)
  lu.assertEquals(#f.apps, 1)
  lu.assertEquals(f.apps[1].signInAudience, "AzureADMultipleOrgs")
  lu.assertTrue(tenant.rra_has(f.apps[1].requiredResourceAccess, tenant.EXO_APP_ID, tenant.ROLE["Mailbox.Migration"]))
  lu.assertEquals(f.orgrels[1].DomainNames, { SID })
  lu.assertEquals(f.orgrels[1].MailboxMoveCapability, "Inbound")
  lu.assertEquals(f.endpoints[1].ApplicationId, app.appId)
  lu.assertEquals(f.last_credentials, { UserName = app.appId, Password = "the-secret-value" })
  lu.assertTrue(pl.applied >= 5)
  local before = f.mutations
  local t2, lines2, pl2 = new(f)
  target_flow(t2)
  lu.assertEquals(f.mutations, before, "second run mutates nothing")
  lu.assertEquals(#pl2.changes, 0)
  lu.assertStrContains(table.concat(lines2, "\n"), "is up to date")
end

function TestTenant.test_plan_on_fresh_tenant_lists_changes_and_touches_nothing()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  local t, lines, pl = new(f, { dry_run = true })
  target_flow(t)
  lu.assertEquals(f.mutations, 0)
  lu.assertEquals(#f.apps, 0)
  lu.assertTrue(pl.planned >= 5)
  local text = table.concat(lines, "\n")
  lu.assertStrContains(text, "would + create application 'fabrikam_Friends_contoso'")
  lu.assertStrContains(text, "would + create organization relationship 'fabrikam_contoso'")
  lu.assertStrContains(text, "would + create migration endpoint 'fabrikam_contoso'")
  lu.assertNotStrContains(text, "the-secret-value")
end

function TestTenant.test_lost_create_responses_make_no_duplicates()
  for n = 1, 6 do
    local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
    f.lose[n] = true
    local t = new(f)
    target_flow(t)
    lu.assertEquals(#f.apps, 1, "one app when mutation " .. n .. " is lost")
    local sps = 0
    for _, s in ipairs(f.sps) do if s.appId == f.apps[1].appId then sps = sps + 1 end end
    lu.assertEquals(sps, 1)
    lu.assertEquals(#f.assignments, 1)
    lu.assertEquals(#f.orgrels, 1)
    lu.assertEquals(#f.endpoints, 1)
  end
end

-- The app is created by upsert on its uniqueName; apps of the same display name that t2t did
-- not make are named in the warning, which no longer blames "an earlier tool" for t2t's own.
function TestTenant.test_app_keyed_by_unique_name_and_others_warned_about()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  local t, lines = new(f)
  local app = assert(t:ensure_app { name = "fabrikam_Friends_contoso" })
  lu.assertEquals(app.uniqueName, "t2t-fabrikam-friends-contoso")
  lu.assertEquals(#t.warnings, 0)
  -- someone else registers an older app of the same name: t2t keeps its own and says so
  table.insert(f.apps, 1, { id = "other-1", appId = "other-app-1", displayName = "fabrikam_Friends_contoso",
                            createdDateTime = "2020-01-01T00:00:00Z", passwordCredentials = {}, keyCredentials = {} })
  local again = assert(t:ensure_app { name = "fabrikam_Friends_contoso" })
  lu.assertEquals(again.appId, app.appId, "t2t's own app, not the oldest of the name")
  lu.assertEquals(#f.apps, 2)
  lu.assertEquals(#t.warnings, 1)
  lu.assertStrContains(t.warnings[1], "other-app-1")
  lu.assertStrContains(t.warnings[1], "t2t did not make them")
  lu.assertNotStrContains(table.concat(lines, "\n"), "earlier tool")
end

-- t:create tries again only when the outcome is unknown; a refusal is final at once, and any
-- other answer is final after looking for the object (it may be our own, not yet visible).
function TestTenant.test_create_retries_only_unknown_outcomes()
  local cases = {
    { err = { status = 403, code = "Authorization_RequestDenied" }, applies = 1, finds = 0 },
    { err = { status = 409, code = "VaultAlreadyExists" }, applies = 1, finds = 0 },
    { err = { status = 400, code = "ObjectAlreadyExists" }, applies = 1, finds = 4 },   -- settle 3, poll 1
    { err = { status = 503 }, applies = 3, finds = 12 },
    { err = { code = "reset" }, applies = 3, finds = 12 },
  }
  for _, c in ipairs(cases) do
    local t = new(fake_tenant(TID, "fabrikam.onmicrosoft.com"))
    local applies, finds = 0, 0
    local v, err = t:create({ target = "thing 'x'", tenant = "fabrikam",
                              apply = function() applies = applies + 1; return nil, c.err end },
                            function() finds = finds + 1 end)
    local what = tostring(c.err.status or c.err.code)
    lu.assertNil(v, what)
    lu.assertIs(err, c.err, what)
    lu.assertEquals(applies, c.applies, what .. ": creates")
    lu.assertEquals(finds, c.finds, what .. ": reads")
  end
  -- found on the re-read after a "refused-looking" 400: the create happened after all
  local t = new(fake_tenant(TID, "fabrikam.onmicrosoft.com"))
  local n = 0
  local v = t:create({ target = "thing 'y'", tenant = "fabrikam",
                       apply = function() return nil, { status = 400 } end },
                     function() n = n + 1; if n == 2 then return { id = "y" } end end)
  lu.assertEquals(v, { id = "y" })
end

function TestTenant.test_secret_with_lost_response_is_replaced()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  local t = new(f)
  local app = assert(t:ensure_app { name = "A" })
  f.lose[f.n + 1] = true
  local s = assert(t:add_secret(app, { days = 30 }))
  lu.assertStrContains(s.secret, "s3cr3t-")
  lu.assertEquals(#f.apps[1].passwordCredentials, 1, "the unusable secret was removed")
  lu.assertEquals(f.apps[1].passwordCredentials[1].keyId, s.keyId)
  lu.assertEquals(require("t2t.log").redact("x " .. s.secret), "x ***")
end

function TestTenant.test_capability_merged_and_scopes_on_source()
  local f = fake_tenant(SID, "contoso.onmicrosoft.com")
  f.orgrels[1] = { Identity = "old", DomainNames = { TID }, Enabled = true, MailboxMoveEnabled = false,
                   MailboxMoveCapability = "Inbound" }
  local t = new(f, { name = "contoso", id = SID, domain = "contoso.onmicrosoft.com" })
  assert(t:ensure_org_relationship { partner_id = TID, capability = "RemoteOutbound", name = "x",
                                     oauth_app_id = "app-1", scopes = { "Scope" } })
  lu.assertEquals(#f.orgrels, 1)
  lu.assertEquals(f.orgrels[1].MailboxMoveCapability, { "Inbound", "RemoteOutbound" })
  lu.assertTrue(f.orgrels[1].MailboxMoveEnabled)
  lu.assertEquals(f.orgrels[1].OAuthApplicationId, "app-1")
  lu.assertEquals(f.orgrels[1].MailboxMovePublishedScopes, { "Scope" })
  lu.assertEquals(tenant.caps_merge("None", "Inbound"), { "Inbound" })
end

function TestTenant.test_orgrel_keyed_by_domain_is_reported()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  f.orgrels[1] = { Identity = "community", DomainNames = { "contoso.onmicrosoft.com", "contoso.com" },
                   Enabled = true, MailboxMoveEnabled = true, MailboxMoveCapability = "Inbound" }
  local t, lines = new(f)
  assert(t:ensure_org_relationship { partner_id = SID, partner_domains = { "contoso.onmicrosoft.com" },
                                     capability = "Inbound", name = "fabrikam_contoso" })
  local text = table.concat(lines, "\n")
  lu.assertStrContains(text, "names the partner by domain")
  lu.assertStrContains(text, "community-script mistake")
  lu.assertEquals(#f.orgrels, 2)
  lu.assertEquals(f.orgrels[2].DomainNames, { SID })
  -- verify: only the domain-keyed one -> Failed with the fix
  table.remove(f.orgrels, 2)
  local checks = verify.target(t, { app_id = "none", partner_id = SID, partner_domain = "contoso.onmicrosoft.com",
                                    partner_domains = { "contoso.onmicrosoft.com" } })
  local found
  for _, c in ipairs(checks) do
    if c.what:find("by domain", 1, true) then found = c end
  end
  lu.assertNotNil(found)
  lu.assertEquals(found.status, "Failed")
  lu.assertStrContains(found.fix, SID)
end

function TestTenant.test_dehydrated_tenant_is_customized()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  f.org.IsDehydrated = true
  local t = new(f)
  assert(t:ensure_org_customization())
  lu.assertFalse(f.org.IsDehydrated)
  -- verify reports a dehydrated tenant as a failure with its fix
  f.org.IsDehydrated = true
  local checks = verify.source(t, { app_id = "x", partner_id = SID })
  local text = ""
  for _, c in ipairs(checks) do text = text .. c.status .. " " .. c.what .. " " .. tostring(c.fix) .. "\n" end
  lu.assertStrContains(text, "Failed Exchange organization of fabrikam is dehydrated")
  lu.assertStrContains(text, "Enable-OrganizationCustomization")
end

function TestTenant.test_scope_group_failures_are_actionable()
  local f = fake_tenant(SID, "contoso.onmicrosoft.com")
  local t = new(f, { name = "contoso" })
  local g, err = t:ensure_scope_group("Missing")
  lu.assertNil(g)
  lu.assertEquals(err.code, "ScopeMissing")
  lu.assertStrContains(tostring(err), "New-DistributionGroup -Type Security")
  f.dgs[1] = { Name = "DL", RecipientTypeDetails = "MailUniversalDistributionGroup" }
  g, err = t:ensure_scope_group("DL")
  lu.assertEquals(err.code, "ScopeNotSecurity")
  f.groups[1] = { displayName = "SG", securityEnabled = true, mailEnabled = false }
  g, err = t:ensure_scope_group("SG", { create = true })
  lu.assertEquals(err.code, "ScopeNotMailEnabled")
  g = assert(t:ensure_scope_group("New", { create = true }))
  lu.assertEquals(f.dgs[2].RecipientTypeDetails, "MailUniversalSecurityGroup")
  assert(t:ensure_members("New", { "a@contoso.com", "b@contoso.com" }))
  local m = f.mutations
  assert(t:ensure_members("New", { "A@contoso.com" }))
  lu.assertEquals(f.mutations, m)
end

function TestTenant.test_endpoint_before_source_consent_says_what_to_do()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  f.source_ready = false
  local t = new(f)
  local ep, err = t:ensure_endpoint { name = "e", remote_tenant = "contoso.onmicrosoft.com", app_id = "app-1",
                                      secret = "x-secret" }
  lu.assertNil(ep)
  lu.assertEquals(err.code, "EndpointVerification")
  lu.assertStrContains(tostring(err), "SOURCE tenant")
  lu.assertStrContains(tostring(err), "setup-source")
  lu.assertStrContains(tostring(err), "consent URL")
  lu.assertEquals(#f.endpoints, 0)
end

-- An HTTP 500 on an Exchange change is an unknown outcome: t2t looks, then retries only if it
-- was not done, and the change counts once, by its final outcome (issue 9, defect 5).
function TestTenant.test_exo_500_is_looked_for_then_retried_and_counted_once()
  for _, when in ipairs { "after", "before" } do
    local f = fake_tenant(SID, "contoso.onmicrosoft.com")
    local t, _, pl = new(f, { name = "contoso", id = SID, domain = "contoso.onmicrosoft.com" })
    assert(t:ensure_scope_group("New", { create = true }))
    f.err500 = { [f.n + 1] = when }
    local n = f.mutations
    assert(t:ensure_members("New", { "a@contoso.com" }))
    lu.assertTrue(f.members.New["a@contoso.com"], when)
    lu.assertEquals(f.mutations - n, when == "after" and 1 or 2, when .. ": retried only when not done")
    lu.assertEquals(pl.failed, 0, when .. ": a change that succeeded is not counted as failed")
    lu.assertEquals(pl.applied, 2, when)
  end
end

-- The removal of a secret whose value was lost may fail too (found by the fault matrix: its
-- error was taken for success, and two secrets stayed live): it is looked for, then retried.
function TestTenant.test_failed_removal_of_an_unusable_secret_is_retried()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  local t, _, pl = new(f)
  local app = assert(t:ensure_app { name = "a" })
  f.lose[f.n + 1] = true                 -- addPassword: made, answer lost
  f.err500 = { [f.n + 2] = "before" }    -- removePassword: fails before doing anything
  local s = assert(t:add_secret(app, { days = 30 }))
  lu.assertEquals(#f.apps[1].passwordCredentials, 1, "only the delivered secret is live")
  lu.assertEquals(f.apps[1].passwordCredentials[1].keyId, s.keyId)
  lu.assertEquals(pl.failed, 0)
end

-- A secret whose answer was lost may show in the directory only after the look that follows
-- (replication): it must not stay live beside the one made next under the same label.
function TestTenant.test_secret_seen_late_is_removed_once_another_is_made()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  local t, _, pl = new(f)
  local app = assert(t:ensure_app { name = "a" })
  f.late[f.n + 1] = 1                    -- addPassword: answer lost, seen after the next read
  local s = assert(t:add_secret(app, { days = 30 }))
  lu.assertEquals(#f.apps[1].passwordCredentials, 1, "only the delivered secret is live")
  lu.assertEquals(f.apps[1].passwordCredentials[1].keyId, s.keyId)
  lu.assertEquals(pl.failed, 0, "the secret change counts once, by its outcome")
end

-- Seen later still (after the run): the next run removes it, from what the secret file (or, for
-- a secret shown on the terminal, the journal) says was delivered -- and keeps that one.
function TestTenant.test_secret_seen_after_the_run_is_removed_by_the_next()
  local session = require "t2t.tenant.session"
  for _, on_terminal in ipairs { false, true } do
    local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
    local t = new(f)
    local app = assert(t:ensure_app { name = "a" })
    local dir = os.tmpname()
    os.remove(dir)
    local file = not on_terminal and (dir .. "/secret") or nil
    local journal = session.secret_journal(t, app, file)   -- for the terminal: $XDG_STATE_HOME/t2t
    local said = {}
    local ctx = { opts = {}, say = function(_, fmt, ...) said[#said + 1] = string.format(fmt, ...) end }
    f.late[f.n + 1] = 3                  -- seen only after the run's reads
    local out, screen = io.output(), os.tmpname()     -- the terminal the secret is shown on
    if on_terminal then io.output(screen) end
    local s = assert(t:add_secret(app, { days = 30, before = session.journal_writer(journal, app) }))
    assert(session.deliver(ctx, s, file, journal))
    if on_terminal then io.output():close() io.output(out) end
    os.remove(screen)
    for _ = 1, 2 do t:gget("/organization") end
    lu.assertEquals(#f.apps[1].passwordCredentials, 2, "the lost attempt's secret shows after the run")
    assert(session.clean_pending_secret(ctx, new(f), app, file))
    lu.assertEquals(#f.apps[1].passwordCredentials, 1, "the next run removed it")
    lu.assertEquals(f.apps[1].passwordCredentials[1].keyId, s.keyId, "and kept the delivered one")
    assert(session.clean_pending_secret(ctx, new(f), app, file))
    lu.assertEquals(#f.apps[1].passwordCredentials, 1, "a later run keeps the delivered one")
    lu.assertNil(require("t2t.core.fs").mode(journal), "the journal is gone once it was acted on")
    os.execute("rm -rf '" .. dir .. "'")
  end
end

-- A wrong client secret is said to be one, at once: not blamed on the source tenant, not
-- retried for 41 s, and one change that failed (issue 9, defect 4).
function TestTenant.test_endpoint_with_a_wrong_secret_fails_at_once()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  f.endpoint_error = "The OAuth setup was completed incorrectly: AADSTS7000215: Invalid client secret " ..
                     "provided for application 'app-1'."
  local t, _, pl = new(f)
  local t0 = t.now()
  local ep, err = t:ensure_endpoint { name = "e", remote_tenant = "contoso.onmicrosoft.com", app_id = "app-1",
                                      secret = "wrong" }
  lu.assertNil(ep)
  lu.assertEquals(err.code, "EndpointCredentials")
  lu.assertStrContains(tostring(err), "--client-secret")
  lu.assertNotStrContains(tostring(err), "not ready")
  lu.assertEquals(f.endpoint_calls, 1, "not retried")
  lu.assertEquals(t.now() - t0, 0, "no waiting")
  lu.assertEquals(pl.failed, 1)
  -- consent missing in the source is the source's readiness, as before
  f.endpoint_error = "AADSTS65001: The user or administrator has not consented to use the application"
  f.endpoint_calls = 0
  ep, err = t:ensure_endpoint { name = "e", remote_tenant = "contoso.onmicrosoft.com", app_id = "app-1", secret = "x" }
  lu.assertEquals(err.code, "EndpointVerification")
  lu.assertEquals(f.endpoint_calls, 1)
end

function TestTenant.test_endpoint_recreated_only_when_it_differs()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  f.endpoints[1] = { Identity = "e", RemoteServer = "outlook.office.com", RemoteTenant = "old.onmicrosoft.com",
                     ApplicationId = "app-1", EndpointType = "ExchangeRemoteMove" }
  local t, _, pl = new(f)
  assert(t:ensure_endpoint { name = "e", remote_tenant = "contoso.onmicrosoft.com", app_id = "app-1", secret = "s-1234" })
  lu.assertEquals(#f.endpoints, 1)
  lu.assertEquals(f.endpoints[1].RemoteTenant, "contoso.onmicrosoft.com")
  lu.assertEquals(pl.applied, 2)   -- remove + new
  local m = f.mutations
  assert(t:ensure_endpoint { name = "e", remote_tenant = "contoso.onmicrosoft.com", app_id = "app-1" })
  lu.assertEquals(f.mutations, m)
  local _, err = t:ensure_endpoint { name = "e", remote_tenant = "other.onmicrosoft.com", app_id = "app-1" }
  lu.assertEquals(err.code, "NeedSecret")
end

function TestTenant.test_expired_and_expiring_credentials_warn()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  local t, lines = new(f)
  local now = t.now()
  local app = { displayName = "A", passwordCredentials = {
    { displayName = "old", endDateTime = tenant.iso(now - 86400) },
    { displayName = "soon", endDateTime = tenant.iso(now + 10 * 86400) },
    { displayName = "fine", endDateTime = tenant.iso(now + 400 * 86400) } } }
  local soon = t:check_credentials(app, 90)
  lu.assertEquals(#soon, 2)
  local text = table.concat(lines, "\n")
  lu.assertStrContains(text, "'old' expired")
  lu.assertStrContains(text, "'soon' expires")
  lu.assertNotStrContains(text, "'fine'")
  lu.assertEquals(tenant.parse_iso("1970-01-02T00:00:00Z"), 86400)
  lu.assertEquals(tenant.parse_iso("2024-02-29T12:00:00.0000000Z"), 1709208000)
end

function TestTenant.test_verify_bidirectional_is_warning_and_owner_checked()
  local f = fake_tenant(SID, "contoso.onmicrosoft.com")
  f.foreign_owner = "99999999-9999-9999-9999-999999999999"
  local t = new(f, { name = "contoso", id = SID, domain = "contoso.onmicrosoft.com" })
  local sp = assert(t:ensure_sp("app-x"))
  assert(t:grant_consent(sp, tenant.EXO_APP_ID, "Mailbox.Migration"))
  f.dgs[1] = { Name = "Scope", RecipientTypeDetails = "MailUniversalSecurityGroup" }
  f.members.Scope = { ["u@contoso.com"] = true }
  f.orgrels[1] = { Identity = "r", DomainNames = { TID }, Enabled = true, MailboxMoveEnabled = true,
                   MailboxMoveCapability = "Inbound, RemoteOutbound", OAuthApplicationId = "app-x",
                   MailboxMovePublishedScopes = { "Scope" } }
  local checks = verify.source(t, { app_id = "app-x", partner_id = TID })
  local by = {}
  for _, c in ipairs(checks) do by[#by + 1] = c.status .. ": " .. c.what end
  local text = table.concat(by, "\n")
  lu.assertStrContains(text, "Warnings: MailboxMoveCapability is [Inbound, RemoteOutbound]")
  lu.assertStrContains(text, "Failed: App [app-x] is owned by tenant [99999999-9999-9999-9999-999999999999], " ..
    "not by the partner (target) tenant")
  lu.assertStrContains(text, "Passed: Mailbox Migration ApplicationId [app-x] is allowed")
  lu.assertStrContains(text, "Passed: scope group 'Scope' is a mail-enabled security group")
end

function TestTenant.test_invite_message_and_no_reinvite()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  local t = new(f)
  local app = assert(t:ensure_app { name = "A", invite = true })
  lu.assertTrue(tenant.rra_has(f.apps[1].requiredResourceAccess, tenant.GRAPH_APP_ID, tenant.ROLE["User.Invite.All"]))
  local url = tenant.consent_url("global", "contoso.onmicrosoft.com", app.appId)
  lu.assertEquals(url, "https://login.microsoftonline.com/contoso.onmicrosoft.com/adminconsent?client_id=" ..
                  app.appId .. "&redirect_uri=https%3A%2F%2Foffice.com")
  assert(t:invite("admin@contoso.com", { redirect = url, app = app }))
  lu.assertEquals(f.last_invitation.inviteRedirectUrl, url)
  lu.assertStrContains(f.last_invitation.invitedUserMessageInfo.customizedMessageBody, "OAuthApplicationId")
  local m = f.mutations
  assert(t:invite("admin@contoso.com", { redirect = url, app = app }))
  lu.assertEquals(f.mutations, m)
end

-- verify-setup states what is wrong, in VerifySetup.ps1's words where it has them: each line's
-- failing form, from a working target and source broken one item at a time.
function TestTenant.test_verify_each_failure_says_what_is_wrong()
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  local t = new(f)
  local app = target_flow(t)
  local function text(checks)
    local out = {}
    for _, c in ipairs(checks) do out[#out + 1] = c.status .. ": " .. c.what end
    return table.concat(out, "\n")
  end
  local o = { app_id = app.appId, partner_id = SID, partner_domain = "contoso.onmicrosoft.com" }
  local ok = text(verify.target(t, o))
  lu.assertNotStrContains(ok, "Failed:")
  -- the User.Invite.All warning of VerifySetupDeprecated.ps1 fires (the app does not request it)
  lu.assertStrContains(ok, "Warnings: App [" .. app.appId .. "] does not have [User.Invite.All] permission")
  local a = f.apps[1]
  local function broken(fn, want, opts)
    local saved = tenant.copy({ a = a, o = f.orgrels[1], e = f.endpoints[1], as = f.assignments, org = f.org })
    fn()
    local got = text(verify.target(t, opts or o))
    lu.assertStrContains(got, "Failed: " .. want)
    a.web, a.requiredResourceAccess, a.signInAudience = saved.a.web, saved.a.requiredResourceAccess, saved.a.signInAudience
    f.orgrels[1], f.endpoints[1], f.assignments, f.org = saved.o, saved.e, saved.as, saved.org
  end
  broken(function() a.web = { redirectUris = {} } end,
    "Application 'fabrikam_Friends_contoso' does not redirect to https://office.com (its redirect URIs: none)")
  broken(function() a.requiredResourceAccess = {} end,
    "Application 'fabrikam_Friends_contoso' does not request [Mailbox.Migration] on Office 365 Exchange Online")
  broken(function() a.signInAudience = "AzureADMyOrg" end,
    "Application 'fabrikam_Friends_contoso' is not multi-tenant (signInAudience AzureADMyOrg)")
  broken(function() f.assignments = {} end, "App [" .. app.appId .. "] does not have [Mailbox.Migration] " ..
    "permission on Exchange setup or the permission is not consented by an Administrator")
  broken(function() f.org.IsDehydrated = true end, "Exchange organization of fabrikam is dehydrated")
  broken(function() f.orgrels[1].Enabled = false end, "Organization relationship 'fabrikam_contoso' is disabled")
  broken(function() f.orgrels[1].MailboxMoveEnabled = false end,
    "Organization relationship 'fabrikam_contoso' does not have MailboxMoveEnabled")
  broken(function() f.orgrels[1].MailboxMoveCapability = "RemoteOutbound" end,
    "Organization relationship 'fabrikam_contoso' MailboxMoveCapability should be [Inbound], found [RemoteOutbound]")
  broken(function() f.orgrels[1].DomainNames = { "99999999-9999-9999-9999-999999999999" } end,
    "Organization relationship does not exist with [" .. SID .. "]")
  broken(function() f.endpoints[1].RemoteTenant = "other.onmicrosoft.com" end,
    "Migration endpoint 'fabrikam_contoso' RemoteTenant is [other.onmicrosoft.com], not the source domain " ..
    "[contoso.onmicrosoft.com]")
  broken(function() f.endpoints[1].EndpointType = "IMAP" end,
    "Migration endpoint 'fabrikam_contoso' is a IMAP endpoint, not ExchangeRemoteMove")
  broken(function() f.endpoints[1].IsRemote = false end, "Migration endpoint 'fabrikam_contoso' is not remote")
  broken(function() f.endpoints[1].RemoteServer = "outlook.office365.us" end,
    "Migration endpoint 'fabrikam_contoso' RemoteServer is [outlook.office365.us], not [outlook.office.com]")
  broken(function() f.endpoints[1].ApplicationId = "other" end, "Expected Migration endpoint not found")
  broken(function() end, "Migration endpoint 'fabrikam_contoso' uses [nil], not the Key Vault certificate " ..
    "https://kv1.vault.azure.net/certificates/c/1", { app_id = app.appId, partner_id = SID,
      partner_domain = "contoso.onmicrosoft.com", kv_url = "https://kv1.vault.azure.net/certificates/c/1" })
  broken(function() end, "App [nope] is not registered in [fabrikam] tenant",
    { app_id = "nope", partner_id = SID, partner_domain = "contoso.onmicrosoft.com" })
end

function TestTenant.test_verify_source_failures_say_what_is_wrong()
  local f = fake_tenant(SID, "contoso.onmicrosoft.com")
  f.foreign_owner = TID
  local t = new(f, { name = "contoso", id = SID, domain = "contoso.onmicrosoft.com" })
  local sp = assert(t:ensure_sp("app-x"))
  assert(t:grant_consent(sp, tenant.EXO_APP_ID, "Mailbox.Migration"))
  f.dgs[1] = { Name = "Scope", RecipientTypeDetails = "MailUniversalDistributionGroup" }
  f.orgrels[1] = { Identity = "r", DomainNames = { TID }, Enabled = true, MailboxMoveEnabled = true,
                   MailboxMoveCapability = "RemoteOutbound", OAuthApplicationId = "app-other",
                   MailboxMovePublishedScopes = { "Scope", "Gone" } }
  local out = {}
  for _, c in ipairs(verify.source(t, { app_id = "app-x", partner_id = TID })) do out[#out + 1] = c.status .. ": " .. c.what end
  local text = table.concat(out, "\n")
  lu.assertStrContains(text, "Failed: Mailbox Migration ApplicationId [app-x] is not whitelisted in the " ..
    "Organization Relationship 'r' (it allows [app-other])")
  lu.assertStrContains(text, "Failed: scope group 'Scope' is a MailUniversalDistributionGroup, not a mail-enabled security group")
  lu.assertStrContains(text, "Failed: scope group 'Gone' does not exist")
  f.orgrels[1].MailboxMovePublishedScopes = {}
  out = {}
  for _, c in ipairs(verify.source(t, { app_id = "app-x", partner_id = TID })) do out[#out + 1] = c.status .. ": " .. c.what end
  lu.assertStrContains(table.concat(out, "\n"),
    "Failed: Source tenant needs to specify MailboxMovePublishedScopes to allow migration")
end

-- setup-source's scope groups replace the relationship's current ones by default (the script and
-- the current docs do), shown as before -> after; merging is asked for; a re-run changes nothing.
function TestTenant.test_scope_groups_replace_by_default_merge_on_request()
  local f = fake_tenant(SID, "contoso.onmicrosoft.com")
  local t, lines, pl = new(f, { name = "contoso", id = SID, domain = "contoso.onmicrosoft.com" })
  f.orgrels[1] = { Identity = "r", DomainNames = { TID }, Enabled = true, MailboxMoveEnabled = true,
                   MailboxMoveCapability = "RemoteOutbound", OAuthApplicationId = "app-x",
                   MailboxMovePublishedScopes = { "CN=Old,OU=contoso.onmicrosoft.com,DC=x" } }
  local function run(scopes, merge)
    return assert(t:ensure_org_relationship { partner_id = TID, capability = "RemoteOutbound", name = "r",
                                               oauth_app_id = "app-x", scopes = scopes, merge_scopes = merge })
  end
  run({ "New" })
  lu.assertEquals(f.orgrels[1].MailboxMovePublishedScopes, { "New" })
  local shown = table.concat(lines, "\n")
  lu.assertStrContains(shown, "CN=Old")          -- the plan line shows before -> after
  lu.assertStrContains(shown, "New")
  local n = pl.applied
  run({ "New" })
  lu.assertEquals(pl.applied, n, "a re-run changes nothing")
  run({ "Other" }, true)
  lu.assertEquals(f.orgrels[1].MailboxMovePublishedScopes, { "New", "Other" })
  lu.assertEquals(tenant.scopes_after({ "CN=A,OU=x" }, { "a" }), { "CN=A,OU=x" })
  lu.assertEquals(tenant.scopes_after({ "A", "B" }, { "A" }), { "A" })
end

-- Names come from the tenants and fit Exchange's 64 characters, the same on every run.
function TestTenant.test_names_fit_exchange_and_the_app_is_keyed_by_the_source_tenant()
  local long = string.rep("a", 40) .. "_" .. string.rep("b", 40)
  local n = tenant.exo_name(long)
  lu.assertTrue(#n <= 64)
  lu.assertEquals(n, tenant.exo_name(long))
  lu.assertNotEquals(n, tenant.exo_name(long .. "c"))
  lu.assertEquals(tenant.exo_name("short_name"), "short_name")
  local utf = string.rep("é", 40)               -- 80 bytes: the cut never splits a character
  lu.assertTrue(utf8.len(tenant.exo_name(utf)) ~= nil)
  lu.assertEquals(tenant.app_key("ABC"), "t2t-xtm-abc")
  -- a renamed profile finds the same app: the key is the source tenant's, not the name's
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  local t = new(f, { name = "target-prod" })
  lu.assertEquals(t:label(), "fabrikam")
  local a1 = assert(t:ensure_app { name = tenant.app_name(t:label(), "contoso"), key = tenant.app_key(SID) })
  lu.assertEquals(a1.displayName, "fabrikam_Friends_contoso")
  local t2 = new(f, { name = "renamed" })
  local a2 = assert(t2:ensure_app { name = "another display name", key = tenant.app_key(SID) })
  lu.assertEquals(a2.appId, a1.appId)
  lu.assertEquals(#f.apps, 1)
  -- an app an earlier t2t named after a profile is found through `also`, not made again
  local g = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  local t3 = new(g, { name = "target-prod" })
  local old = assert(t3:ensure_app { name = tenant.app_name("target-prod", "contoso") })
  local again = assert(t3:ensure_app { name = "fabrikam_Friends_contoso", key = tenant.app_key(SID),
                                       also = tenant.app_name("target-prod", "contoso") })
  lu.assertEquals(again.appId, old.appId)
  lu.assertEquals(#g.apps, 1)
end

-- A certificate profile whose app registration it may not read: its own certificate file's
-- notAfter is enough to name it at the start of a run (--warn-expiry).
function TestTenant.test_expiring_certificate_of_the_profile_named_from_its_file()
  local crypto = require "t2t.crypto"
  local session = require "t2t.tenant.session"
  local cert = assert(crypto.new_ca { subject = "CN=t2t admin", days = 10 })
  local path = os.tmpname()
  assert(require("t2t.core.fs").write_private(path, cert:pem()))
  local f = fake_tenant(TID, "fabrikam.onmicrosoft.com")
  local t, lines = new(f)
  t.now = os.time
  t.graph = nil                          -- nothing to read the app registration with
  local prof = { name = "fabrikam", client_id = "app-1", certificate = path }
  session.warn_own_expiry(t, prof, 30)
  lu.assertEquals(#t.warnings, 1)
  lu.assertStrContains(lines[#lines], "the certificate '" .. path .. "' of app app-1, which profile 'fabrikam' " ..
                       "signs in with, expires on " .. os.date("!%Y-%m-%d", cert:not_after()))
  session.warn_own_expiry(t, prof, 5)
  lu.assertEquals(#t.warnings, 1, "not within 5 days")
  os.remove(path)
end
