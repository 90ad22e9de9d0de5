-- t2t.sim.seed: deterministic seeding of the source (contoso) / target (fabrikam) tenant pair.
-- Facts (first-party appIds, app role ids, role template ids, the CTUDM SKU) come from
-- ../shared/reference/wire.md §5 and ms-setup-and-prep.md §4.0; values marked [public] are
-- well-known published Microsoft ids that the reference says to resolve at runtime (the app
-- role, SKU and plan ids were checked against several independent public sources on 2026-11-28;
-- the client side, t2t.tenant, uses only ids the reference gives).
-- Built for speed: name pools precomputed, every object one table constructor, no closures.
local model = require "t2t.sim.model"

local M = {}

local lower, sub = string.lower, string.sub
local add_object, add_recipient = model.add_object, model.add_recipient
local ZERO = model.ZERO_GUID

M.BASE_TIME = 1704067200            -- 2024-01-01T00:00:00Z: seeded objects predate any run
M.MICROSOFT_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"   -- [public] owner of 1st-party apps

---------------------------------------------------------------------------------------------
-- First-party applications (wire.md §5.1) and their permissions (§5.2, §5.3).
M.APP = {
  graph = "00000003-0000-0000-c000-000000000000",
  exo = "00000002-0000-0ff1-ce00-000000000000",
  aad_graph = "00000002-0000-0000-c000-000000000000",
  keyvault = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093",
  arm = "797f4846-ba00-4fd7-ba43-dac1f8f63013",
  exo_powershell = "fb78d390-0c51-40cd-8e17-fdbfab77341b",
  exo_legacy_powershell = "a0c73c16-a7e3-4564-9a95-2bdf47383716",
  graph_cli = "14d82eec-204b-4c2f-b7e8-296a70dab67e",
}

