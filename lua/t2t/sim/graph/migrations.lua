-- t2t.sim.graph.migrations: the Graph cross-tenant migration job API (beta,
-- /beta/solutions/migrations/crossTenantMigrationJobs; ms-setup-and-prep.md §11.1 and the
-- crossTenantMigrationJob pages): create, validate, migrate, get/list, update
-- completeAfterDateTime, cancel, delete, and the per-user tasks.  A job that migrates drives the
-- same engine as Exchange's migration batches (t2t.sim.exo.moves) through a batch of its own
-- that Get-MigrationBatch does not list, so both backends fail for the same conditions; the
-- errors are the orchestrator's codes (§8: CTM-100/101 identity mapping, CTM-001 already in a
-- batch, EXCH-07 no endpoint, EXCH-08 the readiness checks), the exception in details[1].code
-- [inferred].  Job statuses and the task's service statuses are the pages' enumerations.
-- Authorization: t2t.sim.authz (CrossTenantContentMigration.Read.All / ReadWrite.All).
local util = require "t2t.sim.graph.util"
local store = require "t2t.sim.graph.store"
local model = require "t2t.sim.model"
local E = require "t2t.sim.exo.moves"

local M = {}
local route = store.routes(M)
local lower, fmt = string.lower, string.format
local ZERO = model.ZERO_GUID

local BASE = "solutions/migrations/crossTenantMigrationJobs"
local CONTEXT = "https://graph.microsoft.com/beta/$metadata#solutions/migrations/crossTenantMigrationJobs"
M.VALIDATE_SECONDS = 60          -- service time a validation takes [inferred]
M.VALIDATION_DAYS = 7            -- validation results expire after seven days (migrate page)
local TERMINAL = { completed = true, completedWithErrors = true, failed = true, cancelled = true,
                   validatePassed = true, validateFailed = true, submitted = true }

local function jobs(t)
  t.migration_jobs = t.migration_jobs or {}
  return t.migration_jobs
end

