-- t2t.sim.exo.recipients: mailboxes, mail users, users, recipients, accepted domains and the
-- organization configuration (ms-setup-and-prep.md §4-5 for the rules the service enforces).
local cjson = require "cjson"
local model = require "t2t.sim.model"
local U = require "t2t.sim.exo.util"

local M = {}
local lower = string.lower
local ZERO = model.ZERO_GUID
local LEGDN = "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn="

-- Narrow a listing by the common Get-* parameters (-Filter, -Anr, -RecipientTypeDetails...).
local function narrow(list, p)
  if p.RecipientTypeDetails then
    local s = U.set(table.unpack(U.list(p.RecipientTypeDetails)))
    local out = {}
    for _, r in ipairs(list) do if s[r.RecipientTypeDetails] then out[#out + 1] = r end end
    list = out
  end
  if p.RecipientType then
    local s = U.set(table.unpack(U.list(p.RecipientType)))
    local out = {}
    for _, r in ipairs(list) do if s[r.RecipientType] then out[#out + 1] = r end end
    list = out
  end
  if p.Filter then
    local pred = U.compile_filter(p.Filter)
    local out = {}
    for _, r in ipairs(list) do if pred(r) then out[#out + 1] = r end end
    list = out
  end
  if p.Anr then list = U.anr(list, p.Anr) end
  return list
end

-- get(ctx, p, kinds, presenter) -> list (one object for -Identity), presenter.
local function get(ctx, p, kinds, presenter)
  if p.Identity ~= nil then
    return { U.find(ctx, p.Identity, kinds) }, presenter
  end
  return narrow(U.all(ctx, kinds), p), presenter
end

local function present_mailbox(r)
  return U.present(r, { Identity = r.Identity or r.Name, Id = r.Name,
                        RecipientType = r.RecipientType or r.RecipientTypeDetails })
end

local USER_KEYS = { "Guid", "Name", "DisplayName", "FirstName", "LastName", "UserPrincipalName",
  "MicrosoftOnlineServicesID", "WindowsEmailAddress", "RecipientType", "RecipientTypeDetails",
  "PreviousRecipientTypeDetails", "ExternalDirectoryObjectId", "IsDirSynced", "DistinguishedName",
  "UsageLocation", "created" }

local function present_user(r)
  local u = { Identity = r.Identity or r.Name, Id = r.Name }
  for _, k in ipairs(USER_KEYS) do u[k] = r[k] end
  u.PreviousRecipientTypeDetails = r.PreviousRecipientTypeDetails or "None"
  return U.present(u)
end

M["Get-Mailbox"] = function(ctx, p) return get(ctx, p, U.MAILBOX, present_mailbox) end
M["Get-MailUser"] = function(ctx, p) return get(ctx, p, U.MAILUSER, present_mailbox) end
M["Get-Recipient"] = function(ctx, p) return get(ctx, p, nil, present_mailbox) end
M["Get-User"] = function(ctx, p) return get(ctx, p, U.USER, present_user) end

M["Get-MailboxStatistics"] = function(ctx, p)
  local r = U.find(ctx, p.Identity, U.MAILBOX)
  local archive = p.Archive
  if archive and (not r.ArchiveGuid or r.ArchiveGuid == ZERO) then
    U.fail(400, U.EX.Task, "The archive mailbox for '%s' isn't enabled.", r.Name)
  end
  local size = r.TotalItemSize or 0
  if archive then size = math.floor(size * 0.3) end
  local st = {
    DisplayName = r.DisplayName, MailboxGuid = archive and r.ArchiveGuid or r.ExchangeGuid,
    ItemCount = archive and math.floor((r.ItemCount or 0) * 0.3) or (r.ItemCount or 0),
    TotalItemSize = size, TotalDeletedItemSize = r.TotalDeletedItemSize or 0,
    DeletedItemCount = math.floor((r.TotalDeletedItemSize or 0) / 70000),
    IsArchiveMailbox = archive and true or false, MailboxTypeDetail = r.RecipientTypeDetails,
    Database = r.Database, SystemMessageSize = 0, LastLogonTime = cjson.null,
  }
  return { U.present(st) }
end

---------------------------------------------------------------------------------------------
-- Writes.

local function accepted(ctx, addr)
  local dom = lower(addr:match("@(.+)$") or "")
  for _, d in ipairs(ctx.t.exo.accepted_domains) do
    if lower(d.DomainName) == dom then return true end
  end
  return false
end

local function strip_prefix(a)
  return (a:gsub("^%a%w*:", ""))
end

-- Raise unless every address in addrs is free in the tenant (or belongs to self).
local function check_proxies(ctx, addrs, self)
  for _, a in ipairs(addrs) do
    local other = model.find_recipient(ctx.t, strip_prefix(a))
    if other and other ~= self then
      U.fail(400, U.EX.ProxyExists, "The proxy address \"%s\" is already being used by the " ..
        "proxy addresses or LegacyExchangeDN of \"%s\". Please choose another proxy address.",
        a, other.Name)
    end
  end
end

local function check_synced(r, cmdlet, prop)
  if r.IsDirSynced then
    U.fail(400, U.EX.Task, "The operation on mailbox \"%s\" failed because it's out of the " ..
      "current user's write scope. The action '%s', '%s', can't be performed on the object " ..
      "'%s' because the object is being synchronized from your on-premises organization. " ..
      "This action should be performed on the object in your on-premises organization.",
      r.Name, cmdlet, prop, r.Name)
  end
end

-- Make `primary` the one "SMTP:" address of the list.
local function set_primary(addrs, primary)
  local out, found = {}, false
  for _, a in ipairs(addrs) do
    local pre, rest = a:match("^(%a+):(.*)$")
    if pre and lower(pre) == "smtp" then
      if lower(rest) == lower(primary) then found = true; out[#out + 1] = "SMTP:" .. rest
      else out[#out + 1] = "smtp:" .. rest end
    else
      out[#out + 1] = a
    end
  end
  if not found then table.insert(out, 1, "SMTP:" .. primary) end
  return out
end

local function guid(ctx) return ctx.sim.rng:guid() end

local function hex32(ctx)
  return (ctx.sim.rng:guid():gsub("%-", ""))
end

-- The mirror of a recipient change on its Entra user, so Graph sees the same addresses.
local function sync_user(ctx, r)
  local u = ctx.t.dir.objects[r.ExternalDirectoryObjectId or ""]
  if not u then return end
  u.mail = r.PrimarySmtpAddress
  u.proxyAddresses = U.copy(r.EmailAddresses or {})
  u.displayName = r.DisplayName or u.displayName
end

M["New-MailUser"] = function(ctx, p)
  local t = ctx.t
  local name = p.Name
  local alias = p.Alias or (p.MicrosoftOnlineServicesID or name):match("^[^@]+"):gsub("[^%w%.%-_]", "")
  if U.find(ctx, name, nil, true) or model.find_recipient(t, name) then
    U.fail(400, U.EX.AlreadyExists, "The name \"%s\" is already being used. Please try another name.",
           name)
  end
  local upn = p.MicrosoftOnlineServicesID or (alias .. "@" .. t.initial_domain)
  if p.MicrosoftOnlineServicesID and not accepted(ctx, upn) then
    U.fail(400, U.EX.Validation, "The domain of '%s' isn't an accepted domain for your organization.", upn)
  end
  local ext = p.ExternalEmailAddress and strip_prefix(p.ExternalEmailAddress)
  -- Without -PrimarySmtpAddress the external address becomes the primary SMTP address
  -- (ms-setup-and-prep.md §5.1: the documented trap).
  local primary = p.PrimarySmtpAddress or ext or upn
  if p.PrimarySmtpAddress and not accepted(ctx, primary) then
    U.fail(400, U.EX.Validation, "The domain of '%s' isn't an accepted domain for your organization.",
           primary)
  end
  local addrs = { "SMTP:" .. primary }
  local moera = alias .. "@" .. t.initial_domain
  if lower(moera) ~= lower(primary) then addrs[#addrs + 1] = "smtp:" .. moera end
  check_proxies(ctx, addrs, nil)
  local edoid = guid(ctx)
  local r = {
    Guid = guid(ctx), ExternalDirectoryObjectId = edoid, ExchangeGuid = ZERO, ArchiveGuid = ZERO,
    ArchiveStatus = "None", LegacyExchangeDN = LEGDN .. hex32(ctx) .. "-" .. alias,
    DistinguishedName = "CN=" .. name .. ",OU=" .. t.initial_domain ..
      ",OU=Microsoft Exchange Hosted Organizations,DC=NAMPR01A001,DC=PROD,DC=OUTLOOK,DC=COM",
    Identity = name, Name = name, Alias = alias, DisplayName = p.DisplayName or name,
    FirstName = p.FirstName, LastName = p.LastName,
    PrimarySmtpAddress = primary, WindowsEmailAddress = primary, UserPrincipalName = upn,
    MicrosoftOnlineServicesID = upn, ExternalEmailAddress = ext and ("SMTP:" .. ext) or nil,
    EmailAddresses = addrs, RecipientType = "MailUser", RecipientTypeDetails = "MailUser",
    IsDirSynced = false, LitigationHoldEnabled = false, InPlaceHolds = {},
    PersistedCapabilities = {}, RecoverableItemsQuota = 30 * (1 << 30), created = ctx.now,
  }
  model.add_recipient(t, r)
  model.add_object(ctx.state, t, {
    ["@odata.type"] = "#microsoft.graph.user", id = edoid, userPrincipalName = upn,
    displayName = r.DisplayName, givenName = p.FirstName, surname = p.LastName, mail = primary,
    mailNickname = alias, proxyAddresses = U.copy(addrs), accountEnabled = true,
    userType = "Member", assignedLicenses = {}, created = ctx.now,
  })
  return { present_mailbox(r) }
end

local SETTABLE = { "DisplayName", "Alias", "Name", "FirstName", "LastName", "CustomAttribute1",
                   "HiddenFromAddressListsEnabled" }

M["Set-MailUser"] = function(ctx, p)
  local r = U.find(ctx, p.Identity, U.MAILUSER)
  local ch = {}
  for k in pairs(p) do
    if k ~= "Identity" and k ~= "Confirm" and k ~= "WhatIf" then check_synced(r, "Set-MailUser", k) end
  end
  for _, k in ipairs { "ExchangeGuid", "ArchiveGuid" } do
    if p[k] then
      if p[k] ~= ZERO then
        for _, o in pairs(ctx.t.exo.recipients) do
          if o ~= r and o[k] and lower(o[k]) == lower(p[k]) then
            U.fail(400, U.EX.Validation, "The %s '%s' is already used by '%s'.", k, p[k], o.Name)
          end
        end
      end
      ch[k] = lower(p[k])
    end
  end
  if ch.ArchiveGuid then ch.ArchiveStatus = ch.ArchiveGuid == ZERO and "None" or "Active" end
  local addrs = r.EmailAddresses or {}
  if p.EmailAddresses ~= nil then addrs = U.edit_list(addrs, p.EmailAddresses) end
  local primary = r.PrimarySmtpAddress
  if p.ExternalEmailAddress then
    local ext = strip_prefix(p.ExternalEmailAddress)
    ch.ExternalEmailAddress = "SMTP:" .. ext
    if not p.PrimarySmtpAddress then primary = ext end   -- the documented trap (§5.1)
  end
  if p.PrimarySmtpAddress then primary = p.PrimarySmtpAddress end
  for _, a in ipairs(addrs) do                            -- an added "SMTP:" becomes primary
    if a:sub(1, 5) == "SMTP:" and p.EmailAddresses ~= nil and not p.PrimarySmtpAddress then
      primary = a:sub(6)
    end
  end
  addrs = set_primary(addrs, primary)
  check_proxies(ctx, addrs, r)
  ch.EmailAddresses, ch.PrimarySmtpAddress, ch.WindowsEmailAddress = addrs, primary, primary
  if p.EnableLitigationHoldForMigration then
    ch.LitigationHoldEnabled = true
    ch.RecoverableItemsQuota = 100 * (1 << 30)
  end
  for _, k in ipairs(SETTABLE) do if p[k] ~= nil then ch[k] = p[k] end end
  model.update_recipient(ctx.t, r, ch)
  sync_user(ctx, r)
  return {}
end

M["Remove-MailUser"] = function(ctx, p)
  local r = U.find(ctx, p.Identity, U.MAILUSER)
  check_synced(r, "Remove-MailUser", "Identity")
  model.remove_recipient(ctx.t, r.Guid)
  if r.ExternalDirectoryObjectId then
    model.remove_object(ctx.state, ctx.t, r.ExternalDirectoryObjectId)
  end
  return {}
end

---------------------------------------------------------------------------------------------
-- Organization.

M["Get-AcceptedDomain"] = function(ctx, p)
  local out = {}
  for _, d in ipairs(ctx.t.exo.accepted_domains) do
    if p.Identity == nil or lower(p.Identity) == lower(d.DomainName) or
       lower(p.Identity) == lower(d.Name or "") then
      out[#out + 1] = d
    end
  end
  if p.Identity ~= nil and #out == 0 then U.not_found(ctx, p.Identity) end
  return out, function(d) return U.present(d, { Identity = d.Name or d.DomainName }) end
end

local function dehydrated(t)
  return t.exo.org_config.IsDehydrated == true or t.dehydrated == true
end
M.dehydrated = dehydrated

M["Get-OrganizationConfig"] = function(ctx)
  local oc = ctx.t.exo.org_config
  return { U.present(oc, { IsDehydrated = dehydrated(ctx.t) }) }
end

M["Enable-OrganizationCustomization"] = function(ctx)
  if not dehydrated(ctx.t) then
    U.fail(400, U.EX.InvalidOperation,
      "This operation is not required. Organization is already enabled for customization.")
  end
  ctx.t.exo.org_config.IsDehydrated = false
  ctx.t.dehydrated = false
  return {}
end

-- Organization Management's role assignments, for callers that check their RBAC.
local ORG_MGMT_ROLES = { "Distribution Groups", "Federated Sharing", "Mail Recipient Creation",
  "Mail Recipients", "Migration", "Move Mailboxes", "Organization Configuration",
  "Remote and Accepted Domains", "Security Group Creation and Membership" }

M["Get-ManagementRoleAssignment"] = function(ctx, p)
  local out = {}
  for _, role in ipairs(ORG_MGMT_ROLES) do
    local a = { Name = role .. "-Organization Management", Role = role,
                RoleAssignee = "Organization Management", RoleAssigneeType = "RoleGroup",
                RoleAssigneeName = "Organization Management", AssignmentMethod = "Direct",
                Enabled = true, RecipientWriteScope = "Organization",
                ConfigWriteScope = "OrganizationConfig" }
    a.Identity = a.Name
    local ok = true
    if p.Role and lower(tostring(p.Role)) ~= lower(role) then ok = false end
    if p.Identity and lower(tostring(p.Identity)) ~= lower(a.Name) then ok = false end
    if ok then out[#out + 1] = a end
  end
  return out
end

return M
