-- demo: what `make demo` runs -- the whole job against the in-process simulator: t2t's own apps, the tenant
-- setup, user preparation, the batches (watched, fixed, completed, reported) and mail authentication.
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
  -- for the batches: a mailbox Microsoft's maintenance moves mid-move, one with items that cannot
  -- be copied (skipped: approval needed), one whose target a colleague will edit by hand
  { create = { tenant = "contoso", alias = "omar.haddad", display_name = "Omar Haddad", _MaintenanceAfter = 60 } },
  { create = { tenant = "contoso", alias = "mia.chen", display_name = "Mia Chen", _BadItems = 2, _LargeItems = 1 } },
  { create = { tenant = "contoso", alias = "kim.lee", display_name = "Kim Lee" } },
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

local EXPLAIN_BATCHES = [[
What the batches showed:
  * planning kept mailboxes and their delegates (FullAccess, SendAs, Send on Behalf, calendar) in one batch.
  * kim.lee's target lost its ExchangeGuid (a hand edit): MissingExchangeGuidException -> batch-fix stamped
    the source's again and resumed the batch.
  * omar.haddad's source mailbox was moved by Microsoft's maintenance mid-move: MailboxIsNotInExpectedDBException
    -> batch-fix removed him and put him in a new batch (the batches file recorded it first).
  * mia.chen had items that could not be copied: she waited for approval (Data Consistency Score
    Investigate) -> batch-fix --approve-skipped.
  * rita.kaur and a few seeded users are on hold: a hold blocks a cross-tenant move, and releasing it is a
    compliance decision -> explained, never changed; --leave-out took them out so the batches could complete.
  * post-migration checked both sides of every move and set Send on Behalf again (it does not move).]]

-- The batches (t2t.batch): the prepared users in waves of 25, watched, fixed, completed, checked and
-- reported.  Ends with the HTML report's path.
local function batches(ctx, s, run, dir)
  local ok3 = { [3] = true }
  -- a colleague's hand edit after preparation: kim.lee's target loses its ExchangeGuid
  assert(s:control("PATCH", "/_sim/recipients/fabrikam/kim.lee%40fabrikam.com",
                   { ExchangeGuid = "00000000-0000-0000-0000-000000000000" }))
  local B = { "--batches", dir .. "/batches.json" }
  local function with(list) for _, x in ipairs(B) do list[#list + 1] = x end return list end
  local watch = with { "--watch", "--interval", "1", "--rows", "6" }
  banner(ctx, "Target admin: t2t run migrate-batch --prepared prepare.csv --batch-size 25 --name wave")
  run("migrate-batch", with { "--prepared", dir .. "/prepare.csv", "--domain-map",
      "contoso.com=fabrikam.com,contoso.net=fabrikam.co.uk,contoso-eu.com=fabrikam.com", "--batch-size", "25", "--name", "wave" },
      nil, ok3)
  banner(ctx, "Target admin: t2t run batch-status --watch   (redrawn in place until the batches settle)")
  run("batch-status", watch, nil, ok3)
  banner(ctx, "Target admin: t2t run batch-fix   (the documented fix of each failure, where one can be automated)")
  run("batch-fix", with {}, nil, ok3)
  run("batch-status", watch, nil, ok3)
  banner(ctx, "Target admin: t2t run batch-fix --approve-skipped --leave-out")
  run("batch-fix", with { "--approve-skipped", "--leave-out" }, nil, ok3)
  run("batch-status", watch, nil, ok3)
  banner(ctx, "Target admin: t2t run batch-complete --wait   (the cut-over: target mail users become mailboxes)")
  run("batch-complete", with { "--wait", "--interval", "1" })
  banner(ctx, "Both admins: t2t run post-migration   (both sides checked, Send on Behalf again, what is left)")
  run("post-migration", with { "--no-dkim" }, nil, ok3)
  banner(ctx, "Target admin: t2t run batch-report --html migration-report.html")
  local html = dir .. "/migration-report.html"
  run("batch-report", with { "--html", html, "--csv", dir .. "/migration-report.csv", "--json", dir .. "/migration-report.json" })
  ctx:say("\n%s", EXPLAIN_BATCHES)
  ctx:say("\nThe report: %s   (one self-contained file: open it in any browser)", html)
end

return runbook {
  name = "demo",
  description = "Demonstrate t2t against the in-process simulator: the whole cross-tenant migration.\n\n" ..
    "Starts the simulated Microsoft cloud with a seeded pair (source contoso, target fabrikam), bootstraps\n" ..
    "t2t's own least-privileged app in each tenant and checks what it can do (access-check), then runs, as\n" ..
    "those apps, what the two admins would: setup-target (first half, before the source is ready), setup-source (consent,\n" ..
    "scope group, organization relationship), setup-target again (it continues where it stopped and creates\n" ..
    "the migration endpoint), a --plan run that shows nothing left to change, and verify-setup on both sides.\n" ..
    "Then the users: export-users by the source admin (with --add-to-scope), prepare-users --from that file by\n" ..
    "the target admin (licensed after the GUID), validate-users with the test move -- a few users have the\n" ..
    "problems real tenants have, and the demo explains them.\n" ..
    "Then the batches: migrate-batch in waves of 25 from prepare-users' report, batch-status --watch, batch-fix\n" ..
    "(the documented fixes; the users on hold left out), batch-complete, post-migration, and the HTML report.\n" ..
    "Last, mail authentication: mail-auth on both tenants, dkim-setup for fabrikam.com (CNAMEs published in\n" ..
    "Azure DNS, signing enabled once they resolve), and dkim-verify on a message fabrikam's EXO signed.",
  needs = {},                 -- the runbooks it runs check their own
  params = {
    { name = "users", type = "integer", default = 43, min = 1, help = "seeded mailboxes in the source tenant (7 more with problems)" },
    { name = "speed", type = "number", default = 40000, min = 1, help = "how much faster than the service the simulated moves run" },
    { name = "seed", type = "integer", default = 42, help = "simulator seed" },
    { name = "dir", type = "string", help = "keep the hand-off and secret files here (default: a temporary directory, removed at the end)" },
  },
  run = function(ctx, p)
    local ok, sim = pcall(require, "t2t.sim")
    if not ok or not sim.start then ctx:fail("the simulator (t2t.sim) is not in this build yet") end
    local started = os.time()
    local s, serr = sim.start { users = p.users, seed = p.seed, scenario = PROBLEMS, speed = p.speed,
                                key_type = "ed25519" }       -- only t2t talks to it: keys at once
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
    -- host.pcall: after Ctrl-C or kill, the simulator is still stopped below (a plain pcall's
    -- catch would be interrupted again at once)
    local okr, err = require("t2t.core.host").pcall(function()
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
      batches(ctx, s, run, dir)
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
