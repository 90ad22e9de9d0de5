-- t2t.batch.exo: the Exchange Online backend of t2t.batch -- migration batches through the
-- cmdlets (ms-setup-and-prep.md §6): New-MigrationBatch with the CSV of TARGET addresses as
-- bytes, Set-MigrationBatch -AddUsers, Start/Stop/Complete-MigrationBatch, Get-MigrationUser and
-- the statistics, Remove-MigrationUser, -ApproveSkippedItems.  Every change goes through the
-- tenant's plan and is checked by reading back (t2t.tenant checked): a change whose answer was
-- lost is found, never made twice.
local t2t = require "t2t"
local status = require "t2t.batch.status"

local M = {}
local lower, fmt = string.lower, string.format

local B = {}
B.__index = B
B.kind = "exo"

-- new(target, o) -> backend over the target tenant (a t2t.tenant).
function M.new(target, o)
  return setmetatable({ t = target, o = o or {} }, B)
end

local function not_found(err)
  local c = require("t2t.tenant").exo_code(err)
  return c == "ManagementObjectNotFoundException" or (type(err) == "table" and err.status == 404)
end

-- csv(addrs) -> the batch CSV: the one EmailAddress column of target addresses (§6.2).
function M.csv(addrs)
  return "EmailAddress\r\n" .. table.concat(addrs, "\r\n") .. "\r\n"
end

-- batch(name, wait) -> the batch object | nil (none) | nil, err.  wait: a batch known to exist
-- may not be visible yet (replication lag): look again for up to the tenant's settle time.
function B:batch(name, wait)
  local l, err = self.t:xo("Get-MigrationBatch", { Identity = name }, wait and { wait_visible = self.t.settle } or nil)
  if l then return l[1] end
  if not_found(err) then return nil end
  return nil, err
end

-- batches() -> every batch | nil, err
function B:batches()
  return self.t:xo("Get-MigrationBatch", { ResultSize = "Unlimited" })
end

-- entries(name?) -> the migration users (of one batch, or all) | nil, err
function B:entries(name)
  local p = { ResultSize = "Unlimited" }
  if name then p.BatchId = name end
  return self.t:xo("Get-MigrationUser", p)
end

-- in_batch(name, addrs) -> true when every address has an entry in batch name.
function B:in_batch(name, addrs)
  local l = self:entries(name)
  if not l then return nil end
  local have = {}
  for _, e in ipairs(l) do have[lower(e.Identity or "")] = true end
  for _, a in ipairs(addrs) do if not have[lower(a)] then return nil end end
  return true
end

-- create(spec, addrs) -> the batch | nil, "planned" | nil, err.
-- spec: name, endpoint, tdd, start (bool), start_after (epoch), complete ("auto" | epoch | nil),
-- notify (list).
function B:create(spec, addrs)
  local t = self.t
  local p = { Name = spec.name, SourceEndpoint = spec.endpoint, TargetDeliveryDomain = spec.tdd,
              CSVData = M.csv(addrs) }
  if spec.start and not spec.start_after then p.AutoStart = true end
  if spec.start_after then p.StartAfter = spec.start_after end
  if spec.complete == "auto" then p.AutoComplete = true
  elseif type(spec.complete) == "number" then p.CompleteAfter = spec.complete end
  if spec.notify and #spec.notify > 0 then p.NotificationEmails = spec.notify end
  local after = { SourceEndpoint = p.SourceEndpoint, TargetDeliveryDomain = p.TargetDeliveryDomain,
                  users = #addrs, AutoStart = p.AutoStart, AutoComplete = p.AutoComplete,
                  CompleteAfter = spec.complete ~= "auto" and spec.complete and os.date("!%Y-%m-%d %H:%M", spec.complete) or nil,
                  StartAfter = spec.start_after and os.date("!%Y-%m-%d %H:%M", spec.start_after) or nil }
  return t:create({ target = fmt("migration batch '%s'", spec.name), tenant = t.name,
    operation = "batch_create", after = after,
    apply = function()
      local l, err = t:xo("New-MigrationBatch", p)
      if l then return l[1] or true end
      return nil, err
    end }, function() return self:batch(spec.name) end)
end

