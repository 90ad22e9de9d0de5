-- setup-source: SetupCrossTenantRelationshipForResourceTenant.ps1, idempotent, plus what that
-- script promised and never did (scope group and consent checks).
local tenant = require "t2t.tenant"
local session = require "t2t.tenant.session"

local must = session.must

return runbook {
  name = "setup-source",
  description = "Set up the SOURCE tenant for cross-tenant mailbox migration (SetupCrossTenantRelationship" ..
    "ForResourceTenant.ps1).\n\n" ..
    "Idempotent: reads first and changes only what differs; --plan shows the changes without making them.\n" ..
    "Takes the target's app id and tenant id from the hand-off file that setup-target wrote (or from\n" ..
    "--app-id/--target-tenant-id). Checks that the app is consented in this tenant (--consent grants it here\n" ..
    "with this tenant's admin rights, as opening the consent URL does); enables organization customization\n" ..
    "if the tenant is dehydrated; checks that the scope group exists and is a MAIL-ENABLED SECURITY group\n" ..
    "(--create-scope-group creates it with New-DistributionGroup -Type Security; --members adds mailboxes);\n" ..
    "then the organization relationship keyed by the TARGET TENANT ID with RemoteOutbound merged into its\n" ..
    "capability, OAuthApplicationId = the app and MailboxMovePublishedScopes = the scope group(s): they\n" ..
    "REPLACE the relationship's current scopes, as the script and the current docs do (the plan shows\n" ..
    "before -> after); --merge-scopes keeps the current ones and adds these.  Dehydration is checked first.\n" ..
    "With --sim the source defaults to the simulator's contoso.",
  -- What it needs (docs/roles.md); preflight checks it before the first change.
  needs = {
    graph = { "Application.Read.All" },
    exchange = { "Organization Configuration", "Distribution Groups", "Federated Sharing" },
    when = { consent = { graph = { "Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All" } } },
    -- when the scope group is missing, whether a plain security group has its name (a clearer message)
    optional = { graph = { "GroupMember.Read.All" } },
  },
  params = {
    { name = "source", type = "string", help = "profile of the source tenant (default with --sim: contoso)" },
    { name = "handoff", type = "string", default = "t2t-handoff.json", help = "hand-off file from setup-target" },
    { name = "app-id", type = "string", help = "the target's migration app id (ApplicationId)" },
    { name = "target-tenant-id", type = "string", help = "target tenant GUID (TargetTenantId)" },
    { name = "target-domain", type = "string", help = "target initial domain (TargetTenantDomain)" },
    { name = "scope-group", type = "list", default = { "T2T-Migration-Scope" },
      help = "mail-enabled security group(s) that scope the migration (SourceMailboxMovePublishedScopes)" },
    { name = "create-scope-group", type = "boolean", default = false, help = "create the scope group when it does not exist" },
    { name = "merge-scopes", type = "boolean", default = false,
      help = "keep the relationship's current scope groups and add these (default: these replace them, as the script does)" },
    { name = "members", type = "list", help = "mailboxes to add to the (first) scope group" },
    { name = "consent", type = "boolean", default = false, help = "grant the app's admin consent in this tenant now" },
    { name = "orgrel-name", type = "string", help = "organization relationship name when one is created (default TARGET_SOURCE)" },
  },
  run = function(ctx, p)
    local s = must(ctx, session.open(ctx, "source", p.source))
    if not s then ctx:usage("which source tenant? pass --source PROFILE (or --sim)") end
    local h, herr = session.read_handoff(p.handoff)
    if herr then ctx:fail("%s", tostring(herr)) end
    local app_id = p.app_id or (h and h.app_id)
    local tid = p.target_tenant_id or (h and h.target_tenant_id)
    local tdom = p.target_domain or (h and h.target_domain)
    if not app_id or not tid then
      ctx:usage("which target app? pass --handoff FILE (written by setup-target; %s not found), or --app-id and " ..
               "--target-tenant-id", p.handoff)
    end
    if not tid:match("^%x+%-%x+%-%x+%-%x+%-%x+$") then
      ctx:fail("--target-tenant-id must be the target tenant's GUID, not a domain name ('%s'): the organization " ..
               "relationship is keyed by it (DomainNames)", tid)
    end
    if h and h.cloud and h.cloud ~= s.cloud then
      ctx:fail("the hand-off file is for the %s cloud and this tenant is in %s: wrong cloud (cross-cloud moves are " ..
               "not supported)", h.cloud, s.cloud)
    end
    if h and h.source_tenant_id and h.source_tenant_id:lower() ~= s.id:lower() then
      ctx:fail("the hand-off file was written for source tenant %s (%s), but this is %s (%s): wrong profile or file",
               tostring(h.source_domain), h.source_tenant_id, s.domain, s.id)
    end
    local tlabel = (tdom or tid):match("^([^.]+)")
    ctx:say("Source %s (%s)  ->  target %s (%s), app %s%s", s.name, s.id, tostring(tdom or "?"), tid, app_id,
            ctx.opts.plan and "   [plan: no changes]" or "")

    ctx:say("\n1. Exchange Online organization (%s)", s.name)
    must(ctx, s:ensure_org_customization())     -- the script checks dehydration first

    ctx:say("\n2. Consent for app %s in %s", app_id, s.name)
    local st = must(ctx, s:consent_status(app_id, tid))
    if st.sp and not st.owner_ok then
      ctx:fail("app %s in this tenant belongs to tenant %s, not to the target %s: wrong app id?", app_id,
               tostring(st.owner), tid)
    end
    if st.consented then
      ctx:say("= app %s is consented (Mailbox.Migration)", app_id)
    elseif p.consent then
      local sp = must(ctx, s:ensure_sp { appId = app_id, displayName = h and h.app_name or app_id })
      must(ctx, s:grant_consent(sp, tenant.EXO_APP_ID, "Mailbox.Migration"))
    else
      ctx:fail("app %s is not consented in %s yet. As a source admin, open\n  %s\nand accept (or re-run with --consent " ..
               "to grant it with this profile's rights), then run setup-source again",
               app_id, s.name, tenant.consent_url(s.cloud, s.domain, app_id))
    end

    ctx:say("\n3. Scope group and organization relationship (%s)", s.name)
    local scopes = {}
    for i, name in ipairs(p.scope_group) do
      local g = must(ctx, s:ensure_scope_group(name, { create = p.create_scope_group }))
      scopes[#scopes + 1] = g.Name or name
      if i == 1 and p.members then must(ctx, s:ensure_members(g.Name or name, p.members, g.planned)) end
    end
    must(ctx, s:ensure_org_relationship { partner_id = tid, partner_domains = { tdom }, capability = "RemoteOutbound",
                                          name = tenant.exo_name(p.orgrel_name or (tlabel .. "_" .. s:label())),
                                          oauth_app_id = app_id, scopes = scopes, merge_scopes = p.merge_scopes })
    ctx:summary("app allowed", app_id)
    ctx:summary("scope groups", table.concat(scopes, ", "))
    if #s.warnings > 0 then ctx:summary("warnings", #s.warnings) end
    ctx:say("\nSource setup complete. Next: the target admin runs setup-target again (it creates the migration " ..
            "endpoint), then verify-setup.")
    return { app_id = app_id, target_tenant_id = tid, source_tenant_id = s.id, scopes = scopes }
  end,
}
