-- t2t.sim.exo.moves: the simulator's migration engine -- one state machine per migration user,
-- as the service reports it (ms-setup-and-prep.md §6-8):
--   Stopped (batch not started) | Queued -> Syncing (-> stalled while StatusDetail says so)
--   -> Synced (needs approval when skipped items make the Data Consistency Score Investigate)
--   -> Completing -> Completed, and Failed with the documented exception at any step.
-- Time is the simulator's clock; a sync lasts (BASE + size / RATE) / speed seconds, so `speed`
-- (state.migration.speed, t2t sim --speed) lets a demo move gigabytes in seconds.  The engine is
-- lazy: every migration cmdlet (and the Graph job API) calls advance(ctx), which plays the
-- events due since the last call in time order: syncs starting when an endpoint slot is free
-- (MaxConcurrentMigrations), ending, failing, completing.  Every exception is raised by the
-- condition that causes it, never at random (docs/simulator.md, "Migration engine").
local model = require "t2t.sim.model"
local U = require "t2t.sim.exo.util"
local O = require "t2t.sim.exo.orgrel"

local M = {}
local lower, fmt = string.lower, string.format
local ZERO = model.ZERO_GUID
local CTUDM = "exchanget2tmbxmove"

-- Service-time constants [inferred: Microsoft publishes no per-mailbox rate].
M.RATE = 1073741824 / 3600      -- bytes per second and mailbox (1 GB an hour)
M.BASE = 120                    -- seconds: provisioning and the first handshake
M.FINAL = 300                   -- seconds: the final incremental sync and the conversion
M.POOR_BAD_ITEMS = 1000         -- more corrupt items than this: Data Consistency Score "Poor"
M.STALL_REASON = "StalledDueToTarget_DiskLatency"

function M.speed(state)
  local s = state.migration and tonumber(state.migration.speed)
  return (s and s > 0) and s or 1
end

function M.users(t)
  t.exo.migration_users = t.exo.migration_users or {}
  return t.exo.migration_users
end

function M.batches(t)
  t.exo.batches = t.exo.batches or {}
  return t.exo.batches
end

-- touch(t): something changed that the engine must look at on its next call.
function M.touch(t) t.exo.migration_next, t.exo.migration_idle = 0, nil end

M.DONE = U.set("Completed", "CompletedWithWarnings")
M.ACTIVE = U.set("Queued", "Syncing", "Completing", "Starting")

---------------------------------------------------------------------------------------------
-- Readiness: what the service checks when a user's move starts (ms-setup-and-prep.md §7-8).

local function has_cap(r)
  for _, c in ipairs(r and r.PersistedCapabilities or {}) do if lower(c) == CTUDM then return true end end
end

