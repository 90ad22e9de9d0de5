-- demo: what `make demo` runs -- the tenant setup, user preparation and mail authentication, against the
-- in-process simulator.
local function banner(ctx, fmt, ...)
  ctx:say("\n" .. string.rep("=", 78) .. "\n  " .. string.format(fmt, ...) .. "\n" .. string.rep("=", 78))
end

-- A few users with the problems real tenants have, beside the seeded ones (docs/simulator.md,
-- "Population"): the demo explains what prepare-users and validate-users say about them.
local PROBLEMS = { steps = {
  { create = { tenant = "contoso", alias = "lara.newton", display_name = "Lara Newton" } },
  { create = { tenant = "fabrikam", kind = "MailContact", name = "Lara Newton (Contoso)", external = "lara.newton@contoso.com" } },
  { create = { tenant = "contoso", alias = "ben.ito", display_name = "Ben Itō" } },
  { create = { tenant = "fabrikam", kind = "MailUser", alias = "ben.ito", primary = "ben.ito@fabrikam.com", dirsynced = true,
               external = "ben.ito@contoso.onmicrosoft.com" } },
  { create = { tenant = "contoso", alias = "paul.roy", display_name = "Paul Roy" } },
  { create = { tenant = "fabrikam", kind = "MailUser", alias = "paul.roy", primary = "paul.roy@fabrikam.com",
               external = "paul.roy@contoso.onmicrosoft.com", previous_mailbox = true } },
  { create = { tenant = "contoso", alias = "rita.kaur", display_name = "Rita Kaur", LitigationHoldEnabled = true } },
} }

