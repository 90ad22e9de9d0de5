-- The simulated Graph v1.0 (t2t.sim.graph) called directly with a hand-built state and a stub
-- sim context: a table of request → expected status/body facts from wire.md §3, then the
-- rules that need more than one line (paging, $batch, lag, rate limit, licences).
local lu = require "luaunit"
local cjson = require "cjson"
local graph = require "t2t.sim.graph"

local T1, T2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
local EXO_APPID = "00000002-0000-0ff1-ce00-000000000000"
local MAILBOX_MIGRATION = "f7264778-fba9-422d-8e9e-2675a2c4b513"
local CTUDM = "946ce899-873d-44bb-9d8b-671870cbfdbf"
local E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
-- A real certificate (keyCredentials keys must hold one), valid 2020-09-13 .. 2033-05-18.
local TEST_CERT = (function()
  local crypto = require "t2t.crypto"
  local c = assert(crypto.new_ca { subject = "CN=t2t test", key = assert(crypto.generate_key("ed25519")),
                                   not_before = 1600000000, not_after = 2000000000 })
  return { b64 = crypto.base64_encode(c:der()), sha1 = crypto.base64_encode(c:fingerprint("sha1")) }
end)()

local ALL_ROLES = { "Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All",
  "User.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All", "User.Invite.All",
  "RoleManagement.ReadWrite.Directory", "Organization.Read.All", "Domain.Read.All" }

local function tenant(id, name)
  return {
    id = id, name = name, initial_domain = name .. ".onmicrosoft.com", display_name = name,
    domains = { { id = name .. ".onmicrosoft.com", isInitial = true, isDefault = false, isVerified = true },
                { id = name .. ".com", isInitial = false, isDefault = true, isVerified = true } },
    dir = { objects = {}, by_appid_sp = {}, app_role_assignments = {}, role_assignments = {},
            role_definitions = {}, skus = {}, members = {} },
    exo = { recipients = {} }, azure = { subscriptions = {} },
  }
end

-- A fresh world: two tenants, the EXO first-party SP in each, SKUs, a few users and groups.
local function world(opts)
  opts = opts or {}
  local n = 0
  local state = { version = 1, tenants = { [T1] = tenant(T1, "contoso"), [T2] = tenant(T2, "fabrikam") },
                  domains = {}, apps_by_appid = {} }
  local sim = {
    state = state, faults = opts.faults or {}, clock = 1700000000, hidden = {},
    rng = {
      guid = function() n = n + 1; return string.format("%08x-0000-4000-8000-%012x", n, n) end,
      int = function(_, a, b) n = n + 1; return a + n % (b - a + 1) end,
    },
  }
  function sim:now() return self.clock end
  function sim:visible(obj) return not self.hidden[obj] end
  sim.tokens = {}
  function sim:auth(req)
    local h = req.headers and (req.headers.authorization or req.headers.Authorization)
    local c = h and self.tokens[h:match("^Bearer (.+)$") or ""]
    if not c then return nil, { status = 401 } end
    return c
  end
  sim.tokens.admin = { tid = T1, appid = "admin-app", oid = "admin-sp", roles = ALL_ROLES }
  sim.tokens.admin2 = { tid = T2, appid = "admin-app2", oid = "admin-sp2", roles = ALL_ROLES }
  sim.tokens.reader = { tid = T1, appid = "reader", roles = { "User.Read.All" } }
  for _, tid in ipairs({ T1, T2 }) do
    local t = state.tenants[tid]
    local exo = { ["@odata.type"] = "#microsoft.graph.servicePrincipal", id = (t.name == "contoso" and "eeeeeeee-0000-4000-8000-000000000001" or "eeeeeeee-0000-4000-8000-000000000002"),
      appId = EXO_APPID, displayName = "Office 365 Exchange Online", created = 0,
      appRoles = { { id = MAILBOX_MIGRATION, value = "Mailbox.Migration", isEnabled = true,
                     allowedMemberTypes = { "Application" }, displayName = "Move mailboxes" } } }
    t.dir.objects[exo.id] = exo
    t.dir.by_appid_sp[EXO_APPID] = exo.id
    t.dir.skus = {
      { skuId = CTUDM, skuPartNumber = "Cross_tenant_user_data_migration", consumedUnits = 0,
        prepaidUnits = { enabled = 2 }, servicePlans = {
          { servicePlanId = "p1", servicePlanName = "EXCHANGEONLINE_T2TMBXMOVE" } } },
      { skuId = E3, skuPartNumber = "ENTERPRISEPACK", consumedUnits = 0, prepaidUnits = { enabled = 100 },
        servicePlans = { { servicePlanId = "efb87545-963c-4e0d-99df-69c6916d9eb0",
                           servicePlanName = "EXCHANGE_S_ENTERPRISE" } } },
    }
  end
  local dir = state.tenants[T1].dir
  for i = 1, (opts.users or 3) do
    local id = string.format("aaaaaaaa-0000-4000-8000-%012d", i)
    dir.objects[id] = { ["@odata.type"] = "#microsoft.graph.user", id = id, created = 0,
      displayName = "User " .. i, userPrincipalName = "user" .. i .. "@contoso.com",
      mail = "user" .. i .. "@contoso.com", usageLocation = i == 1 and "US" or nil,
      proxyAddresses = { "SMTP:user" .. i .. "@contoso.com" }, assignedLicenses = {} }
  end
  dir.objects["mesg-1"] = { ["@odata.type"] = "#microsoft.graph.group", id = "mesg-1", created = 0,
    displayName = "Migration scope", mailEnabled = true, securityEnabled = true, groupTypes = {},
    mail = "scope@contoso.com" }
  dir.members["mesg-1"] = {}
  -- a target MailUser without ExchangeGuid, its Graph user licence-ready
  local mu = "bbbbbbbb-0000-4000-8000-000000000001"
  dir.objects[mu] = { ["@odata.type"] = "#microsoft.graph.user", id = mu, created = 0,
    displayName = "Mail user", userPrincipalName = "mu@contoso.com", usageLocation = "US" }
  state.tenants[T1].exo.recipients["r-mu"] = { Guid = "r-mu", ExternalDirectoryObjectId = mu,
    RecipientTypeDetails = "MailUser", RecipientType = "MailUser", Name = "mu" }
  return sim
