-- t2t.sim.exo.holds: what CSS-val reads to find holds and archive trouble (ms-setup-and-prep.md
-- §3.2 #2, #4, #5): Export-MailboxDiagnosticLogs -ComponentName HoldTracking (an
-- organization-wide retention policy shows as "hid":"mbx…","ht":4), Get-MailboxFolderStatistics
-- (the archive's Recoverable Items SubstrateHolds folder) and Get-MailboxLocation (primary, main
-- archive and auxiliary archives).  The log's JSON shape beyond "hid"/"ht" is [inferred].
local cjson = require "cjson"
local model = require "t2t.sim.model"
local U = require "t2t.sim.exo.util"

local M = {}
local ZERO = model.ZERO_GUID
local lower = string.lower

-- The mailbox an identity names; an ArchiveGuid names its archive (CSS-val passes one).
local function mailbox(ctx, identity)
  local r = U.find(ctx, identity, U.MAILBOX, true)
  if r then return r, false end
  if type(identity) == "string" and identity:match(require("t2t.exo").GUID_PAT) then
    local g = lower(identity)
    for _, x in pairs(ctx.t.exo.recipients) do
      if x.ArchiveGuid and lower(x.ArchiveGuid) == g and U.MAILBOX[x.RecipientTypeDetails] then
        return x, true
      end
    end
  end
  U.not_found(ctx, identity)
end

local function has_archive(r) return r.ArchiveGuid and r.ArchiveGuid ~= ZERO end

M["Export-MailboxDiagnosticLogs"] = function(ctx, p)
  U.only_simulated("Export-MailboxDiagnosticLogs", p, U.set("Identity", "ComponentName",
    "IncludeInactiveMailboxes", "Confirm", "WhatIf"))
  if p.ExtendedProperties then U.only_simulated("Export-MailboxDiagnosticLogs", p, {}) end
  local r = mailbox(ctx, p.Identity)
  -- keys in the order the service writes them: CSS-val matches '*"hid":"mbx*","ht":4*'
  local entries = {}
  if p.ComponentName == "HoldTracking" then
    local when = cjson.encode(U.time(r.created or ctx.now))
    for _, hid in ipairs(r._OrgHolds or {}) do
      entries[#entries + 1] = string.format('{"hid":%s,"ht":4,"osd":%s,"lsd":%s,"ed":null}',
                                            cjson.encode(hid), when, when)
    end
  end
  local log = #entries > 0 and ("[" .. table.concat(entries, ",") .. "]") or ""
  return { U.present({ Identity = r.Name, MailboxIdentity = r.Name, MailboxLog = log }) }
end

-- The Recoverable Items folders of a mailbox (or its archive), the SubstrateHolds one with the
-- item count set on the archive by the population (_SubstrateHoldsItems).
local RECOVERABLE = { "Recoverable Items", "Deletions", "DiscoveryHolds", "Purges", "Versions",
                      "SubstrateHolds" }

local function folders(r, archive, scope)
  local out = {}
  local function add(name, path, typ, items, size)
    out[#out + 1] = { Name = name, FolderPath = path, FolderType = typ, ItemsInFolder = items,
                      ItemsInFolderAndSubfolders = items, FolderSize = size or 0,
                      Identity = r.Name .. "\\" .. name, Guid = nil }
  end
  if scope == nil or scope == "All" then
    add("Top of Information Store", "/Top of Information Store", "Root", 0)
    if not archive then
      add("Inbox", "/Inbox", "Inbox", math.floor((r.ItemCount or 0) * 0.6),
          math.floor((r.TotalItemSize or 0) * 0.6))
      add("Sent Items", "/Sent Items", "SentItems", math.floor((r.ItemCount or 0) * 0.3))
    end
  end
  if scope == nil or scope == "All" or scope == "RecoverableItems" then
    for _, n in ipairs(RECOVERABLE) do
      local items = 0
      if n == "SubstrateHolds" and archive then items = r._SubstrateHoldsItems or 0 end
      if n == "Deletions" and not archive then items = math.floor((r.TotalDeletedItemSize or 0) / 70000) end
      add(n, n == "Recoverable Items" and "/Recoverable Items" or ("/" .. n),
          n == "Recoverable Items" and "RecoverableItemsRoot" or ("RecoverableItems" .. n:gsub(" ", "")),
          items)
    end
  end
  return out
end

M["Get-MailboxFolderStatistics"] = function(ctx, p)
  U.only_simulated("Get-MailboxFolderStatistics", p, U.set("Identity", "Archive", "FolderScope",
    "ResultSize", "IncludeOldestAndNewestItems", "IncludeSoftDeletedRecipients"))
  local r, by_archive_guid = mailbox(ctx, p.Identity)
  local archive = p.Archive or by_archive_guid
  if archive and not has_archive(r) then
    U.fail(400, U.EX.Task, "The archive mailbox for '%s' isn't enabled.", r.Name)
  end
  local scope = p.FolderScope
  if scope and scope ~= "All" and scope ~= "RecoverableItems" then
    U.only_simulated("Get-MailboxFolderStatistics -FolderScope " .. scope, { FolderScope = true }, {})
  end
  return folders(r, archive, scope), function(f) return U.present(f) end
end

-- Get-MailboxLocation -User X (or -Identity for one location): from MailboxLocations
-- "1;GUID;Type;domain;db".
M["Get-MailboxLocation"] = function(ctx, p)
  U.only_simulated("Get-MailboxLocation", p, U.set("User", "Identity", "MailboxLocationType",
    "IncludePreviousPrimary", "ResultSize"))
  local r = U.find(ctx, p.User or p.Identity, U.MAILBOX)
  local out = {}
  for _, l in ipairs(r.MailboxLocations or {}) do
    local g, typ, _, db = l:match("^%d+;([^;]+);([^;]+);([^;]*);([^;]*)$")
    if g and (p.MailboxLocationType == nil or p.MailboxLocationType == typ) then
      out[#out + 1] = U.present({ Identity = r.Name .. "\\" .. g, MailboxGuid = g,
        MailboxLocationType = typ, OwnerId = r.Name, DatabaseLocation = db,
        MailboxLocationId = g })
    end
  end
  return out
end

return M
