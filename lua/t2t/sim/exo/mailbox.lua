-- t2t.sim.exo.mailbox: the mailbox cmdlets the documented migration fixes and checks use that
-- no other area has (ms-setup-and-prep.md §5.6, §8): Enable-Mailbox -Archive (the reversible
-- fix for UserAlreadyHasDemotedArchiveException: the disabled archive is connected again) and
-- Get-MailboxFolderPermission (calendar delegates, from the sim-only list _CalendarDelegates).
local model = require "t2t.sim.model"
local U = require "t2t.sim.exo.util"

local M = {}
local lower = string.lower
local ZERO = model.ZERO_GUID

M["Enable-Mailbox"] = function(ctx, p)
  U.only_simulated("Enable-Mailbox", p, U.set("Identity", "Archive", "Confirm", "WhatIf"))
  if not p.Archive then
    U.fail(501, "System.NotImplementedException", "The simulator implements Enable-Mailbox -Archive only.")
  end
  local r = U.find(ctx, p.Identity, U.MAILBOX)
  if r.ArchiveGuid and r.ArchiveGuid ~= ZERO then
    U.fail(400, U.EX.Task, "The mailbox '%s' already has an archive.", r.Name)
  end
  local guid = (r.DisabledArchiveGuid and r.DisabledArchiveGuid ~= ZERO) and r.DisabledArchiveGuid or ctx.sim.rng:guid()
  local locs = {}
  for _, l in ipairs(r.MailboxLocations or {}) do locs[#locs + 1] = l end
  locs[#locs + 1] = string.format("1;%s;MainArchive;%s;%s", guid, ctx.t.initial_domain, tostring(r.Database))
  model.update_recipient(ctx.t, r, { ArchiveGuid = guid, ArchiveStatus = "Active",
    DisabledArchiveGuid = model.cjson.null, MailboxLocations = locs })
  return { U.present(r) }
end

-- Get-MailboxFolderPermission -Identity "mailbox:\Calendar": Default and Anonymous, then each
-- delegate (Editor, with the delegate flags Outlook sets).
M["Get-MailboxFolderPermission"] = function(ctx, p)
  U.only_simulated("Get-MailboxFolderPermission", p, U.set("Identity", "User"))
  local who, folder = tostring(p.Identity):match("^(.-):\\(.*)$")
  who, folder = who or tostring(p.Identity), folder or ""
  local r = U.find(ctx, who, U.MAILBOX)
  local name = folder:match("^[^\\]+$") or folder
  if lower(name) ~= "calendar" then
    U.fail(501, "System.NotImplementedException", "The simulator models the Calendar folder's permissions only.")
  end
  local out = {}
  local function add(user, rights, flags)
    if p.User == nil or lower(tostring(p.User)) == lower(user) then
      out[#out + 1] = U.present({ Identity = r.Name .. ":\\Calendar", FolderName = "Calendar", User = user,
        AccessRights = rights, SharingPermissionFlags = flags, IsValid = true })
    end
  end
  add("Default", { "AvailabilityOnly" })
  add("Anonymous", { "None" })
  for _, n in ipairs(r._CalendarDelegates or {}) do
    local d = model.find_recipient(ctx.t, n)
    add(d and (d.UserPrincipalName or d.PrimarySmtpAddress) or n, { "Editor" }, "Delegate")
  end
  return out
end

return M
