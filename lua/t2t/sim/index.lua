-- t2t.sim.index: ordered indexes beside the state, so listing a page costs O(log n + page)
-- whatever the tenant's size (issue 14: one users page used to rescan 50k users).
--   dir_ids(tenant, odata_type)  sorted ids of the directory objects of one type
--   recipients(tenant)           recipient keys "lower(Name)\0Guid", sorted (EXO listing order)
-- Built lazily from the state on first use and kept current by t2t.sim.model's add/remove
-- helpers (dir_add/dir_remove, recip_add/recip_remove); a weak-keyed side table, never in the
-- state, so a dump is just the data.  upper(arr, key): the first position after key.
local M = {}

local lower, sub, remove, insert = string.lower, string.sub, table.remove, table.insert
local cache = setmetatable({}, { __mode = "k" })   -- tenant -> { dir = {[type] = ids}, recip }

-- upper(arr, key) -> the first index i with arr[i] > key (#arr + 1 when none); key nil: 1.
function M.upper(arr, key)
  if key == nil then return 1 end
  local lo, hi = 1, #arr + 1
  while lo < hi do
    local mid = (lo + hi) // 2
    if arr[mid] <= key then lo = mid + 1 else hi = mid end
  end
  return lo
end

local function find(arr, key)
  local i = M.upper(arr, key) - 1
  if i >= 1 and arr[i] == key then return i end
  return nil
end

local function add_sorted(arr, key)
  if find(arr, key) then return end
  insert(arr, M.upper(arr, key), key)
end

local function remove_sorted(arr, key)
  local i = find(arr, key)
  if i then remove(arr, i) end
end

local function entry(t)
  local e = cache[t]
  if not e then e = { dir = {} }; cache[t] = e end
  return e
end

-- dir_ids(tenant, odata_type) -> the sorted array of ids (do not modify it).
function M.dir_ids(t, typ)
  local e = entry(t)
  local ids = e.dir[typ]
  if ids then return ids end
  ids = {}
  for id, o in pairs(t.dir.objects) do
    if o["@odata.type"] == typ then ids[#ids + 1] = id end
  end
  table.sort(ids)
  e.dir[typ] = ids
  return ids
end

function M.dir_add(t, o)
  local e = cache[t]
  local ids = e and e.dir[o["@odata.type"]]
  if ids then add_sorted(ids, o.id) end
end

function M.dir_remove(t, o)
  local e = cache[t]
  local ids = e and e.dir[o["@odata.type"]]
  if ids then remove_sorted(ids, o.id) end
end

-- recip_key(r) -> "lower(Name)\0Guid": the order Get-Mailbox lists in (by name, then id).
function M.recip_key(r)
  return lower(tostring(r.Name or r.Identity or "")) .. "\0" .. tostring(r.Guid or "")
end

-- The Guid a recipient key ends with.
function M.key_guid(k) return sub(k, (k:find("\0", 1, true) or 0) + 1) end

-- recipients(tenant) -> the sorted array of recipient keys (do not modify it).
function M.recipients(t)
  local e = entry(t)
  if e.recip then return e.recip end
  local keys = {}
  for _, r in pairs(t.exo.recipients) do keys[#keys + 1] = M.recip_key(r) end
  table.sort(keys)
  e.recip = keys
  return keys
end

function M.recip_add(t, r)
  local e = cache[t]
  if e and e.recip then add_sorted(e.recip, M.recip_key(r)) end
end

function M.recip_remove(t, r)
  local e = cache[t]
  if e and e.recip then remove_sorted(e.recip, M.recip_key(r)) end
end

-- Directory change log for Graph delta queries (lua/t2t/sim/graph/delta.lua), in the state:
-- dir.delta_log = {"TYPE ID", ...} with dir.delta_base, so change number delta_base + i is
-- entry i.  Nothing is logged until a delta query starts tracking (track), so seeding 100k
-- users writes no log.
function M.track(t)
  local dir = t.dir
  if not dir.delta_log then dir.delta_log, dir.delta_base = {}, 0 end
  return dir.delta_base + #dir.delta_log
end

-- changed(tenant, obj): note that a directory object was added, changed or removed.
function M.changed(t, o)
  local log = t.dir.delta_log
  if log and o and o.id and o["@odata.type"] then log[#log + 1] = o["@odata.type"] .. " " .. o.id end
end

return M
