-- t2t.batch.report: the per-user record of a migration -- one row per user of every batch, for
-- CSV (Excel), JSON, and the HTML report's charts (t2t.batch.html).  Built from the batches'
-- snapshots with every user's statistics read (their timestamps draw progress over time) and the
-- batches file (the source mailbox of each user, the failures batch-fix fixed).
local csv = require "t2t.csv"
local cjson = require "cjson"
local status = require "t2t.batch.status"
local fixes = require "t2t.batch.fixes"

local M = {}
local lower = string.lower

M.COLUMNS = { "Batch", "TargetUser", "SourceUser", "State", "Status", "Percent", "BytesTransferred", "MailboxSize",
              "ItemsTransferred", "SkippedItems", "DataConsistencyScore", "Exception", "Error", "Fix", "Queued",
              "Started", "Synced", "Completed", "Failed" }

local function iso(t) return t and require("t2t.time").iso(t) or nil end

-- rows(snaps, journal) -> flat rows (M.COLUMNS), batches' order then address; then the users
-- batch-fix --leave-out took out of their batches (State LeftOut, the batch they left).
function M.rows(snaps, J)
  local out, seen = {}, {}
  for _, snap in ipairs(snaps) do
    local list = {}
    for _, u in ipairs(snap.users) do list[#list + 1] = u end
    table.sort(list, function(a, b) return lower(a.address or "") < lower(b.address or "") end)
    for _, u in ipairs(list) do
      local rec = J and J:user(u.address or "")
      seen[lower(u.address or "")] = true
      local t = u.times or {}
      local info = u.state == "Failed" and fixes.info(u.exception, u.error) or nil
      out[#out + 1] = { Batch = snap.batch.name, TargetUser = u.address, SourceUser = rec and rec.source or nil,
        State = u.state, Status = u.status, Percent = u.percent and math.floor(u.percent) or nil,
        BytesTransferred = u.bytes and math.floor(u.bytes) or nil, MailboxSize = u.size and math.floor(u.size) or nil,
        ItemsTransferred = u.items and math.floor(u.items) or nil, SkippedItems = u.skipped and math.floor(u.skipped) or nil,
        DataConsistencyScore = u.dcs, Exception = u.exception, Error = u.error, Fix = info and info.fix or nil,
        Queued = iso(t.queued), Started = iso(t.start), Synced = iso(t.synced), Completed = iso(t.completed),
        Failed = iso(t.failed) }
    end
  end
  local left = {}
  for key, rec in pairs(J and J.doc.users or {}) do
    if rec.left_out and not rec.batch and not seen[key] then left[#left + 1] = rec end
  end
  table.sort(left, function(a, b) return lower(a.target or "") < lower(b.target or "") end)
  for _, rec in ipairs(left) do
    local info = rec.left_exception and fixes.info(rec.left_exception) or nil
    out[#out + 1] = { Batch = rec.left_from, TargetUser = rec.target, SourceUser = rec.source, State = "LeftOut",
      Exception = rec.left_exception, Error = rec.left_error, Fix = rec.left_out or (info and info.fix) }
  end
  return out
end

-- write_csv(path, rows) / write_json(path, doc) -> true | nil, err (0600, atomic).
function M.write_csv(path, rows) return csv.write(path, M.COLUMNS, rows) end

function M.write_json(path, doc)
  return require("t2t.core.fs").write_private(path, cjson.encode(doc) .. "\n")
end

-- data(snaps, J, now) -> what the HTML report draws: per batch its counts, users' times and
-- sizes; the failures by cause (open now, fixed by batch-fix and left out of their batches, from
-- the history).
function M.data(snaps, J, now)
  local d = { now = now, batches = {}, failures = {}, totals = { users = 0, completed = 0, failed = 0, bytes = 0, left = 0 } }
  local causes = {}
  local function cause(exn)
    if not causes[exn] then causes[exn] = { exception = exn, open = 0, fixed = 0, left = 0 }; d.failures[#d.failures + 1] = causes[exn] end
    return causes[exn]
  end
  for _, snap in ipairs(snaps) do
    local sum = status.summary(snap, now)
    local b = { name = snap.batch.name, status = snap.batch.status, counts = sum.counts, total = sum.total,
                bytes = sum.bytes, throughput = sum.throughput, started = snap.batch.started, users = {} }
    for _, u in ipairs(snap.users) do
      local t = u.times or {}
      b.users[#b.users + 1] = { address = u.address, state = u.state, size = u.size or 0, start = t.start,
                                synced = t.synced, completed = t.completed, failed = t.failed }
      if u.state == "Failed" then
        local c = cause(fixes.key(u.exception, u.error) or "UnknownFailure")
        c.open = c.open + 1
      end
      d.totals.bytes = d.totals.bytes + (u.bytes or 0)
    end
    d.totals.users = d.totals.users + sum.total
    d.totals.completed = d.totals.completed + sum.counts.Completed
    d.totals.failed = d.totals.failed + sum.counts.Failed
    d.batches[#d.batches + 1] = b
  end
  for _, h in ipairs(J and J.doc.history or {}) do
    if h.result ~= "manual" and h.result ~= "flag" and h.result ~= "failed" and h.exception then
      local c = cause(h.exception)
      if h.result == "left out" then c.left, d.totals.left = c.left + 1, d.totals.left + 1 else c.fixed = c.fixed + 1 end
    end
  end
  table.sort(d.failures, function(a, b)
    local na, nb = a.open + a.fixed + a.left, b.open + b.fixed + b.left
    if na ~= nb then return na > nb end
    return a.exception < b.exception
  end)
  return d
end

return M
