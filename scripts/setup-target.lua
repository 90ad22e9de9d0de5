-- setup-target: SetupCrossTenantRelationshipForTargetTenant.ps1, idempotent, with the current
-- (client secret) procedure by default and the legacy Key Vault certificate procedure on request.
local tenant = require "t2t.tenant"
local session = require "t2t.tenant.session"

local must = session.must

-- The source tenant's id and initial domain: parameters, the source profile, or the hand-off file.
local function source_of(ctx, p, src, prior)
  local id = p.source_tenant_id or (src and src.id) or (prior and prior.source_tenant_id)
  local dom = p.source_domain or (src and src.domain) or (prior and prior.source_domain)
  if not id or not dom then
    ctx:usage("which source tenant? pass --source-tenant-id GUID and --source-domain NAME.onmicrosoft.com " ..
             "(the source admin can read both in Entra ID > Overview), or --source PROFILE")
  end
  if not id:match("^%x+%-%x+%-%x+%-%x+%-%x+$") then
    ctx:fail("--source-tenant-id must be the source tenant's GUID, not a domain name ('%s'): the organization " ..
             "relationship is keyed by it (DomainNames)", id)
  end
  return id, dom
end

-- Consent in the source: ask its directory when we can, else the admin; true when ready.
local function wait_for_source(ctx, p, t, src, app)
  if src then
    local deadline = os.time() + (p.wait_consent or 0)
    while true do
      local st = src:consent_status(app.appId, t.id)
      local rels = src:org_relationships(t.id)
      local ok_rel = rels and rels.keyed and (rels.keyed.OAuthApplicationId or ""):lower() == app.appId:lower()
      if st and st.consented and ok_rel then ctx:say("  source %s has consented and allows app %s", src.name, app.appId) return true end
      if os.time() >= deadline then
        ctx:say("  source %s is not ready yet: %s", src.name, not (st and st.consented) and "no admin consent for the app"
                or "its organization relationship does not name the app (run setup-source)")
        return false
      end
      ctx:say("  waiting for the source admin (consent and setup-source)... %ds left", deadline - os.time())
      t.sleep(math.min(10, math.max(1, deadline - os.time())))
    end
  end
  if (p.wait_consent or 0) > 0 or ctx.opts.yes then return true end
  local ok, term = pcall(require, "t2t.core.term")
  if ok and term.isatty(0) and not ctx.json then
    io.write("\nSend the consent URL and the hand-off file to the source admin. When they have consented and\n" ..
             "run setup-source, press Enter to create the migration endpoint (Ctrl-D stops here; re-running\n" ..
             "setup-target later continues where it stopped): ")
    io.flush()
    return io.read("l") ~= nil
  end
  return true   -- not interactive: try, and explain what the source admin must do if it fails
end