-- What on the source mailbox itself stops a move: nil or exception, text (§3.2 #4, §5.4, §8).
local function source_blocked(sr)
  if sr.LitigationHoldEnabled or sr.DelayHoldApplied or sr.DelayReleaseHoldApplied or
     sr.ComplianceTagHoldApplied or #(sr.InPlaceHolds or {}) > 0 or #(sr._OrgHolds or {}) > 0 then
    return "MigrationPermanentException", fmt("The source mailbox '%s' is on hold (litigation hold " ..
      "enabled or in-place holds) and can't be migrated cross-tenant without being added to the " ..
      "exception list.", sr.Name)
  end
  if sr.DisabledArchiveGuid and sr.DisabledArchiveGuid ~= ZERO and
     (not sr.ArchiveGuid or sr.ArchiveGuid == ZERO) then
    return "UserAlreadyHasDemotedArchiveException", fmt("The source mailbox '%s' has a previously " ..
      "disabled archive '%s'. Remove it (Set-Mailbox -RemoveDisabledArchive) or enable the archive " ..
      "again, then resume.", sr.Name, sr.DisabledArchiveGuid)
  end
  if (sr.AuxArchiveCount or 0) > 12 then
    return "MigrationPermanentException", fmt("The source mailbox '%s' has more than 12 auxiliary " ..
      "archives.", sr.Name)
  end
end

-- A Microsoft-internal move of the source mailbox (sim-only _InternalMoveSeconds: it starts at
-- the first cross-tenant attempt and runs that long in service time).
local function internal_move(ctx, sr)
  local secs = tonumber(sr._InternalMoveSeconds)
  if not secs then return false end
  sr._InternalMoveUntil = sr._InternalMoveUntil or (ctx.at + secs / M.speed(ctx.state))
  if ctx.at < sr._InternalMoveUntil then return true end
  sr._InternalMoveSeconds, sr._InternalMoveUntil = nil, nil
  return false
end

-- check(ctx, b, u) -> nil, nil, sr, src | exception, text: the checks a cross-tenant move runs
-- when it starts, in the order the service reports them.
function M.check(ctx, b, u)
  local t = ctx.t
  local e = t.exo.migration_endpoints[b.SourceEndpoint or ""]
  local src = e and model.tenant(ctx.state, e.RemoteTenant)
  if not src then return "MigrationPermanentException", "No valid migration endpoints for the remote tenant." end
  local tr = U.find(ctx, u.Identity, nil, true)
  if not tr then return "MigrationPermanentException", "The target object isn't found." end
  if U.MAILBOX[tr.RecipientTypeDetails] then
    return "MigrationPermanentException", fmt("The target object '%s' is already a mailbox.", tr.Name)
  end
  if not U.MAILUSER[tr.RecipientTypeDetails] then
    return "MigrationPermanentException", fmt("The target object '%s' isn't a mail user.", tr.Name)
  end
  local sr, exn, text = O.check_user(ctx, src, e.ApplicationId, tr)
  if not sr then
    if exn == "MailboxNotInCrossTenantMigrationScopeException" then u._scope_failed = true end
    return exn, text
  end
  if u._scope_failed and (sr.AuxArchiveCount or 0) > 0 then
    return "AuxArchiveNotFoundInTargetRecipientException", fmt("The auxiliary archive of '%s' wasn't " ..
      "found on the target recipient: the mailbox was out of the migration scope when the batch " ..
      "started. Remove the user and add it to a new batch.", sr.Name)
  end
  if not O.source_orgrel(src, t, e.ApplicationId) then
    return "MigrationPermanentException", "Tenant authorization error. The tenants are not configured to support migration."
  end
  if sr.RecipientTypeDetails == "UserMailbox" and not has_cap(sr) and not has_cap(tr) then
    return "CrossTenantMigrationWithoutLicensePermanentException", fmt("No license was found for the " ..
      "source recipient, '%s', or the target recipient, '%s'. A Cross-tenant User Data Migration " ..
      "license is required to move a mailbox between tenants.", sr.Guid, tr.Guid)
  end
  if internal_move(ctx, sr) then
    return "SourceMailboxAlreadyBeingMovedPermanentException", fmt("The source mailbox '%s' is " ..
      "already being moved (a move request exists for it).", sr.Name)
  end
  exn, text = source_blocked(sr)
  if exn then return exn, text end
  for _, a in ipairs(tr.EmailAddresses or {}) do
    local addr = a:match("^[sS][mM][tT][pP]:(.*)$")
    if addr and not U.accepted(ctx, addr) then
      return "NotAcceptedDomainException", fmt("The proxy address '%s' of the target object isn't " ..
        "in an accepted domain of the target organization.", a)
    end
  end
  return nil, nil, sr, src, tr
end

---------------------------------------------------------------------------------------------
-- Transitions.

local function fail(u, at, exn, text)
  u.Status, u.StatusSummary = "Failed", "Failed"
  u.ErrorSummary = "Microsoft.Exchange.Migration." .. exn .. ": " .. text
  u._exn, u._failed = exn, at
  u._fail_at, u._fail_exn = nil, nil
end

local function source_of(ctx, u)
  local src = ctx.state.tenants[u._source_tenant or ""]
  return src and src.exo.recipients[u._source or ""], src
end

-- The planned mid-sync failures of a source (sim-only _MaintenanceAfter, _AuxGrowthAfter:
-- service seconds into the sync), the earliest first: time, exception.
local function scheduled(sr, start, sp)
  local at, exn
  local m, g = tonumber(sr._MaintenanceAfter), tonumber(sr._AuxGrowthAfter)
  if m then at, exn = start + m / sp, "MailboxIsNotInExpectedDBException" end
  if g and (not at or start + g / sp < at) then
    at, exn = start + g / sp, "SourceAuxArchiveIsProvisionedDuringCrossTenantMovePermanentException"
  end
  return at, exn
end

-- start(ctx, b, u, at) -> true when the user now holds an endpoint slot.
local function start(ctx, b, u, at)
  ctx.at = at
  local exn, text, sr, src = M.check(ctx, b, u)
  if exn then fail(u, at, exn, text) return false end
  local sp = M.speed(ctx.state)
  u.Status, u.StatusSummary, u.ErrorSummary, u._exn = "Syncing", "Active", nil, nil
  u._source_tenant, u._source, u.MailboxGuid = src.id, sr.Guid, sr.ExchangeGuid
  u._size, u._items = sr.TotalItemSize or 0, sr.ItemCount or 0
  u._bad, u._large = tonumber(sr._BadItems) or 0, tonumber(sr._LargeItems) or 0
  u._start = at
  u._queued_total = (u._queued_total or 0) + math.max(0, at - (u._queued or at))
  local dur = (M.BASE + u._size / M.RATE) / sp * (1 - (u._done_frac or 0))
  local stall = tonumber(sr._StallSeconds)
  if stall and stall > 0 then
    u._stall_from = at + dur * 0.4
    u._stall_to = u._stall_from + stall / sp
    u._stall_reason = sr._StallReason or M.STALL_REASON
    sr._StallSeconds = nil                          -- a stall happens once
    dur = dur + stall / sp
  else
    u._stall_from, u._stall_to = nil, nil
  end
  u._end = at + dur
  u._fail_at, u._fail_exn = scheduled(sr, at, sp)
  if u._fail_at and u._fail_at >= u._end then u._fail_at, u._fail_exn = nil, nil end
  return true
end

-- The mid-sync conditions, applied when they fire: Microsoft moves the source mailbox to another
-- database, or its auto-expanding archive provisions one more auxiliary archive.
local function fire(ctx, u, at)
  local sr = source_of(ctx, u)
  local exn = u._fail_exn
  if exn == "MailboxIsNotInExpectedDBException" then
    if sr then
      sr._MaintenanceAfter = nil
      local src = ctx.state.tenants[u._source_tenant]
      local dbs = src.exo.databases or {}
      for _, d in ipairs(dbs) do if d ~= sr.Database then sr.Database = d break end end
    end
    fail(u, at, exn, fmt("The source mailbox '%s' isn't in its expected database (internal " ..
      "maintenance moved it). Remove the user and add it to a new batch.", sr and sr.Name or u.Identity))
  else
    if sr then
      sr._AuxGrowthAfter = nil
      sr.AuxArchiveCount = (sr.AuxArchiveCount or 0) + 1
      local locs = sr.MailboxLocations or {}
      local main = sr.ArchiveGuid or ZERO
      locs[#locs + 1] = fmt("1;%s%04x;AuxArchive;%s;%s", main:sub(1, 32), sr.AuxArchiveCount,
                            ctx.state.tenants[u._source_tenant].initial_domain, tostring(sr.Database))
      sr.MailboxLocations = locs
    end
    fail(u, at, exn, fmt("A new auxiliary archive was provisioned for '%s' during the cross-tenant " ..
      "move. Remove the user and add it to a new batch.", sr and sr.Name or u.Identity))
  end
end

-- Data Consistency Score from the skipped items (track-prevent-data-loss-dcs: Perfect, Good,
-- Investigate, Poor; the thresholds are Microsoft's and unpublished [inferred]).
local function score(u)
  if (u._bad or 0) > M.POOR_BAD_ITEMS then return "Poor" end
  if (u._bad or 0) + (u._large or 0) > 0 then return "Investigate" end
  return "Perfect"
end
M.score = score

local function synced(u, at)
  u.Status, u.StatusSummary = "Synced", "Synced"
  u._synced, u._done_frac = at, nil
  u.SkippedItemCount = (u._bad or 0) + (u._large or 0)
  u.SyncedItemCount = math.max(0, (u._items or 0) - u.SkippedItemCount)
  u.DataConsistencyScore = score(u)
  u.HasUnapprovedSkippedItems = u.DataConsistencyScore ~= "Perfect" and not u._approved
  u.LastSuccessfulSyncTime = U.time(at)
end

-- May this synced user complete (completion asked for, skipped items approved, not Poor)?
local function may_complete(b, u)
  if not b._complete_at then return false end
  local dcs = u.DataConsistencyScore or "Perfect"
  if dcs == "Poor" then return false end
  return dcs == "Perfect" or u._approved or b._approved
end

-- The conversions of a completed move (ms-setup-and-prep.md §6.4, §5.1, §5.6).
function M.complete_user(ctx, b, u, at)
  local t = ctx.t
  local tr = U.find(ctx, u.Identity, U.MAILUSER, true)
  local sr, src = source_of(ctx, u)
  if not tr or not sr then
    fail(u, at, "MigrationPermanentException", "The target object isn't found.")
    return
  end
  local tdd = lower(b.TargetDeliveryDomain or t.initial_domain)
  local fwd
  for _, a in ipairs(tr.EmailAddresses or {}) do
    local addr = a:match("^[sS][mM][tT][pP]:(.+)$")
    if addr and lower(addr):sub(-#tdd - 1) == "@" .. tdd then fwd = addr end
  end
  fwd = fwd or tr.PrimarySmtpAddress
  -- FullAccess and calendar permissions move with the mailbox and work where the delegate
  -- moved too (same ExchangeGuid in the target); Send on Behalf does not move (§5.6).
  local function moved(names)
    local out = {}
    for _, n in ipairs(names or {}) do
      local d = model.find_recipient(src, n)
      local there = d and d.ExchangeGuid and model.find_recipient(t, d.ExchangeGuid)
      if there then out[#out + 1] = there.Name end
    end
    return #out > 0 and out or model.cjson.null
  end
  model.update_recipient(t, tr, { RecipientType = "UserMailbox", RecipientTypeDetails = sr.RecipientTypeDetails,
    ExternalEmailAddress = model.cjson.null, IsMailboxEnabled = true,
    ArchiveStatus = (tr.ArchiveGuid and tr.ArchiveGuid ~= ZERO) and "Active" or "None",
    TotalItemSize = sr.TotalItemSize, ItemCount = u.SyncedItemCount or sr.ItemCount,
    TotalDeletedItemSize = sr.TotalDeletedItemSize, Database = t.exo.databases and t.exo.databases[1] or nil,
    _FullAccess = moved(sr._FullAccess), _CalendarDelegates = moved(sr._CalendarDelegates),
    GrantSendOnBehalfTo = model.cjson.null, _MovedFrom = src.id })
  model.update_recipient(src, sr, { RecipientType = "MailUser", RecipientTypeDetails = "MailUser",
    ExternalEmailAddress = "SMTP:" .. fwd, TotalItemSize = 0, ItemCount = 0, IsMailboxEnabled = false,
    _FullAccess = model.cjson.null, _SendAs = model.cjson.null, _CalendarDelegates = model.cjson.null })
  u.Status, u.StatusSummary = u.SkippedItemCount and u.SkippedItemCount > 0 and "CompletedWithWarnings"
    or "Completed", "Completed"
  u._completed = at
end

---------------------------------------------------------------------------------------------
-- The event loop.

local function heap_push(h, e)
  h[#h + 1] = e
  local i = #h
  while i > 1 do
    local p = i // 2
    local a, c = h[p], h[i]
    if a.time < c.time or (a.time == c.time and a.seq <= c.seq) then break end
    h[p], h[i] = c, a
    i = p
  end
end

local function heap_pop(h)
  local top = h[1]
  local last = table.remove(h)
  if #h > 0 then
    h[1] = last
    local i = 1
    while true do
      local l, r, m = 2 * i, 2 * i + 1, i
      local function less(x, y) return x.time < y.time or (x.time == y.time and x.seq < y.seq) end
      if l <= #h and less(h[l], h[m]) then m = l end
      if r <= #h and less(h[r], h[m]) then m = r end
      if m == i then break end
      h[m], h[i] = h[i], h[m]
      i = m
    end
  end
  return top
end

-- The batches using each endpoint, in the order their users queue (started, then name).
local function by_endpoint(t)
  local eps = {}
  for _, b in pairs(M.batches(t)) do
    local k = b.SourceEndpoint or ""
    eps[k] = eps[k] or {}
    table.insert(eps[k], b)
  end
  for _, l in pairs(eps) do
    table.sort(l, function(x, y)
      local a, c = x._started or x.created or 0, y._started or y.created or 0
      if a ~= c then return a < c end
      return x.Name < y.Name
    end)
  end
  return eps
end

-- The pending events of the users of the batches in list, and the endpoint slots they hold.
local function pending(ctx, list)
  local users = M.users(ctx.t)
  local h, seq, active = {}, 0, 0
  local function push(time, kind, u, b)
    seq = seq + 1
    heap_push(h, { time = time, kind = kind, u = u, b = b, seq = seq })
  end
  for _, b in ipairs(list) do
    local running = b._started and not b._stopped
    for _, key in ipairs(b._users) do
      local u = users[key]
      if u and running then
        if u.Status == "Queued" then
          push(math.max(u._queued or 0, b._start_at or 0), "start", u, b)
        elseif u.Status == "Syncing" then
          active = active + 1
          push(u._fail_at and u._fail_at < u._end and u._fail_at or u._end, "sync", u, b)
        elseif u.Status == "Completing" then
          push(u._completing + M.FINAL / M.speed(ctx.state), "done", u, b)
        elseif u.Status == "Synced" and may_complete(b, u) then
          push(math.max(u._synced, b._complete_at), "complete", u, b)
        end
      end
    end
  end
  return h, active, push
end

-- run(ctx, ep_name, list) -> the time of the next event after now (math.huge: none).
local function run(ctx, ep_name, list)
  local now = ctx.now
  local ep = ctx.t.exo.migration_endpoints[ep_name]
  local limit = math.max(1, math.tointeger(ep and tonumber(ep.MaxConcurrentMigrations)) or 100)
  local h, active, push = pending(ctx, list)
  local waiting, wi = {}, 1
  local sp = M.speed(ctx.state)
  local function begin(e, at)
    if start(ctx, e.b, e.u, at) then
      active = active + 1
      local u = e.u
      push(u._fail_at or u._end, "sync", u, e.b)
    end
  end
  while #h > 0 and h[1].time <= now do
    local e = heap_pop(h)
    local u, b, at = e.u, e.b, e.time
    if e.kind == "start" then
      if active < limit then begin(e, at) else waiting[#waiting + 1] = e end
    elseif e.kind == "sync" then
      active = active - 1
      if u._fail_at and at >= u._fail_at then fire(ctx, u, at) else
        synced(u, at)
        if may_complete(b, u) then push(math.max(at, b._complete_at), "complete", u, b) end
      end
      while active < limit and wi <= #waiting do
        local w = waiting[wi]
        wi = wi + 1
        begin(w, at)
      end
    elseif e.kind == "complete" then
      u.Status, u.StatusSummary, u._completing = "Completing", "Active", at
      push(at + M.FINAL / sp, "done", u, b)
    elseif e.kind == "done" then
      M.complete_user(ctx, b, u, at)
    end
  end
  return h[1] and h[1].time or math.huge
end

-- advance(ctx): play every event due by ctx.now, for every batch of the tenant.
function M.advance(ctx)
  local t = ctx.t
  if t.exo.migration_idle or (t.exo.migration_next or 0) > ctx.now then return end
  local nxt = math.huge
  for ep, list in pairs(by_endpoint(t)) do
    nxt = math.min(nxt, run(ctx, ep, list))
  end
  for _, b in pairs(M.batches(t)) do
    if b._start_at and b._start_at > ctx.now then nxt = math.min(nxt, b._start_at) end
    if b._complete_at and b._complete_at > ctx.now then nxt = math.min(nxt, b._complete_at) end
  end
  -- no event ahead: idle until something changes (the state file holds no infinity)
  if nxt == math.huge then t.exo.migration_next, t.exo.migration_idle = nil, true
  else t.exo.migration_next, t.exo.migration_idle = nxt, nil end
end

---------------------------------------------------------------------------------------------
-- Reading the state.

-- progress(ctx, u) -> fraction of the initial sync done (0..1), and the stall reason when the
-- user is stalled now.
function M.progress(ctx, u)
  if u.Status == "Synced" or u.Status == "Completing" or M.DONE[u.Status] then return 1 end
  if u.Status ~= "Syncing" or not u._start then return u._done_frac or 0 end
  local now = ctx.now
  local stalled_for, reason = 0, nil
  if u._stall_from and now > u._stall_from then
    stalled_for = math.min(now, u._stall_to) - u._stall_from
    if now < u._stall_to then reason = u._stall_reason end
  end
  local dur = (u._end - u._start) - ((u._stall_to or 0) - (u._stall_from or 0))
  local done = (u._done_frac or 0)
  local frac = done + (1 - done) * math.max(0, math.min(1, (now - u._start - stalled_for) / math.max(dur, 1e-9)))
  return math.min(frac, 0.999), reason
end

-- percent(ctx, u) -> PercentageComplete as the service shows it (95 when synced, 100 completed).
function M.percent(ctx, u)
  if M.DONE[u.Status] then return 100 end
  if u.Status == "Completing" then return 95 + math.floor(4 * math.min(1, (ctx.now - (u._completing or ctx.now)) /
    (M.FINAL / M.speed(ctx.state)))) end
  if u.Status == "Synced" then return 95 end
  return math.floor(95 * (M.progress(ctx, u)))
end

-- Batch status from its users (manage-migration-batches: Created, Syncing, Stopped, Synced,
-- SyncedWithErrors, Completing, Completed, CompletedWithErrors; Waiting for a later StartAfter).
function M.batch_status(ctx, b)
  if not b._started then return "Created" end
  if b._stopped then return "Stopped" end
  if b._start_at and b._start_at > ctx.now then return "Waiting" end
  local users = M.users(ctx.t)
  local n = { total = 0 }
  for _, key in ipairs(b._users) do
    local u = users[key]
    if u then
      n.total = n.total + 1
      local s = M.DONE[u.Status] and "Completed" or u.Status
      n[s] = (n[s] or 0) + 1
    end
  end
  if (n.Completing or 0) > 0 then return "Completing", n end
  if (n.Queued or 0) + (n.Syncing or 0) > 0 then return "Syncing", n end
  if b._complete_at and b._complete_at <= ctx.now then
    if (n.Completed or 0) == n.total then return "Completed", n end
    return "CompletedWithErrors", n
  end
  if (n.Failed or 0) > 0 then return "SyncedWithErrors", n end
  return "Synced", n
end

---------------------------------------------------------------------------------------------
-- Actions the cmdlets (and the Graph job API) take.

-- queue(ctx, b, u): (re)start a user of a started batch from where it stopped.
function M.queue(ctx, u)
  u.Status, u.StatusSummary, u.ErrorSummary, u._exn = "Queued", "Active", nil, nil
  u._queued, u._failed = ctx.now, nil
end

-- start_batch(ctx, b): start it, or resume its failed and stopped users.
function M.start_batch(ctx, b)
  local users = M.users(ctx.t)
  b._started = b._started or ctx.now
  b._stopped = nil
  for _, key in ipairs(b._users) do
    local u = users[key]
    if u and (u.Status == "Failed" or u.Status == "Stopped") and not u._dup then M.queue(ctx, u) end
  end
  M.touch(ctx.t)
end

function M.stop_batch(ctx, b)
  local users = M.users(ctx.t)
  for _, key in ipairs(b._users) do
    local u = users[key]
    if u and (u.Status == "Syncing" or u.Status == "Queued") then
      u._done_frac = u.Status == "Syncing" and M.progress(ctx, u) or u._done_frac
      u.Status, u.StatusSummary = "Stopped", "Stopped"
    end
  end
  b._stopped = true
  M.touch(ctx.t)
end

-- request_completion(ctx, b, at): complete the batch's users once synced, from `at` on.
function M.request_completion(ctx, b, at)
  b._complete_at = at
  M.touch(ctx.t)
end

-- The key a migration user is stored under; an address already in another batch gets an entry
-- of its own in this one (the duplicate fails, §8 UserDuplicateInOtherBatchException).
function M.add_user(ctx, b, addr)
  local users, batches = M.users(ctx.t), M.batches(ctx.t)
  local key = lower(addr)
  local cur = users[key]
  local u = { Identity = addr, BatchId = b.Name, RecipientType = "Mailbox", Guid = ctx.sim.rng:guid(),
              Status = "Stopped", StatusSummary = "Stopped", created = ctx.now }
  if cur and batches[cur.BatchId] and cur.BatchId ~= b.Name then
    key = key .. "#" .. b.Name
    u._dup = cur.BatchId
    fail(u, ctx.now, "UserDuplicateInOtherBatchException", fmt("The user '%s' already exists in " ..
      "batch '%s'. Remove the user and add it to a new batch.", addr, cur.BatchId))
  elseif cur and cur.BatchId == b.Name then
    return nil
  elseif b._started and not b._stopped then
    M.queue(ctx, u)
  end
  users[key] = u
  b._users[#b._users + 1] = key
  M.touch(ctx.t)
  return u
end

-- remove_user(ctx, key): the user leaves its batch (Remove-MigrationUser / -MigrationBatch).
function M.remove_user(ctx, key)
  local users = M.users(ctx.t)
  local u = users[key]
  if not u then return end
  local b = M.batches(ctx.t)[u.BatchId]
  if b then
    for i = #b._users, 1, -1 do if b._users[i] == key then table.remove(b._users, i) end end
  end
  users[key] = nil
  -- a duplicate waiting behind this user becomes the user's entry
  for k, x in pairs(users) do
    if x._dup and lower(x.Identity) == key and not users[key] then
      users[key], users[k] = x, nil
      x._dup = nil
      local xb = M.batches(ctx.t)[x.BatchId]
      for i, bk in ipairs(xb and xb._users or {}) do if bk == k then xb._users[i] = key end end
    end
  end
  M.touch(ctx.t)
end

-- approve(u): Set-MigrationUser -ApproveSkippedItems (a Poor score cannot be approved).
function M.approve(ctx, u)
  if (u.DataConsistencyScore or score(u)) ~= "Poor" then
    u._approved = true
    if u.HasUnapprovedSkippedItems then u.HasUnapprovedSkippedItems = false end
  end
  M.touch(ctx.t)
end

-- Durations as the service prints a TimeSpan ("1.02:03:04.0000000" / "00:05:00").
function M.timespan(s)
  s = math.max(0, math.floor(s or 0))
  local d, h, m, sec = s // 86400, s % 86400 // 3600, s % 3600 // 60, s % 60
  return (d > 0 and (d .. ".") or "") .. fmt("%02d:%02d:%02d", h, m, sec)
end

return M
