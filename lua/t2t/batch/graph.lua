-- t2t.batch.graph: the Graph backend of t2t.batch -- the cross-tenant migration job API (beta,
-- /beta/solutions/migrations/crossTenantMigrationJobs; ms-setup-and-prep.md §11.1): a job per
-- batch, named like the batch (displayName is unique per tenant, so a job found by name is never
-- made twice), created, VALIDATED, then migrated; completion is its completeAfterDateTime
-- (required at creation: "manual" completion is a date 30 days out that batch-complete moves to
-- now).  Jobs take no new users: users added later go in a job of their own named BATCH+N, which
-- this backend reads as part of the batch.  Resources are the SOURCE users' object ids [inferred:
-- the pages say "object IDs"], from the batches file.  Progress per user comes from the target's
-- move requests (Get-MoveRequestStatistics) when the profile can read Exchange.
local status = require "t2t.batch.status"

local M = {}
local lower, fmt = string.lower, string.format

M.MANUAL_DAYS = 30
M.VALIDATE_WAIT = 300        -- seconds create() waits for a validation to finish

local B = {}
B.__index = B
B.kind = "graph"

function M.new(target, o)
  o = o or {}
  local root = target.graph and target.graph.root or "https://graph.microsoft.com"
  return setmetatable({ t = target, o = o, base = root .. "/beta/solutions/migrations/crossTenantMigrationJobs",
                        journal = o.journal, now = o.now or os.time }, B)
end

local iso = require("t2t.time").iso

