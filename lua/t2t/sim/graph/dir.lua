-- t2t.sim.graph.dir: /users (get, patch, assignLicense), /groups (security and role-assignable
-- groups; mail-enabled security groups and distribution lists read-only), members/$ref,
-- /invitations — wire.md §3.7–3.10.
local util = require "t2t.sim.graph.util"
local types = require "t2t.sim.graph.types"
local store = require "t2t.sim.graph.store"

local M = {}
local route = store.routes(M)

local now = store.now

-- Users -------------------------------------------------------------------------------------

store.list_route(route, "users", "user")

route("GET", "users/$count", function(ctx)
  return M.count(ctx, "user")
end)

route("GET", "users/:id", function(ctx, p)
  return store.entity(ctx, "user", "users", store.must_resolve(ctx, "user", p.id))
end)

route("POST", "users", function(ctx)
  local body = ctx.json or {}
  types.check_body("user", body)
  for _, k in ipairs({ "accountEnabled", "displayName", "mailNickname", "userPrincipalName", "passwordProfile" }) do
    if body[k] == nil then util.bad("Property '" .. k .. "' is required.") end
  end
  if store.user_by_upn(ctx, body.userPrincipalName) then
    util.bad("Another object with the same value for property userPrincipalName already exists.",
      "Request_BadRequest")
  end
  local domain = body.userPrincipalName:match("@(.+)$")
  local ok_domain = false
  for _, d in ipairs(ctx.tenant.domains or {}) do
    if d.id:lower() == (domain or ""):lower() and d.isVerified ~= false then ok_domain = true end
  end
  if not ok_domain then
    util.bad("The domain portion of the userPrincipalName property is invalid. You must use one of "
      .. "the verified domain names in your organization.")
  end
  local u = util.copy(body)
  u.passwordProfile = nil         -- never stored or returned
  for k in pairs(u) do if k:find("@", 1, true) then u[k] = nil end end
  u["@odata.type"] = "#microsoft.graph.user"
  u.id = util.guid(ctx.sim)
  u.createdDateTime = now(ctx)
  u.userType = u.userType or "Member"
  u.assignedLicenses, u.proxyAddresses, u.businessPhones = {}, {}, u.businessPhones or {}
  store.add(ctx, u)
  return store.entity(ctx, "user", "users", u, 201)
end)

route("PATCH", "users/:id", function(ctx, p)
  local u = store.must_resolve(ctx, "user", p.id)
  local body = ctx.json or {}
  types.check_body("user", body)
  if u.onPremisesSyncEnabled == true then
    for _, k in ipairs({ "displayName", "givenName", "surname", "mailNickname", "userPrincipalName",
                         "mail", "onPremisesImmutableId" }) do
      if body[k] ~= nil then
        util.bad("Unable to update the specified properties for on-premises mastered Directory Sync "
          .. "objects or objects currently undergoing migration.")
      end
    end
  end
  if body.usageLocation ~= nil and body.usageLocation ~= util.null
      and not (type(body.usageLocation) == "string" and body.usageLocation:match("^%u%u$")) then
    util.bad("Invalid value specified for property 'usageLocation' of resource 'User'.")
  end
  store.apply_patch(u, body, { passwordProfile = true })
  store.touch(ctx, u)
  return store.no_content()
end)

-- Licences (wire.md §3.10, ms-setup-and-prep.md §5.2) -----------------------------------------

local function find_sku(ctx, sku_id)
  for _, s in ipairs(ctx.tenant.dir.skus or {}) do
    if s.skuId == sku_id then return s end
  end
  return nil
end

local recipient_of = store.recipient_of

-- Plans that give a user an Exchange Online mailbox (the T2T move plan does not).
local function provisions_mailbox(sku, disabled)
  for _, plan in ipairs(sku.servicePlans or {}) do
    local name = plan.servicePlanName or ""
    if name:match("^EXCHANGE_S_") and not disabled[plan.servicePlanId] then return true end
  end
  return false
end

local function has_plan(sku, pattern)
  for _, plan in ipairs(sku.servicePlans or {}) do
    if (plan.servicePlanName or ""):match(pattern) then return true end
  end
  return false
