-- t2t.batch.journal: the batches file -- which user belongs in which batch, as planned and as
-- batch-fix re-homed them, with what each runbook needs about the user afterwards (its source
-- mailbox, GUIDs, delegates) and a history of the failures fixed.  It is the desired state the
-- runbooks make the service match: it is written (atomically, mode 0600) BEFORE a batch is made
-- or a user moved, so a run killed at any point is finished by the next one -- nothing is
-- created twice and no user is left in no batch or in two (docs/batches.md).
--
--   {"t2t": "batches", "version": 1, "backend": "exo"|"graph", "created", "updated",
--    "target": {name, tenant_id, domain}, "source": {name, tenant_id, domain},
--    "endpoint", "tdd", "options": {complete, start_after, notify, size},
--    "batches": [{name, of?, created_by: "plan"|"fix", job_id?}],
--    "users": {lower target address: {target, source, batch, exchange_guid, archive_guid,
--              legacy_dn, source_id, name, delegates: {FullAccess, SendAs, SendOnBehalf, Calendar},
--              left_out?, left_from?, left_exception?, left_error? (batch-fix --leave-out: no batch)}},
--    "history": [{time, user, batch, exception, action, result, to}]}
local cjson = require "cjson"

local M = {}
local lower, fmt = string.lower, string.format

M.KIND, M.VERSION = "batches", 1
M.DEFAULT = "t2t-batches.json"

local Journal = {}
Journal.__index = Journal

local function now_iso() return os.date("!%Y-%m-%dT%H:%M:%SZ") end

-- new(path, head) -> an empty journal.
function M.new(path, head)
  local j = setmetatable({ path = path, doc = { t2t = M.KIND, version = M.VERSION, created = now_iso(),
    batches = {}, users = {}, history = {}, options = {} } }, Journal)
  for k, v in pairs(head or {}) do j.doc[k] = v end
  return j
end

-- load(path) -> journal | nil (no such file) | nil, err
function M.load(path)
  if not require("t2t.core.fs").mode(path) then return nil end
  local text, err = require("t2t.files").read(path, "data")
  if not text then return nil, err end
  local ok, doc = pcall(cjson.decode, text)
  if not ok or type(doc) ~= "table" or doc.t2t ~= M.KIND then
    return nil, fmt("%s is not a t2t batches file (migrate-batch writes one)", path)
  end
  if doc.version ~= M.VERSION then
    return nil, fmt("%s is a version %s batches file; this t2t reads version %d", path, tostring(doc.version), M.VERSION)
  end
  doc.batches, doc.users, doc.history, doc.options = doc.batches or {}, doc.users or {}, doc.history or {}, doc.options or {}
  return setmetatable({ path = path, doc = doc }, Journal)
end

-- save() -> true | nil, err (atomic, 0600; a plan-mode run never calls it).
function Journal:save()
  self.doc.updated = now_iso()
  local users = self.doc.users
  if next(users) == nil then users = cjson.decode("{}") end
  local doc = {}
  for k, v in pairs(self.doc) do doc[k] = v end
  doc.users = users
  return require("t2t.core.fs").write_private(self.path, cjson.encode(doc) .. "\n")
end

function Journal:user(addr) return self.doc.users[lower(addr)] end

-- set_user(rec): rec.target is the key; a known user keeps what rec leaves out.
function Journal:set_user(rec)
  local key = lower(rec.target)
  local cur = self.doc.users[key] or {}
  for k, v in pairs(rec) do cur[k] = v end
  self.doc.users[key] = cur
  return cur
end

function Journal:batch(name)
  for _, b in ipairs(self.doc.batches) do if lower(b.name) == lower(name) then return b end end
end

function Journal:add_batch(b)
  local cur = self:batch(b.name)
  if cur then for k, v in pairs(b) do cur[k] = v end return cur end
  self.doc.batches[#self.doc.batches + 1] = b
  return b
end

-- members(name) -> the user records the journal puts in batch name, by address.
function Journal:members(name)
  local out = {}
  for _, u in pairs(self.doc.users) do
    if lower(u.batch or "") == lower(name) then out[#out + 1] = u end
  end
  table.sort(out, function(a, b) return lower(a.target) < lower(b.target) end)
  return out
end

-- names() -> the batch names, in the order they were planned.
function Journal:names()
  local out = {}
  for i, b in ipairs(self.doc.batches) do out[i] = b.name end
  return out
end

-- pinned() -> {address = batch} for every user the journal already places.
function Journal:pinned()
  local out = {}
  for k, u in pairs(self.doc.users) do if u.batch then out[k] = u.batch end end
  return out
end

function Journal:record(entry)
  entry.time = entry.time or now_iso()
  local h = self.doc.history
  h[#h + 1] = entry
end

-- retry_name(of, taken) -> the next free "<of>-retryN" (taken: a set of lower-case names the
-- service already has).
function Journal:retry_name(of, taken)
  local base = (of:gsub("%-retry%d+$", ""))
  for n = 1, 999 do
    local name = base .. "-retry" .. n
    if not self:batch(name) and not (taken and taken[lower(name)]) then return name end
  end
  error("t2t.batch.journal: no free retry name for " .. of)
end

M.Journal = Journal
return M
