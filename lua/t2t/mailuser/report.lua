-- t2t.mailuser.report: the per-user result of a users runbook — a table on the terminal, the same
-- rows as CSV or JSON (--report FILE, by its extension), and reading a previous report back so
-- --only-failed re-runs exactly the users that did not succeed.
local csv = require "t2t.csv"
local cjson = require "cjson"

local M = {}
local fmt = string.format

M.COLUMNS = { "SourceUser", "TargetUser", "Status", "Changes", "Problems", "Fix", "Exception", "Line" }

-- Statuses that count as done; anything else is re-run by --only-failed.
M.OK = { ok = true, ready = true, migrated = true, created = true, updated = true, unchanged = true }

-- row{source, target, status, changes = {...}, problems = {problem...}, warnings = {...}, line}
-- -> the flat row written to files (problems joined with " | ").
function M.row(r)
  local msgs, fixes, exs = {}, {}, {}
  for _, p in ipairs(r.problems or {}) do
    msgs[#msgs + 1] = p.message or tostring(p)
    if p.fix then fixes[#fixes + 1] = p.fix end
    if p.exception then exs[#exs + 1] = p.exception end
  end
  for _, w in ipairs(r.warnings or {}) do msgs[#msgs + 1] = "warning: " .. w end
  return { SourceUser = r.source, TargetUser = r.target, Status = r.status,
           Changes = table.concat(r.changes or {}, "; "), Problems = table.concat(msgs, " | "),
           Fix = table.concat(fixes, " | "), Exception = table.concat(exs, " | "),
           Line = r.line and tostring(math.tointeger(r.line) or r.line) or nil }
end

-- One line for people: each problem with its fix, then the warnings, else the changes.
function M.detail(r)
  local parts = {}
  for _, p in ipairs(r.problems or {}) do
    parts[#parts + 1] = (p.message or tostring(p)) .. (p.fix and (" -> fix: " .. p.fix) or "")
  end
  if #parts == 0 and r.changes and #r.changes > 0 then parts[1] = table.concat(r.changes, "; ") end
  for _, w in ipairs(r.warnings or {}) do parts[#parts + 1] = "warning: " .. w end
  return table.concat(parts, " | ")
end

local function is_json(path) return path:lower():match("%.json$") ~= nil end

-- write(path, rows) -> true | nil, err (CSV unless the name ends in .json; 0600, atomic).
function M.write(path, rows)
  local flat = {}
  for i, r in ipairs(rows) do flat[i] = r.SourceUser and r or M.row(r) end
  if is_json(path) then
    local parts = {}
    for i, r in ipairs(flat) do parts[i] = cjson.encode(r) end
    return require("t2t.core.fs").write_private(path, "[\n" .. table.concat(parts, ",\n") .. "\n]\n")
  end
  return csv.write(path, M.COLUMNS, flat)
end

-- read(path) -> rows (flat) | nil (no such file) | nil, err
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  f:close()
  if is_json(path) then
    local text, err = require("t2t.files").read(path, "data")
    if not text then return nil, err end
    local ok, doc = pcall(cjson.decode, text)
    if not ok or type(doc) ~= "table" then return nil, fmt("%s is not a t2t report (JSON array)", path) end
    return doc
  end
  local doc, err = csv.read(path)
  if not doc then return nil, err end
  local cols = {}
  for i, n in ipairs(M.COLUMNS) do cols[i] = { name = n, required = n == "SourceUser" or n == "Status" } end
  local recs, problems = csv.records(doc, { columns = cols })
  if #problems.missing > 0 then
    return nil, fmt("%s is not a t2t report (no %s column)", path, table.concat(problems.missing, ", "))
  end
  return recs
end

-- split(rows) -> the set of lower-case SourceUser whose Status is not done (to re-run), and the
-- rows of those that are (kept in the next report).
function M.split(rows)
  local redo, keep = {}, {}
  for _, r in ipairs(rows) do
    if r.SourceUser then
      if M.OK[r.Status or ""] then keep[#keep + 1] = r else redo[r.SourceUser:lower()] = true end
    end
  end
  return redo, keep
end

local function cut(s, n)
  s = tostring(s or "")
  if #s <= n then return s end
  return s:sub(1, n - 3) .. "..."
end

-- print(ctx, rows, max_ok): the per-user table; ok rows beyond max_ok are left to the report
-- file (failures are always shown).
function M.print(ctx, rows, max_ok)
  if ctx.json or #rows == 0 then return end
  local shown, hidden = {}, 0
  for _, r in ipairs(rows) do
    local f = r.SourceUser and r or M.row(r)
    if not r.SourceUser then f.Detail = M.detail(r) end
    if M.OK[f.Status or ""] and #rows > (max_ok or 200) then hidden = hidden + 1
    else shown[#shown + 1] = f end
  end
  ctx:say("\n%-34s %-34s %-10s %s", "user", "target", "result", "detail")
  for _, f in ipairs(shown) do
    ctx:say("%-34s %-34s %-10s %s", cut(f.SourceUser, 34), cut(f.TargetUser or "-", 34), f.Status,
            f.Detail or (f.Problems ~= "" and f.Problems) or f.Changes)
  end
  if hidden > 0 then ctx:say("(%d users done and not shown; --report FILE lists every one)", hidden) end
end

return M
