-- bootstrap: set up t2t's own automation identity in a tenant, from an admin's device-code sign-in.
local tenant = require "t2t.tenant"
local session = require "t2t.tenant.session"
local bootstrap = require "t2t.roles.bootstrap"

local must = session.must
local DEFAULT_RUNBOOKS = { "setup-target", "setup-source", "verify-setup", "roles", "access-check" }

-- The admin's sign-in: device code with Microsoft Graph's public client (the admin approves on
-- another device).  Under --sim the simulator's admin approves at once (or --admin UPN).
local function admin_session(ctx, p)
  local s = session.sim(ctx)
  local prof = { tenant = p.tenant, cloud = p.cloud, device_code = true,
                 client_id = require("t2t.auth").PUBLIC_CLIENTS.graph, name = "admin" }
  local opts = { cache = false }
  if s then
    local sp = s.profile.tenants[p.tenant]
    if not sp then ctx:fail("the simulator has no tenant '%s' (contoso or fabrikam)", tostring(p.tenant)) end
    prof.tenant, prof.tenant_id = sp.initial_domain, sp.tenant_id
    opts.connect_to, opts.ca_file = s.profile.connect_to, s.ca_file or s.profile.ca_file
    opts.sleep = function() end
    opts.prompt = function(info)
      ctx:say("  (simulator) %s approves device code %s", p.admin or sp.admin_user or "the seeded admin", info.user_code)
      local r, err = s:control("POST", "/_sim/device/approve", { user_code = info.user_code, user = p.admin })
      if not r or err ~= 200 then ctx:fail("the simulator refused the sign-in: %s", tostring(type(r) == "table"
        and r.error and r.error.message or err)) end
    end
  else
    opts.prompt = function(info)
      ctx:say("Sign in as a Privileged Role Administrator (or Global Administrator) of %s:\n  %s", p.tenant,
              tostring(info.message or ("open " .. tostring(info.verification_uri) .. " and enter " .. tostring(info.user_code))))
    end
  end
  local http = require "t2t.http"
  local auth = require "t2t.auth"
  local cred = must(ctx, auth.credential(prof, { http = http.client { service = "login", ca_file = opts.ca_file,
    connect_to = opts.connect_to }, cache = opts.cache, prompt = opts.prompt, sleep = opts.sleep }))
  local g = require("t2t.graph").new { tenant = prof.tenant_id or prof.tenant, cloud = prof.cloud,
    http = cred:client { service = "graph" }, token = cred:token_provider("graph") }
  local t = tenant.new { name = p.tenant:match("^([^.]+)"), id = prof.tenant_id, cloud = p.cloud or "global",
                         graph = g, plan = ctx.plan, say = function(line) ctx:say("%s", line) end, log = ctx.log }
  ctx:preflight("tenant", t)                     -- the admin's rights, before anything changes
  must(ctx, t:discover())
  t.name = t.domain and t.domain:match("^([^.]+)") or t.name
  return t, s
end

-- Where the key and certificate go: beside the config file; under --sim without a config file,
-- a private temporary directory kept for the simulator's life (simulated credentials never land
-- in the real config directory).
local function key_dir(p, s)
  if s and not p.config_path then
    if not s.bootstrap_keys then                 -- one per simulator: re-runs find their key
      local dir = os.tmpname()
      os.remove(dir)
      assert(require("t2t.core.fs").mkdir(dir, tonumber("700", 8)))
      s.bootstrap_keys = dir
    end
    return s.bootstrap_keys
  end
  local path = require("t2t.config").path(p.config_path)
  return path and path:match("^(.*)/[^/]*$") or "."
end