local EXPLAIN = [[
What the tables above say:
  * ben.ito's target is synchronised from an on-premises directory: Exchange Online cannot change it, so
    prepare-users lists the attributes to set on-premises (then an Entra Connect delta sync).
  * paul.roy's target had a mailbox before: clearing that is irreversible, so t2t only says how
    (Set-User -PermanentlyClearPreviousMailboxInfo, or prepare-users --clear-previous-mailbox).
  * lara.newton has a mail contact from a GAL sync in the target: prepared, with a warning
    (--replace-contacts removes it, as Microsoft's TargetObject.ps1 does).
  * rita.kaur and a few seeded users are on hold, or have too many aux archives or SubstrateHolds items:
    validate-users names the CSS-val rule, the fix, and the exception a batch would end in.
Nothing was licensed before its ExchangeGuid was stamped; a second prepare-users run changes nothing.]]

return runbook {
  name = "demo",
  description = "Demonstrate t2t against the in-process simulator: set up a cross-tenant migration, prepare users.\n\n" ..
    "Starts the simulated Microsoft cloud with a seeded pair (source contoso, target fabrikam), bootstraps\n" ..
    "t2t's own least-privileged app in each tenant and checks what it can do (access-check), then runs, as\n" ..
    "those apps, what the two admins would: setup-target (first half, before the source is ready), setup-source (consent,\n" ..
    "scope group, organization relationship), setup-target again (it continues where it stopped and creates\n" ..
    "the migration endpoint), a --plan run that shows nothing left to change, and verify-setup on both sides.\n" ..
    "Then the users: export-users by the source admin (with --add-to-scope), prepare-users --from that file by\n" ..
    "the target admin (licensed after the GUID), validate-users with the test move -- a few users have the\n" ..
    "problems real tenants have, and the demo explains them.\n" ..
    "Last, mail authentication: mail-auth on both tenants, dkim-setup for fabrikam.com (CNAMEs published in\n" ..
    "Azure DNS, signing enabled once they resolve), and dkim-verify on a message fabrikam's EXO signed.",
  needs = {},                 -- the runbooks it runs check their own
  params = {
    { name = "users", type = "integer", default = 46, min = 1, help = "seeded mailboxes in the source tenant (4 more with problems)" },
    { name = "seed", type = "integer", default = 42, help = "simulator seed" },
    { name = "dir", type = "string", help = "keep the hand-off and secret files here (default: a temporary directory, removed at the end)" },
  },
  run = function(ctx, p)
    local ok, sim = pcall(require, "t2t.sim")
    if not ok or not sim.start then ctx:fail("the simulator (t2t.sim) is not in this build yet") end
    local started = os.time()
    local s, serr = sim.start { users = p.users, seed = p.seed, scenario = PROBLEMS }
    if not s then ctx:fail("cannot start the simulator: %s", tostring(serr)) end
    local rb = require "t2t.runbook"
    local dir = p.dir or ctx:tempdir()        -- a temporary one goes when the run ends, Ctrl-C too
    if p.dir then assert(require("t2t.core.fs").mkdir(dir, tonumber("700", 8))) end
    local handoff, secret_file = dir .. "/handoff.json", dir .. "/client-secret"
    local failed
    local function run(name, args, extra, accept)
      local decl = assert(rb.load(name))
      local opts = { sim = true, sim_instance = s, yes = true, output = ctx.opts.output, log_level = ctx.opts.log_level }
      for k, v in pairs(extra or {}) do opts[k] = v end
      local params, err = rb.parse_args(decl, args, opts)
      if not params then ctx:fail("%s: %s", name, err) end
      local code = rb.execute(decl, params, opts)
      if code ~= 0 and not (accept and accept[code]) then failed = failed or (name .. " exited " .. code) end
      return code
    end
    local okr, err = pcall(function()
      ctx:say("Simulated cloud on 127.0.0.1:%s -- source contoso (%d mailboxes), target fabrikam", tostring(s.port), p.users)
      ctx:say("Hand-off and secret files in %s%s", dir, p.dir and "" or " (removed at the end; --dir DIR keeps them)")
      -- t2t's own identity first: an app per tenant with exactly what the setup runbooks need; they
      -- then sign in as it (docs/setup.md, "t2t in a real tenant: bootstrap"); the user and DKIM
      -- steps below run as the simulator's seeded admins
      for _, tn in ipairs({ "fabrikam", "contoso" }) do
        banner(ctx, "%s admin: t2t run bootstrap --tenant %s   (t2t's own app, least privilege)", tn, tn)
        run("bootstrap", { "--tenant", tn, "--profile-name", tn .. "-t2t", "--config-path", dir .. "/config.lua",
                           "--with", "consent" })
      end
      banner(ctx, "What can it do?  t2t run access-check --tenant contoso-t2t")
      run("access-check", { "--tenant", "contoso-t2t" })
      banner(ctx, "Target admin: t2t run setup-target --skip-endpoint   (before the source is ready)")
      local as_apps = { "--target", "fabrikam-t2t", "--source", "contoso-t2t" }
      local function with(list) return table.move(list, 1, #list, #as_apps + 1, table.move(as_apps, 1, #as_apps, 1, {})) end
      run("setup-target", with { "--handoff", handoff, "--secret-file", secret_file, "--skip-endpoint" })
      banner(ctx, "Source admin: t2t run setup-source --handoff FILE --consent --create-scope-group --members ...")
      local members = {}
      local mb = s.profile and s.profile.sample_mailboxes or {}
      for i = 1, math.min(3, #mb) do members[i] = mb[i] end
      local args = { "--source", "contoso-t2t", "--handoff", handoff, "--consent", "--create-scope-group" }
      if #members > 0 then args[#args + 1] = "--members"; args[#args + 1] = table.concat(members, ",") end
      run("setup-source", args)
      banner(ctx, "Target admin: t2t run setup-target   (continues: creates the migration endpoint)")
      run("setup-target", with { "--handoff", handoff, "--secret-file", secret_file })
      banner(ctx, "Anything left to do?  t2t run setup-target --plan")
      run("setup-target", with { "--handoff", handoff, "--secret-file", secret_file }, { plan = true })
      banner(ctx, "Both admins: t2t run verify-setup")
      run("verify-setup", with { "--handoff", handoff })
      local users, map = dir .. "/users.jsonl", "contoso.com=fabrikam.com,contoso.net=fabrikam.co.uk,contoso-eu.com=fabrikam.com"
      banner(ctx, "Source admin: t2t run export-users --all --add-to-scope --out users.jsonl")
      run("export-users", { "--all", "--add-to-scope", "--out", users })
      banner(ctx, "Target admin: t2t run prepare-users --from users.jsonl --domain-map ... --license ctudm")
      local prep = { "--target", "fabrikam", "--from", users, "--domain-map", map, "--license", "ctudm",
                     "--report", dir .. "/prepare.csv" }
      run("prepare-users", prep, nil, { [3] = true })
      banner(ctx, "Target admin: t2t run validate-users --from users.jsonl --test-move")
      run("validate-users", { "--target", "fabrikam", "--from", users, "--domain-map", map, "--test-move",
                              "--report", dir .. "/validate.csv" }, nil, { [3] = true })
      banner(ctx, "Again?  t2t run prepare-users ... --plan   (nothing left to change)")
      run("prepare-users", prep, { plan = true }, { [3] = true })
      ctx:say("\n%s", EXPLAIN)
      -- Mail authentication (t2t.dkim): both tenants' posture, DKIM for the target's domain
      -- published in Azure DNS and enabled, and a message its Exchange Online signed, verified.
      local dns_ok, dns_err = s:dns()
      if not dns_ok then
        ctx:say("\n(mail authentication skipped: %s)", tostring(dns_err))
        return
      end
      banner(ctx, "Both admins: t2t run mail-auth   (SPF, DKIM, DMARC of every accepted domain)")
      run("mail-auth", {}, nil, { [3] = true })          -- exit 3: the seeded domains have gaps
      banner(ctx, "Target admin: t2t run dkim-setup --domain fabrikam.com --publish azure-dns --enable")
      run("dkim-setup", { "--domain", "fabrikam.com", "--publish", "azure-dns", "--enable" })
      banner(ctx, "A message fabrikam.com's Exchange Online signed: t2t run dkim-verify FILE.eml")
      local eml = dir .. "/signed-by-fabrikam.eml"
      local f = assert(io.open(eml, "wb"))
      f:write((assert(s:mail { tenant = "fabrikam", from = "ceo@fabrikam.com", to = "ada@contoso.com",
                               subject = "Welcome to Fabrikam", body = "Your mailbox has moved." })))
      f:close()
      run("dkim-verify", { eml })
    end)
    s:stop()
    if not okr then error(err, 0) end
    if failed then ctx:fail("%s", failed) end
    ctx:summary("demo time", string.format("%d s", os.time() - started))
    ctx:summary("files", p.dir or "removed (--dir DIR keeps them)")
  end,
}