end

local function call(sim, method, path, body, headers, token)
  local h = { authorization = "Bearer " .. (token or "admin") }
  for k, v in pairs(headers or {}) do h[k] = v end
  if token == false then h.authorization = nil end
  local res = graph.handle(sim, { method = method, path = path, headers = h,
    body = type(body) == "string" and body or body ~= nil and cjson.encode(body) or nil })
  local decoded = res.body
  if type(res.body) == "string" and res.body:sub(1, 1) == "{" then decoded = cjson.decode(res.body) end
  return res.status, decoded, res
end

local function subst(s, vars)
  if type(s) == "string" then
    return (s:gsub("{([%w_%.]+)}", function(k)
      local v = vars
      for part in k:gmatch("[^%.]+") do v = v and v[part] end
      return v ~= nil and tostring(v) or "{" .. k .. "}"
    end))
  elseif type(s) == "table" then
    local t = {}
    for k, v in pairs(s) do t[subst(k, vars)] = subst(v, vars) end
    return t
  end
  return s
end

-- Each step: {name, method, path, body, expect status, {field = value | "~pattern"}, save=, token=, headers=}
local STEPS = {
  { "unauthenticated → 401 InvalidAuthenticationToken", "GET", "/v1.0/users", nil, 401,
    { ["error.code"] = "InvalidAuthenticationToken" }, token = false },
  { "missing permission → 403", "POST", "/v1.0/applications", { displayName = "x" }, 403,
    { ["error.code"] = "Authorization_RequestDenied",
      ["error.message"] = "Insufficient privileges to complete the operation." }, token = "reader" },
  { "unknown property → 400", "POST", "/v1.0/applications", { displayName = "x", colour = "red" }, 400,
    { ["error.code"] = "Request_BadRequest", ["error.message"] = "~Property 'colour' does not exist" } },
  { "unknown nested property → 400", "POST", "/v1.0/applications",
    { displayName = "x", web = { redirectUri = "https://x" } }, 400,
    { ["error.message"] = "~'redirectUri' does not exist on type 'microsoft.graph.webApplication'" } },
  { "wrong type → 400", "POST", "/v1.0/applications", { displayName = "x", isFallbackPublicClient = "yes" },
    400, { ["error.code"] = "BadRequest" } },
  { "create app → 201", "POST", "/v1.0/applications", {
      displayName = "Contoso_Friends_Fabrikam", signInAudience = "AzureADMultipleOrgs",
      web = { redirectUris = { "https://office.com" } },
      requiredResourceAccess = { { resourceAppId = EXO_APPID,
        resourceAccess = { { id = MAILBOX_MIGRATION, type = "Role" } } } } },
    201, { displayName = "Contoso_Friends_Fabrikam", publisherDomain = "contoso.onmicrosoft.com",
           ["web.redirectUris.1"] = "https://office.com", ["@odata.context"] = "~#applications/%$entity$" },
    save = "app" },
  { "get app by appId alternate key", "GET", "/v1.0/applications(appId='{app.appId}')", nil, 200,
    { id = "{app.id}" } },
  { "addPassword → 200 with secretText", "POST", "/v1.0/applications/{app.id}/addPassword",
    { passwordCredential = { displayName = "migration" } }, 200,
    { displayName = "migration", secretText = "~^[%w~%.%-_]+$" }, save = "pw" },
  { "secretText never read back", "GET", "/v1.0/applications/{app.id}?$select=passwordCredentials", nil, 200,
    { ["passwordCredentials.1.keyId"] = "{pw.keyId}", ["passwordCredentials.1.secretText"] = cjson.null,
      ["passwordCredentials.1.hint"] = "~^...$" } },
  { "PATCH keyCredentials → 204", "PATCH", "/v1.0/applications/{app.id}", { keyCredentials = {
      { type = "AsymmetricX509Cert", usage = "Verify", key = TEST_CERT.b64, displayName = "CN=x" } } }, 204, {} },
  { "PATCH keyCredentials: a key that is no certificate → 400", "PATCH", "/v1.0/applications/{app.id}",
    { keyCredentials = { { type = "AsymmetricX509Cert", usage = "Verify", key = "TUlJQw==" } } }, 400,
    { ["error.message"] = "Invalid certificate: Key value is invalid certificate" } },
  { "PATCH passwordCredentials is refused", "PATCH", "/v1.0/applications/{app.id}",
    { passwordCredentials = {} }, 400, {} },
  { "PATCH read-only appId is refused", "PATCH", "/v1.0/applications/{app.id}", { appId = "x" }, 400,
    { ["error.message"] = "~read%-only" } },
  { "create SP → 201", "POST", "/v1.0/servicePrincipals", { appId = "{app.appId}" }, 201,
    { appId = "{app.appId}", servicePrincipalType = "Application", appOwnerOrganizationId = T1 }, save = "sp" },
  { "duplicate SP → 409", "POST", "/v1.0/servicePrincipals", { appId = "{app.appId}" }, 409, {} },
  { "SP for unknown appId → 400", "POST", "/v1.0/servicePrincipals",
    { appId = "99999999-9999-4999-8999-999999999999" }, 400, { ["error.code"] = "Request_BadRequest" } },
  { "SP in the other tenant (multi-tenant app)", "POST", "/v1.0/servicePrincipals", { appId = "{app.appId}" },
    201, { appOwnerOrganizationId = T1 }, token = "admin2" },
  { "EXO SP by alternate key with $select", "GET",
    "/v1.0/servicePrincipals(appId='" .. EXO_APPID .. "')?$select=id,appId,displayName,appRoles", nil, 200,
    { id = "eeeeeeee-0000-4000-8000-000000000001", ["appRoles.1.value"] = "Mailbox.Migration", servicePrincipalType = "<absent>" } },
  { "SP by $filter appId eq", "GET", "/v1.0/servicePrincipals?$filter=appId%20eq%20'" .. EXO_APPID .. "'&$select=id",
    nil, 200, { ["value.1.id"] = "eeeeeeee-0000-4000-8000-000000000001", ["value.2"] = "<absent>" } },
  { "consent: appRoleAssignedTo → 201", "POST", "/v1.0/servicePrincipals/eeeeeeee-0000-4000-8000-000000000001/appRoleAssignedTo",
    { principalId = "{sp.id}", resourceId = "eeeeeeee-0000-4000-8000-000000000001", appRoleId = MAILBOX_MIGRATION }, 201,
    { principalType = "ServicePrincipal", resourceDisplayName = "Office 365 Exchange Online",
      id = "~^[%w_%-]+$" }, save = "ara" },
  { "duplicate consent → 400", "POST", "/v1.0/servicePrincipals/{sp.id}/appRoleAssignments",
    { principalId = "{sp.id}", resourceId = "eeeeeeee-0000-4000-8000-000000000001", appRoleId = MAILBOX_MIGRATION }, 400,
    { ["error.message"] = "Permission being assigned already exists on the object" } },
  { "unknown app role → 400", "POST", "/v1.0/servicePrincipals/eeeeeeee-0000-4000-8000-000000000001/appRoleAssignedTo",
    { principalId = "{sp.id}", resourceId = "eeeeeeee-0000-4000-8000-000000000001", appRoleId = "12345678-1234-4234-8234-123456789012" },
    400, { ["error.message"] = "~not found on application" } },
  { "list consent by principalId eq (unquoted guid)", "GET",
    "/v1.0/servicePrincipals/eeeeeeee-0000-4000-8000-000000000001/appRoleAssignedTo?$filter=principalId eq {sp.id}", nil, 200,
    { ["value.1.appRoleId"] = MAILBOX_MIGRATION } },
  { "appRoleAssignments of the client SP", "GET", "/v1.0/servicePrincipals/{sp.id}/appRoleAssignments", nil,
    200, { ["value.1.resourceId"] = "eeeeeeee-0000-4000-8000-000000000001" } },
  { "mail-enabled security group create → 400", "POST", "/v1.0/groups",
    { displayName = "s", mailEnabled = true, securityEnabled = true, mailNickname = "s", groupTypes = {} }, 400,
    { ["error.message"] = "Cannot Create a mail-enabled security groups and or distribution list." } },
  { "distribution list create → 400", "POST", "/v1.0/groups",
    { displayName = "d", mailEnabled = true, securityEnabled = false, mailNickname = "d" }, 400,
    { ["error.message"] = "Cannot Create a mail-enabled security groups and or distribution list." } },
  { "mail-enabled security group member add → 400", "POST", "/v1.0/groups/mesg-1/members/$ref",
    { ["@odata.id"] = "https://graph.microsoft.com/v1.0/directoryObjects/aaaaaaaa-0000-4000-8000-000000000001" },
    400, { ["error.message"] = "Cannot Update a mail-enabled security groups and or distribution list." } },
  { "security group → 201", "POST", "/v1.0/groups",
    { displayName = "Ops", mailEnabled = false, securityEnabled = true, mailNickname = "ops",
      ["members@odata.bind"] = { "https://graph.microsoft.com/v1.0/users/aaaaaaaa-0000-4000-8000-000000000001" } },
    201, { displayName = "Ops", mailEnabled = false, groupTypes = {} }, save = "grp" },
  { "member add → 204", "POST", "/v1.0/groups/{grp.id}/members/$ref",
    { ["@odata.id"] = "https://graph.microsoft.com/v1.0/directoryObjects/aaaaaaaa-0000-4000-8000-000000000002" },
    204, {} },
  { "duplicate member → 400", "POST", "/v1.0/groups/{grp.id}/members/$ref",
    { ["@odata.id"] = "https://graph.microsoft.com/v1.0/directoryObjects/aaaaaaaa-0000-4000-8000-000000000002" },
    400, { ["error.message"] = "~already exist" } },
  { "members list, mixed types", "GET", "/v1.0/groups/{grp.id}/members?$select=id,userPrincipalName", nil, 200,
    { ["value.1.@odata.type"] = "#microsoft.graph.user", ["value.2.id"] = "aaaaaaaa-0000-4000-8000-000000000002" } },
  { "member remove → 204", "DELETE", "/v1.0/groups/{grp.id}/members/aaaaaaaa-0000-4000-8000-000000000002/$ref",
    nil, 204, {} },
  { "role-assignable group → 201", "POST", "/v1.0/groups",
    { displayName = "Exchange admins", mailEnabled = false, securityEnabled = true, mailNickname = "exa",
      isAssignableToRole = true }, 201, { isAssignableToRole = true }, save = "rag" },
  { "directory role to the group → 201", "POST", "/v1.0/roleManagement/directory/roleAssignments",
    { ["@odata.type"] = "#microsoft.graph.unifiedRoleAssignment",
      roleDefinitionId = "29232cdf-9323-42fd-ade2-1d097af3e4de", principalId = "{rag.id}", directoryScopeId = "/" },
    201, { roleDefinitionId = "29232cdf-9323-42fd-ade2-1d097af3e4de", directoryScopeId = "/", id = "~%-1$" } },
  { "role assignment on a plain group → 400", "POST", "/v1.0/roleManagement/directory/roleAssignments",
    { roleDefinitionId = "29232cdf-9323-42fd-ade2-1d097af3e4de", principalId = "{grp.id}", directoryScopeId = "/" },
    400, {} },
  { "roleAssignments $filter principalId eq", "GET",
    "/v1.0/roleManagement/directory/roleAssignments?$filter=principalId eq '{rag.id}'", nil, 200,
    { ["value.1.principalId"] = "{rag.id}" } },
  { "directoryRoles lists the activated role", "GET", "/v1.0/directoryRoles", nil, 200,
    { ["value.1.roleTemplateId"] = "29232cdf-9323-42fd-ade2-1d097af3e4de" } },
  { "directoryRoles by roleTemplateId members", "GET",
    "/v1.0/directoryRoles(roleTemplateId='29232cdf-9323-42fd-ade2-1d097af3e4de')/members", nil, 200,
    { ["value.1.id"] = "{rag.id}" } },
  { "invitation → 201 PendingAcceptance", "POST", "/v1.0/invitations",
    { invitedUserEmailAddress = "admin@fabrikam.com", inviteRedirectUrl = "https://login.microsoftonline.com/x",
      sendInvitationMessage = true, invitedUserMessageInfo = { customizedMessageBody = "hi" } }, 201,
    { status = "PendingAcceptance", invitedUserType = "Guest", inviteRedeemUrl = "~^https://login%.microsoftonline%.com/redeem",
      ["invitedUser.id"] = "~%x" }, save = "inv" },
  { "the guest user exists", "GET", "/v1.0/users/{inv.invitedUser.id}?$select=userType,userPrincipalName", nil,
    200, { userType = "Guest", userPrincipalName = "admin_fabrikam.com#EXT#@contoso.onmicrosoft.com" } },
  { "user by UPN, default properties", "GET", "/v1.0/users/user1@contoso.com", nil, 200,
    { id = "aaaaaaaa-0000-4000-8000-000000000001", jobTitle = cjson.null, usageLocation = "<absent>" } },
  { "user $select non-default", "GET", "/v1.0/users/user1@contoso.com?$select=id,usageLocation,proxyAddresses",
    nil, 200, { usageLocation = "US", ["proxyAddresses.1"] = "SMTP:user1@contoso.com", displayName = "<absent>" } },
  { "$select unknown property → 400", "GET", "/v1.0/users?$select=id,shoeSize", nil, 400,
    { ["error.message"] = "~Could not find a property named 'shoeSize'" } },
  { "PATCH user usageLocation → 204", "PATCH", "/v1.0/users/aaaaaaaa-0000-4000-8000-000000000002",
    { usageLocation = "GB" }, 204, {} },
  { "PATCH user proxyAddresses → 400 read-only", "PATCH", "/v1.0/users/aaaaaaaa-0000-4000-8000-000000000002",
    { proxyAddresses = { "smtp:x@contoso.com" } }, 400, {} },
  { "assignLicense without usageLocation → 400", "POST", "/v1.0/users/aaaaaaaa-0000-4000-8000-000000000003/assignLicense",
    { addLicenses = { { skuId = CTUDM } }, removeLicenses = {} }, 400,
    { ["error.message"] = "License assignment cannot be done for user with invalid usage location." } },
  { "assignLicense missing removeLicenses → 400", "POST", "/v1.0/users/aaaaaaaa-0000-4000-8000-000000000001/assignLicense",
    { addLicenses = { { skuId = CTUDM } } }, 400, {} },
  { "assignLicense → 200 user", "POST", "/v1.0/users/aaaaaaaa-0000-4000-8000-000000000001/assignLicense",
    { addLicenses = { { skuId = CTUDM, disabledPlans = {} } }, removeLicenses = {} }, 200,
    { id = "aaaaaaaa-0000-4000-8000-000000000001" } },
  { "unknown sku → 400", "POST", "/v1.0/users/aaaaaaaa-0000-4000-8000-000000000001/assignLicense",
    { addLicenses = { { skuId = "12345678-1234-4234-8234-123456789012" } }, removeLicenses = {} }, 400, {} },
  { "subscribedSkus shows consumption", "GET", "/v1.0/subscribedSkus?$filter=skuId eq '" .. CTUDM .. "'", nil, 200,
    { ["value.1.consumedUnits"] = 1, ["value.1.prepaidUnits.enabled"] = 2,
      ["value.1.skuPartNumber"] = "Cross_tenant_user_data_migration" } },
  { "domains", "GET", "/v1.0/domains", nil, 200,
    { ["value.1.id"] = "contoso.com", ["value.1.isDefault"] = true, ["value.2.isInitial"] = true } },
  { "organization", "GET", "/v1.0/organization", nil, 200,
    { ["value.1.id"] = T1, ["value.1.verifiedDomains.1.name"] = "contoso.onmicrosoft.com" } },
  { "advanced filter without ConsistencyLevel → 400", "GET", "/v1.0/users?$filter=endswith(mail,'contoso.com')",
    nil, 400, { ["error.code"] = "Request_UnsupportedQuery" } },
  { "advanced filter with ConsistencyLevel", "GET",
    "/v1.0/users?$filter=endswith(mail,'contoso.com')&$count=true&$select=id", nil, 200,
    { ["@odata.count"] = 3 }, headers = { ConsistencyLevel = "eventual" } },
  { "startswith and eq with and", "GET",
    "/v1.0/users?$filter=startswith(displayName,'user') and usageLocation eq 'US'&$select=id", nil, 200,
    { ["value.1.id"] = "aaaaaaaa-0000-4000-8000-000000000001", ["value.2"] = "<absent>" } },
  { "any() lambda on proxyAddresses", "GET",
    "/v1.0/users?$filter=proxyAddresses/any(x:x eq 'smtp:user2@contoso.com')&$select=id", nil, 200,
    { ["value.1.id"] = "aaaaaaaa-0000-4000-8000-000000000002" } },
  { "$count=true without ConsistencyLevel is ignored on a list", "GET", "/v1.0/users?$count=true", nil,
    200, { ["@odata.count"] = "<absent>" } },
  { "$top out of range → 400", "GET", "/v1.0/users?$top=1000", nil, 400, {} },
  { "unknown segment → 400", "GET", "/v1.0/gropus", nil, 400,
    { ["error.message"] = "Resource not found for the segment 'gropus'." } },
  { "valid Graph path not simulated → 501", "GET", "/v1.0/users/user1@contoso.com/mailFolders", nil, 501, {} },
  { "method not allowed → 405", "PUT", "/v1.0/users", {}, 405, {} },
  { "missing object → 404", "GET", "/v1.0/groups/nope", nil, 404,
    { ["error.code"] = "Request_ResourceNotFound" } },
}