return runbook {
  name = "setup-target",
  description = "Set up the TARGET tenant for cross-tenant mailbox migration (SetupCrossTenantRelationship" ..
    "ForTargetTenant.ps1).\n\n" ..
    "Idempotent: reads first and changes only what differs; --plan shows the changes without making them.\n" ..
    "Steps: Enable-OrganizationCustomization if the tenant is dehydrated (first, as the script checks it);\n" ..
    "the multi-tenant migration app (redirect https://office.com, Mailbox.Migration on Office 365 Exchange\n" ..
    "Online; + User.Invite.All with --invite), keyed by the source tenant id and never duplicated; a client secret\n" ..
    "(current procedure) or a self-signed certificate in Azure Key Vault (--keyvault, the legacy procedure);\n" ..
    "the app's service principal and admin consent in the target; the consent URL for the source admin and a\n" ..
    "hand-off JSON file with what they need; optional B2B invitation; the organization relationship keyed by\n" ..
    "the SOURCE TENANT ID (capability Inbound merged in); then, once the source has consented and run\n" ..
    "setup-source, the migration endpoint.  Names come from the tenants' initial domains (TARGET_SOURCE,\n" ..
    "TARGET_Friends_SOURCE), never from profile names, and stay within Exchange's 64 characters.  With\n" ..
    "--keyvault the subscription and the location are checked before anything is changed.\n\n" ..
    "A new client secret is shown once on the terminal or written to --secret-file (mode 0600); it is never\n" ..
    "logged. With --sim the target defaults to the simulator's fabrikam and the source to contoso.",
  -- What it needs in each tenant (docs/roles.md); preflight checks it before the first change.
  needs = {
    target = {
      graph = { "Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All" },
      exchange = { "Organization Configuration", "Federated Sharing", "Migration" },
      when = { invite = { graph = { "User.Invite.All", "User.Read.All" } },
               keyvault = { azure = { "Owner (or Contributor + User Access Administrator) on the subscription" } } },
    },
    source = { graph = { "Application.Read.All" }, exchange = { "View-Only Configuration" } },
  },
  params = {
    { name = "target", type = "string", help = "profile of the target tenant (default with --sim: fabrikam)" },
    { name = "source", type = "string", help = "profile of the source tenant, when you administer both (optional)" },
    { name = "source-tenant-id", type = "string", help = "source tenant GUID (ResourceTenantId)" },
    { name = "source-domain", type = "string", help = "source initial domain, NAME.onmicrosoft.com (ResourceTenantDomain)" },
    { name = "handoff", type = "string", default = "t2t-handoff.json", help = "hand-off file written for the source admin" },
    { name = "app-name", type = "string", help = "app display name (default TARGET_Friends_SOURCE)" },
    { name = "app-id", type = "string", help = "use this existing app (ExistingApplicationId)" },
    { name = "client-secret", type = "secret", help = "the app's existing client secret, for the endpoint" },
    { name = "secret-file", type = "string", help = "keeps the client secret: read if it exists, else a new secret is written here (0600)" },
    { name = "new-secret", type = "boolean", default = false, help = "make a new client secret (rotation) and recreate the endpoint" },
    { name = "secret-days", type = "integer", default = 180, help = "validity of a new client secret, days" },
    { name = "invite", type = "string", help = "send a B2B invitation to this source admin address (ResourceTenantAdminEmail)" },
    { name = "reinvite", type = "boolean", default = false, help = "send the invitation again even if the guest exists" },
    { name = "wait-consent", type = "integer", default = 0, help = "seconds to wait for the source (needs --source), or to proceed without asking" },
    { name = "endpoint-name", type = "string", help = "migration endpoint name (default TARGET_SOURCE)" },
    { name = "orgrel-name", type = "string", help = "organization relationship name when one is created (default TARGET_SOURCE)" },
    { name = "max-concurrent-migrations", type = "integer", help = "MaxConcurrentMigrations of the endpoint" },
    { name = "skip-verification", type = "boolean", default = false, help = "create the endpoint without Exchange's end-to-end check" },
    { name = "skip-endpoint", type = "boolean", default = false, help = "stop before the endpoint (first half, before the source is ready)" },
    { name = "keyvault", type = "boolean", default = false, help = "legacy procedure: certificate in Azure Key Vault (AppSecretKeyVaultUrl)" },
    { name = "subscription", type = "string", help = "--keyvault: Azure subscription id (SubscriptionId)" },
    { name = "resource-group", type = "string", help = "--keyvault: resource group (ResourceGroup)" },
    { name = "vault", type = "string", help = "--keyvault: key vault name (KeyVaultName)" },
    { name = "location", type = "string", default = "westeurope", help = "--keyvault: Azure location (AzureResourceLocation)" },
    { name = "certificate-name", type = "string", default = "TenantFriendingAppSecret", help = "--keyvault: certificate name" },
    { name = "certificate-subject", type = "string", help = "--keyvault: subject, CN=... (default CN=TARGET_SOURCE)" },
  },
  run = function(ctx, p)
    local t = must(ctx, session.open(ctx, "target", p.target))
    if not t then ctx:usage("which target tenant? pass --target PROFILE (or --sim)") end
    local src
    if p.source or session.sim(ctx) then src = must(ctx, session.open(ctx, "source", p.source)) end
    local prior = session.read_handoff(p.handoff)
    -- checked before the first change: a run never changes the tenant and then cannot record it
    if not ctx.opts.plan then ctx:output(p.handoff, "the hand-off file (--handoff)") end
    if p.secret_file then ctx:output(p.secret_file, "the secret file (--secret-file)") end
    local sid, sdom = source_of(ctx, p, src, prior)
    if src and src.cloud ~= t.cloud then
      ctx:fail("the source is in the %s cloud and the target in %s: cross-cloud moves are not supported", src.cloud, t.cloud)
    end
    if prior and prior.cloud and prior.cloud ~= t.cloud then
      ctx:fail("%s was written for the %s cloud, the target is in %s: wrong cloud (cross-cloud moves are not supported)",
               p.handoff, prior.cloud, t.cloud)
    end
    ctx:say("Target %s (%s)  <-  source %s (%s)%s", t.name, t.id, sdom, sid, ctx.opts.plan and "   [plan: no changes]" or "")
    -- names from the tenants themselves (their initial domains), never the profile names, and
    -- within Exchange's 64 characters; the app is keyed by the source tenant id
    local slabel, tlabel = sdom:match("^([^.]+)"), t:label()
    local pair = tenant.exo_name(tlabel .. "_" .. slabel)
    if p.keyvault then                     -- subscription and location, before any change
      must(ctx, require("t2t.tenant.keyvault").precheck(t, { subscription = p.subscription,
        resource_group = p.resource_group, vault = p.vault, location = p.location }))
    end

    ctx:say("\n1. Exchange Online organization (%s)", t.name)
    must(ctx, t:ensure_org_customization())     -- the script checks dehydration first

    ctx:say("\n2. Migration application (Entra ID, %s)", t.name)
    local legacy = t.name ~= tlabel and tenant.app_name(t.name, slabel) or nil
    local app = must(ctx, t:ensure_app { name = p.app_name or tenant.app_name(tlabel, slabel), app_id = p.app_id,
                                         invite = p.invite ~= nil, key = tenant.app_key(sid), also = legacy })
    if not app.planned then
      must(ctx, session.clean_pending_secret(ctx, t, app, p.secret_file))
      t:check_credentials(app, ctx:expiry_window())   -- --warn-expiry
    end
    local sp = must(ctx, t:ensure_sp(app))
    must(ctx, t:grant_consent(sp, tenant.EXO_APP_ID, "Mailbox.Migration"))
    if p.invite then must(ctx, t:grant_consent(sp, tenant.GRAPH_APP_ID, "User.Invite.All")) end

    local kv_url
    if p.keyvault then
      ctx:say("\n2b. Legacy procedure: certificate in Azure Key Vault")
      local kv = require "t2t.tenant.keyvault"
      local cert = must(ctx, kv.ensure(t, {
        subscription = p.subscription, resource_group = p.resource_group, vault = p.vault, location = p.location,
        certificate = p.certificate_name, subject = p.certificate_subject or ("CN=" .. pair) }))
      kv_url = cert.id
      must(ctx, t:add_certificate(app, cert))
    end

    local consent = tenant.consent_url(t.cloud, sdom, app.appId)
    ctx:say("\n3. Consent URL for the source admin (%s):\n   %s", sdom, consent)
    local handoff = { t2t_handoff = 1, cloud = t.cloud, app_id = app.appId, app_name = app.displayName,
                      target_tenant_id = t.id, target_domain = t.domain, source_tenant_id = sid,
                      source_domain = sdom, consent_url = consent,
                      endpoint = tenant.exo_name(p.endpoint_name or pair),
                      keyvault_url = kv_url }
    if ctx.opts.plan then
      ctx:say("   (plan: would write the hand-off file %s)", p.handoff)
    else
      local ok, err = session.write_handoff(p.handoff, handoff)
      if not ok then ctx:fail("cannot write the hand-off file %s: %s", p.handoff, tostring(err)) end
      ctx:say("   hand-off file for the source admin: %s (app id, tenant ids; no secret)", p.handoff)
    end
    if p.invite then must(ctx, t:invite(p.invite, { redirect = consent, app = app, resend = p.reinvite })) end

    ctx:say("\n4. Organization relationship (%s)", t.name)
    must(ctx, t:ensure_org_relationship { partner_id = sid, partner_domains = { sdom, src and src.domain },
                                          capability = "Inbound", name = tenant.exo_name(p.orgrel_name or pair) })

    ctx:summary("application", string.format("%s (%s)", app.displayName, app.appId))
    ctx:summary("consent URL", consent)
    local result = { app_id = app.appId, target_tenant_id = t.id, source_tenant_id = sid, consent_url = consent }
    if p.skip_endpoint then
      ctx:say("\nStopped before the migration endpoint (--skip-endpoint). Next: the source admin runs\n" ..
              "  t2t run setup-source --handoff %s\nthen run setup-target again.", p.handoff)
      ctx:summary("migration endpoint", "not yet (--skip-endpoint)")
      return result
    end

    ctx:say("\n5. Migration endpoint")
    local name = tenant.exo_name(p.endpoint_name or pair)
    local existing = not app.planned and t:find_endpoint(name)
    local current = existing and (existing.ApplicationId or ""):lower() == app.appId:lower()
                    and (existing.RemoteTenant or ""):lower() == sdom:lower()
    if not current and not app.planned and not wait_for_source(ctx, p, t, src, app) then
      ctx:fail("the source tenant %s is not ready for the endpoint: its admin must open the consent URL above and " ..
               "accept, then run `t2t run setup-source --handoff %s`; run setup-target again afterwards " ..
               "(or raise --wait-consent)", sdom, p.handoff)
    end
    -- The secret, only when the endpoint must be made: given, kept in --secret-file, or new.
    local given = p.client_secret or session.read_secret_file(p.secret_file)
    local function secret()
      if given and not p.new_secret then return given end
      if app.planned then return nil end
      local ok, why = session.can_deliver(ctx, p.secret_file)
      if not ok then ctx:fail("%s", why) end
      local journal = session.secret_journal(t, app, p.secret_file)
      local s, err = t:add_secret(app, { days = p.secret_days, before = session.journal_writer(journal, app) })
      if not s then if err == "planned" then return nil end ctx:fail("%s", tostring(err)) end
      must(ctx, session.deliver(ctx, s, p.secret_file, journal))
      given = s.secret
      return s.secret
    end
    local ep = must(ctx, t:ensure_endpoint { name = name, remote_tenant = sdom, app_id = app.appId,
                                             secret = secret, kv_url = kv_url,
                                             max_concurrent = p.max_concurrent_migrations,
                                             skip_verification = p.skip_verification,
                                             recreate = p.new_secret and not kv_url })
    if ep and not ctx.opts.plan then
      ctx:say("MigrationEndpoint '%s' is ready in %s for source %s", name, t.name, sdom)
    end
    ctx:summary("migration endpoint", name)
    ctx:summary("hand-off file", p.handoff)
    if #t.warnings > 0 then ctx:summary("warnings", #t.warnings) end
    ctx:say("\nTarget setup complete. Next: t2t run verify-setup --handoff %s", p.handoff)
    result.endpoint = name
    return result
  end,
}
