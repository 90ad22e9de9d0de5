-- demo: what `make demo` runs -- the tenant setup against the in-process simulator.
local function banner(ctx, fmt, ...)
  ctx:say("\n" .. string.rep("=", 78) .. "\n  " .. string.format(fmt, ...) .. "\n" .. string.rep("=", 78))
end

return runbook {
  name = "demo",
  description = "Demonstrate t2t against the in-process simulator: set up a cross-tenant migration.\n\n" ..
    "Starts the simulated Microsoft cloud with a seeded pair (source contoso, target fabrikam), bootstraps\n" ..
    "t2t's own least-privileged app in each tenant and checks what it can do (access-check), then runs\n" ..
    "what the two admins would: setup-target (first half, before the source is ready), setup-source (consent,\n" ..
    "scope group, organization relationship), setup-target again (it continues where it stopped and creates\n" ..
    "the migration endpoint), a --plan run that shows nothing left to change, and verify-setup on both sides.",
  needs = {},                 -- the runbooks it runs check their own
  params = {
    { name = "users", type = "integer", default = 20, min = 1, help = "mailboxes in the seeded source tenant" },
    { name = "seed", type = "integer", default = 42, help = "simulator seed" },
    { name = "dir", type = "string", help = "keep the hand-off and secret files here (default: a temporary directory, removed at the end)" },
  },
  run = function(ctx, p)
    local ok, sim = pcall(require, "t2t.sim")
    if not ok or not sim.start then ctx:fail("the simulator (t2t.sim) is not in this build yet") end
    local started = os.time()
    local s, serr = sim.start { users = p.users, seed = p.seed }
    if not s then ctx:fail("cannot start the simulator: %s", tostring(serr)) end
    local rb = require "t2t.runbook"
    local dir = p.dir or ctx:tempdir()        -- a temporary one goes when the run ends, Ctrl-C too
    if p.dir then assert(require("t2t.core.fs").mkdir(dir, tonumber("700", 8))) end
    local handoff, secret_file = dir .. "/handoff.json", dir .. "/client-secret"
    local failed
    local function run(name, args, extra)
      local decl = assert(rb.load(name))
      local opts = { sim = true, sim_instance = s, yes = true, output = ctx.opts.output, log_level = ctx.opts.log_level }
      for k, v in pairs(extra or {}) do opts[k] = v end
      local params, err = rb.parse_args(decl, args, opts)
      if not params then ctx:fail("%s: %s", name, err) end
      local code = rb.execute(decl, params, opts)
      if code ~= 0 then failed = failed or (name .. " exited " .. code) end
      return code
    end
    local okr, err = pcall(function()
      ctx:say("Simulated cloud on 127.0.0.1:%s -- source contoso (%d mailboxes), target fabrikam", tostring(s.port), p.users)
      ctx:say("Hand-off and secret files in %s%s", dir, p.dir and "" or " (removed at the end; --dir DIR keeps them)")
      -- t2t's own identity first: an app per tenant with exactly what the runbooks need; the
      -- runbooks below then sign in as it (docs/setup.md, "t2t in a real tenant: bootstrap")
      for _, tn in ipairs({ "fabrikam", "contoso" }) do
        banner(ctx, "%s admin: t2t run bootstrap --tenant %s   (t2t's own app, least privilege)", tn, tn)
        run("bootstrap", { "--tenant", tn, "--config-path", dir .. "/config.lua", "--with", "consent" })
      end
      banner(ctx, "What can it do?  t2t run access-check --tenant contoso")
      run("access-check", { "--tenant", "contoso" })
      banner(ctx, "Target admin: t2t run setup-target --skip-endpoint   (before the source is ready)")
      run("setup-target", { "--handoff", handoff, "--secret-file", secret_file, "--skip-endpoint" })
      banner(ctx, "Source admin: t2t run setup-source --handoff FILE --consent --create-scope-group --members ...")
      local members = {}
      local mb = s.profile and s.profile.sample_mailboxes or {}
      for i = 1, math.min(3, #mb) do members[i] = mb[i] end
      local args = { "--handoff", handoff, "--consent", "--create-scope-group" }
      if #members > 0 then args[#args + 1] = "--members"; args[#args + 1] = table.concat(members, ",") end
      run("setup-source", args)
      banner(ctx, "Target admin: t2t run setup-target   (continues: creates the migration endpoint)")
      run("setup-target", { "--handoff", handoff, "--secret-file", secret_file })
      banner(ctx, "Anything left to do?  t2t run setup-target --plan")
      run("setup-target", { "--handoff", handoff, "--secret-file", secret_file }, { plan = true })
      banner(ctx, "Both admins: t2t run verify-setup")
      run("verify-setup", { "--handoff", handoff })
    end)
    s:stop()
    if not okr then error(err, 0) end
    if failed then ctx:fail("%s", failed) end
    ctx:summary("demo time", string.format("%d s", os.time() - started))
    ctx:summary("files", p.dir or "removed (--dir DIR keeps them)")
  end,
}