-- add_users(name, addrs): Set-MigrationBatch -AddUsers (the users join a batch that exists).
function B:add_users(name, addrs)
  local t = self.t
  return t:checked({ kind = "add", target = fmt("%d users to migration batch '%s'", #addrs, name), tenant = t.name,
    operation = "batch_add_users", after = { users = addrs },
    apply = function()
      return t:xo("Set-MigrationBatch", { Identity = name, AddUsers = true, CSVData = M.csv(addrs) })
    end }, function() return self:in_batch(name, addrs) end)
end

local function action(self, what, name, cmdlet, params, find)
  local t = self.t
  return t:checked({ kind = "action", target = fmt("%s migration batch '%s'", what, name), tenant = t.name,
    operation = "batch_" .. what, apply = function() return t:xo(cmdlet, params) end }, find)
end

local function status_is(self, name, set)
  return function()
    local b = self:batch(name)
    return b and set[lower(b.Status or "")] or nil
  end
end

function B:start(name)
  return action(self, "start", name, "Start-MigrationBatch", { Identity = name },
    status_is(self, name, { syncing = true, synced = true, completing = true, completed = true, waiting = true }))
end

-- resume(name): Start-MigrationBatch on a batch with failed users starts them again.
function B:resume(name)
  local t = self.t
  return t:checked({ kind = "action", target = fmt("resume the failed users of migration batch '%s'", name),
    tenant = t.name, operation = "batch_resume",
    apply = function() return t:xo("Start-MigrationBatch", { Identity = name }) end },
    status_is(self, name, { syncing = true, completing = true }))
end

function B:stop(name)
  return action(self, "stop", name, "Stop-MigrationBatch", { Identity = name },
    status_is(self, name, { stopped = true, stopping = true }))
end

-- complete(name, at): now (Complete-MigrationBatch) or at a time (Set-MigrationBatch -CompleteAfter).
function B:complete(name, at)
  if at then
    local t = self.t
    return t:checked({ kind = "update", target = fmt("completion of migration batch '%s'", name), tenant = t.name,
      operation = "batch_complete_after", before = { CompleteAfter = "(manual)" },
      after = { CompleteAfter = os.date("!%Y-%m-%dT%H:%M:%SZ", at) },
      apply = function() return t:xo("Set-MigrationBatch", { Identity = name, CompleteAfter = at }) end },
      function() local b = self:batch(name) return b and b.CompleteAfter ~= nil or nil end)
  end
  return action(self, "complete", name, "Complete-MigrationBatch", { Identity = name },
    status_is(self, name, { completing = true, completed = true, completedwitherrors = true }))
end

-- remove(name): Remove-MigrationBatch (post-migration --teardown, through its plan).
function B:remove(name)
  return self.t:xo("Remove-MigrationBatch", { Identity = name })
end

-- remove_user(entry): Remove-MigrationUser by the entry's GUID (a duplicate is its own entry).
function B:remove_user(e)
  local t = self.t
  local id = e.Guid or e.id or e.Identity
  return t:checked({ kind = "delete", target = fmt("migration user %s (batch %s)", tostring(e.Identity or e.address),
    tostring(e.BatchId or e.batch)), tenant = t.name, operation = "batch_remove_user",
    apply = function() return t:xo("Remove-MigrationUser", { Identity = id }) end },
    function()
      local l, err = t:xo("Get-MigrationUser", { Identity = id })
      if l and #l == 0 or (not l and not_found(err)) then return true end
    end)
end

-- approve(entry): Set-MigrationUser -ApproveSkippedItems (Data Consistency Score Investigate).
function B:approve(e)
  local t = self.t
  local id = e.Guid or e.id or e.Identity
  return t:checked({ kind = "action", target = fmt("approve the skipped items of %s", tostring(e.Identity or e.address)),
    tenant = t.name, operation = "batch_approve",
    apply = function() return t:xo("Set-MigrationUser", { Identity = id, ApproveSkippedItems = true }) end },
    function()
      local l = t:xo("Get-MigrationUser", { Identity = id })
      return l and l[1] and l[1].HasUnapprovedSkippedItems ~= true or nil
    end)
end

-- stats(addr) -> Get-MoveRequestStatistics of a user's move | nil (no move yet) | nil, err
function B:stats(addr)
  local l, err = self.t:xo("Get-MoveRequestStatistics", { Identity = addr })
  if l then return l[1] end
  if not_found(err) then return nil end
  return nil, err
end

-- snapshot(name, o) -> {batch, users = {normalized...}} | nil, err.  o.detail: how many users'
-- statistics to read this time (those in motion first; o.cache keeps earlier reads, so a watch
-- refreshes every user in turn); o.all: every user's.
function B:snapshot(name, o)
  o = o or {}
  local b, err = self:batch(name, true)
  if not b then return nil, err or "no migration batch named '" .. name .. "'" end
  local entries
  entries, err = self:entries(name)
  if not entries then return nil, err end
  local users = {}
  for i, e in ipairs(entries) do users[i] = status.user(e) end
  local read = M.refresh(users, o, function(addr) return self:stats(addr) end)
  return { batch = status.batch(b), users = users, read = read }
end

-- refresh(users, o, stats) -> how many were read: the statistics (stats(address) ->
-- Get-MigrationUserStatistics' object | nil, err) of the users status.pick chooses, read in
-- parallel and merged into them; o.cache keeps them for the next refresh, and gives the others
-- their last read.  Both backends' snapshots (the Graph one reads them through Exchange too).
function M.refresh(users, o, stats)
  local want = status.pick(users, o)
  local res = t2t.parallel(want, function(u) return { stats(u.address) } end,
                           { concurrency = o.concurrency or 16 })
  for i, r in ipairs(res) do
    local st = r.ok and r.value[1]
    if st then status.merge(want[i], st) end
    if o.cache then o.cache[lower(want[i].address)] = { stats = st, at = t2t.now() } end
  end
  if o.cache then status.from_cache(users, o.cache) end
  return #want
end

return M
