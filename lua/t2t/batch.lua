-- t2t.batch: move the mailboxes -- plan batches, create them, watch them, fix what fails,
-- complete them (ms-setup-and-prep.md §6-8, §11.1, §5.6).  Ensure-style like t2t.tenant and
-- t2t.mailuser: every change goes through the tenant's plan (--plan shows it, --audit records
-- it), reads first and changes only what differs, and a batch found by name is never created
-- twice.  Two backends with one face: Exchange Online's migration batches ("exo", the default)
-- and the Graph cross-tenant migration job API ("graph", beta).
--
--   local batch = require "t2t.batch"
--   local p = batch.plan(users, {size = 2000, prefix = "wave"})      -- t2t.batch.plan
--   local B = batch.backend(target, {backend = "exo"})                -- target: a t2t.tenant
--   batch.create(B, {name, endpoint, tdd, start = true, complete = "auto" | epoch | nil,
--                    start_after = epoch, notify = {...}}, addresses)
--   local snap, sum = batch.status(B, "wave-1", {detail = 150})      -- users, counts, ETA
--   batch.start(B, name); batch.stop(B, name); batch.complete(B, name [, at])
--   batch.remove_user(B, entry); batch.resubmit(B, journal, users, o)
-- The batches file (t2t.batch.journal) is the desired state the runbooks converge to.
local plan = require "t2t.batch.plan"
local status = require "t2t.batch.status"

local M = {}
local lower, fmt = string.lower, string.format

M.MAX = plan.MAX
M.plan = plan.make
M.status_of = status

-- backend(target, o) -> the backend object (o.backend: "exo" | "graph"; graph also takes
-- o.source_id, the source tenant's id, and o.exo, the target's Exchange client for progress).
function M.backend(target, o)
  o = o or {}
  if (o.backend or "exo") == "graph" then return require("t2t.batch.graph").new(target, o) end
  return require("t2t.batch.exo").new(target, o)
end

-- members(B) -> {lower address = {entry, ...}}: every migration user of the backend, by user
-- (a user in two batches has two entries) | nil, err
function M.members(B)
  local list, err = B:entries()
  if not list then return nil, err end
  return status.by_address(list)
end

-- Is a migration user's entry moving or moved (it then stays where it is)?
local SETTLED_BAD = { failed = true, incrementalfailed = true, completionfailed = true, corrupted = true,
                      stopped = true, stopping = true, incrementalstopped = true, removing = true }
function M.active(e)
  return not SETTLED_BAD[lower(e.Status or e.status or "")]
end

