-- post-migration: check the conversions, re-stamp Send on Behalf, list what is left to do, and
-- (--teardown) remove the migration plumbing (ms-setup-and-prep.md §6.4-6.5, §5.6, §4.8).
local batch = require "t2t.batch"
local S = require "t2t.batch.session"
local post = require "t2t.batch.post"
local plan_mod = require "t2t.plan"

local function teardown(ctx, p, px, names, all_done)
  if not all_done and not p.force then
    ctx:fail("not every batch has completed: finish them (batch-complete), or pass --force to tear down anyway")
  end
  local changes = post.teardown(px, { batches = names })
  if #changes == 0 then ctx:say("\nTeardown: nothing left to remove.") return 0 end
  local function change(c)
    return c.tenant.plan:change { kind = c.kind, target = c.target, tenant = c.tenant.name, before = c.before,
                                  after = c.after, note = c.note, operation = "post_teardown", apply = c.apply }
  end
  ctx:say("\nTeardown plan (%d changes):", #changes)
  if ctx.opts.plan then
    for _, c in ipairs(changes) do change(c) end
    return #changes
  end
  for _, c in ipairs(changes) do
    ctx:say("%s", plan_mod.describe { kind = c.kind, target = c.target, tenant = c.tenant.name, before = c.before,
                                     after = c.after, note = c.note })
  end
  ctx:say("")
  if not ctx:confirm(string.format("Apply these %d changes (the migration app and its secrets are deleted)?", #changes)) then
    ctx:fail("teardown not confirmed: nothing was removed (pass --yes to confirm without a terminal)")
  end
  for _, c in ipairs(changes) do
    local _, err = change(c)
    ctx:item(c.target, err == nil or err == "unchanged", err and tostring(err) or "removed")
  end
  return #changes
end

return runbook {
  name = "post-migration",
  description = "After the batches complete: check each user converted on both sides, re-stamp Send on Behalf, list\n" ..
    "what is left to do, and --teardown the migration plumbing (ms-setup-and-prep.md §6.4-6.5, §4.8).\n\n" ..
    "Each completed user: the target is a mailbox with the source's ExchangeGuid, the source a mail user whose\n" ..
    "ExternalEmailAddress points into the target delivery domain (needs --source; with --sim the seeded pair).\n" ..
    "Send on Behalf (GrantSendOnBehalfTo) does not move: it is set again on the target mailbox for the delegates\n" ..
    "who moved too. Then what admins must still do: Outlook profiles, Teams meeting links, licences, mail flow,\n" ..
    "on-premises targetAddress in hybrid, DKIM for the domains the moved users use. --teardown (when every batch\n" ..
    "has completed; --force otherwise) removes the completed batches, the migration endpoint, the organization\n" ..
    "relationships' move settings (the relationships stay), the migration app and its consent in the source --\n" ..
    "shown first, applied once confirmed (--yes).",
  needs = {
    target = { exchange = { "View-Only Recipients", "Migration", "Mail Recipients" },   -- Send on Behalf again
               when = { ["backend=graph"] = { graph = { "CrossTenantContentMigration.Read.All" } }, dkim = { exchange = { "View-Only Configuration" } },
                        teardown = { exchange = { "Federated Sharing" }, graph = { "Application.ReadWrite.All" } } } },
    source = { exchange = { "View-Only Recipients" },
               when = { teardown = { exchange = { "Federated Sharing" }, graph = { "Application.ReadWrite.All" } } } },
  },
  params = S.params({
    { name = "restamp", type = "boolean", default = true, help = "set Send on Behalf again on the target mailboxes" },
    { name = "dkim", type = "boolean", default = true, help = "check DKIM signing of the target domains the moved users use" },
    { name = "teardown", type = "boolean", default = false, help = "remove the migration endpoint, move settings, app (shown first)" },
    { name = "force", type = "boolean", default = false, help = "tear down even though some batches have not completed" },
  }),
  run = function(ctx, p)
    local run = S.open(ctx, p)
    local names = S.names(ctx, p, run)
    local J = run.journal
    local px = { target = run.target, source = run.source, journal = J, backend = run.backend,
                 tdd = J and J.doc.tdd or run.target.domain, endpoint = J and J.doc.endpoint,
                 source_id = (run.source and run.source.id) or (J and J.doc.source and J.doc.source.tenant_id) }
    local users, all_done = {}, true
    local present = {}
    for _, n in ipairs(names) do
      local snap, sum = batch.status(run.backend, n, { detail = 0 })
      if not snap and run.journal and not run.backend:batch(n) then
        ctx:say("Batch %s no longer exists (removed after completion): its users are checked from the batches file.", n)
        for _, rec in ipairs(run.journal:members(n)) do users[#users + 1] = { address = rec.target, batch = n } end
        goto next
      end
      if not snap then ctx:fail("batch %s: %s", n, tostring(sum)) end
      present[#present + 1] = n
      if (snap.batch.status or ""):lower() ~= "completed" then all_done = false end
      for _, u in ipairs(snap.users) do
        if u.state == "Completed" then users[#users + 1] = u
        else ctx:item(u.address, false, "not completed: " .. u.state) end
      end
      ::next::
    end
    ctx:say("Checking %d completed users%s", #users, run.source and "" or " (target side only: no --source)")
    local rows = post.check(px, users)
    local converted, restamped = 0, 0
    for _, r in ipairs(rows) do
      local ok = r.target_ok and (r.source_ok ~= false)
      if ok then converted = converted + 1 end
      local detail = ok and ("mailbox" .. (r.forward and (", source forwards to " .. r.forward) or "")) or r.detail
      if ok and p.restamp then
        local res, err = post.restamp(px, r)
        if not res then ok, detail = false, "Send on Behalf: " .. tostring(err)
        else
          if #res.added > 0 then restamped = restamped + 1; detail = detail .. "; Send on Behalf: " .. table.concat(res.added, ", ") end
          if #res.missing > 0 then detail = detail .. "; Send on Behalf delegates who did not move: " .. table.concat(res.missing, ", ") end
        end
      end
      ctx:item(r.user, ok, detail)
    end
    if p.dkim then px.dkim = post.dkim(px, rows) end
    ctx:say("\nWhat is left to do:")
    for _, l in ipairs(post.todo(px, rows)) do ctx:say("  * %s", l) end
    local torn = 0
    if p.teardown then torn = teardown(ctx, p, px, present, all_done) end
    ctx:summary("users converted", converted)
    ctx:summary("Send on Behalf re-stamped", restamped)
    if p.teardown then ctx:summary("teardown changes", torn) end
    return { converted = converted, restamped = restamped, all_completed = all_done }
  end,
}