-- The engine's context for the caller's tenant (what Exchange's cmdlets get).
local function ectx(ctx)
  return { sim = ctx.sim, state = ctx.sim.state, t = ctx.tenant, now = ctx.sim:now() }
end

local function find(ctx, id)
  local j = jobs(ctx.tenant)[id]
  if not j then util.not_found(id) end
  return j
end

-- Identity mapping: a resource (the source user's object id, or the target mail user's) -> the
-- target mail user the move lands in, or nil, code, message.
local function mapped(ctx, j, id)
  local t = ctx.tenant
  for _, r in pairs(t.exo.recipients) do
    if r.ExternalDirectoryObjectId == id then return r end
  end
  local src = model.tenant(ctx.sim.state, j.sourceTenantId)
  if not src then return nil, "EXCH-07", "No valid migration endpoints for the remote tenant." end
  local sr
  for _, r in pairs(src.exo.recipients) do if r.ExternalDirectoryObjectId == id then sr = r break end end
  if not sr then return nil, "CTM-100", fmt("The resource '%s' wasn't found in the source tenant.", id) end
  local tr = sr.ExchangeGuid and sr.ExchangeGuid ~= ZERO and model.find_recipient(t, sr.ExchangeGuid)
  tr = tr or model.find_recipient(t, "x500:" .. tostring(sr.LegacyExchangeDN))
  if not tr then
    return nil, "CTM-100", fmt("Identity mapping is missing for '%s': no target mail user carries its " ..
      "ExchangeGuid or LegacyExchangeDN.", sr.PrimarySmtpAddress)
  end
  return tr
end

-- The orchestrator's code for an Exchange exception.
local CODE = { MissingExchangeGuidException = "CTM-101", MissingArchiveGuidException = "CTM-101",
               MissingLegacyExchangeDNProxyException = "CTM-101",
               UserDuplicateInOtherBatchException = "CTM-001" }
local function graph_error(exn, text)
  local code = CODE[exn] or (text:find("No valid migration endpoints", 1, true) and "EXCH-07") or "EXCH-08"
  return { code = code, message = text, details = { { code = exn, message = text } } }
end

-- validate(ctx, j): every resource through identity mapping and the move's readiness checks.
local function validate(ctx, j)
  local ec = ectx(ctx)
  ec.at = ec.now
  local b = { SourceEndpoint = j.exchangeSettings and j.exchangeSettings.sourceEndpoint }
  j._results = {}
  local failed = 0
  for _, id in ipairs(j.resources or {}) do
    local tr, code, msg = mapped(ctx, j, id)
    local res = { target = tr and tr.PrimarySmtpAddress, errors = {} }
    if tr then
      local exn, text = E.check(ec, b, { Identity = tr.PrimarySmtpAddress })
      if exn then res.errors[1] = graph_error(exn, text) end
      for _, u in pairs(E.users(ctx.tenant)) do
        if lower(u.Identity) == lower(tr.PrimarySmtpAddress) and not M.own(ctx.tenant, u.BatchId, j) then
          res.errors[#res.errors + 1] = graph_error("UserDuplicateInOtherBatchException",
            fmt("The user '%s' is already in the migration batch '%s'.", u.Identity, u.BatchId))
        end
      end
    else
      res.errors[1] = { code = code, message = msg, details = { { code = code, message = msg } } }
    end
    res.status = #res.errors == 0 and "valid" or "invalid"
    if #res.errors > 0 then failed = failed + 1 end
    j._results[id] = res
  end
  j._validated_at = ec.now
  j.status = failed == 0 and "validatePassed" or "validateFailed"
  j.message = failed == 0 and "Validation passed" or fmt("Validation failed for %d of %d resources", failed, #(j.resources or {}))
end

-- Is batch `name` the one job j migrates with (or any job's, when j is nil)?
function M.own(t, name, j)
  for _, x in pairs(jobs(t)) do
    if x._batch == name and (not j or x == j) then return true end
  end
  return false
end

-- The job's status from its batch (migrate), or its validation's progress.
local function refresh(ctx, j)
  local ec = ectx(ctx)
  if j.status == "validateSubmitted" or j.status == "validateInProgress" then
    if ec.now >= j._validate_at + M.VALIDATE_SECONDS / E.speed(ctx.sim.state) then validate(ctx, j)
    else j.status = "validateInProgress" end
    return
  end
  local b = j._batch and E.batches(ctx.tenant)[j._batch]
  if not b or j.status == "cancelled" then return end
  E.advance(ec)
  local st, n = E.batch_status(ec, b)
  n = n or {}
  local total = n.total or #b._users
  if st == "Completed" then j.status = "completed"
  elseif st == "CompletedWithErrors" then
    j.status = (n.Completed or 0) == 0 and "failed" or "completedWithErrors"
  elseif st == "Completing" then j.status = "cuttingOver"
  elseif (n.Failed or 0) == total and total > 0 then j.status = "failed"
  elseif (n.Queued or 0) == total then j.status = "processing"
  else j.status = "inProgress" end
  j.lastUpdatedDateTime = util.iso(ec.now)
end

local function render(j)
  local out = {}
  for k, v in pairs(j) do if k:sub(1, 1) ~= "_" then out[k] = util.copy(v) end end
  out["@odata.type"] = "#microsoft.graph.crossTenantMigrationJob"
  out.resources = util.array(out.resources or {})
  out.workloads = util.array(out.workloads or {})
  return out
end

local function entity(j)
  local body = render(j)
  body["@odata.context"] = CONTEXT .. "/$entity"
  return body
end

-- A job from a create or validate body; 422 for what the service refuses.
local function new_job(ctx, body, job_type, status)
  if type(body) ~= "table" then util.bad("A crossTenantMigrationJob body is required.", "BadRequest") end
  for _, k in ipairs { "displayName", "completeAfterDateTime", "sourceTenantId", "resourceType", "resources" } do
    if body[k] == nil then util.bad("The property '" .. k .. "' is required.", "BadRequest") end
  end
  if lower(tostring(body.resourceType)) ~= "users" then util.bad("Only the resourceType 'Users' is supported.") end
  if type(body.resources) ~= "table" or #body.resources == 0 or #body.resources > 2000 then
    util.bad("resources: 1 to 2,000 object ids.", "BadRequest")
  end
  local when = util.parse_iso(body.completeAfterDateTime)
  if not when then util.bad("completeAfterDateTime is not a date.", "BadRequest") end
  if when < ctx.sim:now() then
    util.fail(422, "minThresholdFailed", "completeAfterDateTime must be in the future.")
  end
  for _, j in pairs(jobs(ctx.tenant)) do
    if lower(j.displayName) == lower(tostring(body.displayName)) then
      util.fail(422, "duplicateDisplayNameJob", fmt("A job named '%s' already exists.", body.displayName))
    end
  end
  local now = ctx.sim:now()
  local j = { id = ctx.sim.rng:guid(), displayName = body.displayName, jobType = job_type, status = status,
    message = "", completeAfterDateTime = util.iso(when), sourceTenantId = body.sourceTenantId,
    targetTenantId = ctx.tenant.id, exchangeSettings = util.copy(body.exchangeSettings),
    workloads = util.copy(body.workloads or { "Exchange" }), resourceType = "Users",
    resources = util.copy(body.resources), createdBy = ctx.claims.upn or ctx.claims.appid,
    createdDateTime = util.iso(now), lastUpdatedDateTime = util.iso(now), created = now,
    _complete_at = when }
  jobs(ctx.tenant)[j.id] = j
  return j
end

route("GET", BASE, function(ctx)
  local out = {}
  for _, j in pairs(jobs(ctx.tenant)) do
    if store.visible(ctx, j) then refresh(ctx, j); out[#out + 1] = render(j) end
  end
  table.sort(out, function(a, b) return a.createdDateTime < b.createdDateTime end)
  return { status = 200, body = { ["@odata.context"] = CONTEXT, value = util.array(out) } }
end)

route("POST", BASE, function(ctx)
  local j = new_job(ctx, ctx.json, "validate", "submitted")
  return { status = 201, body = entity(j) }
end)

-- validate: the named job (made by create) is validated; with no such job, one is made [the
-- page's example creates one: inferred].
route("POST", BASE .. "/validate", function(ctx)
  local body = type(ctx.json) == "table" and ctx.json or {}
  local j
  for _, x in pairs(jobs(ctx.tenant)) do
    if lower(x.displayName) == lower(tostring(body.displayName)) then j = x end
  end
  if j and not (j.status == "submitted" or j.status:match("^validate")) then
    util.fail(409, "Conflict", fmt("The job '%s' is in status %s and can't be validated.", j.displayName, j.status))
  end
  j = j or new_job(ctx, body, "validate", "validateSubmitted")
  j.status, j.jobType, j._validate_at = "validateSubmitted", "validate", ctx.sim:now()
  j.message = "Validation job has been submitted successfully"
  return { status = 201, body = entity(j) }
end)

route("GET", BASE .. "/:id", function(ctx, p)
  local j = find(ctx, p.id)
  refresh(ctx, j)
  return { status = 200, body = entity(j) }
end)

-- Update: completeAfterDateTime only (the API overview).
route("PATCH", BASE .. "/:id", function(ctx, p)
  local j = find(ctx, p.id)
  local body = type(ctx.json) == "table" and ctx.json or {}
  for k in pairs(body) do
    if k ~= "completeAfterDateTime" and not k:find("@", 1, true) then
      util.bad("Only completeAfterDateTime can be updated.", "BadRequest")
    end
  end
  local when = util.parse_iso(body.completeAfterDateTime)
  if not when then util.bad("completeAfterDateTime is not a date.", "BadRequest") end
  if when < ctx.sim:now() - 60 then util.fail(422, "minThresholdFailed", "completeAfterDateTime is in the past.") end
  j.completeAfterDateTime, j._complete_at = util.iso(when), when
  local b = j._batch and E.batches(ctx.tenant)[j._batch]
  if b then E.request_completion(ectx(ctx), b, when) end
  return { status = 204 }
end)

route("POST", BASE .. "/:id/migrate", function(ctx, p)
  local j = find(ctx, p.id)
  refresh(ctx, j)
  if j.status ~= "validatePassed" and j.status ~= "failed" and j.status ~= "completedWithErrors" then
    util.fail(409, "Conflict", fmt("The job must be in validatePassed, failed or completedWithErrors status, not %s.", j.status))
  end
  local ec = ectx(ctx)
  if j.status == "validatePassed" and ec.now - (j._validated_at or 0) > M.VALIDATION_DAYS * 86400 then
    util.fail(409, "Conflict", "The validation results expired (more than seven days ago): validate the job again.")
  end
  local b = j._batch and E.batches(ctx.tenant)[j._batch]
  if b then
    E.start_batch(ec, b)                 -- a retry: the failed users start again
  else
    b = { Name = "CTM_" .. j.id, Guid = ctx.sim.rng:guid(), SourceEndpoint = j.exchangeSettings and
          j.exchangeSettings.sourceEndpoint, TargetDeliveryDomain = j.exchangeSettings and
          j.exchangeSettings.targetDeliveryDomain, _users = {}, created = ec.now, _started = ec.now,
          _complete_at = j._complete_at, _graph_job = j.id }
    E.batches(ctx.tenant)[b.Name] = b
    j._batch = b.Name
    for _, id in ipairs(j.resources) do
      local res = j._results and j._results[id]
      if res and res.target then E.add_user(ec, b, res.target) end
    end
  end
  j.status, j.jobType, j.message = "processing", "migrate", "Migration job has been submitted successfully"
  E.touch(ctx.tenant)
  return { status = 200, body = entity(j) }
end)

route("POST", BASE .. "/:id/cancel", function(ctx, p)
  local j = find(ctx, p.id)
  local b = j._batch and E.batches(ctx.tenant)[j._batch]
  if b then E.stop_batch(ectx(ctx), b) end
  j.status, j.message = "cancelled", "The job was cancelled"
  return { status = 200, body = { ["@odata.type"] = "#microsoft.graph.crossTenantMigrationCancelResponse",
                                  status = "cancelled", message = "The job was cancelled" } }
end)

route("DELETE", BASE .. "/:id", function(ctx, p)
  local j = find(ctx, p.id)
  refresh(ctx, j)
  if not TERMINAL[j.status] then
    util.fail(409, "Conflict", fmt("The job is in status %s; only a job in a terminal status can be deleted.", j.status))
  end
  local b = j._batch and E.batches(ctx.tenant)[j._batch]
  if b then
    for _, key in ipairs({ table.unpack(b._users) }) do E.remove_user(ectx(ctx), key) end
    E.batches(ctx.tenant)[b.Name] = nil
  end
  jobs(ctx.tenant)[j.id] = nil
  return { status = 204 }
end)

-- The task of one resource: the Exchange service's status, message and errors.
local SERVICE_STATUS = { Queued = "inProgress", Syncing = "syncing", Synced = "synced", Completing = "finalizing",
                         Completed = "completed", CompletedWithWarnings = "completed", Failed = "failed",
                         Stopped = "cancelled" }

local function task(ctx, j, id)
  local res = j._results and j._results[id] or {}
  local st = { service = "Exchange", status = res.status or "notStarted", message = "", errors = util.array(res.errors or {}) }
  local b = j._batch and E.batches(ctx.tenant)[j._batch]
  local u = b and res.target and E.users(ctx.tenant)[lower(res.target)]
  if u and u.BatchId ~= b.Name then u = E.users(ctx.tenant)[lower(res.target) .. "#" .. b.Name] end
  if u then
    st.status = SERVICE_STATUS[u.Status] or "inProgress"
    st.message = u.Status
    if u._exn then
      st.errors = util.array { graph_error(u._exn, (u.ErrorSummary or ""):gsub("^[%w%.]+Exception: ", "")) }
    else
      st.errors = util.array {}
    end
  end
  return { ["@odata.type"] = "#microsoft.graph.crossTenantMigrationTask", id = id, taskType = "user",
           lastUpdatedDateTime = j.lastUpdatedDateTime, currentStatus = util.array { st } }
end

route("GET", BASE .. "/:id/users", function(ctx, p)
  local j = find(ctx, p.id)
  refresh(ctx, j)
  local out = {}
  for _, id in ipairs(j.resources or {}) do out[#out + 1] = task(ctx, j, id) end
  return { status = 200, body = { ["@odata.context"] = CONTEXT .. "('" .. j.id .. "')/users", value = util.array(out) } }
end)

route("GET", BASE .. "/:id/users/:uid", function(ctx, p)
  local j = find(ctx, p.id)
  refresh(ctx, j)
  for _, id in ipairs(j.resources or {}) do
    if lower(id) == lower(p.uid) then return { status = 200, body = task(ctx, j, id) } end
  end
  util.not_found(p.uid)
end)

-- Cancel one user's task: it leaves the job's batch.
route("POST", BASE .. "/:id/users/:uid/cancel", function(ctx, p)
  local j = find(ctx, p.id)
  local res = j._results and j._results[p.uid]
  local b = j._batch and E.batches(ctx.tenant)[j._batch]
  if not b then          -- not migrating yet: the user leaves the job [inferred]
    for i = #(j.resources or {}), 1, -1 do
      if lower(j.resources[i]) == lower(p.uid) then table.remove(j.resources, i) end
    end
    if j._results then j._results[p.uid] = nil end
  end
  if res and res.target and b then
    local users = E.users(ctx.tenant)
    for _, key in ipairs({ table.unpack(b._users) }) do
      if users[key] and lower(users[key].Identity) == lower(res.target) then E.remove_user(ectx(ctx), key) end
    end
  end
  return { status = 200, body = { ["@odata.type"] = "#microsoft.graph.crossTenantMigrationCancelResponse",
                                  status = "cancelled", message = "The user's migration was cancelled" } }
end)

for _, r in ipairs(M.routes) do r.beta = true end

return M
