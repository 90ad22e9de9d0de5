-- batch-complete: complete synced batches now, or at a time (ms-setup-and-prep.md §6.4).
local batch = require "t2t.batch"
local S = require "t2t.batch.session"
local fix = require "t2t.batch.fix"
local screen = require "t2t.batch.screen"

local COMPLETABLE = { synced = true, syncedwitherrors = true, completedwitherrors = true }
local DONE = { completed = true }

-- wait_for(ctx, run, name, want, o) -> snap, sum once the batch's status is in want (or the
-- time is up): a line per change while waiting.
local function wait_for(ctx, run, name, want, o)
  local last
  local deadline = os.time() + o.timeout
  while true do
    local snap, sum = batch.status(run.backend, name, { detail = 0 })
    if not snap then ctx:fail("batch %s: %s", name, tostring(sum)) end
    local st = (snap.batch.status or ""):lower()
    local line = screen.line(snap, sum)
    if line ~= last then ctx:say("  %s", line); last = line end
    if want[st] and sum.settled or os.time() >= deadline then return snap, sum end
    require("t2t").sleep(o.interval)
  end
end

return runbook {
  name = "batch-complete",
  description = "Complete migration batches: the final sync, then the conversions (ms-setup-and-prep.md §6.4).\n\n" ..
    "A synced batch is completed now (Complete-MigrationBatch), or at --at TIME (Set-MigrationBatch -CompleteAfter;\n" ..
    "ISO UTC, +2h, +1d). On completion the target mail users become mailboxes and the source mailboxes mail users\n" ..
    "forwarding to the target delivery domain. Users whose items were skipped (Data Consistency Score\n" ..
    "Investigate) complete only once approved: --approve-skipped, or --bad-item-limit/--large-item-limit to approve\n" ..
    "those within the limits. --wait waits for the batches to sync first and then to complete. After: post-migration.",
  needs = {
    target = { exchange = { "Migration" },
               when = { ["backend=graph"] = { graph = { "CrossTenantContentMigration.ReadWrite.All" } }, ["bad-item-limit"] = { exchange = { "Move Mailboxes" } },
                        ["large-item-limit"] = { exchange = { "Move Mailboxes" } } } },
  },
  params = S.params({
    { name = "at", type = "string", help = "complete at this time instead of now (ISO UTC, +2h, +1d)" },
    { name = "approve-skipped", type = "boolean", default = false, help = "approve every user's skipped items" },
    { name = "bad-item-limit", type = "integer", min = 0, help = "approve users with at most this many corrupt items skipped" },
    { name = "large-item-limit", type = "integer", min = 0, help = "... and at most this many large items skipped" },
    { name = "wait", type = "boolean", default = false, help = "wait for each batch to sync, complete it, and wait until it has completed" },
    { name = "timeout", type = "number", default = 3600, min = 1, help = "seconds --wait waits at most" },
    { name = "interval", type = "number", min = 0.2, help = "seconds between checks with --wait (default 30; 1 with --sim)" },
  }),
  run = function(ctx, p)
    local at
    if p.at then
      local err
      at, err = S.parse_time(p.at)
      if not at then ctx:usage("--at: %s", err) end
    end
    local run = S.open(ctx, p, { no_source = true })
    local names = S.names(ctx, p, run)
    local o = { timeout = p.timeout, interval = p.interval or (ctx.opts.sim and 1 or 30) }
    local fx = { target = run.target, backend = run.backend, opts = p }
    local SYNCED = { synced = true, syncedwitherrors = true, completed = true, completedwitherrors = true }
    local waiting = {}
    for _, name in ipairs(names) do
      local snap, sum
      if p.wait and not at then
        ctx:say("Waiting for %s to sync ...", name)
        snap, sum = wait_for(ctx, run, name, SYNCED, o)
      else
        snap, sum = batch.status(run.backend, name, { detail = 0 })
        if not snap then ctx:fail("batch %s: %s", name, tostring(sum)) end
      end
      local approved = 0
      for _, u in ipairs(snap.users) do
        if u.state == "NeedsApproval" then
          local res, detail = fix.approve(fx, u)
          if res == "ok" or res == "planned" then approved = approved + 1
          else ctx:item(u.address, false, "skipped items not approved: " .. tostring(detail)) end
        end
      end
      local st = (snap.batch.status or ""):lower()
      if DONE[st] then
        ctx:item(name, true, "completed already")
      elseif not at and not COMPLETABLE[st] then
        ctx:item(name, false, string.format("%s is %s (%s): complete it once synced (--wait), or at a time (--at)",
          name, snap.batch.status, screen.counts(sum)))
      else
        local _, err = batch.complete(run.backend, name, at)
        if err and err ~= "planned" then
          ctx:item(name, false, tostring(err))
        else
          ctx:item(name, true, at and ("completes after " .. S.iso(at)) or
            string.format("completing (%d users%s)", sum.total, approved > 0 and (", " .. approved .. " approved") or ""))
          if p.wait and not at and not ctx.opts.plan then waiting[#waiting + 1] = name end
        end
      end
    end
    for _, name in ipairs(waiting) do             -- they complete side by side: wait for each in turn
      ctx:say("Waiting for %s to complete ...", name)
      local s2 = wait_for(ctx, run, name, { completed = true, completedwitherrors = true }, o)
      ctx:say("  %s: %s", name, s2.batch.status)
    end
    ctx:summary("batches", #names)
    ctx:say("\nNext: t2t run post-migration (check the conversions, re-stamp Send on Behalf, what is left to do)")
  end,
}
