-- t2t.plan: every mutation goes through plan:change{}.  In plan mode (--plan) the change is
-- recorded and printed as a diff and nothing is applied; otherwise it is applied, printed as it
-- happens, and appended to the audit file as one JSON line.  Secrets never reach either.
local log = require "t2t.log"

local M = {}
M.__index = M

-- Field names whose values are never shown or written (matched case-insensitively).
local SECRET_FIELD = { "secret", "password", "credential", "token", "privatekey", "pfx", "key$" }

local function is_secret_field(name)
  name = tostring(name):lower():gsub("[^%w]", "")
  for _, pat in ipairs(SECRET_FIELD) do
    if name:find(pat) then return true end
  end
  return false
end

-- A short, redacted rendering of a value for a diff line.
local function show(v, field)
  if v == nil then return "(none)" end
  if field and is_secret_field(field) then return "(secret)" end
  if type(v) == "table" then
    local parts, n = {}, 0
    if #v > 0 then
      for i, x in ipairs(v) do
        if i > 6 then parts[#parts + 1] = string.format("... %d more", #v - 6) break end
        parts[#parts + 1] = show(x)
      end
      return "[" .. table.concat(parts, ", ") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do
      n = n + 1
      if n > 6 then parts[#parts + 1] = "..." break end
      parts[#parts + 1] = k .. "=" .. show(v[k], k)
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  if type(v) == "string" then return log.redact(string.format("%q", v)) end
  return log.redact(tostring(v))
end

local function equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
M.equal = equal

-- The fields that differ between before and after: list of {field, before, after}.
function M.diff(before, after)
  local out = {}
  if type(before) ~= "table" or type(after) ~= "table" then
    if not equal(before, after) then out[1] = { field = nil, before = before, after = after } end
    return out
  end
  local keys, seen = {}, {}
  for k in pairs(after) do keys[#keys + 1] = k; seen[k] = true end
  for k in pairs(before) do if not seen[k] then keys[#keys + 1] = k end end
  table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(keys) do
    if not equal(before[k], after[k]) then
      out[#out + 1] = { field = k, before = before[k], after = after[k] }
    end
  end
  return out
end

-- plan.new{dry_run = bool, audit = path|nil, out = function(line) | nil, now = fn}
function M.new(opts)
  opts = opts or {}
  return setmetatable({
    dry_run = opts.dry_run and true or false,
    audit_path = opts.audit,
    out = opts.out or function(line) io.write(line, "\n") end,
    now = opts.now or os.time,
    changes = {},
    applied = 0, planned = 0, failed = 0,
  }, M)
end

-- kinds: create (a new object), add (a new item on an existing one: a member, a secret, an
-- access policy), update (before -> after), delete, action (anything else)
local SIGIL = { create = "+", add = "+", update = "~", delete = "-", action = "*" }

local function describe(c)
  local lines = { string.format("%s %s %s%s", SIGIL[c.kind] or "*", c.kind, c.target,
                                c.tenant and (" [" .. c.tenant .. "]") or "") }
  if c.kind == "update" then
    for _, d in ipairs(M.diff(c.before, c.after)) do
      lines[#lines + 1] = string.format("    %s: %s -> %s", tostring(d.field or "value"),
                                        show(d.before, d.field), show(d.after, d.field))
    end
  elseif (c.kind == "create" or c.kind == "add") and type(c.after) == "table" then
    local keys = {}
    for k in pairs(c.after) do keys[#keys + 1] = k end
    table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
    for _, k in ipairs(keys) do
      lines[#lines + 1] = string.format("    %s: %s", tostring(k), show(c.after[k], k))
    end
  end
  if c.note then lines[#lines + 1] = "    (" .. log.redact(c.note) .. ")" end
  return table.concat(lines, "\n")
end
M.describe = describe

function M:audit(entry)
  if not self.audit_path then return true end
  local f, err = io.open(self.audit_path, "a")
  if not f then return nil, err end
  local cjson = require "cjson"
  f:write(log.redact(cjson.encode(entry)), "\n")
  f:close()
  return true
end

-- plan:change{kind = "create"|"add"|"update"|"delete"|"action", target = "application 'X'",
--             tenant = id or name, operation = "ensure_app", before = t, after = t,
--             note = "why", apply = function() -> result, request_id | nil, err }
-- Returns the apply result, or nil, "planned" in plan mode, or nil, err on failure.
function M:change(c)
  assert(type(c) == "table" and c.kind and c.target, "plan:change needs kind and target")
  assert(type(c.apply) == "function", "plan:change needs an apply function")
  if c.kind == "update" and #M.diff(c.before, c.after) == 0 then return nil, "unchanged" end
  self.changes[#self.changes + 1] = c
  if self.dry_run then
    self.planned = self.planned + 1
    self.out("would " .. describe(c))
    return nil, "planned"
  end
  self.out(describe(c))
  local ok, result, request_id = pcall(c.apply)
  local err
  if not ok then err = result; result = nil
  elseif result == nil then err = request_id; request_id = nil end
  if err ~= nil then
    self.failed = self.failed + 1
  else
    self.applied = self.applied + 1
  end
  local entry = {
    time = os.date("!%Y-%m-%dT%H:%M:%SZ", self.now()),
    tenant = c.tenant, operation = c.operation or c.kind, kind = c.kind, target = c.target,
    result = err == nil and "ok" or "failed",
    error = err ~= nil and tostring(err) or nil,
    request_id = type(request_id) == "string" and request_id or nil,
  }
  if c.kind == "update" then
    local fields = {}
    for _, d in ipairs(M.diff(c.before, c.after)) do fields[#fields + 1] = tostring(d.field or "value") end
    entry.fields = fields
  end
  local aok, aerr = self:audit(entry)
  if not aok then log.warn("cannot write the audit file %s: %s", self.audit_path, aerr) end
  if err ~= nil then
    if not ok then error(err, 0) end
    return nil, err
  end
  return result
end

return M
