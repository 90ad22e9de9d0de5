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

-- plan.new{dry_run = bool, audit = path|nil, out = function(line) | nil, now = fn,
--          preflight = function() -> true | nil, err}: preflight runs once, before the first
--          change is applied (the run checks there that every file it must write can be).
function M.new(opts)
  opts = opts or {}
  return setmetatable({
    dry_run = opts.dry_run and true or false,
    audit_path = opts.audit,
    out = opts.out or function(line) io.write(line, "\n") end,
    now = opts.now or os.time,
    preflight = opts.preflight,
    changes = {},
    applied = 0, planned = 0, failed = 0,
    outcome = {},          -- change key -> "ok" | "failed": each change counts once, by its last outcome
    seq = 0,
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

-- A change's identity across its attempts (a retry of a create is the same change).
local function key_of(c)
  return table.concat({ tostring(c.tenant), tostring(c.operation or c.kind), c.kind, c.target }, "\0")
end

-- Count the change once, by its latest outcome ("ok" | "failed").
function M:_count(key, result)
  local old = self.outcome[key]
  if old == result then return end
  if old == "ok" then self.applied = self.applied - 1 elseif old == "failed" then self.failed = self.failed - 1 end
  if result == "ok" then self.applied = self.applied + 1 else self.failed = self.failed + 1 end
  self.outcome[key] = result
end

-- Append one audit line (write-ahead: the intent before the change, its outcome after); each
-- line is written whole and synced, or not at all.  true | nil, err.
function M:audit(entry)
  if not self.audit_path then return true end
  if not self.audit_file then
    local f, err = require("t2t.core.fs").open_append(self.audit_path)
    if not f then return nil, err end
    self.audit_file = f
  end
  local cjson = require "cjson"
  return self.audit_file:write(log.redact(cjson.encode(entry)) .. "\n")
end

-- A write that failed after changes were made: the run must end as failed (exit 1).
local WriteFailure = { __tostring = function(e) return e.message end }
M.WriteFailure = WriteFailure

local function write_failure(fmt, ...)
  return setmetatable({ message = string.format(fmt, ...), write_failure = true }, WriteFailure)
end

local function entry_of(self, c, phase)
  return {
    time = os.date("!%Y-%m-%dT%H:%M:%SZ", self.now()), seq = c.seq, phase = phase,
    tenant = c.tenant, operation = c.operation or c.kind, kind = c.kind, target = c.target,
  }
end

-- Run preflight once, before the first change is applied; its failure stops the run unchanged.
function M:_preflight()
  if self.preflight_done then return end
  self.preflight_done = true
  if self.preflight then
    local ok, err = self.preflight()
    if not ok then error(write_failure("%s (nothing was changed)", tostring(err)), 0) end
  end
end

-- plan:change{kind = "create"|"add"|"update"|"delete"|"action", target = "application 'X'",
--             tenant = id or name, operation = "ensure_app", before = t, after = t,
--             note = "why", apply = function() -> result, request_id | nil, err }
-- Returns the apply result, or nil, "planned" in plan mode, or nil, err on failure.
-- With an audit file, an intent line is written (and synced) before apply runs and an outcome
-- line after, so a run killed in between leaves a record of what may have happened; if either
-- cannot be written the run stops with an error (a change is never made unrecorded).
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
  self:_preflight()
  self.seq = self.seq + 1
  c.seq, c.key = self.seq, key_of(c)
  local intent = entry_of(self, c, "intent")
  if c.kind == "update" then
    local fields = {}
    for _, d in ipairs(M.diff(c.before, c.after)) do fields[#fields + 1] = tostring(d.field or "value") end
    intent.fields = fields
  end
  local iok, ierr = self:audit(intent)
  if not iok then
    error(write_failure("cannot write the audit file %s: %s (stopped before: %s)", self.audit_path,
                        tostring(ierr), c.target), 0)
  end
  self.out(describe(c))
  local ok, result, request_id = pcall(c.apply)
  local err
  if not ok then err = result; result = nil
  elseif result == nil then err = request_id; request_id = nil end
  self:_count(c.key, err == nil and "ok" or "failed")
  local entry = entry_of(self, c, "outcome")
  entry.result = err == nil and "ok" or "failed"
  entry.error = err ~= nil and tostring(err) or nil
  entry.request_id = type(request_id) == "string" and request_id or nil
  entry.fields = intent.fields
  local aok, aerr = self:audit(entry)
  if not aok then
    error(write_failure("cannot write the audit file %s after '%s' (%s): its outcome (%s) is not " ..
                        "recorded; the run stops", self.audit_path, c.target, tostring(aerr), entry.result), 0)
  end
  if err ~= nil then
    if not ok then error(err, 0) end
    return nil, err
  end
  return result
end

-- plan:resolved(change, note): a change whose outcome was unknown (its response lost) is now
-- known to have been made -- the object was found by re-reading it.  It counts as applied, once,
-- and the audit file says so.
function M:resolved(c, note)
  if self.dry_run or not c.key then return end
  self:_count(c.key, "ok")
  local entry = entry_of(self, c, "outcome")
  entry.result, entry.note = "ok", note
  local ok, err = self:audit(entry)
  if not ok then
    error(write_failure("cannot write the audit file %s after '%s' (%s)", self.audit_path, c.target,
                        tostring(err)), 0)
  end
end

-- plan:close(): release the audit file.
function M:close()
  if self.audit_file then self.audit_file:close() self.audit_file = nil end
end

return M