local function dig(v, path)
  for part in path:gmatch("[^%.]+") do
    if part == "@odata" then return nil end
    if type(v) ~= "table" then return nil end
    v = v[math.tointeger(tonumber(part)) or part]
  end
  return v
end

local function field(body, k)
  -- "@odata.x" keys contain a dot: try the literal key first
  if body[k] ~= nil then return body[k] end
  local head, rest = k:match("^(.-)%.(@odata%..+)$")
  if head then
    local t = dig(body, head)
    return type(t) == "table" and t[rest] or nil
  end
  return dig(body, k)
end

TestSimGraph = {}

function TestSimGraph.test_table()
  local sim = world()
  local vars = {}
  for i, step in ipairs(STEPS) do
    local name, method, path, body, want, facts = table.unpack(step, 1, 6)
    local status, got, raw = call(sim, method, subst(path, vars), subst(body, vars), step.headers, step.token)
    local where = string.format("step %d (%s): %s %s → %s %s", i, name, method, path, status,
      type(raw.body) == "string" and raw.body:sub(1, 300) or "")
    lu.assertEquals(status, want, where)
    for k, v in pairs(facts) do
      local actual
      if type(got) == "table" then actual = field(got, k) end
      v = subst(v, vars)
      if v == "<absent>" then
        lu.assertNil(actual, where .. " field " .. k)
      elseif type(v) == "string" and v:sub(1, 1) == "~" then
        lu.assertTrue(tostring(actual):find(v:sub(2)) ~= nil,
          where .. " field " .. k .. " = " .. tostring(actual) .. " !~ " .. v:sub(2))
      elseif type(v) == "table" and next(v) == nil then
        lu.assertEquals(raw.body:find('"' .. k .. '":[]', 1, true) ~= nil, true, where .. " " .. k .. " is []")
      else
        lu.assertEquals(actual, v, where .. " field " .. k)
      end
    end
    if step.save then vars[step.save] = got end
    -- every response echoes the request ids
    lu.assertNotNil(raw.headers["request-id"], where)
    lu.assertNotNil(raw.headers["client-request-id"], where)
    if status >= 400 then
      lu.assertEquals(got.error.innerError["request-id"], raw.headers["request-id"], where)
    end
  end
