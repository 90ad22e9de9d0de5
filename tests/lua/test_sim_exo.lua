-- The simulated InvokeCommand service, called directly (handle(sim, req)) with a stub sim over a
-- seeded pair: request -> expected status/body facts from wire.md §2 and ms-setup-and-prep.md.
local lu = require "luaunit"
local cjson = require "cjson"
local exo = require "t2t.exo"
local model = require "t2t.sim.model"
local mig = require "t2t.sim.exo.migration"

local READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
local MAILBOX_MIGRATION = "f7264778-fba9-422d-8e9e-2675a2c4b513"
local EXO_APPID = "00000002-0000-0ff1-ce00-000000000000"

local env = require "tests.lua.handlers.sim_exo_env"
local new_sim, claims, call, detail, ok = env.new_sim, env.claims, env.call, env.detail, env.ok

local function first_user_mailbox(t)
  local best
  for _, r in pairs(t.exo.recipients) do
    if r.RecipientTypeDetails == "UserMailbox" and not r.IsDirSynced and not r.LitigationHoldEnabled
       and #(r.InPlaceHolds or {}) == 0 and not r.DelayHoldApplied and not r.ComplianceTagHoldApplied
       and (r.AuxArchiveCount or 0) == 0 and (not best or r.Name < best.Name) then
      best = r
    end
  end
  return best
end

TestSimExoGateway = {}

