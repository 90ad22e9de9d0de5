-- validate-users: CSS-Exchange's CrossTenantMailboxMigrationValidation -CheckObjects (the 14
-- rules of ms-setup-and-prep.md §3.2) and the §5 target rules, before a batch.
local mailuser = require "t2t.mailuser"
local S = require "t2t.mailuser.session"

-- The migration endpoint for --test-move: the one given, else the only ExchangeRemoteMove one.
local function endpoint(ctx, target, name)
  if name then return name end
  local list, err = target:xo("Get-MigrationEndpoint", {})
  if not list then ctx:fail("--test-move: reading the migration endpoints: %s", tostring(err)) end
  local found = {}
  for _, e in ipairs(list) do
    if (e.EndpointType or "ExchangeRemoteMove") == "ExchangeRemoteMove" then found[#found + 1] = e.Name or e.Identity end
  end
  if #found ~= 1 then
    ctx:fail("--test-move: %s migration endpoint in %s; name it with --endpoint", #found == 0 and "no" or "more than one",
             target.name)
  end
  return found[1]
end

return runbook {
  name = "validate-users",
  description = "Check that every user is ready to move (CSS-val -CheckObjects, ms-setup-and-prep.md §3.2, §5).\n\n" ..
    "All 14 rules of CSS-Exchange's validation script with its meaning -- source and target found, aux archives\n" ..
    "<= 12, the Cross-Tenant User Data Migration licence on either side, no hold of any kind, no SubstrateHolds\n" ..
    "items in the archive, in the scope group, dumpster within the target quota, ExchangeGuid, ArchiveGuid, the\n" ..
    "LegacyExchangeDN X500, primary and every SMTP address in accepted domains, every source X500, and the\n" ..
    "ExternalEmailAddress -- plus a previous mailbox, a demoted archive and the target-delivery-domain proxy.\n" ..
    "Each failure says how to fix it and which documented exception the move would end in. --fix applies the\n" ..
    "fixes CSS-val offers (never to dir-synced objects: those are changed on-premises). --test-move runs\n" ..
    "Test-MigrationServerAvailability per user. Delegates that would be split (not in the list, or in another\n" ..
    "Batch column value) are warned about. Users not ready make the exit code 3.",
  -- read-only but for --fix (docs/roles.md)
  needs = {
    target = { exchange = { "View-Only Recipients", "View-Only Configuration" },
               when = { ["test-move"] = { exchange = { "Migration" } }, fix = { exchange = { "Mail Recipients" } } } },
    source = { exchange = { "View-Only Recipients", "View-Only Configuration" } },
  },
  params = S.params("re-check", {
    { name = "fix", type = "boolean", default = false, help = "apply the fixes CSS-val offers (not on dir-synced objects)" },
    { name = "test-move", type = "boolean", default = false, help = "Test-MigrationServerAvailability for each user" },
    { name = "endpoint", type = "string", help = "migration endpoint for --test-move (default: the only one)" },
  }),
  run = function(ctx, p)
    local r = S.load(ctx, p, "full")
    local target, users, info, rules = r.target, r.users, r.info, r.rules
    if p.from and info.depth ~= "full" then
      ctx.log.warn("%s holds identity attributes only: holds, dumpster and delegates are not checked " ..
                   "(export-users --depth full)", p.from)
    end
    local ep = p.test_move and endpoint(ctx, target, p.endpoint) or nil
    ctx:say("Validating users: %s -> %s%s%s", tostring(info.source.name), target.name,
            p.fix and ", fixing what CSS-val fixes" or "", ep and (", test move through endpoint " .. ep) or "")
    local o = { target = target, users = users, rules = rules,
      env = { accepted = rules.accepted, tdd = rules.tdd, scope_known = info.scope_known, scope_group = info.scope_group },
      fix = p.fix, endpoint = ep, concurrency = p.concurrency }
    o.on_count = S.on_count(ctx, "Validating users", o)
    local rows, err = mailuser.validate(o)
    if o.progress then o.progress:finish() end
    if not rows then ctx:fail("%s", tostring(err)) end
    for _, row in ipairs(S.missing_rows(r.failures, true)) do rows[#rows + 1] = row end
    local flat = S.finish(ctx, p, rows, r.kept)
    local ready = 0
    for _, row in ipairs(rows) do if row.status == "ready" then ready = ready + 1 end end
    ctx:summary("users ready", ready)
    ctx:summary("users not ready", #rows - ready)
    return { users = #rows, ready = ready, rows = flat }
  end,
}