return runbook {
  name = "bootstrap",
  description = "Set up t2t's own automation identity in a tenant, from an admin's device-code sign-in.\n\n" ..
    "Makes (or brings up to date) an app registration holding exactly the permissions the chosen runbooks\n" ..
    "need -- listed before anything is granted -- with a certificate credential made on this machine (the\n" ..
    "private key never leaves it: a file with mode 0600), grants admin consent, Exchange.ManageAsApp and the\n" ..
    "least privileged Entra role that brings their Exchange roles (directly, or through a role-assignable\n" ..
    "group with --via-group), and writes the profile into the config file. Permissions or roles the app holds\n" ..
    "beyond that are removed (--no-exact keeps them). Re-runnable: a second run changes nothing; run it with\n" ..
    "--plan first. Sign in as a Privileged Role Administrator and Application Administrator (or a Global\n" ..
    "Administrator). With --sim, TENANT is contoso or fabrikam, the simulator's admin approves the sign-in,\n" ..
    "and the new profile replaces that tenant's seeded one for the rest of the run.",
  needs = {
    -- signed in as a user: these delegated permissions, and the Entra roles they need
    -- (User.Read: reading the organization, every sign-in has it)
    graph = { "Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "RoleManagement.ReadWrite.Directory",
              "User.Read" },
    when = { ["via-group"] = { graph = { "Group.ReadWrite.All" } } },
  },
  params = {
    { name = "tenant", type = "string", required = true, help = "the tenant: NAME.onmicrosoft.com or its GUID (with --sim: contoso or fabrikam)" },
    { name = "cloud", type = "string", default = "global", help = "global, usgov, usgovhigh, dod or china" },
    { name = "runbooks", type = "list", default = DEFAULT_RUNBOOKS, help = "the runbooks the app must be able to run" },
    { name = "with", type = "list", help = "also what they need with these parameters (e.g. consent,invite; a value: backend=graph)" },
    { name = "as", type = "string", help = "target or source: one side of the two-tenant runbooks (default: both)" },
    { name = "app-name", type = "string", default = "t2t automation", help = "display name of the app registration" },
    { name = "via-group", type = "string", help = "give the Entra role through this role-assignable group (made if missing)" },
    { name = "profile-name", type = "string", help = "profile to write (default: the tenant's name, e.g. contoso)" },
    { name = "config-path", type = "string", help = "config file to write the profile to (default: --config, else the default config file)" },
    { name = "cert-days", type = "integer", default = 365, help = "validity of a new certificate, days" },
    { name = "exact", type = "boolean", default = true, help = "remove permissions and direct roles the app holds beyond what is needed" },
    { name = "admin", type = "string", help = "--sim only: the user who approves the sign-in (default: the seeded admin)" },
  },
  run = function(ctx, p)
    if p.as and p.as ~= "target" and p.as ~= "source" then ctx:fail("--as must be target or source") end
    p.config_path = p.config_path or ctx.opts.config
    local rb = require "t2t.runbook"
    local decls = {}
    for _, n in ipairs(p.runbooks) do
      local d, err = rb.load(n)
      if not d then ctx:fail("--runbooks: %s", tostring(err)) end
      if d.needs == nil then ctx:fail("--runbooks: %s declares no needs", n) end
      decls[#decls + 1] = d
    end
    local perms = bootstrap.permissions(decls, { as = p.as, with = p.with })
    local t, s = admin_session(ctx, p)
    local roles_needed = {}
    for _, r in ipairs(perms.entra) do roles_needed[#roles_needed + 1] = r end
    if perms.exchange_entra then roles_needed[#roles_needed + 1] = perms.exchange_entra end
    ctx:say("\nWhat app '%s' gets in %s (least privilege for %s):", p.app_name, t.name, table.concat(perms.runbooks, ", "))
    ctx:say("  Microsoft Graph application permissions: %s", table.concat(perms.graph, ", "))
    if #perms.exchange > 0 then
      ctx:say("  Office 365 Exchange Online: Exchange.ManageAsApp")
      ctx:say("  Entra role: %s%s (brings the Exchange roles %s)", perms.exchange_entra,
              p.via_group and (" through role-assignable group '" .. p.via_group .. "'") or ", directly",
              table.concat(perms.exchange, ", "))
    end
    for _, r in ipairs(perms.entra) do ctx:say("  Entra role: %s", r) end
    for _, a in ipairs(perms.azure) do ctx:say("  not granted here (Azure RBAC): %s", a) end
    if not ctx.opts.plan and not ctx:confirm("Grant these to the app?") then
      ctx:fail("not confirmed: nothing was changed (--yes to confirm, --plan to see every change first)")
    end
    ctx:say("\n1. App registration, credential, consent, role (%s)", t.name)
    local app, ids = bootstrap.ensure_app(t, p.app_name, perms)
    app = must(ctx, app, not app and ids or nil)
    local pname = p.profile_name or t.name
    local dir = key_dir(p, s)
    local cred = must(ctx, bootstrap.ensure_certificate(t, app, {
      key_path = dir .. "/" .. pname .. ".key", cert_path = dir .. "/" .. pname .. ".crt",
      subject = "CN=" .. p.app_name .. " (" .. tostring(t.domain) .. ")", days = p.cert_days,
      write_private = require("t2t.core.fs").write_private }))
    local sp = must(ctx, t:ensure_sp(app))
    must(ctx, bootstrap.ensure_consents(t, sp, ids, p.exact))
    must(ctx, bootstrap.ensure_roles(t, sp, roles_needed, { via_group = p.via_group, exact = p.exact }))
    ctx:say("\n2. Profile '%s'", pname)
    local prof = { tenant = t.domain, tenant_id = t.id, initial_domain = t.domain, cloud = t.cloud,
                   client_id = app.appId, certificate = cred.cert_path, key = cred.key_path }
    if s then                                    -- the simulator's hosts and CA, for this run
      local sim_t = s.profile.tenants[p.tenant] or {}
      local reg = {}
      for k, v in pairs(sim_t) do reg[k] = v end
      reg.client_secret, reg.app_object_id, reg.sp_id = nil, nil, nil
      for k, v in pairs(prof) do reg[k] = v end
      if not ctx.opts.plan and not app.planned then s.profile.tenants[pname] = reg end
      ctx:say("  the simulator's '%s' now signs in as '%s' (%s) for the rest of this run", pname, p.app_name, app.appId)
    end
    if not s or p.config_path then
      local change = must(ctx, require("t2t.config").profile_change(p.config_path, pname, prof))
      if change.changed then
        must(ctx, ctx.plan:change { kind = change.before and "update" or "create", tenant = "this machine",
          target = "profile '" .. pname .. "' in " .. change.path, operation = "bootstrap_profile",
          before = change.before, after = prof, apply = function() return require("t2t.config").write_profile(change) end })
      else
        ctx:say("= profile '%s' in %s is up to date", pname, change.path)
      end
      ctx:summary("config file", change.path)
    end
    ctx:summary("application", string.format("%s (%s)", p.app_name, app.appId))
    ctx:summary("profile", pname)
    ctx:summary("private key", cred.key_path .. " (mode 0600; never leaves this machine)")
    ctx:say("\nNext: t2t run access-check --tenant %s   (what it can do now, runbook by runbook)", pname)
    return { app_id = app.appId, profile = pname, tenant_id = t.id, permissions = perms.graph,
             entra_roles = roles_needed, key_file = cred.key_path, certificate = cred.cert_path }
  end,
}
