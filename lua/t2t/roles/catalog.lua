-- t2t.roles.catalog: the facts about Microsoft's access model that t2t and its simulator both
-- read, so what t2t checks before it acts and what the simulator refuses cannot drift apart.
-- Sources: ../shared/reference/roles-and-mailauth.md §1, §4, §6 and wire.md §2.10, §3.12,
-- §5.3-5.4.  [inferred] marks a mapping no source states (the reference's §10 open questions).
--
--   catalog.role("Exchange Administrator")       -> {name, id, privileged, cisa}
--   catalog.satisfies("Application.Read.All")    -> the permissions that allow it
--   catalog.exchange_roles_of(entra role name)   -> Exchange management roles it brings
--   catalog.cmdlet_roles("New-MigrationBatch")   -> the management roles that hold the cmdlet
local M = {}

---------------------------------------------------------------------------------------------
-- Entra built-in roles (§1; wire.md §5.4).  privileged: Microsoft's "privileged" label; cisa:
-- in ScubaGear's highly privileged list (MS.AAD.7.x).

M.ROLES = {
  { name = "Global Administrator", id = "62e90394-69f5-4237-9190-012177145e10", privileged = true, cisa = true },
  { name = "Privileged Role Administrator", id = "e8611ab8-c189-46e8-94e1-60213ab1f814", privileged = true, cisa = true },
  { name = "Exchange Administrator", id = "29232cdf-9323-42fd-ade2-1d097af3e4de", privileged = false, cisa = true,
    graph_name = "Exchange Service Administrator" },
  { name = "Application Administrator", id = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", privileged = true, cisa = true },
  { name = "Cloud Application Administrator", id = "158c047a-c907-4556-b7ef-446551a6b5f7", privileged = true, cisa = true },
  { name = "User Administrator", id = "fe930be7-5e62-47db-91af-98c3a49a38b1", privileged = true, cisa = true },
  { name = "License Administrator", id = "4d6ac14f-3453-41d0-bef9-a3e0c569773a", privileged = false, cisa = false },
  { name = "SharePoint Administrator", id = "f28a1f50-f6e7-4571-818b-6a12f2af6b6c", privileged = false, cisa = true },
  { name = "Hybrid Identity Administrator", id = "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2", privileged = true, cisa = true },
  { name = "Exchange Recipient Administrator", id = "31392ffb-586c-42d1-9346-e59415a2cc4e", privileged = false, cisa = false },
  { name = "Global Reader", id = "f2ef992c-3afb-46b9-b7cf-a126ee74c451", privileged = true, cisa = false },
  { name = "Helpdesk Administrator", id = "729827e3-9c14-49f7-bb1b-9608f156bbb8", privileged = true, cisa = false },
  { name = "Compliance Administrator", id = "17315797-102d-40b4-93e0-432062caca18", privileged = false, cisa = false },
  { name = "Security Reader", id = "5d6b6bb7-de71-4623-b4af-96380a352509", privileged = false, cisa = false },
  { name = "Groups Administrator", id = "fdd7a751-b60b-444a-984c-02652fe8fa1c", privileged = false, cisa = false },
}

local BY_NAME, BY_ID = {}, {}
for _, r in ipairs(M.ROLES) do
  BY_NAME[r.name:lower()], BY_ID[r.id] = r, r
  if r.graph_name then BY_NAME[r.graph_name:lower()] = r end
end

-- role(name or template id) -> the role entry | nil.  Match on the template id; names are for
-- people (Graph calls Exchange Administrator "Exchange Service Administrator", §1).
function M.role(key)
  if type(key) ~= "string" then return nil end
  return BY_ID[key:lower()] or BY_NAME[key:lower()]
end

function M.role_name(id)
  local r = BY_ID[type(id) == "string" and id:lower() or ""]
  return r and r.name or id
end

M.GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
M.PRIVILEGED_ROLE_ADMIN = "e8611ab8-c189-46e8-94e1-60213ab1f814"

-- The eight roles ScubaGear and Maester check (MS.AAD.7.x, [SG-def]).
function M.cisa_roles()
  local out = {}
  for _, r in ipairs(M.ROLES) do if r.cisa then out[#out + 1] = r end end
  return out
end

---------------------------------------------------------------------------------------------
-- Microsoft Graph permissions.  Each key is a need, named by the least privileged permission
-- the Graph reference gives for the operations it stands for; the list is every permission that
-- allows it (a higher one satisfies a lower one).  `roles`: for a delegated (signed-in user)
-- call, the user must also hold one of these Entra roles (Global Administrator holds them all);
-- reads need no role.  [inferred] for the delegated role lists: Microsoft documents them per
-- API; these are the ones t2t's calls need.

M.GRAPH = {
  ["Application.Read.All"] = { "Application.Read.All", "Application.ReadWrite.All", "Application.ReadWrite.OwnedBy",
                               "Directory.Read.All", "Directory.ReadWrite.All" },
  ["Application.ReadWrite.All"] = { "Application.ReadWrite.All", "Application.ReadWrite.OwnedBy",
                                    roles = { "Application Administrator", "Cloud Application Administrator" } },
  ["AppRoleAssignment.ReadWrite.All"] = { "AppRoleAssignment.ReadWrite.All", roles = { "Privileged Role Administrator" } },
  ["User.Read.All"] = { "User.Read.All", "User.ReadWrite.All", "User.ReadBasic.All", "Directory.Read.All",
                        "Directory.ReadWrite.All" },
  ["User.ReadWrite.All"] = { "User.ReadWrite.All", "Directory.ReadWrite.All", roles = { "User Administrator" } },
  ["LicenseAssignment.ReadWrite.All"] = { "LicenseAssignment.ReadWrite.All", "User.ReadWrite.All",
                                          "Directory.ReadWrite.All", roles = { "License Administrator", "User Administrator" } },
  ["LicenseAssignment.Read.All"] = { "LicenseAssignment.Read.All", "LicenseAssignment.ReadWrite.All",
                                     "Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All",
                                     "Directory.ReadWrite.All" },
  ["GroupMember.Read.All"] = { "GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All",
                               "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All" },
  ["Group.Create"] = { "Group.Create", "Group.ReadWrite.All", "Directory.ReadWrite.All",
                       roles = { "Groups Administrator", "User Administrator" } },
  ["Group.ReadWrite.All"] = { "Group.ReadWrite.All", "Directory.ReadWrite.All",
                              roles = { "Groups Administrator", "User Administrator" } },
  ["GroupMember.ReadWrite.All"] = { "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All",
                                    roles = { "Groups Administrator", "User Administrator" } },
  ["User.Invite.All"] = { "User.Invite.All", "User.ReadWrite.All", "Directory.ReadWrite.All", roles = { "User Administrator" } },
  ["Domain.Read.All"] = { "Domain.Read.All", "Domain.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All" },
  ["Organization.Read.All"] = { "Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All",
                                "Directory.ReadWrite.All", "User.Read" },
  ["Directory.Read.All"] = { "Directory.Read.All", "Directory.ReadWrite.All", "User.Read.All", "Group.Read.All",
                             "Application.Read.All", "Application.ReadWrite.All" },
  ["RoleManagement.Read.Directory"] = { "RoleManagement.Read.Directory", "RoleManagement.Read.All",
                                        "RoleManagement.ReadWrite.Directory", "Directory.Read.All", "Directory.ReadWrite.All" },
  ["RoleManagement.ReadWrite.Directory"] = { "RoleManagement.ReadWrite.Directory", roles = { "Privileged Role Administrator" } },
  -- PIM for Entra roles: RoleManagement.Read.Directory reads schedules, instances and policies too
  ["RoleAssignmentSchedule.Read.Directory"] = { "RoleAssignmentSchedule.Read.Directory",
      "RoleAssignmentSchedule.ReadWrite.Directory", "RoleManagement.Read.Directory", "RoleManagement.Read.All",
      "RoleManagement.ReadWrite.Directory" },
  ["RoleEligibilitySchedule.Read.Directory"] = { "RoleEligibilitySchedule.Read.Directory",
      "RoleEligibilitySchedule.ReadWrite.Directory", "RoleManagement.Read.Directory", "RoleManagement.Read.All",
      "RoleManagement.ReadWrite.Directory" },
  ["RoleAssignmentSchedule.ReadWrite.Directory"] = { "RoleAssignmentSchedule.ReadWrite.Directory",
      "RoleManagement.ReadWrite.Directory", roles = { "Privileged Role Administrator" } },
  ["RoleEligibilitySchedule.ReadWrite.Directory"] = { "RoleEligibilitySchedule.ReadWrite.Directory",
      "RoleManagement.ReadWrite.Directory", roles = { "Privileged Role Administrator" } },
  ["RoleManagementPolicy.ReadWrite.Directory"] = { "RoleManagementPolicy.ReadWrite.Directory",
      "RoleManagement.ReadWrite.Directory", roles = { "Privileged Role Administrator" } },
  ["RoleManagementPolicy.Read.Directory"] = { "RoleManagementPolicy.Read.Directory",
      "RoleManagementPolicy.ReadWrite.Directory", "RoleManagement.Read.Directory", "RoleManagement.Read.All",
      "RoleManagement.ReadWrite.Directory" },
  -- PIM for Groups
  ["PrivilegedEligibilitySchedule.Read.AzureADGroup"] = { "PrivilegedEligibilitySchedule.Read.AzureADGroup",
      "PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup", "PrivilegedAccess.Read.AzureADGroup",
      "PrivilegedAccess.ReadWrite.AzureADGroup" },
  ["PrivilegedAssignmentSchedule.Read.AzureADGroup"] = { "PrivilegedAssignmentSchedule.Read.AzureADGroup",
      "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup", "PrivilegedAccess.Read.AzureADGroup",
      "PrivilegedAccess.ReadWrite.AzureADGroup" },
  ["PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup"] = { "PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup",
      "PrivilegedAccess.ReadWrite.AzureADGroup", roles = { "Privileged Role Administrator" } },
  ["PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup"] = { "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup",
      "PrivilegedAccess.ReadWrite.AzureADGroup", roles = { "Privileged Role Administrator" } },
  ["RoleManagementPolicy.Read.AzureADGroup"] = { "RoleManagementPolicy.Read.AzureADGroup",
      "RoleManagementPolicy.ReadWrite.AzureADGroup" },
  ["RoleManagementPolicy.ReadWrite.AzureADGroup"] = { "RoleManagementPolicy.ReadWrite.AzureADGroup",
      roles = { "Privileged Role Administrator" } },
  -- the cross-tenant migration job API (beta; ms-setup-and-prep.md §11.1).  Delegated: the
  -- Microsoft 365 Migration Administrator role, or Global Administrator (not in M.ROLES yet)
  ["CrossTenantContentMigration.Read.All"] = { "CrossTenantContentMigration.Read.All",
      "CrossTenantContentMigration.ReadWrite.All" },
  ["CrossTenantContentMigration.ReadWrite.All"] = { "CrossTenantContentMigration.ReadWrite.All",
      roles = { "Global Administrator" } },
}

-- known(permission) -> true when the catalog names it (as a need or as what satisfies one).
local KNOWN
function M.known(p)
  if not KNOWN then
    KNOWN = {}
    for need, list in pairs(M.GRAPH) do
      KNOWN[need] = true
      for _, x in ipairs(list) do KNOWN[x] = true end
    end
  end
  return KNOWN[p] == true
end

-- satisfies(need) -> the list of permissions allowing it (the need itself when unknown).
function M.satisfies(need)
  return M.GRAPH[need] or { need }
end

-- satisfied(need, held) -> the held permission that allows `need`, or nil.  held: set of
-- permission names (app roles or delegated scopes).
function M.satisfied(need, held)
  for _, p in ipairs(M.satisfies(need)) do
    if held[p] then return p end
  end
  return nil
end

-- graph_roles(need) -> the Entra roles a signed-in user needs for it (nil: none).
function M.graph_roles(need)
  local e = M.GRAPH[need]
  return e and e.roles or nil
end

-- implies(p, q) -> true when holding permission p allows everything holding q allows (over every
-- need above: q satisfies it => p satisfies it).  Directory.Read.All implies Application.Read.All;
-- Application.ReadWrite.All does not imply Directory.Read.All, though both allow reading an app.
local IMPLIES = {}
function M.implies(p, q)
  if p == q then return true end
  local key = p .. "|" .. q
  local v = IMPLIES[key]
  if v == nil then
    v = M.known(p) and M.known(q)
    if v then
      for _, list in pairs(M.GRAPH) do
        local has_p, has_q = false, false
        for _, x in ipairs(list) do
          if x == p then has_p = true end
          if x == q then has_q = true end
        end
        if has_q and not has_p then v = false break end
      end
    end
    IMPLIES[key] = v
  end
  return v
end

-- held_implies(held, q) -> the held permission that implies q, or nil.
function M.held_implies(held, q)
  if held[q] then return q end
  for p in pairs(held) do
    if type(p) == "string" and M.implies(p, q) then return p end
  end
  return nil
end

-- minimal(list) -> the list without the permissions another one in it already implies, sorted.
function M.minimal(list)
  local set, out = {}, {}
  for _, p in ipairs(list) do set[p] = true end
  for p in pairs(set) do
    local covered = false
    for q in pairs(set) do
      if q ~= p and M.implies(q, p) and not M.implies(p, q) then covered = true end
    end
    if not covered then out[#out + 1] = p end
  end
  table.sort(out)
  return out
end

---------------------------------------------------------------------------------------------
-- Exchange Online RBAC (§6).  Role groups and their management roles (2021 list, [EXO-perm-2021];
-- Organization Management holds every role but Mailbox Import Export and Address Lists).

M.EXO_ROLES = {
  "Distribution Groups", "Federated Sharing", "Mail Recipient Creation", "Mail Recipients", "Message Tracking",
  "Migration", "Move Mailboxes", "Organization Configuration", "Recipient Policies", "Remote and Accepted Domains",
  "Reset Password", "Role Management", "Security Group Creation and Membership", "Team Mailboxes",
  "Transport Hygiene", "View-Only Configuration", "View-Only Recipients", "Mailbox Import Export", "Address Lists",
}

local function all_but(...)
  local skip, out = {}, {}
  for _, r in ipairs({ ... }) do skip[r] = true end
  for _, r in ipairs(M.EXO_ROLES) do if not skip[r] then out[#out + 1] = r end end
  return out
end

M.ROLE_GROUPS = {
  ["Organization Management"] = all_but("Mailbox Import Export", "Address Lists"),
  ["Recipient Management"] = { "Distribution Groups", "Mail Recipient Creation", "Mail Recipients", "Message Tracking",
                               "Migration", "Move Mailboxes", "Recipient Policies", "Reset Password", "Team Mailboxes" },
  ["View-Only Organization Management"] = { "View-Only Configuration", "View-Only Recipients" },
  ["Security Administrator"] = { "Transport Hygiene", "View-Only Configuration", "View-Only Recipients" },  -- [inferred]
  ["Security Reader"] = { "View-Only Configuration", "View-Only Recipients" },                           -- [inferred]
  ["Compliance Management"] = { "View-Only Configuration", "View-Only Recipients" },                     -- [inferred]
}
M.ROLE_GROUP_ORDER = { "Organization Management", "Recipient Management", "View-Only Organization Management",
                       "Compliance Management", "Security Administrator", "Security Reader" }

-- Entra roles surface in Exchange as linked role groups (synchronised from Entra, not managed
-- in Exchange), members of a built-in role group (§6).  source "third-party": the alweys.ch
-- community table, not a Microsoft source.
M.LINKED = {
  { role = "Global Administrator", prefix = "TenantAdmins_", group = "Organization Management" },
  { role = "Exchange Administrator", prefix = "ExchangeServiceAdmins_", group = "Organization Management" },
  { role = "Helpdesk Administrator", prefix = "HelpdeskAdmins_", group = "View-Only Organization Management" },
  { role = "Global Reader", prefix = "GlobalReaders_", group = "View-Only Organization Management", source = "third-party" },
  { role = "Exchange Recipient Administrator", prefix = "RecipientAdmins_", group = "Recipient Management",
    source = "third-party" },
  { role = "Security Reader", prefix = "SecurityReaders_", group = "Security Reader" },
  { role = "Compliance Administrator", prefix = "ComplianceAdmins_", group = "Compliance Management",
    source = "inferred" },
}

-- linked(entra role name or id) -> the linked entry | nil.
function M.linked(key)
  local r = M.role(key)
  if not r then return nil end
  for _, l in ipairs(M.LINKED) do if l.role == r.name then return l end end
  return nil
end

-- exchange_roles_of(entra role name or id) -> list of Exchange management roles (via its
-- linked role group), {} when the role has none.
function M.exchange_roles_of(key)
  local l = M.linked(key)
  return l and M.ROLE_GROUPS[l.group] or {}
end

-- The Entra roles that bring Exchange roles, least privileged first: what to suggest.
M.EXCHANGE_ENTRA = { "Global Reader", "Exchange Recipient Administrator", "Exchange Administrator" }

-- exchange_cover(roles) -> the least privileged Entra role whose linked role group holds every
-- Exchange role in `roles`, or nil.
function M.exchange_cover(roles)
  for _, name in ipairs(M.EXCHANGE_ENTRA) do
    local have = {}
    for _, r in ipairs(M.exchange_roles_of(name)) do have[r] = true end
    local ok = true
    for _, r in ipairs(roles) do if not have[r] then ok = false end end
    if ok then return name end
  end
  return nil
end

-- Which management roles hold each cmdlet.  [inferred] except New-MigrationBatch -> Move
-- Mailboxes [CTM-2024], New-MailUser -> Mail Recipient Creation and Set-MailUser -> Mail
-- Recipients [EXO-2013-roles]: Exchange Online's live answer is Get-ManagementRole -Cmdlet (§6).
local RECIPIENT_READ = { "View-Only Recipients", "Mail Recipients", "Mail Recipient Creation" }
local CONFIG_READ = { "View-Only Configuration", "Organization Configuration" }
local C = {}
local function cmdlets(roles, list) for _, c in ipairs(list) do C[c] = roles end end
cmdlets(RECIPIENT_READ, { "Get-Mailbox", "Get-MailUser", "Get-Recipient", "Get-User", "Get-MailboxStatistics",
  "Get-EXOMailbox", "Get-EXORecipient", "Get-EXOMailboxStatistics", "Get-CASMailbox", "Get-Contact",
  "Get-MailContact", "Get-MailboxLocation", "Get-MailboxFolderStatistics", "Get-MailboxPermission",
  "Get-RecipientPermission", "Get-MailboxFolderPermission", "Get-MailboxAutoReplyConfiguration", "Get-UnifiedGroup" })
cmdlets({ "View-Only Recipients", "Distribution Groups", "Security Group Creation and Membership" },
  { "Get-DistributionGroup", "Get-DistributionGroupMember" })
cmdlets({ "Mail Recipient Creation" }, { "New-MailUser", "Remove-MailUser", "New-MailContact", "Remove-MailContact" })
cmdlets({ "Mail Recipients" }, { "Set-MailUser", "Set-Mailbox", "Set-User", "Set-MailContact", "Enable-Mailbox" })
cmdlets({ "View-Only Recipients", "Mail Recipients" }, { "Export-MailboxDiagnosticLogs" })
cmdlets({ "Distribution Groups", "Security Group Creation and Membership" }, { "New-DistributionGroup",
  "Set-DistributionGroup", "Remove-DistributionGroup", "Add-DistributionGroupMember", "Remove-DistributionGroupMember" })
cmdlets(CONFIG_READ, { "Get-OrganizationConfig", "Get-TransportConfig", "Get-InboundConnector", "Get-OutboundConnector" })
cmdlets({ "View-Only Configuration", "Remote and Accepted Domains" }, { "Get-AcceptedDomain", "Get-RemoteDomain" })
cmdlets({ "Organization Configuration" }, { "Enable-OrganizationCustomization" })
cmdlets({ "View-Only Configuration", "Federated Sharing" }, { "Get-OrganizationRelationship" })
cmdlets({ "Federated Sharing" }, { "New-OrganizationRelationship", "Set-OrganizationRelationship",
  "Remove-OrganizationRelationship" })
cmdlets({ "Migration" }, { "Get-MigrationEndpoint", "New-MigrationEndpoint", "Set-MigrationEndpoint",
  "Remove-MigrationEndpoint", "Test-MigrationServerAvailability", "Get-MigrationBatch", "Set-MigrationBatch",
  "Start-MigrationBatch", "Stop-MigrationBatch", "Complete-MigrationBatch", "Remove-MigrationBatch",
  "Get-MigrationUser", "Set-MigrationUser", "Remove-MigrationUser", "Get-MigrationUserStatistics",
  "Get-MigrationStatistics", "Get-MigrationConfig" })
cmdlets({ "Move Mailboxes", "Migration" }, { "New-MigrationBatch" })
cmdlets({ "Move Mailboxes" }, { "Get-MoveRequest", "New-MoveRequest", "Set-MoveRequest", "Remove-MoveRequest",
  "Resume-MoveRequest", "Suspend-MoveRequest", "Get-MoveRequestStatistics" })
cmdlets({ "View-Only Configuration", "Transport Hygiene" }, { "Get-DkimSigningConfig" })
cmdlets({ "Transport Hygiene" }, { "New-DkimSigningConfig", "Set-DkimSigningConfig", "Rotate-DkimSigningConfig" })
cmdlets({ "Role Management", "View-Only Configuration" }, { "Get-ManagementRoleAssignment", "Get-ManagementRole",
  "Get-RoleGroup", "Get-RoleGroupMember" })
cmdlets({ "Role Management" }, { "Add-RoleGroupMember", "Remove-RoleGroupMember", "New-ManagementRoleAssignment" })
M.CMDLET_ROLES = C

-- cmdlet_roles(name) -> the management roles holding the cmdlet (Organization Configuration
-- for one this table does not know: only Organization Management can run it).
function M.cmdlet_roles(name)
  return C[name] or { "Organization Configuration" }
end

-- cmdlets_of(role) -> sorted cmdlets the management role holds (Get-ManagementRoleEntry).
function M.cmdlets_of(role)
  local out = {}
  for c, roles in pairs(C) do
    for _, r in ipairs(roles) do if r == role then out[#out + 1] = c end end
  end
  table.sort(out)
  return out
end

-- Permissions on the Office 365 Exchange Online resource (wire.md §2.10, §5.2).
M.EXO_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
M.GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
M.MANAGE_AS_APP = "Exchange.ManageAsApp"
M.MANAGE_DELEGATED = "Exchange.Manage"

return M