-- value -> { role id (Application) | false, scope id (Delegated) | false }
M.GRAPH_PERMS = {
  ["Directory.ReadWrite.All"] = { "19dbc75e-c2e2-444c-a770-ec69d8559fc7", "c5366453-9fb0-48a5-a156-24f0c49a4b84" },
  ["Directory.Read.All"] = { "7ab1d382-f21e-4acd-a863-ba3e13f7da61", "06da0dbc-49e2-44d2-8312-53f166ab848a" },
  ["User.ReadWrite.All"] = { "741f803b-c850-494e-b5df-cde7c675a1ca", "204e0828-b5ca-4ad8-b9f3-f32a958e7cc4" },
  ["User.Read.All"] = { "df021288-bdef-4463-88db-98f22de89214", "a154be20-db9c-4678-8ab7-66f6cc099a59" },
  ["Group.ReadWrite.All"] = { "62a82d76-70ea-41e2-9197-370581804d09", "4e46008b-f24c-477d-8fff-7bb4ec7aafe0" },
  ["Group.Read.All"] = { "5b567255-7703-4780-807c-7be8301ae99b", "5f8c59db-677d-491f-a6b8-5f174b11ec1d" },
  ["GroupMember.ReadWrite.All"] = { "dbaae8cf-10b5-4b86-a4a1-f871c94c6695", false },
  ["User.Invite.All"] = { "09850681-111b-4a89-9bed-3f2cae46d706", false },
  ["Application.ReadWrite.All"] = { "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9", "bdfbf15f-ee85-4955-8675-146e8e5296b5" },
  ["AppRoleAssignment.ReadWrite.All"] = { "06b708a9-e830-4db3-a914-8e69da51d44f", false },
  ["RoleManagement.ReadWrite.Directory"] = { "9e3f62cf-ca93-4989-b6ce-bf83c28f9fe8", false },
  ["Domain.ReadWrite.All"] = { "7e05723c-0bb0-42da-be95-ae9f08a6e53c", false },
  ["Policy.Read.All"] = { "246dd0d5-5bd0-4def-940b-0421030a5b68", "572fea84-0151-49b2-9301-11cb16974376" },
  ["User.Read"] = { false, "e1fe6dd8-ba31-4d61-89e7-88639da4683d" },
  ["Directory.AccessAsUser.All"] = { false, "0e263e50-5827-48a4-b97c-d940288653c7" },
  ["offline_access"] = { false, "7427e0e9-2fba-42fe-b0c0-848c9e6a8182" },
  -- [public] not in the reference (wire.md §5.3 says resolve at runtime from appRoles)
  ["Organization.Read.All"] = { "498476ce-e0fe-48b0-b801-37ba7e2685c6", false },
  ["Domain.Read.All"] = { "dbb9058a-0e50-45d7-ae91-66909b5d4664", false },
  ["LicenseAssignment.ReadWrite.All"] = { "5facf0c1-8979-4e95-abcf-ff3d079771c0", false },
  ["Application.Read.All"] = { "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30", "c79f8feb-a9db-4090-85f9-90d820caa0eb" },
  ["RoleManagement.Read.Directory"] = { "483bed4a-2ad3-4361-a73b-c83ccdbdc53c", "741c54c3-0c1e-44a1-818b-3f97ab4e8c83" },
}
-- Permissions t2t.roles uses that neither the reference nor the checked sources give ids for:
-- the simulator makes stable ids from the name (clients resolve every id by value from the
-- service principal's appRoles / oauth2PermissionScopes, wire.md §5.3).  Delegated-only for
-- the first two: the application ids are in M.GRAPH_PERMS.
M.SIM_GRAPH_PERMS = {
  ["RoleManagement.ReadWrite.Directory"] = "delegated", ["AppRoleAssignment.ReadWrite.All"] = "delegated",
  ["GroupMember.Read.All"] = "both", ["Group.Create"] = "both", ["LicenseAssignment.Read.All"] = "both",
  ["RoleAssignmentSchedule.ReadWrite.Directory"] = "both", ["RoleEligibilitySchedule.ReadWrite.Directory"] = "both",
  ["RoleManagementPolicy.Read.Directory"] = "both", ["RoleManagementPolicy.Read.AzureADGroup"] = "both",
  ["PrivilegedAccess.Read.AzureADGroup"] = "both", ["PrivilegedAccess.ReadWrite.AzureADGroup"] = "both",
  ["PrivilegedEligibilitySchedule.Read.AzureADGroup"] = "both",
  ["PrivilegedAssignmentSchedule.Read.AzureADGroup"] = "both",
  ["PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup"] = "both",
  -- the Graph cross-tenant migration job API (ms-setup-and-prep.md §11.1; t2t.batch's graph backend)
  ["CrossTenantContentMigration.ReadWrite.All"] = "both", ["CrossTenantContentMigration.Read.All"] = "both",
}
local function sim_perm_id(name, kind)
  local r = model.rng("graph-permission:" .. kind .. ":" .. name)
  return r:guid()
end
for name, kinds in pairs(M.SIM_GRAPH_PERMS) do
  local p = M.GRAPH_PERMS[name] or { false, false }
  if kinds == "both" and not p[1] then p[1] = sim_perm_id(name, "Role") end
  if not p[2] then p[2] = sim_perm_id(name, "Scope") end
  M.GRAPH_PERMS[name] = p
end

M.EXO_PERMS = {
  ["Exchange.ManageAsApp"] = { "dc50a0fb-09a3-484d-be87-e023b12c6440", false },
  ["Mailbox.Migration"] = { "f7264778-fba9-422d-8e9e-2675a2c4b513", false },
  ["full_access_as_app"] = { "dc890d15-9560-4a4c-9b7f-a736ec74ec40", false },
  ["Organization.Read.All"] = { "15f260d6-f874-4366-8672-6b3658c5a09b", false },
  ["User.Read.All"] = { "bf24470f-10c1-436d-8d53-7b997eb473be", false },
  ["Exchange.Manage"] = { false, "ab4f2b77-0b06-4fc1-a9de-02113fc2ab7c" },
}

-- Delegated-only resources: [public] user_impersonation scope ids.
M.KEYVAULT_PERMS = { user_impersonation = { false, "f53da476-18e3-4152-8e01-aec403e6edc0" } }
M.ARM_PERMS = { user_impersonation = { false, "41094075-9dad-400e-a0bd-54e686782033" } }

-- Directory role templates (wire.md §5.4; the last four are [inferred] there).
M.ROLES = {
  { "Global Administrator", "62e90394-69f5-4237-9190-012177145e10" },
  { "Exchange Administrator", "29232cdf-9323-42fd-ade2-1d097af3e4de" },
  { "Exchange Recipient Administrator", "31392ffb-586c-42d1-9346-e59415a2cc4e" },
  { "Privileged Role Administrator", "e8611ab8-c189-46e8-94e1-60213ab1f814" },
  { "Global Reader", "f2ef992c-3afb-46b9-b7cf-a126ee74c451" },
  { "User Administrator", "fe930be7-5e62-47db-91af-98c3a49a38b1" },
  { "Application Administrator", "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3" },
  { "Compliance Administrator", "17315797-102d-40b4-93e0-432062caca18" },
  { "Security Reader", "5d6b6bb7-de71-4623-b4af-96380a352509" },
  { "Cloud Application Administrator", "158c047a-c907-4556-b7ef-446551a6b5f7" },
  { "License Administrator", "4d6ac14f-3453-41d0-bef9-a3e0c569773a" },
  { "Groups Administrator", "fdd7a751-b60b-444a-984c-02652fe8fa1c" },
}
M.ROLE = {}
for _, r in ipairs(M.ROLES) do M.ROLE[r[1]] = r[2] end

-- SKUs.  CTUDM from ms-setup-and-prep.md §4.0; the others [public].  Service plan ids we do
-- not know are nil here and generated (deterministically) per seed.
M.SKUS = {
  { id = "6fd2c87f-b296-42f0-b197-1e91e994b900", part = "ENTERPRISEPACK", plans = {
      { "efb87545-963c-4e0d-99df-69c6916d9eb0", "EXCHANGE_S_ENTERPRISE", "BPOS_S_Enterprise" },
      { "5dbe027f-2339-4123-9542-606e4d348a72", "SHAREPOINTENTERPRISE" } } },
  { id = "4b9405b0-7788-4568-add1-99614e613b69", part = "EXCHANGESTANDARD", plans = {
      { "9aaf7827-d63c-4b61-89c3-182f06f82e5c", "EXCHANGE_S_STANDARD", "BPOS_S_Standard" } } },
  { id = "946ce899-873d-44bb-9d8b-671870cbfdbf", part = "Cross_tenant_user_data_migration", plans = {
      { nil, "EXCHANGEONLINE_T2TMBXMOVE", "ExchangeT2TMbxMove" },
      { nil, "SHAREPOINTONLINE_T2TODMOVE" } } },
  -- Microsoft Entra ID P2 (PIM): ScubaGear and Maester call the PIM APIs only with it [public]
  { id = "84a661c4-e949-4bd2-a560-ed7766fcaf2b", part = "AAD_PREMIUM_P2", plans = {
      { "eec0eb4f-6444-4f95-aba0-50c24d67f998", "AAD_PREMIUM_P2" } } },
}
M.SKU = { e3 = M.SKUS[1].id, exo_plan1 = M.SKUS[2].id, ctudm = M.SKUS[3].id }

-- The admin app's consented permissions (what t2t's runbooks need, DESIGN.md §3).
M.ADMIN_GRAPH_ROLES = {
  "Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "Directory.ReadWrite.All",
  "User.ReadWrite.All", "Group.ReadWrite.All", "GroupMember.ReadWrite.All", "User.Invite.All",
  "RoleManagement.ReadWrite.Directory", "Domain.Read.All", "Organization.Read.All",
  "LicenseAssignment.ReadWrite.All",
}
M.ADMIN_EXO_ROLES = { "Exchange.ManageAsApp" }
-- Consented too, with ids from a stream of their own (the seed's other ids stay as they were):
-- PIM for Groups (t2t.roles reads it; tests and demos set it up).
M.ADMIN_GRAPH_EXTRA = { "PrivilegedAccess.ReadWrite.AzureADGroup", "RoleManagementPolicy.Read.AzureADGroup",
                        "CrossTenantContentMigration.ReadWrite.All" }

M.OWNER_ROLE = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"   -- [public] Azure RBAC "Owner"

---------------------------------------------------------------------------------------------
-- Name pools: {display form, alias form}.  Odd characters on purpose (CSS-val and real tenants
-- have them): diacritics, apostrophes, hyphens, spaces, non-Latin scripts.
local FIRST = {
  { "Lara", "lara" }, { "Zoë", "zoe" }, { "José", "jose" }, { "François", "francois" },
  { "Anne-Marie", "anne-marie" }, { "Ørjan", "orjan" }, { "Łukasz", "lukasz" },
  { "Siobhán", "siobhan" }, { "Jürgen", "juergen" }, { "Ngọc", "ngoc" }, { "D'Arcy", "d'arcy" },
  { "Mary Ann", "maryann" }, { "Chloé", "chloe" }, { "Søren", "soren" }, { "Ægir", "aegir" },
  { "İlkay", "ilkay" }, { "Renée", "renee" }, { "Björn", "bjorn" }, { "Håkon", "hakon" },
  { "Dvořák", "dvorak" }, { "明", "ming" }, { "さくら", "sakura" }, { "Алексей", "aleksei" },
  { "Σοφία", "sofia" }, { "Amélie", "amelie" }, { "Raúl", "raul" }, { "Noah", "noah" },
  { "Emma", "emma" }, { "Olivia", "olivia" }, { "Liam", "liam" }, { "Ava", "ava" },
  { "Mateo", "mateo" }, { "Isabella", "isabella" }, { "Lucas", "lucas" }, { "Mia", "mia" },
  { "Ethan", "ethan" }, { "Amara", "amara" }, { "Kwame", "kwame" }, { "Priya", "priya" },
  { "Aarav", "aarav" }, { "Fatima", "fatima" }, { "Omar", "omar" }, { "Hana", "hana" },
  { "Yusuf", "yusuf" }, { "Ingrid", "ingrid" }, { "Pål", "pal" }, { "Ciarán", "ciaran" },
  { "Eoghan", "eoghan" }, { "Gráinne", "grainne" }, { "Maëlle", "maelle" },
}
local LAST = {
  { "Newton", "newton" }, { "O'Brien", "o'brien" }, { "Núñez", "nunez" },
  { "Müller", "mueller" }, { "van der Berg", "vanderberg" }, { "Łukasiewicz", "lukasiewicz" },
  { "Nguyễn", "nguyen" }, { "Smith-Jones", "smith-jones" }, { "García Márquez", "garciamarquez" },
  { "Østergård", "ostergard" }, { "D'Angelo", "d'angelo" }, { "MacLeod", "macleod" },
  { "de la Cruz", "delacruz" }, { "Schäfer", "schaefer" }, { "Kowalczyk", "kowalczyk" },
  { "Øvrebø", "ovrebo" }, { "Çelik", "celik" }, { "Yılmaz", "yilmaz" }, { "Ivanov", "ivanov" },
  { "Παπαδόπουλος", "papadopoulos" }, { "王", "wang" }, { "李", "li" }, { "佐藤", "sato" },
  { "Kim", "kim" }, { "Patel", "patel" }, { "Okafor", "okafor" }, { "Mensah", "mensah" },
  { "Haddad", "haddad" }, { "Cohen", "cohen" }, { "Rossi", "rossi" }, { "Dubois", "dubois" },
  { "Fernández", "fernandez" }, { "Jensen", "jensen" }, { "Virtanen", "virtanen" },
  { "Novák", "novak" }, { "Horváth", "horvath" }, { "Popescu", "popescu" }, { "Silva", "silva" },
  { "Santos", "santos" }, { "Johnson", "johnson" }, { "Williams", "williams" }, { "Brown", "brown" },
  { "Taylor", "taylor" }, { "Anderson", "anderson" }, { "Thomas", "thomas" }, { "Moore", "moore" },
  { "Martin", "martin" }, { "Lee", "lee" }, { "Walker", "walker" }, { "Hall", "hall" },
  { "Allen", "allen" }, { "Young", "young" }, { "King", "king" }, { "Wright", "wright" },
  { "Scott", "scott" }, { "Green", "green" }, { "Baker", "baker" }, { "Adams", "adams" },
}
local DEPTS = { "Finance", "Sales & Marketing", "R&D", "IT", "Legal", "HR", "Operations",
                "Customer Success", "Engineering", "Procurement" }
local TITLES = { "Analyst", "Manager", "Director", "Engineer", "Specialist", "Coordinator",
                 "Consultant", "Associate", "Lead", "VP" }
local SHARED = { "Reception", "Accounts Payable", "Support", "Info", "Jobs", "Press", "Billing",
                 "Help Desk", "Facilities", "Events" }
local ROOMS = { "Boardroom", "Room 1.01", "Salle Étoile", "Huddle A", "Training Lab" }
local EQUIP = { "Projector", "Pool Car", "Camera Kit" }

local LEGDN = "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn="
local OLD_X500 = {
  "X500:/o=Contoso/ou=First Administrative Group/cn=Recipients/cn=",
  "X500:/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=",
  "x500:/o=Litware Inc/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=",
}
local HOLD_PREFIX = { "mbx", "cld", "UniH", "skp" }
local GB = 1073741824

---------------------------------------------------------------------------------------------
-- Tenant skeleton.

local function perms_to_roles(perms)
  local roles, scopes = {}, {}
  local names = {}
  for k in pairs(perms) do names[#names + 1] = k end
  table.sort(names)
  for _, v in ipairs(names) do
    local p = perms[v]
    if p[1] then
      roles[#roles + 1] = { id = p[1], value = v, displayName = v, description = v,
        allowedMemberTypes = { "Application" }, isEnabled = true, origin = "Application" }
    end
    if p[2] then
      scopes[#scopes + 1] = { id = p[2], value = v, type = "Admin", isEnabled = true,
        adminConsentDisplayName = v, adminConsentDescription = v }
    end
  end
  return roles, scopes
end

-- The first-party service principals: appId, name, perms, servicePrincipalNames (the resource
-- URIs a `scope` may name; the login service resolves `{resource}/.default` through them).
local FIRST_PARTY = {
  { M.APP.graph, "Microsoft Graph", M.GRAPH_PERMS,
    { "https://graph.microsoft.com", "https://graph.microsoft.com/", "https://canary.graph.microsoft.com" } },
  { M.APP.exo, "Office 365 Exchange Online", M.EXO_PERMS,
    { "https://outlook.office365.com", "https://outlook.office365.com/", "https://outlook.office.com",
      "https://outlook.office.com/", "https://ps.outlook.com" } },
  { M.APP.aad_graph, "Windows Azure Active Directory", {}, { "https://graph.windows.net", "https://graph.windows.net/" } },
  { M.APP.keyvault, "Azure Key Vault", M.KEYVAULT_PERMS, { "https://vault.azure.net", "https://vault.azure.net/" } },
  { M.APP.arm, "Windows Azure Service Management API", M.ARM_PERMS,
    { "https://management.azure.com", "https://management.azure.com/", "https://management.core.windows.net/" } },
  { M.APP.exo_powershell, "Microsoft Exchange REST API Based Powershell", {}, {} },
  { M.APP.exo_legacy_powershell, "Microsoft Exchange Online Remote PowerShell", {}, {} },
  { M.APP.graph_cli, "Microsoft Graph Command Line Tools", {}, {} },
}

local function first_party(state, t, rng)
  for _, fp in ipairs(FIRST_PARTY) do
    local roles, scopes = perms_to_roles(fp[3])
    local spn = { fp[1] }
    for _, s in ipairs(fp[4]) do spn[#spn + 1] = s end
    add_object(state, t, {
      ["@odata.type"] = model.ODATA.servicePrincipal, id = rng:guid(), appId = fp[1],
      displayName = fp[2], appDisplayName = fp[2], appOwnerOrganizationId = M.MICROSOFT_TENANT,
      servicePrincipalType = "Application", accountEnabled = true, appRoles = roles,
      oauth2PermissionScopes = scopes, servicePrincipalNames = spn, tags = {},
      created = M.BASE_TIME - 86400 * 900,
    })
  end
end

local function role_definitions(t)
  for _, r in ipairs(M.ROLES) do
    t.dir.role_definitions[r[2]] = { id = r[2], templateId = r[2], displayName = r[1],
      isBuiltIn = true, isEnabled = true, description = r[1] }
  end
end

local function skus(t, rng, units)
  for _, s in ipairs(M.SKUS) do
    local plans = {}
    for i, p in ipairs(s.plans) do
      plans[i] = { servicePlanId = p[1] or rng:fork(p[2]):guid(), servicePlanName = p[2],
                   provisioningStatus = "Success", appliesTo = "User" }
    end
    t.dir.skus[#t.dir.skus + 1] = {
      id = t.id .. "_" .. s.id, skuId = s.id, skuPartNumber = s.part, capabilityStatus = "Enabled",
      appliesTo = "User", consumedUnits = 0, servicePlans = plans,
      prepaidUnits = { enabled = units, suspended = 0, warning = 0, lockedOut = 0 },
    }
  end
end

-- capabilities(sku id) -> list of EXO PersistedCapabilities names the SKU brings.
local CAPS = {}
for _, s in ipairs(M.SKUS) do
  local c = {}
  for _, p in ipairs(s.plans) do if p[3] then c[#c + 1] = p[3] end end
  CAPS[s.id] = c
end
M.CAPS = CAPS

local function secret(rng)
  local cs = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-~"
  local b = {}
  for i = 1, 37 do
    local k = rng:int(1, #cs)
    b[i] = sub(cs, k, k)
  end
  return table.concat(b, "", 1, 3) .. "8Q~" .. table.concat(b, "", 4, 37)
end

-- The admin app t2t uses in each tenant, with a secret, consented roles and the Exchange
-- Administrator directory role (wire.md §1.2, §2.1).
local function admin_app(state, t, rng)
  local app_id, secret_text = rng:guid(), secret(rng)
  local graph_access, exo_access = {}, {}
  for i, v in ipairs(M.ADMIN_GRAPH_ROLES) do graph_access[i] = { id = M.GRAPH_PERMS[v][1], type = "Role" } end
  for i, v in ipairs(M.ADMIN_EXO_ROLES) do exo_access[i] = { id = M.EXO_PERMS[v][1], type = "Role" } end
  local created = M.BASE_TIME - 86400 * 30
  local app = add_object(state, t, {
    ["@odata.type"] = model.ODATA.application, id = rng:guid(), appId = app_id,
    displayName = "t2t-admin", signInAudience = "AzureADMyOrg", publisherDomain = t.initial_domain,
    passwordCredentials = { { keyId = rng:guid(), displayName = "t2t sim", hint = sub(secret_text, 1, 3),
      startDateTime = created, endDateTime = created + 86400 * 365 * 50, _secret = secret_text } },  -- outlives any machine clock
    keyCredentials = {}, identifierUris = {}, tags = {},
    requiredResourceAccess = { { resourceAppId = M.APP.graph, resourceAccess = graph_access },
                               { resourceAppId = M.APP.exo, resourceAccess = exo_access } },
    web = { redirectUris = {} }, created = created,
  })
  local sp = add_object(state, t, {
    ["@odata.type"] = model.ODATA.servicePrincipal, id = rng:guid(), appId = app_id,
    displayName = "t2t-admin", appDisplayName = "t2t-admin", appOwnerOrganizationId = t.id,
    servicePrincipalType = "Application", accountEnabled = true, appRoles = {},
    oauth2PermissionScopes = {}, servicePrincipalNames = { app_id }, tags = {}, created = created,
  })
  local function grant(r, resource_appid, perms, names)
    local res = model.sp_by_appid(t, resource_appid)
    for _, v in ipairs(names) do
      model.add_app_role_assignment(t, { id = r:guid(), appRoleId = perms[v][1],
        principalId = sp.id, principalType = "ServicePrincipal", principalDisplayName = sp.displayName,
        resourceId = res.id, resourceDisplayName = res.displayName, created = created })
    end
  end
  grant(rng, M.APP.graph, M.GRAPH_PERMS, M.ADMIN_GRAPH_ROLES)
  grant(rng, M.APP.exo, M.EXO_PERMS, M.ADMIN_EXO_ROLES)
  grant(rng:fork("admin-extra"), M.APP.graph, M.GRAPH_PERMS, M.ADMIN_GRAPH_EXTRA)
  model.add_role_assignment(t, { id = rng:guid(), roleDefinitionId = M.ROLE["Exchange Administrator"],
    principalId = sp.id, directoryScopeId = "/" })
  t.seeded.admin_app = { app_id = app_id, object_id = app.id, sp_id = sp.id }
  return app, sp
end

-- A global admin user (for device-code sign-in) per tenant.
local function admin_user(state, t, rng)
  local upn = "admin@" .. t.initial_domain
  local u = add_object(state, t, {
    ["@odata.type"] = model.ODATA.user, id = rng:guid(), userPrincipalName = upn,
    displayName = "MOD Administrator", givenName = "MOD", surname = "Administrator",
    mailNickname = "admin", mail = upn, accountEnabled = true, userType = "Member",
    usageLocation = "US", proxyAddresses = { "SMTP:" .. upn }, assignedLicenses = {},
    created = M.BASE_TIME - 86400 * 1000,
  })
  model.add_role_assignment(t, { id = rng:guid(), roleDefinitionId = M.ROLE["Global Administrator"],
    principalId = u.id, directoryScopeId = "/" })
  t.seeded.admin_user = u.id
  return u
end

local function domain(id, initial, default)
  return { id = id, authenticationType = "Managed", isAdminManaged = true, isDefault = default,
           isInitial = initial, isRoot = true, isVerified = true,
           supportedServices = { "Email", "OfficeCommunicationsOnlineDirectory" },
           passwordValidityPeriodInDays = 2147483647, passwordNotificationWindowInDays = 14 }
end

-- tenant(state, rng, spec) -> tenant with domains, first-party SPs, roles, SKUs, admin app.
local function tenant(state, rng, spec)
  local t = model.new_tenant { id = rng:guid(), name = spec.name, display_name = spec.display,
                               created = M.BASE_TIME - 86400 * 1500 }
  t.seeded = {}
  t.domains = { domain(t.initial_domain, true, false) }
  for i, d in ipairs(spec.domains) do t.domains[#t.domains + 1] = domain(d, false, i == 1) end
  local mail = spec.name .. ".mail.onmicrosoft.com"
  t.domains[#t.domains + 1] = domain(mail, false, false)
  model.add_tenant(state, t)
  local ad = {}
  for i, d in ipairs(t.domains) do
    ad[i] = { DomainName = d.id, Name = d.id, DomainType = "Authoritative", Default = d.isDefault,
              InitialDomain = d.isInitial, Guid = rng:guid() }
  end
  t.exo.accepted_domains = ad
  t.exo.org_config = { Name = t.initial_domain, DisplayName = spec.display, Identity = t.initial_domain,
    Guid = rng:guid(), ExternalDirectoryOrganizationId = t.id, IsDehydrated = false,
    OrganizationId = "EURPR01A00" .. rng:int(1, 9) .. ".prod.outlook.com/Microsoft Exchange Hosted Organizations/" .. t.initial_domain }
  t.exo.databases = {}
  for i = 1, 8 do t.exo.databases[i] = rng:guid() end
  first_party(state, t, rng)
  role_definitions(t)
  skus(t, rng, spec.units)
  admin_app(state, t, rng)
  admin_user(state, t, rng)
  local sub_id = rng:guid()
  t.azure.subscriptions[sub_id] = { subscriptionId = sub_id, displayName = spec.display .. " Azure",
    state = "Enabled", tenantId = t.id, resource_groups = {},
    role_assignments = { { id = rng:guid(), principalId = t.seeded.admin_app.sp_id,
                           roleDefinitionId = M.OWNER_ROLE, roleDefinitionName = "Owner",
                           scope = "/subscriptions/" .. sub_id } } }
  return t
end

---------------------------------------------------------------------------------------------
-- Mailboxes.

-- Everything per tenant that every mailbox reuses, computed once.
local function mailbox_ctx(t, spec)
  local dn_suffix = ",OU=" .. t.initial_domain ..
      ",OU=Microsoft Exchange Hosted Organizations,DC=EURPR01A001,DC=PROD,DC=OUTLOOK,DC=COM"
  local locs = {}
  for i, db in ipairs(t.exo.databases) do locs[i] = ";" .. t.initial_domain .. ";" .. db end
  local skuid = {}
  for _, s in ipairs(t.dir.skus) do skuid[s.skuId] = s end
  return {
    initial = "@" .. t.initial_domain, mailto = "@" .. t.name .. ".mail.onmicrosoft.com",
    primary = "@" .. spec.domains[1], extra = spec.domains, dn_suffix = dn_suffix,
    loc_suffix = locs, seen = {}, skus = skuid, databases = t.exo.databases,
  }
end

local function unique_alias(seen, base)
  local n = seen[base]
  if not n then seen[base] = 1 return base end
  n = n + 1
  seen[base] = n
  return base .. n
end

-- One mailbox (EXO recipient + its Entra user).  kind: "UserMailbox" | "SharedMailbox" |
-- "RoomMailbox" | "EquipmentMailbox".  All variety comes from rng, in a fixed order.
local function mailbox(state, t, rng, c, kind, created)
  local fi, la = FIRST[rng:int(1, #FIRST)], LAST[rng:int(1, #LAST)]
  local display, base, given, sur
  if kind == "UserMailbox" then
    given, sur = fi[1], la[1]
    local style = rng:int(1, 20)
    if style <= 3 then display = sur .. ", " .. given
    elseif style == 4 then display = given .. " " .. sur .. " (Contractor)"
    else display = given .. " " .. sur end
    base = fi[2] .. "." .. la[2]
  else
    local pool = kind == "SharedMailbox" and SHARED or kind == "RoomMailbox" and ROOMS or EQUIP
    display = pool[rng:int(1, #pool)]
    base = lower((display:gsub("[^%w]", "")))
    if base == "" then base = "resource" end
  end
  local alias = unique_alias(c.seen, base)
  local rest = base ~= alias and sub(alias, #base + 1) or ""
  -- primary SMTP: mostly the first vanity domain, some in the other proxy domains
  local pd = rng:int(1, 20)
  local primary_dom = pd <= 16 and c.primary or ("@" .. c.extra[(pd % (#c.extra)) + 1])
  local primary = (kind == "UserMailbox" and (fi[2] .. "." .. la[2] .. rest) or alias) .. primary_dom
  local exch, guid, edoid = rng:guid(), rng:guid(), rng:guid()
  local legdn = LEGDN .. rng:hex(32) .. "-" .. alias
  local addrs = { "SMTP:" .. primary, "smtp:" .. alias .. c.initial, "smtp:" .. alias .. c.mailto }
  if primary_dom ~= c.primary and rng:chance(0.5) then addrs[#addrs + 1] = "smtp:" .. alias .. c.primary end
  if rng:chance(0.2) then addrs[#addrs + 1] = "smtp:" .. alias .. "@" .. c.extra[#c.extra] end
  if rng:chance(0.3) then                         -- migrated from on-premises / earlier tenants
    for k = 1, rng:int(1, 3) do addrs[#addrs + 1] = OLD_X500[k] .. alias .. (k > 1 and k or "") end
  end
  local ui = rng:int(1, 1000)
  -- archives: 25 %; auto-expanding with aux archives for a tenth of those, some beyond 12
  local archive, aux = ZERO, nil
  local dbi = rng:int(1, #c.loc_suffix)
  local locs = { "1;" .. exch .. ";Primary" .. c.loc_suffix[dbi] }
  if ui <= 250 then
    archive = rng:guid()
    locs[2] = "1;" .. archive .. ";MainArchive" .. c.loc_suffix[rng:int(1, #c.loc_suffix)]
    if ui <= 25 then
      aux = ui <= 5 and rng:int(13, 20) or rng:int(1, 12)
      for k = 1, aux do
        locs[k + 2] = "1;" .. rng:guid() .. ";AuxArchive" .. c.loc_suffix[rng:int(1, #c.loc_suffix)]
      end
    end
  end
  -- holds: litigation 3 %, in-place/compliance holds 3 %, delay holds 1 %, tag hold 0.5 %
  local hv = rng:int(1, 1000)
  local holds = {}
  if hv > 940 and hv <= 970 then
    local p = HOLD_PREFIX[rng:int(1, #HOLD_PREFIX)]
    holds[1] = p == "UniH" and (p .. rng:guid()) or (p .. rng:hex(32) .. ":" .. rng:int(1, 3))
    if hv > 965 then holds[2] = rng:hex(32) end     -- legacy eDiscovery hold (32 chars)
  end
  local licensed = kind == "UserMailbox" and rng:int(1, 100) <= 95
  local sku = licensed and (rng:int(1, 10) <= 8 and M.SKU.e3 or M.SKU.exo_plan1) or nil
  local size = rng:int(1, 100) <= 80 and rng:int(5, 2048) * 1048576 or rng:int(2, 90) * GB
  local synced = rng:int(1, 10) <= 3
  local upn = (kind == "UserMailbox" and (fi[2] .. "." .. la[2] .. rest) or alias) ..
              (synced and c.primary or c.initial)
  local user_created = created - rng:int(0, 86400 * 900)
  local u = add_object(state, t, {
    ["@odata.type"] = "#microsoft.graph.user", id = edoid, userPrincipalName = upn,
    displayName = display, givenName = given, surname = sur, mail = primary, mailNickname = alias,
    proxyAddresses = { table.unpack(addrs) }, accountEnabled = kind == "UserMailbox",
    userType = "Member", usageLocation = "US",
    assignedLicenses = sku and { { skuId = sku, disabledPlans = {} } } or {},
    department = given and DEPTS[rng:int(1, #DEPTS)] or nil,
    jobTitle = given and TITLES[rng:int(1, #TITLES)] or nil,
    created = user_created,
  })
  if synced then
    u.onPremisesSyncEnabled = true
    u.onPremisesImmutableId = rng:hex(22) .. "=="
  end
  if sku then c.skus[sku].consumedUnits = c.skus[sku].consumedUnits + 1 end
  -- 31 properties: the table fits a 32-slot hash.  Derived and default properties (Identity,
  -- WindowsEmailAddress, quotas, ...) are not stored: see model.exo_property.
  local r = add_recipient(t, {
    Guid = guid, ExternalDirectoryObjectId = edoid, ExchangeGuid = exch, ArchiveGuid = archive,
    ArchiveStatus = archive ~= ZERO and "Active" or "None",
    AutoExpandingArchiveEnabled = aux ~= nil, AuxArchiveCount = aux or 0, MailboxLocations = locs,
    LegacyExchangeDN = legdn, DistinguishedName = "CN=" .. alias .. c.dn_suffix,
    Name = alias, Alias = alias, DisplayName = display,
    PrimarySmtpAddress = primary, UserPrincipalName = upn,
    EmailAddresses = addrs, RecipientType = "UserMailbox",
    RecipientTypeDetails = kind, IsDirSynced = synced,
    HiddenFromAddressListsEnabled = rng:int(1, 33) == 1,
    LitigationHoldEnabled = hv > 970, InPlaceHolds = holds,
    DelayHoldApplied = hv > 930 and hv <= 940, DelayReleaseHoldApplied = hv > 925 and hv <= 930,
    ComplianceTagHoldApplied = hv > 920 and hv <= 925,
    PersistedCapabilities = sku and CAPS[sku] and { table.unpack(CAPS[sku]) } or {},
    TotalItemSize = size, ItemCount = size // 70000 + rng:int(0, 500),
    TotalDeletedItemSize = size // rng:int(10, 60), Database = c.databases[dbi],
    created = created,
  })
  if rng:int(1, 50) == 1 then r.ForwardingSmtpAddress = "smtp:" .. alias .. "@example.org" end
  return r
end

-- mailboxes(state, t, rng, n, spec): n mailboxes of mixed kinds (90 % user, 6 % shared,
-- 2 % room, 2 % equipment).
local function mailboxes(state, t, rng, n, spec)
  local c = mailbox_ctx(t, spec)
  local base = M.BASE_TIME - 86400
  local list = {}
  for i = 1, n do
    local k = rng:int(1, 50)
    local kind = k <= 45 and "UserMailbox" or k <= 48 and "SharedMailbox" or
                 k == 49 and "RoomMailbox" or "EquipmentMailbox"
    if i <= 2 then kind = "UserMailbox" end      -- the first users are plain, for examples
    list[i] = mailbox(state, t, rng, c, kind, base - i)
  end
  return c, list
end

-- What user preparation also reads (ms-setup-and-prep.md §3.2, §5.6), drawn from a stream of
-- its own after every mailbox exists, so the mailboxes themselves are what they always were:
-- delegates (shared mailboxes mostly: 80 % with 1-3 FullAccess users, 30 % SendAs; users: 4 %
-- FullAccess, 2 % SendAs, 3 % Send on Behalf), items in 10 % of the archives' SubstrateHolds
-- folder, and 1 % under an organization-wide retention policy (HoldTracking "ht":4).  The
-- simulator-only keys are in docs/simulator.md.
local function extras(rng, list)
  local users = {}
  for _, r in ipairs(list) do
    if r.RecipientTypeDetails == "UserMailbox" and r.Name ~= list[1].Name and r.Name ~= list[2].Name then
      users[#users + 1] = r.Name
    end
  end
  if #users == 0 then return end
  local function some(k, self)
    local out, seen = {}, { [self] = true }
    for _ = 1, k do
      local u = users[rng:int(1, #users)]
      if not seen[u] then seen[u] = true; out[#out + 1] = u end
    end
    return #out > 0 and out or nil
  end
  for i = 3, #list do
    local r = list[i]
    local kind, v = r.RecipientTypeDetails, rng:int(1, 1000)
    if kind == "SharedMailbox" then
      if v <= 800 then r._FullAccess = some(rng:int(1, 3), r.Name) end
      if v <= 300 then r._SendAs = some(1, r.Name) end
    elseif kind == "UserMailbox" then
      if v <= 40 then r._FullAccess = some(rng:int(1, 2), r.Name)
      elseif v <= 60 then r._SendAs = some(1, r.Name)
      elseif v <= 90 then r.GrantSendOnBehalfTo = some(1, r.Name) end
    end
    local w = rng:int(1, 1000)
    if r.ArchiveGuid ~= ZERO and w <= 100 then r._SubstrateHoldsItems = rng:int(1, 400) end
    if w > 990 then r._OrgHolds = { "mbx" .. rng:hex(32) .. ":1" } end
  end
end

-- A mail-enabled group (EXO recipient + Entra group) with members picked from the users.
local function group(state, t, rng, c, name, kind, member_ids)
  local alias = unique_alias(c.seen, lower((name:gsub("[^%w]", ""))))
  local primary = alias .. c.primary
  local id, guid = rng:guid(), rng:guid()
  local sec = kind == "MailUniversalSecurityGroup"
  local addrs = { "SMTP:" .. primary, "smtp:" .. alias .. c.initial }
  add_object(state, t, {
    ["@odata.type"] = "#microsoft.graph.group", id = id, displayName = name, mail = primary,
    mailEnabled = true, securityEnabled = sec, mailNickname = alias, groupTypes = {},
    proxyAddresses = { table.unpack(addrs) }, created = M.BASE_TIME - 86400 * 200,
  })
  add_recipient(t, {
    Guid = guid, ExternalDirectoryObjectId = id, Name = alias, Alias = alias,
    DisplayName = name, PrimarySmtpAddress = primary,
    EmailAddresses = addrs, RecipientType = kind, RecipientTypeDetails = kind,
    LegacyExchangeDN = LEGDN .. rng:hex(32) .. "-" .. alias,
    DistinguishedName = "CN=" .. alias .. c.dn_suffix, IsDirSynced = false,
    HiddenFromAddressListsEnabled = false, created = M.BASE_TIME - 86400 * 200,
  })
  for _, m in ipairs(member_ids) do model.add_member(t, id, m) end
end

local SOURCE = { name = "contoso", display = "Contoso Ltd", units = 0,
                 domains = { "contoso.com", "contoso.net", "contoso-eu.com" } }
local TARGET = { name = "fabrikam", display = "Fabrikam, Inc.", units = 0,
                 domains = { "fabrikam.com", "fabrikam.co.uk" } }

-- pair{users = N, seed = S, target_users = n} -> state with source contoso and target fabrikam.
-- Deterministic for (S, N): tenant ids, apps and secrets depend on S only, not on N.
function M.pair(o)
  o = o or {}
  local n = o.users or 50
  local seed = o.seed or 1
  local state = model.new_state(seed)
  local root = model.rng(seed)
  local src_spec = setmetatable({ units = n + 100 }, { __index = SOURCE })
  local tgt_spec = setmetatable({ units = n + 100 }, { __index = TARGET })
  local src = tenant(state, root:fork("tenant:contoso"), src_spec)
  local tgt = tenant(state, root:fork("tenant:fabrikam"), tgt_spec)
  state.pair = { source = src.id, target = tgt.id }
  local urng = root:fork("users:contoso")
  local c, list = mailboxes(state, src, urng, n, src_spec)
  extras(root:fork("extras:contoso"), list)
  -- some groups, including a mail-enabled security group (read-only through Graph)
  local users = {}
  for id, obj in pairs(src.dir.objects) do
    if obj["@odata.type"] == "#microsoft.graph.user" and obj.accountEnabled and obj.id ~= src.seeded.admin_user then
      users[#users + 1] = id
    end
  end
  table.sort(users)
  local grng = root:fork("groups:contoso")
  local function some(k)
    local l = {}
    for i = 1, math.min(k, #users) do l[i] = users[grng:int(1, #users)] end
    return l
  end
  group(state, src, grng, c, "All Staff", "MailUniversalDistributionGroup", some(50))
  group(state, src, grng, c, "Sales & Marketing", "MailUniversalDistributionGroup", some(10))
  group(state, src, grng, c, "Finance Team", "MailUniversalDistributionGroup", some(8))
  group(state, src, grng, c, "IT-Admins (Security)", "MailUniversalSecurityGroup", some(5))
  group(state, src, grng, c, "Projet Ω", "MailUniversalDistributionGroup", some(3))
  -- the target has a handful of its own users
  local trng = root:fork("users:fabrikam")
  mailboxes(state, tgt, trng, o.target_users or 5, tgt_spec)
  return state
end

return M
