-- t2t.tenant.verify: the checks of VerifySetup.ps1 (ms-setup-and-prep.md §2.5) and of the
-- CSS-Exchange -CheckOrgs rules (§3.2), for the target side, the source side, or both.
-- Read-only.  Each check is {status = "Passed"|"Failed"|"Warnings", what, fix}, printed as the
-- script prints them ([Passed], [Failed], [Warnings]); a failure says what is wrong (the script's
-- own wording where it has one), a pass what holds.  The original script's bugs are not repeated
-- (the owner-check message it lost is reported; the User.Invite.All warning of
-- VerifySetupDeprecated.ps1 fires; an OrgRel set up for moves both ways is a warning, not the
-- exact-"Inbound" failure).
local tenant = require "t2t.tenant"

local M = {}

local lower = function(s) return type(s) == "string" and s:lower() or s end

local function checker()
  local list = {}
  local c = { list = list }
  function c.pass(what) list[#list + 1] = { status = "Passed", what = what } end
  function c.fail(what, fix) list[#list + 1] = { status = "Failed", what = what, fix = fix } end
  function c.warn(what, fix) list[#list + 1] = { status = "Warnings", what = what, fix = fix } end
  -- check(ok, what holds, what is wrong, fix)
  function c.check(ok, good, bad, fix) if ok then c.pass(good) else c.fail(bad, fix) end end
  return c
end

-- The application and its consent in tenant t.  side: "target" (owns the app) or "source".
local function check_app(t, c, o, side)
  local st, err = t:consent_status(o.app_id)
  if not st then c.fail("read service principals in " .. t.name, tostring(err)) return end
  if not st.sp then
    c.fail(string.format("App [%s] is not registered in [%s] tenant", o.app_id, t.name),
      side == "source" and ("the source admin has not consented yet: open " ..
        tenant.consent_url(t.cloud, t.domain or t.id, o.app_id) .. " as a source admin and accept")
      or "run setup-target (it creates the app's service principal)")
    return
  end
  c.pass(string.format("App [%s] is registered in [%s] tenant", o.app_id, t.name))
  local owner_tid = side == "target" and t.id or o.partner_id
  if owner_tid then
    local whose = side == "target" and "target" or "partner (target)"
    c.check(lower(st.sp.appOwnerOrganizationId) == lower(owner_tid),
      string.format("App [%s] is owned by the %s tenant [%s]", o.app_id, whose, owner_tid),
      string.format("App [%s] is owned by tenant [%s], not by the %s tenant [%s]", o.app_id,
        tostring(st.sp.appOwnerOrganizationId), whose, owner_tid),
      "the app must be registered in the target tenant and consented in the source (VerifySetup.ps1 " ..
      "meant to say this but lost the message): check the app id")
  end
  c.check(st.consented, string.format("App [%s] has [Mailbox.Migration] permission on Exchange, consented " ..
    "by an administrator", o.app_id),
    string.format("App [%s] does not have [Mailbox.Migration] permission on Exchange setup or the permission " ..
      "is not consented by an Administrator", o.app_id),
    side == "source" and ("the source admin must open the consent URL and accept: " ..
      tenant.consent_url(t.cloud, t.domain or t.id, o.app_id))
    or "grant admin consent in the target (setup-target does it; or Entra ID > Enterprise applications > " ..
      "the app > Permissions > Grant admin consent)")
  if side == "target" and not st.roles["User.Invite.All"] then
    c.warn(string.format("App [%s] does not have [User.Invite.All] permission on Microsoft Graph or it is not " ..
      "consented: the app cannot send the B2B invitation to the source admin", o.app_id),
      "only needed for the invitation (send the consent URL yourself otherwise); setup-target --invite " ..
      "ADDRESS requests and consents it")
  end
end

-- The app registration itself (CSS -CheckOrgs): redirect office.com, EXO in requiredResourceAccess.
local function check_registration(t, c, o)
  local app = t:gget("/applications(appId='" .. o.app_id .. "')")
  if not app then
    c.fail("No AAD application for EXO has been found (appId " .. o.app_id .. ")",
      "run setup-target, or check the app id in the hand-off file")
    return
  end
  local redirect = app.web and app.web.redirectUris or {}
  local name = tostring(app.displayName)
  c.check(tenant.contains_ci(redirect, tenant.REDIRECT),
    string.format("Application '%s' redirects to https://office.com", name),
    string.format("Application '%s' does not redirect to https://office.com (its redirect URIs: %s)", name,
      #redirect > 0 and table.concat(redirect, ", ") or "none"),
    "the consent URL returns there: run setup-target (it adds the redirect URI)")
  c.check(tenant.rra_has(app.requiredResourceAccess, tenant.EXO_APP_ID, tenant.ROLE["Mailbox.Migration"]),
    string.format("Application '%s' requests [Mailbox.Migration] on Office 365 Exchange Online", name),
    string.format("Application '%s' does not request [Mailbox.Migration] on Office 365 Exchange Online", name),
    "run setup-target: it adds the permission (admin consent then grants it)")
  c.check(app.signInAudience == "AzureADMultipleOrgs", "Application is multi-tenant (AzureADMultipleOrgs)",
    string.format("Application '%s' is not multi-tenant (signInAudience %s)", name, tostring(app.signInAudience)),
    "the source tenant cannot consent to a single-tenant app: run setup-target (sets signInAudience)")
  local saved = t.say
  t.say = function() end
  local soon = t:check_credentials(app, o.window_days or 0)
  t.say = saved
  for _, s in ipairs(soon) do
    if s.expired then
      c.fail(string.format("the app's %s '%s' expired on %s", s.kind, s.name, tenant.iso(s.ends):sub(1, 10)),
        "an endpoint using it fails to authenticate: setup-target --new-secret makes a new one and recreates the endpoint")
    else
      c.warn(string.format("the app's %s '%s' expires on %s, within the --warn-expiry window", s.kind, s.name,
        tenant.iso(s.ends):sub(1, 10)), "rotate it before then: setup-target --new-secret")
    end
  end
  return app
end

local function check_dehydrated(t, c)
  local cfg, err = t:xo("Get-OrganizationConfig", {})
  if not cfg then c.fail("read the Exchange organization config of " .. t.name, M.explain_exo(err)) return false end
  c.check(not (cfg[1] and cfg[1].IsDehydrated), "Exchange organization of " .. t.name .. " is not dehydrated",
    "Exchange organization of " .. t.name .. " is dehydrated: organization relationships and endpoints " ..
    "cannot be made", "run Enable-OrganizationCustomization (setup-target/setup-source do it first)")
  return true
end

-- A fix for an EXO read error (permissions are the usual cause).
function M.explain_exo(err)
  if type(err) == "table" and (err.status == 401 or err.status == 403) then
    return tostring(err) .. " -- the app needs the Exchange.ManageAsApp role on Office 365 Exchange Online " ..
      "(admin-consented) and an Exchange directory role (Exchange Administrator)"
  end
  return tostring(err)
end

local function check_orgrel(t, c, o, side)
  local rels, err = t:org_relationships(o.partner_id, o.partner_domains)
  if not rels then c.fail("read organization relationships of " .. t.name, M.explain_exo(err)) return end
  local r = rels.keyed
  if not r then
    if #rels.by_domain > 0 then
      local d = rels.by_domain[1]
      c.fail(string.format("Organization relationship '%s' names [%s] by domain (%s), not by tenant ID",
          tostring(d.Identity or d.Name), o.partner_label or o.partner_id, table.concat(tenant.caps_of(d.DomainNames), ", ")),
        string.format("cross-tenant moves look for the partner's tenant ID in DomainNames (the common community-" ..
          "script mistake): run %s (creates one keyed by %s), or Set-OrganizationRelationship '%s' -DomainNames %s",
          side == "target" and "setup-target" or "setup-source", o.partner_id, tostring(d.Identity or d.Name), o.partner_id))
    else
      c.fail(string.format("Organization relationship does not exist with [%s]", o.partner_id),
        "run " .. (side == "target" and "setup-target" or "setup-source"))
    end
    return
  end
  local name = tostring(r.Identity or r.Name)
  c.pass(string.format("Organization relationship '%s' exists with [%s]", name, o.partner_id))
  for _, d in ipairs(rels.by_domain) do
    c.warn(string.format("Organization relationship '%s' also names the partner by domain", tostring(d.Identity or d.Name)),
      "it is ignored for mailbox moves; remove it if nothing else uses it")
  end
  c.check(r.Enabled ~= false, "Organization relationship '" .. name .. "' is enabled",
    "Organization relationship '" .. name .. "' is disabled",
    "Set-OrganizationRelationship '" .. name .. "' -Enabled $true (or re-run setup)")
  c.check(r.MailboxMoveEnabled == true, "Organization relationship '" .. name .. "' has MailboxMoveEnabled",
    "Organization relationship '" .. name .. "' does not have MailboxMoveEnabled",
    "Set-OrganizationRelationship '" .. name .. "' -MailboxMoveEnabled $true (or re-run setup)")
  local want = side == "target" and "Inbound" or "RemoteOutbound"
  local caps = tenant.caps_of(r.MailboxMoveCapability)
  if #caps == 1 and lower(caps[1]) == lower(want) then
    c.pass(string.format("MailboxMoveCapability is [%s]", want))
  elseif tenant.contains_ci(caps, want) then
    c.warn(string.format("MailboxMoveCapability is [%s]: it includes [%s]", table.concat(caps, ", "), want),
      "fine for moves in both directions (ms-setup-and-prep.md §4.7); VerifySetup.ps1 tests for exactly [" ..
      want .. "] and would report this as a failure")
  else
    c.fail(string.format("Organization relationship '%s' MailboxMoveCapability should be [%s], found [%s]", name,
      want, table.concat(caps, ", ")),
      "re-run " .. (side == "target" and "setup-target" or "setup-source") .. " (it adds " .. want ..
      " and keeps the rest)")
  end
  if side == "source" then
    c.check(lower(r.OAuthApplicationId) == lower(o.app_id),
      "Mailbox Migration ApplicationId [" .. o.app_id .. "] is allowed in the organization relationship",
      "Mailbox Migration ApplicationId [" .. o.app_id .. "] is not whitelisted in the Organization " ..
        "Relationship '" .. name .. "' (it allows [" .. tostring(r.OAuthApplicationId ~= nil and
        r.OAuthApplicationId or "") .. "])",
      "re-run setup-source with the target's app id (hand-off file)")
    local scopes = tenant.caps_of(r.MailboxMovePublishedScopes)
    if #scopes == 0 then
      c.fail("Source tenant needs to specify MailboxMovePublishedScopes to allow migration",
        "setup-source --scope-group NAME")
    else
      c.pass("MailboxMovePublishedScopes: " .. table.concat(scopes, ", "))
      for _, s in ipairs(scopes) do
        local short = s:match("^[Cc][Nn]=([^,]+),") or s
        local g = t:xo("Get-DistributionGroup", { Identity = short })
        if not (g and g[1]) then
          c.fail("scope group '" .. short .. "' does not exist", "create it (setup-source --create-scope-group) or fix the scope")
        elseif g[1].RecipientTypeDetails and g[1].RecipientTypeDetails ~= "MailUniversalSecurityGroup" then
          c.fail("scope group '" .. short .. "' is a " .. tostring(g[1].RecipientTypeDetails) ..
            ", not a mail-enabled security group", "use a mail-enabled security group (New-DistributionGroup -Type Security)")
        else
          c.pass("scope group '" .. short .. "' is a mail-enabled security group")
          local m = t:xo("Get-DistributionGroupMember", { Identity = short, ResultSize = "Unlimited" })
          if m and #m == 0 then
            c.warn("scope group '" .. short .. "' has no members yet",
              "add the mailboxes to migrate (Add-DistributionGroupMember); moves of others fail with " ..
              "MailboxNotInCrossTenantMigrationScopeException")
          end
        end
      end
    end
  end
  return r
end

local function check_endpoint(t, c, o)
  local l, err = t:xo("Get-MigrationEndpoint", {})
  if not l then c.fail("read migration endpoints of " .. t.name, M.explain_exo(err)) return end
  local ep
  for _, e in ipairs(l) do
    if lower(e.ApplicationId) == lower(o.app_id) then ep = e break end
  end
  if not ep then
    c.fail("Expected Migration endpoint not found (ApplicationId " .. o.app_id .. ")",
      "run setup-target after the source admin has consented and run setup-source")
    return
  end
  local name = tostring(ep.Identity or ep.Name)
  c.pass("Migration endpoint '" .. name .. "' uses application " .. o.app_id)
  c.check(lower(ep.RemoteTenant) == lower(o.partner_domain), string.format("Migration endpoint '%s' RemoteTenant is [%s]",
      name, tostring(o.partner_domain)),
    string.format("Migration endpoint '%s' RemoteTenant is [%s], not the source domain [%s]", name,
      tostring(ep.RemoteTenant), tostring(o.partner_domain)), "re-run setup-target (it recreates the endpoint)")
  c.check(ep.EndpointType == nil or ep.EndpointType == "ExchangeRemoteMove",
    "Migration endpoint '" .. name .. "' is an ExchangeRemoteMove endpoint",
    "Migration endpoint '" .. name .. "' is a " .. tostring(ep.EndpointType) .. " endpoint, not ExchangeRemoteMove",
    "re-run setup-target")
  c.check(ep.IsRemote ~= false, "Migration endpoint '" .. name .. "' is remote",
    "Migration endpoint '" .. name .. "' is not remote", "re-run setup-target")
  c.check(lower(ep.RemoteServer) == lower(t:remote_server()),
    string.format("Migration endpoint '%s' RemoteServer is [%s]", name, t:remote_server()),
    string.format("Migration endpoint '%s' RemoteServer is [%s], not [%s]", name, tostring(ep.RemoteServer),
      t:remote_server()), "wrong cloud? re-run setup-target with the right --cloud")
  if o.kv_url then
    c.check(lower(ep.AppSecretKeyVaultUrl) == lower(o.kv_url),
      "Migration endpoint '" .. name .. "' uses the Key Vault certificate " .. o.kv_url,
      "Migration endpoint '" .. name .. "' uses [" .. tostring(ep.AppSecretKeyVaultUrl) ..
        "], not the Key Vault certificate " .. o.kv_url, "re-run setup-target --keyvault")
  end
end

-- verify_target(t, {app_id, partner_id (source tid), partner_domain (source initial domain),
-- partner_domains, kv_url, window_days}) -> list of checks.
function M.target(t, o)
  local c = checker()
  check_registration(t, c, o)
  check_app(t, c, o, "target")
  if check_dehydrated(t, c) then
    check_orgrel(t, c, o, "target")
    check_endpoint(t, c, o)
  end
  if o.kv_url then
    local ok, kv = pcall(require, "t2t.tenant.keyvault")
    if ok and kv.verify then kv.verify(t, c, o) end
  end
  return c.list
end

-- verify_source(t, {app_id, partner_id (target tid), partner_domains}) -> list of checks.
function M.source(t, o)
  local c = checker()
  check_app(t, c, o, "source")
  if check_dehydrated(t, c) then check_orgrel(t, c, o, "source") end
  return c.list
end

return M
