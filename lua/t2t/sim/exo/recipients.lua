-- t2t.sim.exo.recipients: mailboxes, mail users, users, recipients, accepted domains and the
-- organization configuration (ms-setup-and-prep.md §4-5 for the rules the service enforces).
local cjson = require "cjson"
local exo = require "t2t.exo"
local model = require "t2t.sim.model"
local U = require "t2t.sim.exo.util"

local M = {}
local lower = string.lower
local ZERO = model.ZERO_GUID
local LEGDN = "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn="

-- The common Get-* narrowing parameters (-RecipientTypeDetails, -RecipientType, -Filter,
-- -Anr) as one predicate over a recipient | nil when none is given.
local function narrow(p)
  local tests = {}
  if p.RecipientTypeDetails then
    local s = U.set(table.unpack(U.list(p.RecipientTypeDetails)))
    tests[#tests + 1] = function(r) return s[r.RecipientTypeDetails] end
  end
  if p.RecipientType then
    local s = U.set(table.unpack(U.list(p.RecipientType)))
    tests[#tests + 1] = function(r) return s[r.RecipientType] end
  end
  if p.Filter then tests[#tests + 1] = U.compile_filter(p.Filter) end
  if p.Anr then tests[#tests + 1] = function(r) return U.anr_match(r, p.Anr) end end
  if #tests == 0 then return nil end
  return function(r)
    for _, t in ipairs(tests) do if not t(r) then return false end end
    return true
  end
end

-- A -Filter that only ORs equality tests on identity properties (an address, a GUID, a name)
-- is answered from the identity index, as the service answers it from its directory indexes,
-- not by scanning the tenant: -> the candidates (then filtered exactly), or nil to scan.
local INDEXED = U.set("emailaddresses", "primarysmtpaddress", "exchangeguid", "externaldirectoryobjectid",
                      "alias", "name", "legacyexchangedn", "userprincipalname")

local function candidates(ctx, filter, kinds)
  local s = filter:gsub("^%s*%((.*)%)%s*$", "%1")
  if s:find("%s%-and%s") or s:find("%s%-not") then return nil end
  local out, seen = {}, {}
  for clause in (s .. " -or "):gmatch("(.-)%s+%-or%s+") do
    clause = clause:gsub("^%s*%(?%s*", ""):gsub("%s*%)?%s*$", "")
    local prop, val = clause:match("^([%w_]+)%s+%-[eE][qQ]%s+'(.*)'$")
    if not prop or not INDEXED[lower(prop)] then return nil end
    local r, _, list = model.find_recipient(ctx.t, (val:gsub("''", "'")))
    for _, x in ipairs(r and { r } or list or {}) do
      if not seen[x] and (not kinds or kinds[x.RecipientTypeDetails]) and U.visible(ctx, x) then
        seen[x] = true
        out[#out + 1] = x
      end
    end
  end
  return out
end

-- get(ctx, p, kinds, presenter) -> one object for -Identity; the candidates of an indexed
-- -Filter; else a lazy listing (pages cost O(page): t2t.sim.exo pages it with -ResultSize).
local function get(ctx, p, kinds, presenter)
  if p.Identity ~= nil then
    return { U.find(ctx, p.Identity, kinds) }, presenter
  end
  local keep = narrow(p)
  local list = p.Filter and candidates(ctx, p.Filter, kinds)
  if list then
    local out = {}
    for _, r in ipairs(list) do if not keep or keep(r) then out[#out + 1] = r end end
    return out, presenter
  end
  return U.listing(ctx, kinds, keep), presenter
end

M.get = get        -- for the other recipient cmdlets (t2t.sim.exo.contacts)

local function present_mailbox(r)
  return U.present(r, { Identity = r.Identity or r.Name, Id = r.Name,
                        RecipientType = r.RecipientType or r.RecipientTypeDetails,
                        UsageLocation = U.MAILBOX[r.RecipientTypeDetails] and model.exo_property(r, "UsageLocation") or nil })
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

local accepted = U.accepted

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

-- EmailAddresses after a Set-* edit: v (nil = unchanged) is a list that replaces or
-- @{add=;remove=}; an "SMTP:" entry then becomes the primary unless primary_given.
-- Returns the list (with exactly one "SMTP:") and the primary address.
local function edit_addresses(r, v, primary, primary_given)
  local addrs = r.EmailAddresses or {}
  if v == cjson.null then
    U.fail(400, U.EX.Validation, "EmailAddresses can't be cleared: '%s' needs a primary SMTP " ..
           "address.", r.Name)
  end
  if v ~= nil then addrs = U.edit_list(addrs, v) end
  for _, a in ipairs(addrs) do
    if type(a) ~= "string" or not a:find("@", 1, true) and not a:find(":", 1, true) then
      U.fail(400, U.EX.Validation, "The proxy address \"%s\" is invalid.", tostring(a))
    end
  end
  for _, a in ipairs(addrs) do
    if a:sub(1, 5) == "SMTP:" and v ~= nil and not primary_given then primary = a:sub(6) end
  end
  return set_primary(addrs, primary), primary
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
    -- the DisabledUser parameter set (no -Password) makes an account that cannot sign in
    mailNickname = alias, proxyAddresses = U.copy(addrs), accountEnabled = p.Password ~= nil,
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
  -- A mail user that had a mailbox keeps that mailbox's ExchangeGuid until Set-User
  -- -PermanentlyClearPreviousMailboxInfo (ms-setup-and-prep.md §5.3) [inferred wording].
  if p.ExchangeGuid and r.PreviousRecipientTypeDetails and r.PreviousRecipientTypeDetails ~= "None"
     and r.ExchangeGuid and r.ExchangeGuid ~= ZERO and lower(p.ExchangeGuid) ~= lower(r.ExchangeGuid) then
    U.fail(400, U.EX.Task, "The ExchangeGuid of '%s' belongs to its previous mailbox (%s); run " ..
      "Set-User -PermanentlyClearPreviousMailboxInfo before you set another one.", r.Name,
      r.PreviousRecipientTypeDetails)
  end
  if p.MicrosoftOnlineServicesID then
    local upn = p.MicrosoftOnlineServicesID
    if not accepted(ctx, upn) then
      U.fail(400, U.EX.Validation, "The domain of '%s' isn't an accepted domain for your organization.", upn)
    end
    local u = model.user_by_upn(ctx.t, upn)
    if u and u.id ~= r.ExternalDirectoryObjectId then
      U.fail(400, U.EX.ProxyExists, "The user principal name '%s' is already used by '%s'.", upn,
             u.displayName or u.id)
    end
    ch.UserPrincipalName = upn
    if r.MicrosoftOnlineServicesID then ch.MicrosoftOnlineServicesID = upn end
  end
  for _, k in ipairs { "ExchangeGuid", "ArchiveGuid" } do
    if p[k] then
      if p[k] ~= ZERO then
        -- ExchangeGuid is in the identity index; ArchiveGuid is not (rarely set: scan)
        local others = k == "ExchangeGuid" and { model.find_recipient(ctx.t, p[k]) } or ctx.t.exo.recipients
        for _, o in pairs(others) do
          if type(o) == "table" and o ~= r and o[k] and lower(o[k]) == lower(p[k]) then
            U.fail(400, U.EX.Validation, "The %s '%s' is already used by '%s'.", k, p[k], o.Name)
          end
        end
      end
      ch[k] = lower(p[k])
    end
  end
  if ch.ArchiveGuid then ch.ArchiveStatus = ch.ArchiveGuid == ZERO and "None" or "Active" end
  local primary = r.PrimarySmtpAddress
  if p.ExternalEmailAddress then
    local ext = strip_prefix(p.ExternalEmailAddress)
    ch.ExternalEmailAddress = "SMTP:" .. ext
    if not p.PrimarySmtpAddress then primary = ext end   -- the documented trap (§5.1)
  end
  if p.PrimarySmtpAddress then primary = p.PrimarySmtpAddress end
  local addrs
  addrs, primary = edit_addresses(r, p.EmailAddresses, primary, p.PrimarySmtpAddress ~= nil)
  check_proxies(ctx, addrs, r)
  ch.EmailAddresses, ch.PrimarySmtpAddress, ch.WindowsEmailAddress = addrs, primary, primary
  if p.EnableLitigationHoldForMigration then
    ch.LitigationHoldEnabled = true
    ch.RecoverableItemsQuota = 100 * (1 << 30)
  end
  for _, k in ipairs(SETTABLE) do if p[k] ~= nil then ch[k] = p[k] end end
  model.update_recipient(ctx.t, r, ch)
  sync_user(ctx, r)
  if ch.UserPrincipalName then
    local u = ctx.t.dir.objects[r.ExternalDirectoryObjectId or ""]
    if u then u.userPrincipalName = ch.UserPrincipalName; model.reindex(ctx.t) end
  end
  return {}
end

-- Set-User: the previous-mailbox clean-up a cross-tenant target may need (§5.3; irreversible in
-- the service: a soft-deleted mailbox of the user can no longer be recovered) and a few names.
local USER_SET = U.set("Identity", "PermanentlyClearPreviousMailboxInfo", "DisplayName", "FirstName",
                       "LastName", "Confirm", "WhatIf", "Force")
M["Set-User"] = function(ctx, p)
  U.only_simulated("Set-User", p, USER_SET)
  local r = U.find(ctx, p.Identity, U.USER)
  local ch = {}
  for _, k in ipairs { "DisplayName", "FirstName", "LastName" } do
    if p[k] ~= nil then check_synced(r, "Set-User", k); ch[k] = p[k] end
  end
  if p.PermanentlyClearPreviousMailboxInfo then
    if U.MAILBOX[r.RecipientTypeDetails] then
      U.fail(400, U.EX.Task, "'%s' has a mailbox; PermanentlyClearPreviousMailboxInfo applies to " ..
             "users and mail users without one.", r.Name)
    end
    ch.PreviousRecipientTypeDetails, ch.DisabledArchiveGuid = cjson.null, cjson.null
    ch.ExchangeGuid, ch.ArchiveGuid, ch.ArchiveStatus = ZERO, ZERO, "None"
  end
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
-- Set-Mailbox: the parameters a cross-tenant move needs (ms-setup-and-prep.md §5.4 holds, §5.6
-- Send on Behalf, §8 UserAlreadyHasDemotedArchiveException, §9 scripts' attributes).  Every
-- other Exchange Online parameter answers 501 instead of being ignored.

local MBX_COPY = U.set("DisplayName", "HiddenFromAddressListsEnabled", "LitigationHoldEnabled",
                       "RetentionHoldEnabled", "ElcProcessingDisabled")
-- Properties mastered on-premises for a dir-synced mailbox; holds and delegates are cloud-side.
local MBX_SYNCED = U.set("DisplayName", "HiddenFromAddressListsEnabled", "EmailAddresses")
for i = 1, 15 do
  MBX_COPY["CustomAttribute" .. i], MBX_SYNCED["CustomAttribute" .. i] = true, true
end
-- Switches that clear a hold flag the migration engine checks.
local MBX_CLEAR = { RemoveDelayHoldApplied = "DelayHoldApplied",
                    RemoveDelayReleaseHoldApplied = "DelayReleaseHoldApplied",
                    RemoveComplianceTagHoldApplied = "ComplianceTagHoldApplied" }
local MBX_KNOWN = U.set("Identity", "Confirm", "Force", "WhatIf", "EmailAddresses",
                        "GrantSendOnBehalfTo", "RemoveDisabledArchive", "ExcludeFromAllOrgHolds")
for k in pairs(MBX_COPY) do MBX_KNOWN[k] = true end
for k in pairs(MBX_CLEAR) do MBX_KNOWN[k] = true end
-- Who may be a Send on Behalf delegate: mailboxes, mail users, mail-enabled security groups.
local DELEGATE = U.set("UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox",
                       "MailUser", "MailUniversalSecurityGroup")

-- GrantSendOnBehalfTo: every value must resolve (else the -Identity 404) and is stored by Name;
-- a list replaces, @{add=;remove=} edits, $null clears.
local function delegates(ctx, r, v)
  if v == cjson.null then return {} end
  local function names(vals)
    local out = {}
    for i, x in ipairs(U.list(vals)) do out[i] = U.find(ctx, x, DELEGATE).Name end
    return out
  end
  if type(v) == "table" and not exo.is_array(v) then
    local edit = {}
    for k, vals in pairs(v) do
      local key = lower(k)
      edit[k] = (key == "add" or key == "remove") and names(vals) or vals   -- others: edit_list
    end
    return U.edit_list(r.GrantSendOnBehalfTo, edit)
  end
  return names(v)
end

-- A mailbox's new SMTP proxies must be in accepted domains (an Exchange licence scrubs the
-- others, §5.2); addresses it already has are left alone.
local function check_accepted(ctx, r, addrs)
  local had = {}
  for _, a in ipairs(r.EmailAddresses or {}) do had[lower(strip_prefix(a))] = true end
  for _, a in ipairs(addrs) do
    local pre, addr = a:match("^(%a%w*):(.*)$")
    if not pre then pre, addr = "smtp", a end
    if lower(pre) == "smtp" and not had[lower(addr)] and not accepted(ctx, addr) then
      U.fail(400, U.EX.Validation, "The domain of '%s' isn't an accepted domain for your " ..
             "organization.", addr)
    end
  end
end

-- True when applying ch would change nothing (an unset Boolean reads as $false).
local function unchanged(r, ch)
  for k, v in pairs(ch) do
    local cur = model.exo_property(r, k)
    if v == cjson.null then
      if cur ~= nil then return false end
    elseif type(v) == "table" then
      if type(cur) ~= "table" or #cur ~= #v then return false end
      for i = 1, #v do if cur[i] ~= v[i] then return false end end
    elseif not (cur == v or v == false and cur == nil) then
      return false
    end
  end
  return true
end

-- ExcludeFromAllOrgHolds is for inactive mailboxes only (Set-Mailbox docs); organization-wide
-- retention policies are not modelled, so an inactive mailbox gets the 501.
local function exclude_org_holds(r)
  if not r.IsInactiveMailbox then
    U.fail(400, U.EX.Task, "The ExcludeFromAllOrgHolds switch can only be used for inactive " ..
           "mailboxes; '%s' isn't an inactive mailbox.", r.Name)
  end
  U.fail(501, "System.NotImplementedException", "The simulator does not model " ..
         "organization-wide retention policies (Set-Mailbox -ExcludeFromAllOrgHolds).")
end

-- The changes Set-Mailbox makes to mailbox r; raises on a refused value.
local function mailbox_changes(ctx, r, p)
  local ch = {}
  for k in pairs(MBX_COPY) do if p[k] ~= nil then ch[k] = p[k] end end
  if p.DisplayName == cjson.null or p.DisplayName == "" then
    U.fail(400, U.EX.Validation, "The DisplayName of mailbox '%s' can't be empty.", r.Name)
  end
  -- Removing a hold leaves a delay hold until -RemoveDelayHoldApplied (Set-Mailbox docs).
  if p.LitigationHoldEnabled == false and r.LitigationHoldEnabled then ch.DelayHoldApplied = true end
  for sw, flag in pairs(MBX_CLEAR) do if p[sw] then ch[flag] = false end end
  if p.RemoveDisabledArchive and r.DisabledArchiveGuid then  -- irreversible (§8)
    ch.DisabledArchiveGuid, ch.DisabledArchiveDatabase = ZERO, cjson.null
  end
  if p.GrantSendOnBehalfTo ~= nil then ch.GrantSendOnBehalfTo = delegates(ctx, r, p.GrantSendOnBehalfTo) end
  if p.EmailAddresses ~= nil then
    local addrs, primary = edit_addresses(r, p.EmailAddresses, r.PrimarySmtpAddress, false)
    check_accepted(ctx, r, addrs)
    check_proxies(ctx, addrs, r)
    ch.EmailAddresses, ch.PrimarySmtpAddress = addrs, primary
    if r.WindowsEmailAddress ~= nil then ch.WindowsEmailAddress = primary end
  end
  return ch
end

M["Set-Mailbox"] = function(ctx, p)
  U.only_simulated("Set-Mailbox", p, MBX_KNOWN)
  local r = U.find(ctx, p.Identity, U.MAILBOX)     -- a MailUser is not found, as in EXO
  for k in pairs(p) do
    if MBX_SYNCED[k] then check_synced(r, "Set-Mailbox", k) end
  end
  if p.ExcludeFromAllOrgHolds then exclude_org_holds(r) end
  local ch = mailbox_changes(ctx, r, p)
  if unchanged(r, ch) then
    ctx.warnings[#ctx.warnings + 1] = string.format("The command completed successfully but " ..
      "no settings of '%s' have been modified.", r.Name)
    return {}
  end
  model.update_recipient(ctx.t, r, ch)
  sync_user(ctx, r)
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

M["Get-ManagementRoleAssignment"] = function(_ctx, p)
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