-- The family of batch name: the job named name, and name+2, name+3 ... (users added later).
local function family_of(jobs, name)
  local out = {}
  for _, j in ipairs(jobs) do
    local d = lower(j.displayName or "")
    if d == lower(name) or d:match("^" .. lower(name):gsub("%p", "%%%0") .. "%+%d+$") then out[#out + 1] = j end
  end
  table.sort(out, function(a, b) return (a.createdDateTime or "") < (b.createdDateTime or "") end)
  return out
end

function B:jobs() return self.t:glist(self.base) end

local STATUS = { submitted = "Created", validatesubmitted = "Validating", validateprocessing = "Validating",
                 validateinprogress = "Validating", validatepassed = "Validated", validatefailed = "ValidationFailed",
                 approved = "Syncing", processing = "Syncing", inprogress = "Syncing", cuttingover = "Completing",
                 completed = "Completed", completedwitherrors = "CompletedWithErrors", failed = "Failed",
                 cancelled = "Stopped", pendingcancel = "Stopping", admin = "Syncing" }

-- batch(name) -> the batch (its jobs) in EXO's shape | nil | nil, err
function B:batch(name)
  local jobs, err = self:jobs()
  if not jobs then return nil, err end
  local fam = family_of(jobs, name)
  if #fam == 0 then return nil end
  local j = fam[1]
  return { Identity = name, Name = name, Status = STATUS[lower(j.status or "")] or j.status, GraphStatus = j.status,
           Message = j.message, CreationDateTime = j.createdDateTime, StartDateTime = j.jobType == "migrate" and j.createdDateTime or nil,
           CompleteAfter = j.completeAfterDateTime, SourceEndpoint = j.exchangeSettings and j.exchangeSettings.sourceEndpoint,
           TargetDeliveryDomain = j.exchangeSettings and j.exchangeSettings.targetDeliveryDomain, jobs = fam }
end

function B:batches()
  local jobs, err = self:jobs()
  if not jobs then return nil, err end
  local seen, out = {}, {}
  for _, j in ipairs(jobs) do
    local base = (j.displayName or ""):gsub("%+%d+$", "")
    if not seen[lower(base)] then seen[lower(base)] = true; out[#out + 1] = { Identity = base, Name = base } end
  end
  return out
end

-- The target address of a job resource (the source user's object id), from the batches file.
function B:address_of(id)
  for _, r in pairs(self.journal and self.journal.doc.users or {}) do
    if lower(r.source_id or "") == lower(id) or lower(r.target_id or "") == lower(id) then return r.target end
  end
  return id
end

local TASK = { notstarted = "Queued", valid = "Queued", invalid = "Failed", error = "Failed", inprogress = "Syncing",
               syncing = "Syncing", synced = "Synced", finalizing = "Completing", forcecomplete = "Completing",
               completed = "Completed", failed = "Failed", cancelled = "Stopped", pendingcancel = "Stopped" }

-- The exception a task's error names (details[1].code), else its orchestrator code and text.
local function task_error(st)
  local e = st and st.errors and st.errors[1]
  if not e then return nil end
  local d = e.details and e.details[1]
  local exn = d and d.code and d.code:match("Exception$") and d.code or nil
  return fmt("%s%s %s", exn and ("Microsoft.Exchange.Migration." .. exn .. ": ") or "", tostring(e.code), tostring(e.message)), exn
end

-- entries(name?) -> migration users in Get-MigrationUser's shape, from the jobs' tasks.
function B:entries(name)
  local jobs, err = self:jobs()
  if not jobs then return nil, err end
  local out = {}
  local list = name and family_of(jobs, name) or jobs
  for _, j in ipairs(list) do
    local tasks, terr = self.t:glist(self.base .. "/" .. j.id .. "/users")
    if not tasks then return nil, terr end
    local base = (j.displayName or ""):gsub("%+%d+$", "")
    for _, tk in ipairs(tasks) do
      local st = tk.currentStatus and tk.currentStatus[1] or {}
      local text, exn = task_error(st)
      local s = TASK[lower(st.status or "")] or "Queued"
      local js = lower(j.status or "")
      if js == "cancelled" and s ~= "Completed" then s = "Stopped" end
      -- a job that is not migrating (made, validated, or failed validation) moves nobody yet
      if s == "Queued" and (js == "submitted" or js == "validatepassed" or js == "validatefailed") then s = "Stopped" end
      out[#out + 1] = { Identity = self:address_of(tk.id), BatchId = base, Status = s, ErrorSummary = text,
                        exception = exn, Guid = j.id .. "/" .. tk.id, job_id = j.id, resource = tk.id }
    end
  end
  return out
end

-- The job's body for a batch spec and target addresses (their source object ids).
function B:body(spec, addrs, name)
  local ids, missing = {}, {}
  for _, a in ipairs(addrs) do
    local r = self.journal and self.journal:user(a)
    if r and r.source_id then ids[#ids + 1] = r.source_id else missing[#missing + 1] = a end
  end
  if #missing > 0 then
    return nil, fmt("the Graph job needs each source user's object id, unknown for %s: run migrate-batch with --from " ..
      "(export-users' file) or --source", table.concat(missing, ", "))
  end
  local now = self.now()
  local at = spec.complete == "auto" and now + 300 or tonumber(spec.complete) or now + M.MANUAL_DAYS * 86400
  return { displayName = name or spec.name, completeAfterDateTime = iso(math.max(at, now + 60)),
           sourceTenantId = spec.source_id, exchangeSettings = { sourceEndpoint = spec.endpoint,
           targetDeliveryDomain = spec.tdd }, workloads = { "Exchange" }, resourceType = "Users", resources = ids }
end

local function job_named(self, name)
  local jobs = self:jobs()
  for _, j in ipairs(jobs or {}) do if lower(j.displayName or "") == lower(name) then return j end end
end

-- validate_and_migrate(name, start): validation (waited for), then migrate when it passed.
function B:validate_and_migrate(name, body, start)
  local t = self.t
  local _, err = t:checked({ kind = "action", target = fmt("validate Graph migration job '%s'", name), tenant = t.name,
    operation = "batch_validate", apply = function() return t:gpost(self.base .. "/validate", body) end },
    function()
      local j = job_named(self, name)
      return j and lower(j.status or ""):match("^validate") and j or nil
    end)
  if err then return nil, err end
  local j = t:eventually(function()
    local x = job_named(self, name)
    local st = x and lower(x.status or "")
    return (st == "validatepassed" or st == "validatefailed") and x or nil
  end, self.o.validate_wait or M.VALIDATE_WAIT)
  if not j then return nil, "validation of job '" .. name .. "' did not finish in time: run batch-status, then batch-fix" end
  if lower(j.status) ~= "validatepassed" or not start then return j end
  return self:migrate(name, j)
end

function B:migrate(name, j)
  local t = self.t
  j = j or job_named(self, name)
  return t:checked({ kind = "action", target = fmt("migrate Graph migration job '%s'", name), tenant = t.name,
    operation = "batch_migrate", apply = function() return t:gpost(self.base .. "/" .. j.id .. "/migrate", {}) end },
    function()
      local x = job_named(self, name)
      return x and x.jobType == "migrate" and x or nil
    end)
end

function B:create(spec, addrs, as_name)
  local name = as_name or spec.name
  local body, err = self:body(spec, addrs, name)
  if not body then return nil, err end
  local t = self.t
  local j
  j, err = t:create({ target = fmt("Graph migration job '%s'", name), tenant = t.name, operation = "batch_create",
    after = { resources = #body.resources, completeAfterDateTime = body.completeAfterDateTime,
              sourceEndpoint = spec.endpoint, targetDeliveryDomain = spec.tdd },
    apply = function() return t:gpost(self.base, body) end }, function() return job_named(self, name) end)
  if not j then return nil, err end
  return self:validate_and_migrate(name, body, spec.start)
end

-- add_users: a job of its own (BATCH+N) -- a job takes no new users.
function B:add_users(name, addrs)
  local b = self:batch(name)
  local n = b and #b.jobs + 1 or 2
  local spec = self.spec_of and self.spec_of(name) or { name = name, start = true }
  return self:create(spec, addrs, name .. "+" .. n)
end

local function each_job(self, name, fn)
  local b, err = self:batch(name)
  if not b then return nil, err or ("no Graph migration job named '" .. name .. "'") end
  for _, j in ipairs(b.jobs) do
    local _, ferr = fn(j)
    if ferr and ferr ~= "planned" then return nil, ferr end
  end
  return true
end

function B:start(name)
  return each_job(self, name, function(j)
    if lower(j.status) == "validatepassed" then return self:migrate(j.displayName, j) end
    return true
  end)
end

-- resume: a job that failed validation is validated again (and migrated once it passes); one
-- that failed or completed with errors is migrated again (its failed users start again).
function B:resume(name)
  return each_job(self, name, function(j)
    local st = lower(j.status)
    if st == "validatefailed" or st == "submitted" then
      local body = { displayName = j.displayName, completeAfterDateTime = j.completeAfterDateTime,
                     sourceTenantId = j.sourceTenantId, exchangeSettings = j.exchangeSettings,
                     workloads = j.workloads, resourceType = "Users", resources = j.resources }
      return self:validate_and_migrate(j.displayName, body, true)
    elseif st == "failed" or st == "completedwitherrors" then
      return self:migrate(j.displayName, j)
    end
    return true
  end)
end

function B:stop(name)
  local t = self.t
  return each_job(self, name, function(j)
    return t:checked({ kind = "action", target = fmt("cancel Graph migration job '%s'", j.displayName), tenant = t.name,
      operation = "batch_stop", apply = function() return t:gpost(self.base .. "/" .. j.id .. "/cancel", {}) end },
      function() local x = job_named(self, j.displayName) return x and lower(x.status) == "cancelled" or nil end)
  end)
end

-- complete(name, at): completeAfterDateTime moved to `at` (default: now).
function B:complete(name, at)
  local t = self.t
  local when = iso(at or self.now())
  return each_job(self, name, function(j)
    return t:checked({ kind = "update", target = fmt("completion of Graph migration job '%s'", j.displayName),
      tenant = t.name, operation = "batch_complete", before = { completeAfterDateTime = j.completeAfterDateTime },
      after = { completeAfterDateTime = when },
      apply = function() return t:gpatch(self.base .. "/" .. j.id, { completeAfterDateTime = when }) end },
      function() local x = job_named(self, j.displayName) return x and x.completeAfterDateTime == when or nil end)
  end)
end

function B:remove(name)
  return each_job(self, name, function(j) return self.t:gdelete(self.base .. "/" .. j.id) end)
end

-- remove_user(entry): the user's task is cancelled (it leaves the job).
function B:remove_user(e)
  local t = self.t
  local job, rid = tostring(e.Guid or ""):match("^([^/]+)/(.+)$")
  if not job then return nil, "not a Graph job's user: " .. tostring(e.Identity) end
  return t:checked({ kind = "delete", target = fmt("user %s of Graph migration job %s", tostring(e.Identity), job),
    tenant = t.name, operation = "batch_remove_user",
    apply = function() return t:gpost(self.base .. "/" .. job .. "/users/" .. rid .. "/cancel", {}) end },
    function()
      local tk = t:gget(self.base .. "/" .. job .. "/users/" .. rid)
      local st = tk and tk.currentStatus and tk.currentStatus[1]
      return (tk == nil or (st and lower(st.status or "") == "cancelled")) or nil
    end)
end

-- The Graph API has no approval of skipped items: Exchange's own (Set-MigrationUser).
function B:approve(e)
  return require("t2t.batch.exo").new(self.t):approve({ Identity = e.Identity or e.address })
end

function B:stats(addr)
  return require("t2t.batch.exo").new(self.t):stats(addr)
end

function B:snapshot(name, o)
  o = o or {}
  local b, err = self:batch(name)
  if not b then return nil, err or ("no Graph migration job named '" .. name .. "'") end
  local entries
  entries, err = self:entries(name)
  if not entries then return nil, err end
  local users = {}
  for i, e in ipairs(entries) do users[i] = status.user(e) end
  if self.t.exo then
    require("t2t.batch.exo").refresh(users, o, function(addr) return self:stats(addr) end)
  end
  local sb = status.batch(b)
  sb.status = b.Status
  sb.graph_status = b.GraphStatus
  -- a migrating job whose users have all synced is what EXO calls Synced (waiting for cut-over)
  if b.Status == "Syncing" then
    local moving, failed = false, false
    for _, u in ipairs(users) do
      if status.MOVING[u.state] then moving = true end
      if u.state == "Failed" then failed = true end
    end
    if not moving then sb.status = failed and "SyncedWithErrors" or "Synced" end
  end
  return { batch = sb, users = users }
end

return M