function TestSimExoGateway.test_auth_rbac_and_unknown_cmdlet()
  local sim = new_sim()
  local cases = {
    { "no ManageAsApp role -> 401", "Get-Mailbox", { roles = { "User.Read.All" } }, 401 },
    { "no directory role -> NUL 403", "Get-Mailbox", { wids = {} }, 403, true },
    { "unknown cmdlet -> NUL 403", "Get-Nothing", {}, 403, true },
    { "reader may read", "Get-Mailbox", { wids = { READER } }, 200 },
    { "reader may not write", "Enable-OrganizationCustomization", { wids = { READER } }, 403, true },
    { "admin reads", "Get-OrganizationConfig", {}, 200 },
  }
  for _, c in ipairs(cases) do
    local st, body, r = call(sim, sim.src, c[2], {}, c[3])
    lu.assertEquals(st, c[4], c[1])
    if c[5] then
      lu.assertEquals(r.headers["Content-Encoding"], "gzip", c[1])
      lu.assertTrue(#body > 0 and not body:find("[^%z]"), c[1])
    end
  end
  -- token of another tenant
  lu.assertEquals((call(sim, sim.src, "Get-Mailbox", {}, { claims = claims(sim.tgt) })), 401)
  -- the initial domain works as {tenant} (wire.md §2.2)
  lu.assertEquals((call(sim, sim.src, "Get-OrganizationConfig", {},
                        { tenant_key = sim.src.initial_domain })), 200)
end

function TestSimExoGateway.test_parameter_binding_errors()
  local sim = new_sim()
  local st, doc = call(sim, sim.src, "Get-Mailbox", { Bogus = 1 })
  lu.assertEquals(st, 400)
  local typ, text = detail(doc)
  lu.assertStrContains(typ, "AmbiguousParameterSetException")
  lu.assertStrContains(text, "'Bogus'")
  st, doc = call(sim, sim.src, "Get-Recipient", { RecipientTypeDetails = { "Nonsense" } })
  lu.assertEquals(st, 400)
  lu.assertStrContains(select(2, detail(doc)), "UserMailbox")          -- lists valid values
  -- enum values are prefix-matched by the service (wire.md §2.4)
  st = call(sim, sim.src, "Get-Recipient", { RecipientTypeDetails = { "UserMail" } })
  lu.assertEquals(st, 200)
  st, doc = call(sim, sim.tgt, "New-MailUser", { Name = "x" })
  lu.assertEquals(st, 400)
  typ, text = detail(doc)
  lu.assertStrContains(typ, "ParameterBindingException")
  lu.assertStrContains(text, "ExternalEmailAddress")
  -- annotation siblings in Parameters are not parameters
  st = call(sim, sim.src, "Get-Mailbox", nil, { body =
    '{"CmdletInput":{"CmdletName":"get-mailbox","Parameters":{"ResultSize":1,"ResultSize@odata.type":"#Int32"}}}' })
  lu.assertEquals(st, 200)
end

function TestSimExoGateway.test_identity_resolution()
  local sim = new_sim()
  local r = first_user_mailbox(sim.src)
  local x500
  for _, a in ipairs(r.EmailAddresses) do if a:lower():find("^x500:") then x500 = a end end
  local idents = { r.Name, r.Alias:upper(), r.DisplayName, r.PrimarySmtpAddress, r.EmailAddresses[2],
                   r.EmailAddresses[2]:gsub("^smtp:", ""), r.ExchangeGuid, r.ExternalDirectoryObjectId,
                   r.DistinguishedName, r.LegacyExchangeDN, x500 }
  for _, id in ipairs(idents) do
    local v = ok(sim, sim.src, "Get-Mailbox", { Identity = id })
    lu.assertEquals(#v, 1, id)
    lu.assertEquals(v[1].Guid, r.Guid, id)
    lu.assertEquals(v[1]["ExchangeGuid@odata.type"], "#Guid")
    lu.assertEquals(v[1]["EmailAddresses@odata.type"], "#Collection(String)")
  end
  local st, doc = call(sim, sim.src, "Get-Mailbox", { Identity = "nobody@contoso.com" })
  lu.assertEquals(st, 404)
  local typ, text, id = detail(doc)
  lu.assertEquals(typ, "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException")
  lu.assertStrMatches(text, "The operation couldn't be performed because object 'nobody@contoso.com' " ..
                            "couldn't be found on '.*%.PROD%.OUTLOOK%.COM'%.")
  lu.assertStrMatches(id, "Ex%x%x%x%x%x%x")
  lu.assertEquals(doc.error.code, "NotFound")
  -- the client's parser gets the same facts
  local e = exo.parse_error({ status = st, headers = {}, body = cjson.encode(doc) }, "Get-Mailbox")
  lu.assertEquals(e.code, "ManagementObjectNotFoundException")
end

function TestSimExoGateway.test_paging_warnings_and_rate_headers()
  local sim = new_sim(1010)
  local n = 0
  for _, r in pairs(sim.src.exo.recipients) do
    if r.RecipientTypeDetails:find("Mailbox$") then n = n + 1 end
  end
  -- default ResultSize is 1000, with the service's warning
  local v, doc = ok(sim, sim.src, "Get-Mailbox", {})
  lu.assertEquals(#v, 1000)
  lu.assertEquals(doc["@adminapi.warnings"], { exo.RESULT_SIZE_WARNING })
  -- Unlimited, 250 per page, re-POSTing the same body to the absolute nextLink
  local seen, pages, skip = {}, 0, nil
  local prefer = "odata.maxpagesize=250"
  repeat
    local _, d, resp = call(sim, sim.src, "Get-Mailbox", { ResultSize = "Unlimited" },
                            { prefer = prefer, query = { ["$skiptoken"] = skip } })
    pages = pages + 1
    lu.assertNotNil(resp.headers["Rate-Limit-Remaining"])
    for _, o in ipairs(d.value) do
      lu.assertNil(seen[o.Guid])
      seen[o.Guid] = true
    end
    local nl = d["@odata.nextLink"]
    if nl then
      lu.assertStrMatches(nl, "https://outlook%.office365%.com/adminapi/beta/" ..
        sim.src.id:gsub("%-", "%%-") .. "/InvokeCommand%?%$skiptoken=[%w%.]+$")
      skip = nl:match("skiptoken=([%w%.]+)")
    end
  until not nl
  local count = 0
  for _ in pairs(seen) do count = count + 1 end
  lu.assertEquals(count, n)
  lu.assertEquals(pages, math.ceil(n / 250))
  -- ResultSize N caps the total
  lu.assertEquals(#ok(sim, sim.src, "Get-Mailbox", { ResultSize = 3 }), 3)
  -- empty results: "value":[] and "@adminapi.warnings":[]
  local _, raw = call(sim, sim.src, "Set-MailUser", nil, { body = "x" })
  lu.assertEquals(type(raw), "table")
  local _, _, resp = call(sim, sim.src, "Get-OrganizationRelationship", {})
  lu.assertStrContains(resp.body, '"value":[]')
  lu.assertStrContains(resp.body, '"@adminapi.warnings":[]')
end

function TestSimExoGateway.test_concurrency_limit()
  local sim = new_sim()
  sim.faults.exo_concurrency = 2
  lu.assertEquals((call(sim, sim.src, "Get-OrganizationConfig", {}, { delay = 1 })), 200)
  lu.assertEquals((call(sim, sim.src, "Get-OrganizationConfig", {}, { delay = 1 })), 200)
  local st, body = call(sim, sim.src, "Get-OrganizationConfig", {}, { delay = 1 })
  lu.assertEquals(st, 429)
  lu.assertStrContains(body, "maximum number of concurrent requests per tenant")
  lu.assertEquals((call(sim, sim.tgt, "Get-OrganizationConfig", {}, { delay = 1 })), 200)
  sim.clock = sim.clock + 2
  lu.assertEquals((call(sim, sim.src, "Get-OrganizationConfig", {}, { delay = 1 })), 200)
end

TestSimExoRecipients = {}

function TestSimExoRecipients.test_mailuser_rules()
  local sim = new_sim()
  local t = sim.tgt
  -- without -PrimarySmtpAddress the external address becomes primary (the documented trap)
  local v = ok(sim, t, "New-MailUser", { Name = "trap", ExternalEmailAddress = "trap@contoso.com" })
  lu.assertEquals(v[1].PrimarySmtpAddress, "trap@contoso.com")
  v = ok(sim, t, "New-MailUser", { Name = "lara", ExternalEmailAddress = "lara@contoso.onmicrosoft.com",
    PrimarySmtpAddress = "lara@fabrikam.com", MicrosoftOnlineServicesID = "lara@fabrikam.com",
    Password = env.seal(sim, "P@ss-word-1") })
  lu.assertEquals(v[1].RecipientTypeDetails, "MailUser")
  lu.assertEquals(v[1].ExchangeGuid, model.ZERO_GUID)
  lu.assertItemsEquals(v[1].EmailAddresses, { "SMTP:lara@fabrikam.com", "smtp:lara@fabrikam.onmicrosoft.com" })
  local st, doc = call(sim, t, "New-MailUser", { Name = "lara", ExternalEmailAddress = "x@y.z" })
  lu.assertEquals(st, 400)
  lu.assertStrContains(detail(doc), "AlreadyExists")
  -- stamp the source attributes; EmailAddresses @{add=...} as the client encodes it
  local g = "0b1d8b6e-1111-4222-8333-944455556666"
  local b = assert(exo.bind("Set-MailUser", { Identity = "lara", ExchangeGuid = g,
    EmailAddresses = { add = { "x500:/o=ExchangeLabs/cn=Recipients/cn=abc-lara" } } }))
  lu.assertEquals((call(sim, t, nil, nil, { body = exo.encode_body(b) })), 200)
  v = ok(sim, t, "Get-MailUser", { Identity = "lara@fabrikam.com" })
  lu.assertEquals(v[1].ExchangeGuid, g)
  lu.assertTrue(#v[1].EmailAddresses == 3)
  -- the Entra user mirrors the addresses
  lu.assertEquals(#t.dir.objects[v[1].ExternalDirectoryObjectId].proxyAddresses, 3)
  -- a proxy used by another recipient is refused
  st, doc = call(sim, t, "Set-MailUser", { Identity = "lara", EmailAddresses = { add = { "smtp:trap@contoso.com" } } })
  lu.assertEquals(st, 400)
  lu.assertStrContains(detail(doc), "ProxyAddressExistsException")
  -- Get-Mailbox does not see mail users
  lu.assertEquals((call(sim, t, "Get-Mailbox", { Identity = "lara" })), 404)
  lu.assertEquals(#ok(sim, t, "Get-User", { Identity = "lara" }), 1)
  ok(sim, t, "Remove-MailUser", { Identity = "lara", Confirm = false })
  lu.assertEquals((call(sim, t, "Get-MailUser", { Identity = "lara" })), 404)
end

function TestSimExoRecipients.test_replication_lag()
  local sim = new_sim()
  sim.lag = 5
  ok(sim, sim.tgt, "New-MailUser", { Name = "fresh", ExternalEmailAddress = "fresh@contoso.com" })
  lu.assertEquals((call(sim, sim.tgt, "Get-MailUser", { Identity = "fresh" })), 404)
  sim.clock = sim.clock + 6
  lu.assertEquals((call(sim, sim.tgt, "Get-MailUser", { Identity = "fresh" })), 200)
end

function TestSimExoRecipients.test_org_customization_and_stats()
  local sim = new_sim()
  sim.tgt.exo.org_config.IsDehydrated = true
  local st, doc = call(sim, sim.tgt, "New-OrganizationRelationship", { Name = "o", DomainNames = { sim.src.id } })
  lu.assertEquals(st, 400)
  lu.assertStrContains(detail(doc), "Dehydrated")
  lu.assertEquals(ok(sim, sim.tgt, "Get-OrganizationConfig")[1].IsDehydrated, true)
  ok(sim, sim.tgt, "Enable-OrganizationCustomization")
  lu.assertEquals(ok(sim, sim.tgt, "Get-OrganizationConfig")[1].IsDehydrated, false)
  lu.assertEquals((call(sim, sim.tgt, "Enable-OrganizationCustomization")), 400)
  local r = first_user_mailbox(sim.src)
  local s = ok(sim, sim.src, "Get-MailboxStatistics", { Identity = r.Name })[1]
  lu.assertStrMatches(s.TotalItemSize, "^[%d%.]+ [KMGT]?B %([%d,]+ bytes%)$")
  lu.assertEquals(s.MailboxGuid, r.ExchangeGuid)
  local ad = ok(sim, sim.tgt, "Get-AcceptedDomain")
  lu.assertTrue(#ad >= 3)
end

TestSimExoSetup = {}

-- A target-owned migration app with a secret, optionally consented in the source.
local function migration_app(sim, consent)
  local tgt, src = sim.tgt, sim.src
  local app_id, secret = "6f1c5d1e-aaaa-4bbb-8ccc-123456789abc", "sim~secret~value~0123"
  model.add_object(sim.state, tgt, { ["@odata.type"] = model.ODATA.application, id = sim.rng:guid(),
    appId = app_id, displayName = "xtm", passwordCredentials = { { keyId = sim.rng:guid(),
    _secret = secret, endDateTime = sim.clock + 86400 } } })
  if consent then
    local sp = model.add_object(sim.state, src, { ["@odata.type"] = model.ODATA.servicePrincipal,
      id = sim.rng:guid(), appId = app_id, appOwnerOrganizationId = tgt.id, appRoles = {} })
    model.add_app_role_assignment(src, { id = sim.rng:guid(), principalId = sp.id,
      resourceId = model.sp_by_appid(src, EXO_APPID).id, appRoleId = MAILBOX_MIGRATION })
  end
  return app_id, secret
end

local function endpoint_params(sim, app_id, secret)
  return { Name = "ep", RemoteServer = "outlook.office.com", RemoteTenant = sim.src.initial_domain,
           Credentials = { UserName = app_id, Password = secret }, ExchangeRemoteMove = true,
           ApplicationId = app_id }
end

function TestSimExoSetup.test_orgrel_scopes_and_capabilities()
  local sim = new_sim()
  local st, doc = call(sim, sim.src, "New-OrganizationRelationship", { Name = "to-fab",
    DomainNames = { sim.tgt.id }, MailboxMovePublishedScopes = { "allstaff" } })
  lu.assertEquals(st, 400)
  lu.assertStrContains(select(2, detail(doc)), "mail-enabled security group")
  local v = ok(sim, sim.src, "New-OrganizationRelationship", { Name = "to-fab",
    DomainNames = { sim.tgt.id }, Enabled = true, MailboxMoveEnabled = true,
    MailboxMoveCapability = "RemoteOutbound", MailboxMovePublishedScopes = { "itadminssecurity" },
    OAuthApplicationId = "6f1c5d1e-aaaa-4bbb-8ccc-123456789abc" })
  lu.assertEquals(v[1].MailboxMoveCapability, { "RemoteOutbound" })
  ok(sim, sim.src, "Set-OrganizationRelationship", { Identity = "to-fab",
    MailboxMoveCapability = { "Inbound", "RemoteOutbound" } })
  v = ok(sim, sim.src, "Get-OrganizationRelationship", { Identity = "TO-FAB" })
  lu.assertEquals(v[1].MailboxMoveCapability, { "Inbound", "RemoteOutbound" })
  lu.assertEquals(v[1].DomainNames, { sim.tgt.id })
  st = call(sim, sim.src, "New-OrganizationRelationship", { Name = "dup", DomainNames = { sim.tgt.id } })
  lu.assertEquals(st, 400)
  ok(sim, sim.src, "Remove-OrganizationRelationship", { Identity = "to-fab", Confirm = false })
  lu.assertEquals((call(sim, sim.src, "Get-OrganizationRelationship", { Identity = "to-fab" })), 404)
end

function TestSimExoSetup.test_endpoint_verification()
  local sim = new_sim()
  local app_id, secret = migration_app(sim, false)
  local p = endpoint_params(sim, app_id, "wrong")
  local st, doc = call(sim, sim.tgt, "New-MigrationEndpoint", p)
  lu.assertEquals(st, 400)
  lu.assertStrContains(select(2, detail(doc)), "AADSTS7000215")
  p = endpoint_params(sim, app_id, secret)
  st, doc = call(sim, sim.tgt, "New-MigrationEndpoint", p)
  lu.assertEquals(st, 400)
  local typ, text = detail(doc)
  lu.assertStrContains(typ, "MigrationPermanentException")
  lu.assertStrContains(text, "admin consent")
  lu.assertStrContains(text, "adminconsent?client_id=" .. app_id)
  sim = new_sim()
  app_id, secret = migration_app(sim, true)
  p = endpoint_params(sim, app_id, secret)
  st, doc = call(sim, sim.tgt, "New-MigrationEndpoint", p)
  lu.assertEquals(st, 400)
  lu.assertStrContains(select(2, detail(doc)), "Tenant authorization error")
  ok(sim, sim.src, "New-OrganizationRelationship", { Name = "to-fab", DomainNames = { sim.tgt.id },
    Enabled = true, MailboxMoveEnabled = true, MailboxMoveCapability = "RemoteOutbound",
    OAuthApplicationId = app_id, MailboxMovePublishedScopes = { "itadminssecurity" } })
  local v = ok(sim, sim.tgt, "New-MigrationEndpoint", p)
  lu.assertEquals(v[1].EndpointType, "ExchangeRemoteMove")
  lu.assertEquals(v[1].RemoteTenant, sim.src.initial_domain)
  lu.assertNil(v[1]._secret)
  lu.assertEquals((call(sim, sim.tgt, "New-MigrationEndpoint", p)), 400)    -- exists
  -- -SkipVerification creates without the checks
  local q = endpoint_params(sim, app_id, "wrong")
  q.Name, q.SkipVerification = "ep2", true
  ok(sim, sim.tgt, "New-MigrationEndpoint", q)
  lu.assertEquals(#ok(sim, sim.tgt, "Get-MigrationEndpoint"), 2)
  -- legacy Key Vault procedure: AppSecretKeyVaultUrl instead of Credentials
  local k = endpoint_params(sim, app_id, nil)
  k.Name, k.Credentials = "ep3", nil
  k.AppSecretKeyVaultUrl = "https://kv1.vault.azure.net:443/certificates/c1/0123abcd"
  ok(sim, sim.tgt, "New-MigrationEndpoint", k)
end

TestSimExoMigration = {}

-- Full setup plus one prepared target MailUser for source mailbox r; returns app_id.
local function prepared(sim, r, opts)
  opts = opts or {}
  local app_id, secret = migration_app(sim, true)
  ok(sim, sim.src, "New-DistributionGroup", { Name = "MigScope", Type = "Security" })
  ok(sim, sim.src, "Add-DistributionGroupMember", { Identity = "MigScope", Member = r.Name })
  ok(sim, sim.src, "New-OrganizationRelationship", { Name = "to-fab", DomainNames = { sim.tgt.id },
    Enabled = true, MailboxMoveEnabled = true, MailboxMoveCapability = "RemoteOutbound",
    OAuthApplicationId = app_id, MailboxMovePublishedScopes = { "MigScope" } })
  ok(sim, sim.tgt, "New-OrganizationRelationship", { Name = "from-con", DomainNames = { sim.src.id },
    Enabled = true, MailboxMoveEnabled = true, MailboxMoveCapability = "Inbound" })
  ok(sim, sim.tgt, "New-MigrationEndpoint", endpoint_params(sim, app_id, secret))
  local alias = r.Alias
  ok(sim, sim.tgt, "New-MailUser", { Name = alias, ExternalEmailAddress = r.PrimarySmtpAddress,
    PrimarySmtpAddress = alias .. "@fabrikam.com" })
  local stamp = { Identity = alias, EmailAddresses = { add = { "x500:" .. r.LegacyExchangeDN } } }
  if not opts.no_guid then stamp.ExchangeGuid = r.ExchangeGuid end
  if r.ArchiveGuid ~= model.ZERO_GUID then stamp.ArchiveGuid = r.ArchiveGuid end
  ok(sim, sim.tgt, "Set-MailUser", stamp)
  local caps = r.PersistedCapabilities
  caps[#caps + 1] = "ExchangeT2TMbxMove"
  return alias .. "@fabrikam.com"
end

function TestSimExoMigration.test_batch_lifecycle()
  local sim = new_sim()
  sim.state.migration = { speed = 1000 }      -- an hour of moves in 3.6 s of simulated time
  local r = first_user_mailbox(sim.src)
  local addr = prepared(sim, r)
  local tv = ok(sim, sim.tgt, "Test-MigrationServerAvailability", { Endpoint = "ep", TestMailbox = addr })
  lu.assertEquals(tv[1].Result, "Success")
  local csv = "EmailAddress\n" .. addr .. "\n"
  local b = assert(exo.bind("New-MigrationBatch", { Name = "b1", SourceEndpoint = "ep", CSVData = csv,
    AutoStart = true, TargetDeliveryDomain = "fabrikam.onmicrosoft.com" }))
  local st, doc = call(sim, sim.tgt, nil, nil, { body = exo.encode_body(b) })
  lu.assertEquals(st, 200, cjson.encode(doc))
  lu.assertEquals(doc.value[1].Status, "Syncing")
  lu.assertEquals(ok(sim, sim.tgt, "Get-MigrationUser", { Identity = addr })[1].Status, "Syncing")
  lu.assertEquals(#ok(sim, sim.tgt, "Get-MoveRequest", { Flags = "CrossTenant" }), 1)
  sim.clock = sim.clock + 3600
  lu.assertEquals(ok(sim, sim.tgt, "Get-MigrationBatch", { Identity = "b1" })[1].Status, "Synced")
  ok(sim, sim.tgt, "Complete-MigrationBatch", { Identity = "b1", Confirm = false })
  lu.assertEquals(ok(sim, sim.tgt, "Get-MigrationBatch", { Identity = "b1" })[1].Status, "Completing")
  sim.clock = sim.clock + mig.engine.FINAL / 1000 + 1
  lu.assertEquals(ok(sim, sim.tgt, "Get-MigrationBatch", { Identity = "b1" })[1].Status, "Completed")
  -- conversions: target MailUser -> mailbox, source mailbox -> MailUser pointing at the target
  lu.assertEquals(ok(sim, sim.tgt, "Get-Mailbox", { Identity = addr })[1].RecipientTypeDetails, "UserMailbox")
  local s = ok(sim, sim.src, "Get-MailUser", { Identity = r.Guid })[1]
  lu.assertEquals(s.ExternalEmailAddress, "SMTP:" .. r.Alias .. "@fabrikam.onmicrosoft.com")
end

function TestSimExoMigration.test_per_user_failures()
  local sim = new_sim()
  local r = first_user_mailbox(sim.src)
  local addr = prepared(sim, r, { no_guid = true })
  local tv = ok(sim, sim.tgt, "Test-MigrationServerAvailability", { Endpoint = "ep", TestMailbox = addr })
  lu.assertEquals(tv[1].Result, "Failed")
  lu.assertStrContains(tv[1].ErrorDetail, "MissingExchangeGuidException")
  ok(sim, sim.tgt, "New-MigrationBatch", { Name = "b1", SourceEndpoint = "ep", AutoStart = true,
    CSVData = { ["@odata.type"] = "#Exchange.ByteArrayType",
                Data = exo.base64_encode("EmailAddress\n" .. addr .. "\n") } })
  local u = ok(sim, sim.tgt, "Get-MigrationUser", { Identity = addr })[1]
  lu.assertEquals(u.Status, "Failed")
  lu.assertStrContains(u.ErrorSummary, "MissingExchangeGuidException")
  -- the same user in a second batch fails there (ms-setup-and-prep.md §8), not in its first
  ok(sim, sim.tgt, "New-MigrationBatch", { Name = "b2", SourceEndpoint = "ep",
    CSVData = { Data = exo.base64_encode("EmailAddress\n" .. addr .. "\n") } })
  local dup = ok(sim, sim.tgt, "Get-MigrationUser", { BatchId = "b2" })[1]
  lu.assertEquals(dup.Status, "Failed")
  lu.assertStrContains(dup.ErrorSummary, "UserDuplicateInOtherBatchException")
  lu.assertEquals(ok(sim, sim.tgt, "Get-MigrationUser", { Identity = addr })[1].BatchId, "b1")
  ok(sim, sim.tgt, "Remove-MigrationBatch", { Identity = "b2", Confirm = false })
  -- fix and resume
  ok(sim, sim.tgt, "Set-MailUser", { Identity = addr, ExchangeGuid = r.ExchangeGuid })
  ok(sim, sim.tgt, "Start-MigrationBatch", { Identity = "b1" })
  lu.assertEquals(ok(sim, sim.tgt, "Get-MigrationUser", { Identity = addr })[1].Status, "Syncing")
  ok(sim, sim.tgt, "Remove-MigrationBatch", { Identity = "b1", Confirm = false })
  lu.assertEquals(#ok(sim, sim.tgt, "Get-MigrationBatch"), 0)
end

TestSimExoGroupsDkim = {}

function TestSimExoGroupsDkim.test_groups()
  local sim = new_sim()
  local g = ok(sim, sim.src, "New-DistributionGroup", { Name = "Scope1", Type = "sec" })[1]
  lu.assertEquals(g.RecipientTypeDetails, "MailUniversalSecurityGroup")
  local r = first_user_mailbox(sim.src)
  ok(sim, sim.src, "Add-DistributionGroupMember", { Identity = "Scope1", Member = r.PrimarySmtpAddress })
  local st, doc = call(sim, sim.src, "Add-DistributionGroupMember", { Identity = "Scope1", Member = r.Name })
  lu.assertEquals(st, 400)
  lu.assertStrContains(detail(doc), "MemberAlreadyExistsException")
  local m = ok(sim, sim.src, "Get-DistributionGroupMember", { Identity = "Scope1" })
  lu.assertEquals(#m, 1)
  lu.assertEquals(m[1].Name, r.Name)
  -- Graph sees the same membership
  lu.assertTrue(sim.src.dir.members[g.ExternalDirectoryObjectId][r.ExternalDirectoryObjectId])
  ok(sim, sim.src, "Remove-DistributionGroupMember", { Identity = "Scope1", Member = r.Name, Confirm = false })
  lu.assertEquals(#ok(sim, sim.src, "Get-DistributionGroupMember", { Identity = "Scope1" }), 0)
  ok(sim, sim.src, "Remove-DistributionGroup", { Identity = "Scope1", Confirm = false })
end

function TestSimExoGroupsDkim.test_dkim()
  local sim = new_sim()
  local t = sim.tgt
  local st, doc = call(sim, t, "New-DkimSigningConfig", { DomainName = "fabrikam.com", Enabled = true })
  lu.assertEquals(st, 400)
  lu.assertStrContains(select(2, detail(doc)), "CNAME record does not exist for this config")
  local c = ok(sim, t, "New-DkimSigningConfig", { DomainName = "fabrikam.co.uk", Enabled = false })[1]
  lu.assertEquals(c.Selector1CNAME, "selector1-fabrikam-co-uk._domainkey.fabrikam.onmicrosoft.com")
  t.exo.dns = { ["selector1._domainkey.fabrikam.co.uk"] = c.Selector1CNAME .. ".",
                ["selector2._domainkey.fabrikam.co.uk"] = c.Selector2CNAME }
  ok(sim, t, "Set-DkimSigningConfig", { Identity = "fabrikam.co.uk", Enabled = true })
  lu.assertEquals(ok(sim, t, "Get-DkimSigningConfig", { Identity = "fabrikam.co.uk" })[1].Status, "Valid")
  ok(sim, t, "Rotate-DkimSigningConfig", { Identity = "fabrikam.co.uk", KeySize = 2048 })
  lu.assertEquals((call(sim, t, "Rotate-DkimSigningConfig", { Identity = "fabrikam.co.uk" })), 400)
end

-- Get-Mailbox / Get-Recipient page over the recipient index: -Filter, -RecipientTypeDetails
-- and -ResultSize across pages, in name order, none twice, and a mailbox created between two
-- pages shows up once if it sorts after the cursor (the skip token is the last key, not an
-- offset that a new object would shift).
function TestSimExoGateway.test_lazy_listing_filters_result_size_and_inserts_between_pages()
  local sim = new_sim(120)
  local function pages(cmdlet, params, size, between)
    local out, skip, n = {}, nil, 0
    repeat
      local st, d = call(sim, sim.src, cmdlet, params, { prefer = "odata.maxpagesize=" .. size,
                                                          query = { ["$skiptoken"] = skip } })
      lu.assertEquals(st, 200)
      for _, o in ipairs(d.value) do out[#out + 1] = o end
      local nl = d["@odata.nextLink"]
      skip = nl and nl:match("skiptoken=([%w%.]+)")
      n = n + 1
      if between and n == 1 then between() end
    until not nl
    return out
  end
  local got = pages("Get-Mailbox", { RecipientTypeDetails = "UserMailbox", ResultSize = 20 }, 7)
  lu.assertEquals(#got, 20)
  local seen = {}
  for i, o in ipairs(got) do
    lu.assertEquals(o.RecipientTypeDetails, "UserMailbox")
    lu.assertNil(seen[o.Guid]); seen[o.Guid] = true
    if i > 1 then lu.assertTrue(got[i - 1].Name:lower() <= o.Name:lower()) end
  end
  local f = pages("Get-Recipient", { Filter = "RecipientTypeDetails -eq 'SharedMailbox'",
                                     ResultSize = "Unlimited" }, 3)
  lu.assertTrue(#f > 0)
  for _, o in ipairs(f) do lu.assertEquals(o.RecipientTypeDetails, "SharedMailbox") end
  local all = pages("Get-Recipient", { ResultSize = "Unlimited" }, 50, function()
    ok(sim, sim.src, "New-MailUser", { Name = "zzzz-late-arrival", ExternalEmailAddress = "late@example.com" })
  end)
  local late = 0
  for _, o in ipairs(all) do if o.Name == "zzzz-late-arrival" then late = late + 1 end end
  lu.assertEquals(late, 1)
end
