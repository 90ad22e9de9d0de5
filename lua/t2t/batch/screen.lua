-- t2t.batch.screen: one screen per batch for batch-status -- counts by state, progress,
-- throughput and ETA, the users that need attention first, and the failures grouped by
-- exception with the documented fix and the t2t command that applies it (§8).  Returns lines;
-- the runbook prints them, or redraws them in place with --watch.
local status = require "t2t.batch.status"
local fixes = require "t2t.batch.fixes"

local M = {}
local fmt = string.format

local LABEL = { Queued = "queued", Syncing = "syncing", Stalled = "stalled", Synced = "synced",
                NeedsApproval = "needs approval", Completing = "completing", Completed = "completed",
                Failed = "failed", Stopped = "stopped" }
local ORDER = { Failed = 1, NeedsApproval = 2, Stalled = 3, Syncing = 4, Queued = 5, Completing = 6,
                Synced = 7, Stopped = 8, Completed = 9 }

local function cut(s, n)
  s = tostring(s or "")
  if #s <= n then return s end
  return s:sub(1, n - 3) .. "..."
end

local function clock(t) return t and os.date("!%H:%M", math.floor(t)) or "-" end

-- counts(sum) -> "3 queued  40 syncing ..." (states with users only).
function M.counts(sum)
  local parts = {}
  for _, st in ipairs(status.STATES) do
    local n = sum.counts[st] or 0
    if n > 0 then parts[#parts + 1] = fmt("%d %s", n, LABEL[st]) end
  end
  return table.concat(parts, "  ")
end

local function bar(pct, width)
  local filled = math.floor(math.min(100, pct) * width / 100 + 0.5)
  return "[" .. string.rep("#", filled) .. string.rep(".", width - filled) .. "]"
end

-- detail(u) -> the last column of a user's row.
local function detail(u)
  if u.state == "Failed" then return (u.exception or "failed") .. ": " .. (u.error or ""):gsub("^[%w%.]+Exception: ", "") end
  if u.state == "Stalled" then return u.stall end
  if u.state == "NeedsApproval" then return fmt("%d items skipped (Data Consistency Score %s)", u.skipped or 0, u.dcs or "?") end
  if u.size then return fmt("%s of %s", status.human(u.bytes), status.human(u.size)) end
  return ""
end

-- rows(snap, n) -> the n users to show: those needing attention, then the ones moving.
local function rows(snap, n)
  local list = {}
  for _, u in ipairs(snap.users) do list[#list + 1] = u end
  table.sort(list, function(a, b)
    local x, y = ORDER[a.state] or 9, ORDER[b.state] or 9
    if x ~= y then return x < y end
    if (a.percent or 0) ~= (b.percent or 0) then return (a.percent or 0) < (b.percent or 0) end
    return (a.address or "") < (b.address or "")
  end)
  local out = {}
  for i = 1, math.min(n, #list) do out[i] = list[i] end
  return out, #list - #out
end

-- render(snap, sum, o) -> lines.  o: rows (users shown), width, kind (backend), now.
function M.render(snap, sum, o)
  o = o or {}
  local b = snap.batch
  local L = {}
  local function add(f, ...) L[#L + 1] = select("#", ...) > 0 and fmt(f, ...) or f end
  add("%s  %s   (%s, endpoint %s, delivery domain %s)", b.name, b.status or "?", o.kind or "exo",
      tostring(b.endpoint or "-"), tostring(b.tdd or "-"))
  add("  created %s UTC, started %s, complete: %s", b.created and os.date("!%Y-%m-%d %H:%M", math.floor(b.created)) or "-",
      clock(b.started), b.complete_after and tostring(b.complete_after) or "manual (batch-complete)")
  add("  %d users: %s", sum.total, sum.total > 0 and M.counts(sum) or "none")
  local rate = sum.throughput and (status.human(sum.throughput * 60) .. "/min") or "-"
  add("  %s %3d %%   %s moved   throughput %s   ETA %s%s", bar(sum.percent, 30), sum.percent,
      status.human(sum.bytes), rate, sum.settled and "-" or status.duration(sum.eta),
      sum.known < sum.total and not sum.settled and fmt("   (progress read for %d of %d users)", sum.known, sum.total) or "")
  local shown, hidden = rows(snap, o.rows or 15)
  if #shown > 0 then
    add("  %-36s %-14s %4s  %s", "user", "state", "%", "detail")
    for _, u in ipairs(shown) do
      add("  %-36s %-14s %4s  %s", cut(u.address, 36), LABEL[u.state] or u.state, u.percent and tostring(math.floor(u.percent)) or "-",
          cut(detail(u), o.width and math.max(20, o.width - 60) or 90))
    end
    if hidden > 0 then add("  (%d more users; batch-report lists every one)", hidden) end
  end
  if #sum.failures > 0 then
    add("  What to do:")
    for _, g in ipairs(sum.failures) do
      local info = fixes.info(g.exception ~= "UnknownFailure" and g.exception or nil, g.users[1].error)
      add("   %3d %s -- %s", #g.users, g.exception, info.cause)
      add("       fix: %s", info.fix)
      local cmd = fixes.command(b.name, info)
      if cmd then add("       run: %s", cmd) end
      local names = {}
      for i, u in ipairs(g.users) do
        if i > 4 then names[#names + 1] = fmt("(+%d)", #g.users - 4) break end
        names[#names + 1] = u.address
      end
      add("       users: %s", table.concat(names, ", "))
    end
  end
  return L
end

-- line(snap, sum) -> one line for a log (a non-terminal --watch prints it when it changes).
function M.line(snap, sum)
  return fmt("%s %s: %s (%d %%)", snap.batch.name, snap.batch.status or "?", M.counts(sum), sum.percent)
end

return M
