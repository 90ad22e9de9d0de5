-- t2t.sim.exo.output: the property bags each simulated cmdlet returns, held to Exchange
-- Online's output objects.  Exchange returns every property of its object type (null or [] when
-- unset), typed and annotated as wire.md §2.5 shows; the handlers build bags from what the model
-- stores, so conform() adds each listed property a handler left out (recipients: derived or
-- default values, model.exo_property) and drops what the object type does not have.
--
-- Provenance of the lists (docs/simulator.md, "EXO output"): names marked R are read by the
-- reference scripts (ms-setup-and-prep.md §2–5: the cross-tenant setup and CSS validation
-- scripts, the prepare scripts) or shown in wire.md §2.5; the others are the cmdlet pages'
-- documented output properties as their examples and parameter texts name them [inferred where
-- a page names none].  Types: s string, b Boolean, i integer, g GUID, t DateTime, q size
-- (ByteQuantifiedSize display string), l multi-valued (collection of strings).
local cjson = require "cjson"
local model = require "t2t.sim.model"
local U = require "t2t.sim.exo.util"

local M = {}

local function attrs(list)
  local t = {}
  for i = 1, 15 do t[#t + 1] = "CustomAttribute" .. i .. ":s" end
  for _, x in ipairs(list) do t[#t + 1] = x end
  return t
end

local RECIPIENT_COMMON = { "Identity:s", "Id:s", "Name:s", "Alias:s", "DisplayName:s",
  "DistinguishedName:s", "Guid:g", "ExternalDirectoryObjectId:g", "EmailAddresses:l",
  "PrimarySmtpAddress:s", "RecipientType:s", "RecipientTypeDetails:s", "IsDirSynced:b",
  "HiddenFromAddressListsEnabled:b", "LegacyExchangeDN:s", "WhenCreated:t", "WhenChanged:t",
  "OrganizationalUnit:s" }

local function with(base, more)
  local t = {}
  for _, x in ipairs(base) do t[#t + 1] = x end
  for _, x in ipairs(more) do t[#t + 1] = x end
  return t
end

-- Output object types: "Name:type" entries.
M.TYPES = {
  Mailbox = attrs(with(RECIPIENT_COMMON, { "ExchangeGuid:g", "ArchiveGuid:g", "ArchiveStatus:s",
    "ArchiveState:s", "ArchiveName:l", "ArchiveDatabase:s", "ArchiveQuota:q", "ArchiveWarningQuota:q",
    "AutoExpandingArchiveEnabled:b", "MailboxLocations:l", "Database:s", "WindowsEmailAddress:s",
    "UserPrincipalName:s", "MicrosoftOnlineServicesID:s", "IsMailboxEnabled:b", "IsInactiveMailbox:b",
    "IsSoftDeletedByRemove:b", "LitigationHoldEnabled:b", "LitigationHoldDate:t",
    "LitigationHoldOwner:s", "DelayHoldApplied:b", "DelayReleaseHoldApplied:b",
    "ComplianceTagHoldApplied:b", "RetentionHoldEnabled:b", "ElcProcessingDisabled:b",
    "InPlaceHolds:l", "PersistedCapabilities:l", "ProhibitSendQuota:q", "ProhibitSendReceiveQuota:q",
    "IssueWarningQuota:q", "RecoverableItemsQuota:q", "RecoverableItemsWarningQuota:q",
    "UsageLocation:s", "GrantSendOnBehalfTo:l", "ForwardingAddress:s", "ForwardingSmtpAddress:s",
    "DeliverToMailboxAndForward:b", "ExternalEmailAddress:s", "SamAccountName:s",
    "WhenMailboxCreated:t", "RetentionPolicy:s", "DisabledArchiveGuid:g", "MailboxPlan:s" })),
  MailUser = attrs(with(RECIPIENT_COMMON, { "ExchangeGuid:g", "ArchiveGuid:g", "ArchiveStatus:s",
    "ExternalEmailAddress:s", "WindowsEmailAddress:s", "UserPrincipalName:s",
    "MicrosoftOnlineServicesID:s", "MailboxLocations:l", "LitigationHoldEnabled:b",
    "DelayHoldApplied:b", "DelayReleaseHoldApplied:b", "ComplianceTagHoldApplied:b",
    "InPlaceHolds:l", "PersistedCapabilities:l", "RecoverableItemsQuota:q",
    "RecoverableItemsWarningQuota:q", "UsageLocation:s", "SamAccountName:s" })),
  Recipient = attrs(with(RECIPIENT_COMMON, { "ExchangeGuid:g", "ArchiveGuid:g", "ArchiveStatus:s",
    "ExternalEmailAddress:s", "FirstName:s", "LastName:s", "Capabilities:l", "SamAccountName:s" })),
  User = { "Identity:s", "Id:s", "Name:s", "DisplayName:s", "FirstName:s", "LastName:s",
    "DistinguishedName:s", "Guid:g", "UserPrincipalName:s", "MicrosoftOnlineServicesID:s",
    "WindowsEmailAddress:s", "RecipientType:s", "RecipientTypeDetails:s",
    "PreviousRecipientTypeDetails:s", "ExternalDirectoryObjectId:g", "IsDirSynced:b",
    "UsageLocation:s", "SamAccountName:s", "AccountDisabled:b", "WhenCreated:t", "WhenChanged:t" },
  Group = attrs(with(RECIPIENT_COMMON, { "GroupType:s", "ManagedBy:l", "MemberJoinRestriction:s",
    "MemberDepartRestriction:s", "RequireSenderAuthenticationEnabled:b" })),
  AcceptedDomain = { "Identity:s", "Name:s", "DomainName:s", "DomainType:s", "Default:b",
    "InitialDomain:b", "MatchSubDomains:b", "Guid:g" },
  OrganizationRelationship = { "Identity:s", "Id:s", "Name:s", "DomainNames:l", "Enabled:b",
    "MailboxMoveEnabled:b", "MailboxMoveCapability:l", "MailboxMovePublishedScopes:l",
    "OAuthApplicationId:s", "FreeBusyAccessEnabled:b", "FreeBusyAccessLevel:s",
    "MailTipsAccessEnabled:b", "DeliveryReportEnabled:b", "ArchiveAccessEnabled:b",
    "PhotosEnabled:b", "TargetApplicationUri:s", "TargetAutodiscoverEpr:s", "TargetOwaURL:s",
    "TargetSharingEpr:s", "OrganizationContact:s", "IsValid:b", "Guid:g", "WhenCreated:t",
    "WhenChanged:t" },
  MigrationEndpoint = { "Identity:s", "EndpointType:s", "RemoteServer:s", "RemoteTenant:s",
    "ApplicationId:s", "AppSecretKeyVaultUrl:s", "MaxConcurrentMigrations:i",
    "MaxConcurrentIncrementalSyncs:i", "IsRemote:b", "Guid:g", "LastModifiedTime:t" },
  DkimSigningConfig = { "Identity:s", "Id:s", "Name:s", "Domain:s", "Enabled:b", "Status:s",
    "Selector1CNAME:s", "Selector2CNAME:s", "Selector1KeySize:i", "Selector2KeySize:i",
    "KeyCreationTime:t", "RotateOnDate:t", "LastChecked:t", "Guid:g" },
}

-- Which output type each cmdlet returns (cmdlets not listed are conformed by nothing).
M.CMDLET = {
  ["Get-Mailbox"] = "Mailbox", ["Get-MailUser"] = "MailUser", ["New-MailUser"] = "MailUser",
  ["Get-Recipient"] = "Recipient", ["Get-DistributionGroupMember"] = "Recipient",
  ["Get-User"] = "User", ["Get-DistributionGroup"] = "Group", ["New-DistributionGroup"] = "Group",
  ["Get-AcceptedDomain"] = "AcceptedDomain",
  ["Get-OrganizationRelationship"] = "OrganizationRelationship",
  ["New-OrganizationRelationship"] = "OrganizationRelationship",
  ["Get-MigrationEndpoint"] = "MigrationEndpoint", ["New-MigrationEndpoint"] = "MigrationEndpoint",
  ["Get-DkimSigningConfig"] = "DkimSigningConfig", ["New-DkimSigningConfig"] = "DkimSigningConfig",
}

-- Properties a handler may hold that the type does not output (Get-MailboxStatistics has them).
local NOT_OUTPUT = { Mailbox = { "TotalItemSize", "ItemCount", "TotalDeletedItemSize" },
                     MailUser = { "TotalItemSize", "ItemCount", "TotalDeletedItemSize" },
                     Recipient = { "TotalItemSize", "ItemCount", "TotalDeletedItemSize" } }
local RECIPIENT_TYPES = { Mailbox = true, MailUser = true, Recipient = true, User = true, Group = true }

local parsed = {}
local function fields(tname)
  local p = parsed[tname]
  if p then return p end
  p = {}
  for i, e in ipairs(M.TYPES[tname]) do
    local n, t = e:match("^(.-):(%a)$")
    p[i] = { n, t }
  end
  parsed[tname] = p
  return p
end
M.fields = fields

-- One value in Exchange's JSON form, with its annotations, into out.
local function put(out, name, kind, v)
  if v == nil or v == cjson.null then
    out[name] = kind == "l" and require("t2t.exo").EMPTY_ARRAY_SENTINEL or cjson.null
    if kind == "l" then out[name .. "@odata.type"] = "#Collection(String)" end
    return
  end
  if kind == "q" then v = U.size(v)
  elseif kind == "l" then
    if type(v) ~= "table" then v = { v } end
    if next(v) == nil then v = require("t2t.exo").EMPTY_ARRAY_SENTINEL end
    out[name .. "@odata.type"] = "#Collection(String)"
  elseif kind == "t" then
    v = U.time(v)
    out[name .. "@data.type"] = "System.DateTime"
  elseif kind == "g" then
    out[name .. "@data.type"] = "System.Guid"
    out[name .. "@odata.type"] = "#Guid"
  end
  out[name] = v
end

-- conform(cmdlet, bag, raw) -> bag with every property of the cmdlet's output type: the ones the
-- handler left out are taken from the stored object raw (recipients: model.exo_property, so
-- derived values and Exchange's defaults show) or null / [].
function M.conform(cmdlet, bag, raw)
  local tname = M.CMDLET[cmdlet]
  if not tname or type(bag) ~= "table" then return bag end
  for _, k in ipairs(NOT_OUTPUT[tname] or {}) do
    bag[k], bag[k .. "@odata.type"], bag[k .. "@data.type"] = nil, nil, nil
  end
  local recipient = RECIPIENT_TYPES[tname] and type(raw) == "table"
  for _, f in ipairs(fields(tname)) do
    local name, kind = f[1], f[2]
    if bag[name] == nil then
      local v
      if recipient then v = model.exo_property(raw, name) end
      if v == nil and name == "WhenChanged" then v = raw and (raw.changed or raw.created) end
      if v == nil and name == "WhenMailboxCreated" then v = raw and raw.created end
      if v == nil and name == "SamAccountName" and raw then v = raw.Alias end
      put(bag, name, kind, v)
    elseif bag[name] ~= cjson.null and not bag[name .. "@data.type"] and not bag[name .. "@odata.type"] then
      put(bag, name, kind, bag[name])    -- typed and annotated as Exchange sends it
    end
  end
  return bag
end

return M