end

-- Apply Exchange-side effects of a licence: the documented trap (ms-setup-and-prep.md §5.1–5.2):
-- an Exchange plan on a MailUser without ExchangeGuid (or a user with no recipient) provisions a
-- brand-new mailbox; the cross-tenant move plan shows up as PersistedCapabilities
-- ExchangeT2TMbxMove.
local function exchange_effects(ctx, user, sku, disabled)
  local exo = ctx.tenant.exo
  if not exo then return end
  exo.recipients = exo.recipients or {}
  local r = recipient_of(ctx, user.id)
  if has_plan(sku, "T2TMBXMOVE") and r then
    local caps = util.copy(r.PersistedCapabilities or {})
    if not util.contains(caps, "ExchangeT2TMbxMove") then
      caps[#caps + 1] = "ExchangeT2TMbxMove"
      store.update_recipient(ctx, r, { PersistedCapabilities = caps })
    end
  end
  if not provisions_mailbox(sku, disabled) then return end
  if r and r.RecipientTypeDetails == "MailUser" then
    local guid = r.ExchangeGuid
    if guid == nil or guid == "" or guid == "00000000-0000-0000-0000-000000000000" then
      store.update_recipient(ctx, r, {
        RecipientTypeDetails = "UserMailbox", RecipientType = "UserMailbox",
        ExchangeGuid = util.guid(ctx.sim),
        ProvisionedByLicense = true,   -- sim-only marker: the documented trap fired
      })
    end
  elseif not r then
    local g = util.guid(ctx.sim)
    local alias = (user.mailNickname or (user.userPrincipalName or g):match("^[^@]+"))
    store.add_recipient(ctx, {
      Guid = g, ExchangeGuid = util.guid(ctx.sim), ExternalDirectoryObjectId = user.id,
      RecipientTypeDetails = "UserMailbox", RecipientType = "UserMailbox",
      Name = alias, Alias = alias, DisplayName = user.displayName,
      PrimarySmtpAddress = user.userPrincipalName, UserPrincipalName = user.userPrincipalName,
      EmailAddresses = { "SMTP:" .. tostring(user.userPrincipalName) },
      ProvisionedByLicense = true, created = ctx.sim:now(),
    })
  end
end

local function assign_license(ctx, p)
  local u = store.must_resolve(ctx, "user", p.id)
  local body = ctx.json or {}
  types.check_action("user.assignLicense", body)
  local add, remove = body.addLicenses or {}, body.removeLicenses or {}
  if #add > 0 and (u.usageLocation == nil or u.usageLocation == util.null or u.usageLocation == "") then
    util.bad("License assignment cannot be done for user with invalid usage location.")
  end
  local current = u.assignedLicenses or {}
  local have = {}
  for _, l in ipairs(current) do have[l.skuId] = l end
  for _, sku_id in ipairs(remove) do
    if not have[sku_id] then util.bad("User does not have a corresponding license.") end
  end
  local staged = {}
  for _, l in ipairs(add) do
    local sku = find_sku(ctx, l.skuId)
    if not sku then
      util.bad(string.format("License %s does not correspond to a valid company License.", tostring(l.skuId)))
    end
    if not have[l.skuId] then
      local enabled = sku.prepaidUnits and sku.prepaidUnits.enabled or 0
      if (sku.consumedUnits or 0) >= enabled then
        util.bad(string.format("Subscription with SKU %s does not have any available licenses.", l.skuId))
      end
    end
    staged[#staged + 1] = { sku = sku, lic = { skuId = l.skuId, disabledPlans = l.disabledPlans or {} } }
  end
  for _, sku_id in ipairs(remove) do
    have[sku_id] = nil
    local sku = find_sku(ctx, sku_id)
    if sku then sku.consumedUnits = math.max(0, (sku.consumedUnits or 1) - 1) end
  end
  for _, s in ipairs(staged) do
    if not have[s.lic.skuId] then s.sku.consumedUnits = (s.sku.consumedUnits or 0) + 1 end
    have[s.lic.skuId] = s.lic
    local disabled = {}
    for _, d in ipairs(s.lic.disabledPlans) do disabled[d] = true end
    exchange_effects(ctx, u, s.sku, disabled)
  end
  local list = {}
  for _, l in pairs(have) do list[#list + 1] = l end
  table.sort(list, function(a, b) return a.skuId < b.skuId end)
  u.assignedLicenses = list
  local res = store.entity(ctx, "user", "users", u, 200)
  res.body["@odata.context"] = store.ROOT .. "/$metadata#users/$entity"
  return res
end
route("POST", "users/:id/assignLicense", assign_license)

-- DELETE /users/{id} → 204 (into deleted items in Entra ID: delta reports it as changed); the
-- user's Exchange recipient goes with it.
store.delete_route(route, "users/:id", "user", function(ctx, u)
  local r = store.recipient_of(ctx, u.id)
  if r then require("t2t.sim.model").remove_recipient(ctx.tenant, r.Guid) end
end)

route("GET", "users/:id/memberOf", function(ctx, p)
  local u = store.must_resolve(ctx, "user", p.id)
  local out = {}
  for gid, set in pairs(ctx.tenant.dir.members or {}) do
    if set[u.id] then
      local g = store.get(ctx, gid)
      if g then out[#out + 1] = g end
    end
  end
  return store.collection(ctx, "directoryObject", "directoryObjects", out, { mixed = true })
end)

-- Groups ------------------------------------------------------------------------------------

local CANNOT_CREATE = "Cannot Create a mail-enabled security groups and or distribution list."
local CANNOT_UPDATE = "Cannot Update a mail-enabled security groups and or distribution list."

local function is_unified(g) return util.contains(g.groupTypes, "Unified") end

-- Mail-enabled security groups and distribution lists are Exchange-mastered: read-only here.
local function exchange_mastered(g)
  return g.mailEnabled == true and not is_unified(g)
end

local function members(ctx, gid)
  local dir = ctx.tenant.dir
  dir.members = dir.members or {}
  dir.members[gid] = dir.members[gid] or {}
  return dir.members[gid]
end

local function bind_ids(ctx, urls, what)
  if type(urls) == "string" then urls = { urls } end
  if type(urls) ~= "table" then util.bad("Invalid value for " .. what .. "@odata.bind.") end
  local ids = {}
  for _, url in ipairs(urls) do
    local id = type(url) == "string" and url:match("([^/%(%)']+)'?%)?$")
    if not id then util.bad("Invalid URL in " .. what .. "@odata.bind: " .. tostring(url)) end
    store.must(ctx, id)
    ids[#ids + 1] = id
  end
  return ids
end

-- Role-assignable groups hold no groups (roles-and-mailauth.md §3) [inferred message].
local function no_nesting(ctx, g, ids)
  if not g.isAssignableToRole then return end
  for _, id in ipairs(ids) do
    if store.kind(store.get(ctx, id)) == "group" then
      util.bad("A group cannot be added as a member of a role-assignable group: role-assignable groups "
        .. "can't be nested.")
    end
  end
end

local function member_write_check(ctx, g, ids)
  if exchange_mastered(g) then util.bad(CANNOT_UPDATE) end
  if ids then no_nesting(ctx, g, ids) end
end

store.list_route(route, "groups", "group")

route("GET", "groups/$count", function(ctx)
  return M.count(ctx, "group")
end)

-- POST /groups (wire.md §3.8) → 201; mail-enabled security / distribution → 400.
-- A new group from a POST body (or an upsert's, with its uniqueName) -> 201.
local function create_group(ctx, body)
  types.check_body("group", body)
  if body.uniqueName ~= nil and store.by_unique_name(ctx, "group", tostring(body.uniqueName)) then
    util.fail(409, "Request_MultipleObjectsWithSameKeyValue", "Another object with the same value for " ..
      "property uniqueName already exists.")
  end
  for _, k in ipairs({ "displayName", "mailEnabled", "mailNickname", "securityEnabled" }) do
    if body[k] == nil then util.bad("Property '" .. k .. "' is required.") end
  end
  local g = util.copy(body)
  g.groupTypes = g.groupTypes or {}
  if g.mailEnabled and not is_unified(g) then util.bad(CANNOT_CREATE) end
  if not g.mailEnabled and not g.securityEnabled then
    util.bad("A group must be mail-enabled or security-enabled.")
  end
  if g.isAssignableToRole then
    if not g.securityEnabled or util.contains(g.groupTypes, "DynamicMembership") then
      util.bad("Role-assignable groups must be security-enabled and cannot have dynamic membership.")
    end
    local pim = require "t2t.sim.pim"
    if pim.assignable_groups(ctx.tenant) >= pim.ASSIGNABLE_LIMIT then   -- §3 [inferred message]
      util.bad(string.format("The tenant already has the maximum of %d role-assignable groups.",
        pim.ASSIGNABLE_LIMIT))
    end
  end
  local member_ids = body["members@odata.bind"] and bind_ids(ctx, body["members@odata.bind"], "members") or {}
  no_nesting(ctx, g, member_ids)
  local owner_ids = body["owners@odata.bind"] and bind_ids(ctx, body["owners@odata.bind"], "owners") or {}
  if #member_ids + #owner_ids > 20 then
    util.bad("A maximum of 20 relationships can be added in one request.")
  end
  for k in pairs(g) do if k:find("@", 1, true) then g[k] = nil end end
  g["@odata.type"] = "#microsoft.graph.group"
  g.id = util.guid(ctx.sim)
  g.createdDateTime = now(ctx)
  g.proxyAddresses = {}
  g.securityIdentifier = "S-1-12-1-" .. ctx.sim.rng:int(1, 2 ^ 31) .. "-" .. ctx.sim.rng:int(1, 2 ^ 31)
  if is_unified(g) then
    g.mail = g.mailNickname .. "@" .. ctx.tenant.initial_domain
    g.proxyAddresses = { "SMTP:" .. g.mail }
    g.visibility = g.visibility or "Public"
  end
  store.add(ctx, g)
  for _, id in ipairs(member_ids) do store.add_member(ctx, g.id, id) end
  if #owner_ids > 0 then g._owners = owner_ids end
  return store.entity(ctx, "group", "groups", g, 201)
end

route("POST", "groups", function(ctx) return create_group(ctx, ctx.json or {}) end)

route("GET", "groups/:id", function(ctx, p)
  return store.entity(ctx, "group", "groups", store.must_resolve(ctx, "group", p.id))
end)

-- PATCH /groups(uniqueName='x') with "Prefer: create-if-missing" is Graph's upsert (201 on create).
route("PATCH", "groups/:id", function(ctx, p)
  local g, unique = store.upsert_target(ctx, "group", p.id)
  local body = ctx.json or {}
  if not g then
    body = util.copy(body)
    body.uniqueName = unique
    return create_group(ctx, body)
  end
  types.check_body("group", body)
  if exchange_mastered(g) then util.bad(CANNOT_UPDATE) end
  if body.isAssignableToRole ~= nil then
    util.bad("Property 'isAssignableToRole' cannot be changed after the group is created.")
  end
  local add = body["members@odata.bind"]
  if add then
    local ids = bind_ids(ctx, add, "members")
    member_write_check(ctx, g, ids)
    if #ids > 20 then util.bad("A maximum of 20 relationships can be added in one request.") end
    local set = members(ctx, g.id)
    for _, id in ipairs(ids) do
      if set[id] then
        util.bad("One or more added object references already exist for the following modified "
          .. "properties: 'members'.")
      end
    end
    for _, id in ipairs(ids) do store.add_member(ctx, g.id, id) end
  end
  store.apply_patch(g, body)
  store.touch(ctx, g)
  return store.no_content()
end)

store.delete_route(route, "groups/:id", "group", function(_, g)
  if exchange_mastered(g) then util.bad(CANNOT_UPDATE) end
end)

local function member_list(ctx, g)
  local out = {}
  for id in pairs(members(ctx, g.id)) do
    local o = store.get(ctx, id)
    if o then out[#out + 1] = o end
  end
  return out
end

route("GET", "groups/:id/members", function(ctx, p)
  local g = store.must_resolve(ctx, "group", p.id)
  return store.collection(ctx, "directoryObject", "directoryObjects", member_list(ctx, g), { mixed = true })
end)

route("GET", "groups/:id/transitiveMembers", function(ctx, p)
  local g = store.must_resolve(ctx, "group", p.id)
  local seen, out = { [g.id] = true }, {}
  local function walk(gid)
    for id in pairs(members(ctx, gid)) do
      if not seen[id] then
        seen[id] = true
        local o = store.get(ctx, id)
        if o then
          out[#out + 1] = o
          if store.kind(o) == "group" then walk(o.id) end
        end
      end
    end
  end
  walk(g.id)
  return store.collection(ctx, "directoryObject", "directoryObjects", out, { mixed = true })
end)

route("GET", "groups/:id/members/$count", function(ctx, p)
  local g = store.must_resolve(ctx, "group", p.id)
  return M.count(ctx, nil, member_list(ctx, g))
end)

-- POST /groups/{id}/members/$ref {"@odata.id": ".../directoryObjects/{id}"} → 204
route("POST", "groups/:id/members/$ref", function(ctx, p)
  local g = store.must_resolve(ctx, "group", p.id)
  member_write_check(ctx, g)
  local body = ctx.json or {}
  local url = body["@odata.id"]
  if type(url) ~= "string" then util.bad("Invalid request body: '@odata.id' is required.", "BadRequest") end
  local id = url:match("([^/%(%)']+)'?%)?$")
  store.must(ctx, id)
  no_nesting(ctx, g, { id })
  local set = members(ctx, g.id)
  if set[id] then
    util.bad("One or more added object references already exist for the following modified "
      .. "properties: 'members'.")
  end
  store.add_member(ctx, g.id, id)
  return store.no_content()
end)

route("DELETE", "groups/:id/members/:mid/$ref", function(ctx, p)
  local g = store.must_resolve(ctx, "group", p.id)
  member_write_check(ctx, g)
  local set = members(ctx, g.id)
  if not set[p.mid] then util.not_found(p.mid) end
  store.remove_member(ctx, g.id, p.mid)
  return store.no_content()
end)

-- Owners of groups, applications and service principals: list, add ($ref), remove ----------

local OWNER_SETS = { groups = "group", applications = "application",
                     servicePrincipals = "servicePrincipal" }   -- authorization: t2t.sim.authz

for set, kind in pairs(OWNER_SETS) do
  route("GET", set .. "/:id/owners", function(ctx, p)
    local o = store.must_resolve(ctx, kind, p.id)
    local list = {}
    for _, id in ipairs(o._owners or {}) do
      local x = store.get(ctx, id)
      if x then list[#list + 1] = x end
    end
    return store.collection(ctx, "directoryObject", "directoryObjects", list, { mixed = true })
  end)
  route("POST", set .. "/:id/owners/$ref", function(ctx, p)
    local o = store.must_resolve(ctx, kind, p.id)
    local url = (ctx.json or {})["@odata.id"]
    if type(url) ~= "string" then util.bad("Invalid request body: '@odata.id' is required.", "BadRequest") end
    local id = url:match("([^/%(%)']+)'?%)?$")
    store.must(ctx, id)
    o._owners = o._owners or {}
    if util.contains(o._owners, id) then
      util.bad("One or more added object references already exist for the following modified "
        .. "properties: 'owners'.")
    end
    table.insert(o._owners, id)
    store.touch(ctx, o)
    return store.no_content()
  end)
  route("DELETE", set .. "/:id/owners/:oid/$ref", function(ctx, p)
    local o = store.must_resolve(ctx, kind, p.id)
    for i, id in ipairs(o._owners or {}) do
      if id == p.oid then
        table.remove(o._owners, i)
        store.touch(ctx, o)
        return store.no_content()
      end
    end
    util.not_found(p.oid)
  end)
end

-- Invitations (wire.md §3.7) ------------------------------------------------------------------

route("POST", "invitations", function(ctx)
  local body = ctx.json or {}
  types.check_body("invitation", body)
  local email, redirect = body.invitedUserEmailAddress, body.inviteRedirectUrl
  if type(email) ~= "string" or not email:match("^[^@%s]+@[^@%s]+$") then
    util.bad("Property invitedUserEmailAddress is required and must be a valid email address.",
      "BadRequest")
  end
  if type(redirect) ~= "string" then util.bad("Property inviteRedirectUrl is required.", "BadRequest") end
  if ctx.tenant.b2b_invitations_disabled then
    util.fail(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
  end
  local guest
  for _, u in ipairs(store.list(ctx, "user")) do
    if type(u.mail) == "string" and u.mail:lower() == email:lower() then guest = u end
  end
  if not guest then
    guest = {
      ["@odata.type"] = "#microsoft.graph.user", id = util.guid(ctx.sim),
      displayName = body.invitedUserDisplayName or email:match("^[^@]+"), mail = email,
      userPrincipalName = email:gsub("@", "_") .. "#EXT#@" .. ctx.tenant.initial_domain,
      userType = body.invitedUserType or "Guest", externalUserState = "PendingAcceptance",
      accountEnabled = true, createdDateTime = now(ctx), otherMails = { email },
      proxyAddresses = { "SMTP:" .. email }, assignedLicenses = {}, businessPhones = {},
      creationType = "Invitation",
    }
    store.add(ctx, guest)
  end
  local inv = {
    id = util.guid(ctx.sim),
    inviteRedeemUrl = "https://login.microsoftonline.com/redeem?rd=https%3a%2f%2finvitations.microsoft.com"
      .. "%2fredeem%2f%3ftenant%3d" .. ctx.tenant.id .. "%26user%3d" .. guest.id,
    invitedUserDisplayName = body.invitedUserDisplayName or util.null,
    invitedUserType = body.invitedUserType or "Guest",
    invitedUserEmailAddress = email,
    sendInvitationMessage = body.sendInvitationMessage == true,
    inviteRedirectUrl = redirect,
    resetRedemption = body.resetRedemption == true,
    status = "PendingAcceptance",
    invitedUserMessageInfo = body.invitedUserMessageInfo or
      { messageLanguage = util.null, customizedMessageBody = util.null, ccRecipients = util.EMPTY },
    invitedUser = { id = guest.id },
  }
  if body.sendInvitationMessage then
    ctx.tenant.sent_invitations = ctx.tenant.sent_invitations or {}
    table.insert(ctx.tenant.sent_invitations, { to = email, redirect = redirect, at = ctx.sim:now(),
      message = type(body.invitedUserMessageInfo) == "table" and body.invitedUserMessageInfo.customizedMessageBody or nil })
  end
  local out = util.copy(inv)
  out["@odata.context"] = store.ROOT .. "/$metadata#invitations/$entity"
  return { status = 201, body = out }
end)

-- GET /{set}/$count: text/plain, ConsistencyLevel: eventual required (wire.md §3.13).
function M.count(ctx, kind, items)
  if not ctx.consistency_eventual then
    util.fail(400, "Request_BadRequest", "Count is not currently supported without the "
      .. "ConsistencyLevel:eventual header.")
  end
  local accept = ctx.req_headers and ctx.req_headers["accept"]
  if type(accept) == "string" and accept:find("application/json", 1, true)
      and not accept:find("text/plain", 1, true) and not accept:find("*/*", 1, true) then
    util.fail(415, "UnsupportedMediaType", "The $count segment is served as text/plain.")
  end
  items = items or store.list(ctx, kind)
  local query = require "t2t.sim.graph.query"
  local pred = query.filter(ctx.q["$filter"], kind or "directoryObject")
  local found = query.search(ctx.q["$search"], kind)
  local n = 0
  for _, o in ipairs(items) do
    if (not pred or pred(o)) and (not found or found(o)) then n = n + 1 end
  end
  return { status = 200, headers = { ["content-type"] = "text/plain" }, body = tostring(n) }
end

return M