end

function TestSimGraph.test_client_request_id_echoed()
  local sim = world()
  local _, body, raw = call(sim, "GET", "/v1.0/groups/nope", nil, { ["client-request-id"] = "abc-123" })
  lu.assertEquals(raw.headers["client-request-id"], "abc-123")
  lu.assertEquals(body.error.innerError["client-request-id"], "abc-123")
end

-- A body that is not JSON: Graph's 400 BadRequest, and no group is made.
function TestSimGraph.test_body_not_json()
  local sim = world()
  local before = select(2, call(sim, "GET", "/v1.0/groups"))
  local status, body = call(sim, "POST", "/v1.0/groups", '{"displayName": ')
  lu.assertEquals(status, 400)
  lu.assertEquals(body.error.code, "BadRequest")
  lu.assertStrContains(body.error.message, "Unable to read JSON request payload")
  lu.assertEquals(#select(2, call(sim, "GET", "/v1.0/groups")).value, #before.value)
end

function TestSimGraph.test_paging_across_pages_visits_every_user_once()
  local sim = world { users = 250 }
  local seen, pages = {}, 0
  local url = "/v1.0/users?$select=id,displayName&$top=37&$count=true"
  local first = true
  while url do
    local status, body = call(sim, "GET", url, nil, { ConsistencyLevel = "eventual" })
    lu.assertEquals(status, 200)
    pages = pages + 1
    if first then lu.assertEquals(body["@odata.count"], 251) else lu.assertNil(body["@odata.count"]) end
    first = false
    for _, u in ipairs(body.value) do
      lu.assertNil(seen[u.id], "duplicate " .. u.id)
      seen[u.id] = true
    end
    local next_link = body["@odata.nextLink"]
    if next_link then
      lu.assertStrContains(next_link, "$skiptoken=")
      url = next_link:gsub("^https://graph%.microsoft%.com", "")
    else
      url = nil
    end
  end
  local n = 0
  for _ in pairs(seen) do n = n + 1 end
  lu.assertEquals(n, 251)   -- 250 + the mail user
  lu.assertEquals(pages, 7)
end

function TestSimGraph.test_default_top_is_100()
  local sim = world { users = 150 }
  local _, body = call(sim, "GET", "/v1.0/users")
  lu.assertEquals(#body.value, 100)
  lu.assertNotNil(body["@odata.nextLink"])
end

function TestSimGraph.test_count_segment_is_text_plain()
  local sim = world()
  local status, body, raw = call(sim, "GET", "/v1.0/users/$count", nil, { ConsistencyLevel = "eventual" })
  lu.assertEquals(status, 200)
  lu.assertEquals(body, "4")
  lu.assertStrContains(raw.headers["content-type"], "text/plain")
  status = call(sim, "GET", "/v1.0/users/$count", nil,
    { ConsistencyLevel = "eventual", Accept = "application/json" })
  lu.assertEquals(status, 415)
end

function TestSimGraph.test_batch_dependson_424_and_any_order()
  local sim = world()
  local status, body = call(sim, "POST", "/v1.0/$batch", { requests = {
    { id = "1", method = "GET", url = "/users/user1@contoso.com?$select=id" },
    { id = "2", dependsOn = { "1" }, method = "GET", url = "/groups/nope" },
    { id = "3", dependsOn = { "2" }, method = "GET", url = "/users" },
    { id = "4", method = "POST", url = "/groups/mesg-1/members/$ref",
      headers = { ["Content-Type"] = "application/json" },
      body = { ["@odata.id"] = "https://graph.microsoft.com/v1.0/directoryObjects/x" } },
  } })
  lu.assertEquals(status, 200)
  local by = {}
  for _, r in ipairs(body.responses) do by[r.id] = r end
  lu.assertEquals(by["1"].status, 200)
  lu.assertEquals(by["2"].status, 404)
  lu.assertEquals(by["3"].status, 424)
  lu.assertEquals(by["4"].status, 400)
  lu.assertEquals(#body.responses, 4)
end

function TestSimGraph.test_batch_limits()
  local sim = world()
  local reqs = {}
  for i = 1, 21 do reqs[i] = { id = tostring(i), method = "GET", url = "/users" } end
  lu.assertEquals((call(sim, "POST", "/v1.0/$batch", { requests = reqs })), 400)
  lu.assertEquals((call(sim, "POST", "/v1.0/$batch", { requests = {
    { id = "1", method = "POST", url = "/groups", body = { displayName = "x" } } } })), 400)
end

function TestSimGraph.test_rate_limit_per_item_with_retry_after()
  local sim = world { faults = { graph_rate = 5 } }
  local reqs = {}
  for i = 1, 8 do reqs[i] = { id = tostring(i), method = "GET", url = "/users?$top=1" } end
  local status, body = call(sim, "POST", "/v1.0/$batch", { requests = reqs })
  lu.assertEquals(status, 200)
  local throttled = 0
  for _, r in ipairs(body.responses) do
    if r.status == 429 then
      throttled = throttled + 1
      lu.assertNotNil(r.headers["Retry-After"])
    end
  end
  lu.assertEquals(throttled, 3)
  local st, _, raw = call(sim, "GET", "/v1.0/users")
  lu.assertEquals(st, 429)
  lu.assertNotNil(raw.headers["retry-after"])
  sim.clock = sim.clock + 10
  lu.assertEquals((call(sim, "GET", "/v1.0/users")), 200)
end

function TestSimGraph.test_replication_lag_hides_new_objects()
  local sim = world()
  local visible = sim.visible
  local lag_until = sim.clock + 5
  function sim:visible(obj) return (obj.created or 0) <= self.clock - 0 and (obj.created or 0) < lag_until - 5
    or (obj.created or 0) == 0 or self.clock >= lag_until end
  local status, app = call(sim, "POST", "/v1.0/applications", { displayName = "lagged" })
  lu.assertEquals(status, 201)
  lu.assertEquals((call(sim, "GET", "/v1.0/applications/" .. app.id)), 404)
  -- a reference to the invisible object fails too
  lu.assertEquals((call(sim, "POST", "/v1.0/servicePrincipals", { appId = app.appId })), 400)
  sim.clock = lag_until
  lu.assertEquals((call(sim, "GET", "/v1.0/applications/" .. app.id)), 200)
  sim.visible = visible
end

function TestSimGraph.test_licence_on_mailuser_without_exchangeguid_provisions_a_mailbox()
  local sim = world()
  local mu = "bbbbbbbb-0000-4000-8000-000000000001"
  local r = sim.state.tenants[T1].exo.recipients["r-mu"]
  -- the CTUDM licence alone does not provision a mailbox, it adds the capability
  lu.assertEquals((call(sim, "POST", "/v1.0/users/" .. mu .. "/assignLicense",
    { addLicenses = { { skuId = CTUDM } }, removeLicenses = {} })), 200)
  lu.assertEquals(r.RecipientTypeDetails, "MailUser")
  lu.assertEquals(r.PersistedCapabilities, { "ExchangeT2TMbxMove" })
  -- an Exchange plan does: the documented trap
  lu.assertEquals((call(sim, "POST", "/v1.0/users/" .. mu .. "/assignLicense",
    { addLicenses = { { skuId = E3 } }, removeLicenses = {} })), 200)
  lu.assertEquals(r.RecipientTypeDetails, "UserMailbox")
  lu.assertNotNil(r.ExchangeGuid)
end

function TestSimGraph.test_licence_after_exchangeguid_keeps_the_mailuser()
  local sim = world()
  local mu = "bbbbbbbb-0000-4000-8000-000000000001"
  local r = sim.state.tenants[T1].exo.recipients["r-mu"]
  r.ExchangeGuid = "cccccccc-0000-4000-8000-000000000001"
  lu.assertEquals((call(sim, "POST", "/v1.0/users/" .. mu .. "/assignLicense",
    { addLicenses = { { skuId = E3 } }, removeLicenses = {} })), 200)
  lu.assertEquals(r.RecipientTypeDetails, "MailUser")
  lu.assertEquals(r.ExchangeGuid, "cccccccc-0000-4000-8000-000000000001")
end

function TestSimGraph.test_keycredentials_patch_replaces_the_collection()
  local sim = world()
  local _, app = call(sim, "POST", "/v1.0/applications", { displayName = "k" })
  local key = { type = "AsymmetricX509Cert", usage = "Verify", key = TEST_CERT.b64 }
  call(sim, "PATCH", "/v1.0/applications/" .. app.id, { keyCredentials = { key, key } })
  local _, got = call(sim, "GET", "/v1.0/applications/" .. app.id)
  lu.assertEquals(#got.keyCredentials, 2)
  lu.assertEquals(got.keyCredentials[1].key, cjson.null)
  -- the certificate's own validity and thumbprint; the key only on a single object's $select
  lu.assertEquals(got.keyCredentials[1].startDateTime, "2020-09-13T12:26:40Z")
  lu.assertEquals(got.keyCredentials[1].endDateTime, "2033-05-18T03:33:20Z")
  lu.assertEquals(got.keyCredentials[1].customKeyIdentifier, TEST_CERT.sha1)
  local _, sel = call(sim, "GET", "/v1.0/applications/" .. app.id .. "?$select=keyCredentials")
  lu.assertEquals(sel.keyCredentials[1].key, TEST_CERT.b64)
  -- re-sending one entry as read (key null) keeps it and drops the other
  local keep = got.keyCredentials[1]
  keep.key = nil
  lu.assertEquals((call(sim, "PATCH", "/v1.0/applications/" .. app.id, { keyCredentials = { keep } })), 204)
  local stored = sim.state.tenants[T1].dir.objects[app.id].keyCredentials
  lu.assertEquals(#stored, 1)
  lu.assertEquals(stored[1].key, TEST_CERT.b64)
  -- removePassword
  local _, pw = call(sim, "POST", "/v1.0/applications/" .. app.id .. "/addPassword", {})
  lu.assertEquals((call(sim, "POST", "/v1.0/applications/" .. app.id .. "/removePassword", { keyId = pw.keyId })), 204)
  lu.assertEquals((call(sim, "POST", "/v1.0/applications/" .. app.id .. "/removePassword", { keyId = pw.keyId })), 400)
end

-- addKey (wire.md §3.3): a proof JWT signed by one of the app's current certificates, aud the
-- Azure AD Graph id, iss the app's object id, nbf..exp at most 10 minutes; anything else is 401.
function TestSimGraph.test_add_key_checks_the_proof()
  local crypto, jwt = require "t2t.crypto", require "t2t.jwt"
  local sim = world()
  local function cert(cn, key)
    return assert(crypto.new_ca { subject = "CN=" .. cn, key = key, not_before = 1600000000, not_after = 2000000000 })
  end
  local k1, k2 = assert(crypto.generate_key("rsa", 2048)), assert(crypto.generate_key("rsa", 2048))
  local c1, c2 = cert("one", k1), cert("two", k2)
  local function kc(c) return { type = "AsymmetricX509Cert", usage = "Verify", key = crypto.base64_encode(c:der()) } end
  local _, app = call(sim, "POST", "/v1.0/applications", { displayName = "roller" })
  local path = "/v1.0/applications/" .. app.id .. "/addKey"
  local t = sim.clock
  local function proof(key, claims)
    local c = { aud = "00000002-0000-0000-c000-000000000000", iss = app.id, nbf = t, exp = t + 600 }
    for k, v in pairs(claims or {}) do c[k] = v end
    return jwt.encode(c, key, { alg = "RS256" })
  end
  -- no certificate yet: nothing can sign a proof
  local s, e = call(sim, "POST", path, { keyCredential = kc(c2), proof = proof(k1) })
  lu.assertEquals(s, 401)
  lu.assertEquals(e.error.code, "Authentication_MissingOrMalformed")
  lu.assertEquals((call(sim, "PATCH", "/v1.0/applications/" .. app.id, { keyCredentials = { kc(c1) } })), 204)
  for what, bad in pairs {
    ["signed by another key"] = proof(k2),
    ["iss is the appId"] = proof(k1, { iss = app.appId }),
    ["aud is Microsoft Graph"] = proof(k1, { aud = "00000003-0000-0000-c000-000000000000" }),
    ["valid for an hour"] = proof(k1, { exp = t + 3600 }),
    ["expired"] = proof(k1, { nbf = t - 1800, exp = t - 1200 }),
    ["not a JWT"] = "nope",
  } do
    lu.assertEquals((call(sim, "POST", path, { keyCredential = kc(c2), proof = bad })), 401, what)
  end
  -- the app rolls its own key with no permission at all; others need Application.ReadWrite
  sim.tokens.self = { tid = T1, appid = app.appId, roles = {} }
  lu.assertEquals((call(sim, "POST", path, { keyCredential = kc(c2), proof = proof(k1) }, nil, "reader")), 403)
  local st, added = call(sim, "POST", path, { keyCredential = kc(c2), proof = proof(k1) }, nil, "self")
  lu.assertEquals(st, 200)
  lu.assertEquals(added.key, cjson.null)
  lu.assertStrMatches(added.keyId, "%x+%-.*")
  local _, got = call(sim, "GET", "/v1.0/applications/" .. app.id)
  lu.assertEquals(#got.keyCredentials, 2)
  -- the new certificate now signs proofs too
  lu.assertEquals((call(sim, "POST", path, { keyCredential = kc(cert("three", k1)), proof = proof(k2) })), 200)
end

-- Graph's upsert by the uniqueName alternate key (application-upsert, group-upsert): without
-- "Prefer: create-if-missing" a missing key is 404; with it, 201 and the new object; once it
-- exists, 204 and an update — never a second object.
function TestSimGraph.test_upsert_by_unique_name()
  local sim = world()
  local T = sim.state.tenants[T1]
  local function count(kind, unique)
    local n = 0
    for _, o in pairs(T.dir.objects) do
      if o["@odata.type"] == "#microsoft.graph." .. kind and o.uniqueName == unique then n = n + 1 end
    end
    return n
  end
  local prefer = { prefer = "create-if-missing" }
  local st = call(sim, "PATCH", "/v1.0/applications(uniqueName='u-1')", { displayName = "A" })
  lu.assertEquals(st, 404)
  local st2, body = call(sim, "PATCH", "/v1.0/applications(uniqueName='u-1')", { displayName = "A" }, prefer)
  lu.assertEquals(st2, 201)
  lu.assertEquals(body.uniqueName, "u-1")
  lu.assertEquals(body.displayName, "A")
  local st3 = call(sim, "PATCH", "/v1.0/applications(uniqueName='u-1')", { displayName = "B" }, prefer)
  lu.assertEquals(st3, 204)
  lu.assertEquals(count("application", "u-1"), 1)
  local st4, got = call(sim, "GET", "/v1.0/applications(uniqueName='u-1')")
  lu.assertEquals(st4, 200)
  lu.assertEquals(got.displayName, "B")
  lu.assertEquals(got.appId, body.appId)
  lu.assertEquals((call(sim, "PATCH", "/v1.0/applications(uniqueName='u-1')",
                        { displayName = "B", uniqueName = "u-2" }, prefer)), 400)
  lu.assertEquals((call(sim, "PATCH", "/v1.0/applications(uniqueName='u-9')", {}, prefer)), 400,
                  "a create needs displayName")
  lu.assertEquals((call(sim, "POST", "/v1.0/applications", { displayName = "C", uniqueName = "u-1" })), 409)
  local group = { displayName = "G", mailEnabled = false, securityEnabled = true, mailNickname = "g" }
  lu.assertEquals((call(sim, "PATCH", "/v1.0/groups(uniqueName='g-1')", group, prefer)), 201)
  lu.assertEquals((call(sim, "PATCH", "/v1.0/groups(uniqueName='g-1')", group, prefer)), 204)
  lu.assertEquals(count("group", "g-1"), 1)
end
