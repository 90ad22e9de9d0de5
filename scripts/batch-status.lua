-- batch-status: one screen per batch -- counts by state, progress, throughput, ETA, the users
-- that need attention, failures grouped by exception with the documented fix (§6.4, §8).
local batch = require "t2t.batch"
local S = require "t2t.batch.session"
local screen = require "t2t.batch.screen"

-- One refresh of every batch: the lines to show and whether all have settled.
local function refresh(ctx, run, names, o)
  local lines, settled, all = {}, true, {}
  for _, n in ipairs(names) do
    local snap, sum = batch.status(run.backend, n, o)
    if not snap then ctx:fail("batch %s: %s", n, tostring(sum)) end
    local st = (snap.batch.status or ""):lower()
    if not sum.settled or st == "waiting" or st == "starting" or st == "completing" then settled = false end
    for _, l in ipairs(screen.render(snap, sum, { rows = o.rows, kind = run.kind, width = o.width })) do lines[#lines + 1] = l end
    lines[#lines + 1] = ""
    all[#all + 1] = { snap = snap, sum = sum }
  end
  return lines, settled, all
end

local function tty()
  local ok, term = pcall(require, "t2t.core.term")
  return ok and term.isatty(1), ok and term
end

return runbook {
  name = "batch-status",
  description = "Show each migration batch: users by state, progress, throughput, ETA, failures and what to do.\n\n" ..
    "States: queued, syncing, stalled (the service paused the move; StatusDetail says why), synced, needs\n" ..
    "approval (skipped items), completing, completed, failed (with the documented exception, its fix and the\n" ..
    "t2t command that applies it), stopped. Progress is read per user (Get-MoveRequestStatistics) for the users\n" ..
    "in motion, --detail at a time, so a 2,000-user batch stays quick; --watch redraws the screen in place every\n" ..
    "--interval seconds (on a terminal; a line per change otherwise) until every batch has settled.\n" ..
    "Exits 3 when some users have failed.",
  needs = {
    target = { exchange = { "Migration", "Move Mailboxes" }, when = { ["backend=graph"] = { graph = { "CrossTenantContentMigration.Read.All" } } } },
  },
  params = S.params({
    { name = "watch", type = "boolean", default = false, help = "refresh until every batch has settled" },
    { name = "interval", type = "number", min = 0.2, help = "seconds between refreshes (default 30; 1 with --sim)" },
    { name = "timeout", type = "number", min = 1, help = "stop watching after this many seconds" },
    { name = "rows", type = "integer", default = 15, min = 0, help = "users shown per batch (those needing attention first)" },
    { name = "detail", type = "integer", default = 150, min = 0, help = "users whose progress is read per refresh" },
  }),
  run = function(ctx, p)
    local run = S.open(ctx, p, { no_source = true })
    local names = S.names(ctx, p, run)
    local is_tty, term = tty()
    local width = is_tty and term.size and select(2, pcall(term.size)) or nil
    local o = { detail = p.detail, rows = p.rows, cache = {}, width = type(width) == "number" and width or nil }
    local interval = p.interval or (ctx.opts.sim and 1 or 30)
    local start = os.time()
    local lines, settled, all = refresh(ctx, run, names, o)
    if p.watch and not ctx.json then
      local drawn, last = 0, {}
      local function draw()
        if is_tty then
          if drawn > 0 then io.write(string.format("\27[%dA\27[J", drawn)) end
          io.write(table.concat(lines, "\n"), "\n")
          drawn = #lines
        else
          for _, x in ipairs(all) do
            local l = screen.line(x.snap, x.sum)
            if last[x.snap.batch.name] ~= l then
              io.write(os.date("!%H:%M:%S "), l, "\n")
              last[x.snap.batch.name] = l
            end
          end
        end
        io.flush()
      end
      draw()
      while not settled and not (p.timeout and os.time() - start >= p.timeout) do
        require("t2t").sleep(interval)
        lines, settled, all = refresh(ctx, run, names, o)
        draw()
      end
      if not is_tty then for _, l in ipairs(lines) do ctx:say("%s", l) end end
    else
      for _, l in ipairs(lines) do ctx:say("%s", l) end
    end
    local out = {}
    for _, x in ipairs(all) do
      for _, u in ipairs(x.snap.users) do ctx:item(u.address or "?", u.state ~= "Failed", u.state) end
      out[#out + 1] = { batch = x.snap.batch.name, status = x.snap.batch.status, counts = x.sum.counts,
                        percent = x.sum.percent, bytes = x.sum.bytes, throughput = x.sum.throughput,
                        eta = x.sum.eta, settled = x.sum.settled, failures = (function()
                          local f = {}
                          for _, g in ipairs(x.sum.failures) do f[g.exception] = #g.users end
                          return f
                        end)() }
    end
    ctx:summary("batches", #names)
    ctx:summary("settled", settled and "yes" or "no")
    return { batches = out }
  end,
}
