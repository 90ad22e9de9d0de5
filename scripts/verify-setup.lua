-- verify-setup: VerifySetup.ps1 and the CSS-Exchange -CheckOrgs rules, for either side or both.
local session = require "t2t.tenant.session"
local verify = require "t2t.tenant.verify"

local must = session.must

return runbook {
  name = "verify-setup",
  description = "Verify the cross-tenant migration setup (VerifySetup.ps1 and the CSS-Exchange -CheckOrgs rules).\n\n" ..
    "Read-only. Checks the target (app registration and owner, Mailbox.Migration consent, credential expiry,\n" ..
    "dehydration, organization relationship keyed by the source tenant ID with Inbound, the migration\n" ..
    "endpoint: app, RemoteTenant, RemoteServer of the cloud, Key Vault URL for the legacy procedure) and the\n" ..
    "source (app consented and owned by the target, organization relationship keyed by the target tenant ID\n" ..
    "with RemoteOutbound, OAuthApplicationId and MailboxMovePublishedScopes, each scope group a mail-enabled\n" ..
    "security group). Both sides when both profiles are given (with --sim: both). Prints [Passed], [Warnings]\n" ..
    "and [Failed] lines as the script does, each failure saying what is wrong and how to fix it; exit 1 if\n" ..
    "anything failed. Unlike VerifySetup.ps1 it reports the app-owner check, and treats a relationship set up\n" ..
    "for moves in both directions as a warning.",
  -- Read-only; what it reads in each tenant (docs/roles.md).
  needs = {
    target = { graph = { "Application.Read.All" }, exchange = { "View-Only Configuration", "Migration" },
               when = { ["keyvault-url"] = { azure = { "Reader on the key vault's resource group" } } } },
    source = { graph = { "Application.Read.All" }, exchange = { "View-Only Configuration", "View-Only Recipients" } },
  },
  params = {
    { name = "target", type = "string", help = "profile of the target tenant" },
    { name = "source", type = "string", help = "profile of the source tenant" },
    { name = "side", type = "string", help = "target, source or both (default: every side with a profile)" },
    { name = "handoff", type = "string", default = "t2t-handoff.json", help = "hand-off file from setup-target" },
    { name = "app-id", type = "string", help = "the migration app id (ApplicationId)" },
    { name = "source-tenant-id", type = "string", help = "source tenant GUID (PartnerTenantId, verifying the target)" },
    { name = "source-domain", type = "string", help = "source initial domain (PartnerTenantDomain)" },
    { name = "target-tenant-id", type = "string", help = "target tenant GUID (PartnerTenantId, verifying the source)" },
    { name = "keyvault-url", type = "string", help = "legacy: the Key Vault certificate URL the endpoint must use" },
  },
  run = function(ctx, p)
    local h, herr = session.read_handoff(p.handoff)
    if herr then ctx:fail("%s", tostring(herr)) end
    h = h or {}
    local sim = session.sim(ctx) ~= nil
    local side = p.side or ((p.target or sim) and (p.source or sim) and "both")
                 or (p.target and "target") or (p.source and "source")
    if not side then ctx:usage("nothing to verify: pass --target PROFILE and/or --source PROFILE (or --sim)") end
    local t = (side == "target" or side == "both") and must(ctx, session.open(ctx, "target", p.target)) or nil
    local s = (side == "source" or side == "both") and must(ctx, session.open(ctx, "source", p.source)) or nil
    local app_id = p.app_id or h.app_id
    if not app_id then ctx:usage("which app? pass --handoff FILE or --app-id") end
    local passed, warned, failed = 0, 0, 0
    local function show(title, checks)
      ctx:say("\n%s", title)
      for _, c in ipairs(checks) do
        if c.status == "Passed" then passed = passed + 1 ctx:say("[Passed]  %s", c.what)
        elseif c.status == "Warnings" then warned = warned + 1 ctx:say("[Warnings] %s\n           -> %s", c.what, c.fix)
        else
          failed = failed + 1
          ctx:say("[Failed]  %s\n          -> fix: %s", c.what, c.fix)
          ctx:item(c.what, false, c.fix)
        end
      end
    end
    local out = {}
    if t then
      local sid = p.source_tenant_id or h.source_tenant_id or (s and s.id)
      local sdom = p.source_domain or h.source_domain or (s and s.domain)
      if not sid or not sdom then ctx:usage("verifying the target needs the source: --handoff, or --source-tenant-id and --source-domain") end
      local checks = verify.target(t, { app_id = app_id, partner_id = sid, partner_domain = sdom,
                                        partner_domains = { sdom, s and s.domain }, partner_label = sdom,
                                        kv_url = p.keyvault_url or h.keyvault_url, window_days = ctx:expiry_window() })
      show(string.format("Target %s (%s)", t.name, t.id), checks)
      out.target = checks
    end
    if s then
      local tid = p.target_tenant_id or h.target_tenant_id or (t and t.id)
      if not tid then ctx:usage("verifying the source needs the target tenant id: --handoff or --target-tenant-id") end
      local checks = verify.source(s, { app_id = app_id, partner_id = tid,
                                        partner_domains = { h.target_domain, t and t.domain }, partner_label = tid })
      show(string.format("Source %s (%s)", s.name, s.id), checks)
      out.source = checks
    end
    ctx:summary("passed", passed)
    ctx:summary("warnings", warned)
    ctx:summary("failed", failed)
    return out
  end,
}