-- ensure(B, spec, addrs, members, o) -> {name, created, added, moving_elsewhere, removed} | nil,
-- err: batch spec.name exists and holds addrs.  members: M.members(B) (read before); o.ours: the
-- set of batch names the batches file owns -- a user whose failed or stopped entry sits in one
-- of ours is taken out of it first (a re-homing that a killed run left half done).
function M.ensure(B, spec, addrs, members, o)
  o = o or {}
  local name = spec.name
  local res = { name = name, added = 0, removed = 0, elsewhere = {} }
  local todo = {}
  for _, a in ipairs(addrs) do
    local here, stay
    for _, e in ipairs(members[lower(a)] or {}) do
      local b = e.BatchId or e.batch
      if lower(b or "") == lower(name) then here = true
      elseif M.active(e) then stay = stay or b
      elseif o.ours and o.ours[lower(b or "")] then
        local _, err = B:remove_user(e)
        if err and err ~= "planned" then return nil, err end
        res.removed = res.removed + 1
      end
    end
    if stay and not here then res.elsewhere[#res.elsewhere + 1] = { address = a, batch = stay }
    elseif not here then todo[#todo + 1] = a end
  end
  local b, err = B:batch(name)
  if err then return nil, err end
  if not b then
    if #todo == 0 then return res end
    local _, cerr = B:create(spec, todo)
    if cerr and cerr ~= "planned" then return nil, cerr end
    res.created, res.added = true, #todo
  elseif #todo > 0 then
    local _, aerr = B:add_users(name, todo)
    if aerr and aerr ~= "planned" then return nil, aerr end
    res.added = #todo
  end
  if b and spec.start and not spec.start_after and lower(b.Status or "") == "created" then
    local _, serr = B:start(name)
    if serr and serr ~= "planned" then return nil, serr end
    res.started = true
  end
  return res
end

-- create(B, spec, addrs) -> the ensure result: the issue's create (a batch found by name is not
-- made again; missing users are added).
function M.create(B, spec, addrs)
  local members, err = M.members(B)
  if not members then return nil, err end
  return M.ensure(B, spec, addrs, members)
end

-- spec(journal, name) -> the batch spec the batches file gives batch name.
function M.spec(J, name)
  local d, b = J.doc, J:batch(name) or {}
  local o = d.options or {}
  local complete = o.complete
  if complete ~= "auto" then complete = tonumber(complete) end
  return { name = name, endpoint = d.endpoint, tdd = d.tdd, start = o.start ~= false or b.of ~= nil,
           start_after = b.of == nil and tonumber(o.start_after) or nil, complete = complete,
           notify = o.notify, source_id = d.source and d.source.tenant_id, job_id = b.job_id }
end

-- converge(B, J, o) -> results (one per batch) | nil, err: every batch of the file exists with
-- the users the file gives it.  o.only: a set of lower-case names to look at.
function M.converge(B, J, o)
  o = o or {}
  local members, err = M.members(B)
  if not members then return nil, err end
  local ours = {}
  for _, n in ipairs(J:names()) do ours[lower(n)] = true end
  local out = {}
  for _, name in ipairs(J:names()) do
    if not o.only or o.only[lower(name)] then
      local addrs = {}
      for _, u in ipairs(J:members(name)) do addrs[#addrs + 1] = u.target end
      local r, rerr = M.ensure(B, M.spec(J, name), addrs, members, { ours = ours })
      if not r then return nil, fmt("batch %s: %s", name, tostring(rerr)) end
      for _, x in ipairs(r.elsewhere) do
        local rec = J:user(x.address)
        if rec and ours[lower(x.batch)] then rec.batch = x.batch end   -- the service has it moving there
      end
      out[#out + 1] = r
    end
  end
  return out
end

function M.start(B, name) return B:start(name) end
function M.stop(B, name) return B:stop(name) end
function M.complete(B, name, at) return B:complete(name, at) end
function M.remove_user(B, entry) return B:remove_user(entry) end

-- status(B, name, o) -> snapshot, summary | nil, err (t2t.batch.status).
function M.status(B, name, o)
  local snap, err = B:snapshot(name, o)
  if not snap then return nil, err end
  return snap, status.summary(snap, os.time())
end

-- resubmit(B, J, list, o) -> new batch name | nil, err: §8's "remove the user, add it to a new
-- batch".  list: the normalized users of one batch (their service entries in u.raw).  The file
-- records the move first (a killed run is finished by converge), then each user leaves its
-- batch, then the new batch (<batch>-retryN) is made with them and started.
function M.resubmit(B, J, list, o)
  o = o or {}
  if #list == 0 then return nil end
  local of = list[1].batch
  local taken = {}
  for _, b in ipairs(B:batches() or {}) do taken[lower(b.Identity or b.Name or b.name or "")] = true end
  local name = J:retry_name(of, taken)
  J:add_batch { name = name, of = of, created_by = "fix" }
  for _, u in ipairs(list) do
    local rec = J:user(u.address) or J:set_user { target = u.address }
    rec.batch = name
  end
  if not o.plan_mode then
    local ok, err = J:save()
    if not ok then return nil, err end
  end
  local addrs = {}
  for _, u in ipairs(list) do
    local _, err = B:remove_user(u.raw or u)
    if err and err ~= "planned" then return nil, err end
    addrs[#addrs + 1] = u.address
  end
  local members = {}
  if not o.plan_mode then
    local m, err = M.members(B)
    if not m then return nil, err end
    members = m
  end
  local r, err = M.ensure(B, M.spec(J, name), addrs, members)
  if not r then return nil, err end
  return name
end

return M
