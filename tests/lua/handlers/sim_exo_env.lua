-- Shared set-up for the tests that call the simulated InvokeCommand service directly
-- (handle(sim, req)) with a stub sim over a seeded pair (not a handler).
local cjson = require "cjson"
local exo = require "t2t.exo"
local model = require "t2t.sim.model"
local seed = require "t2t.sim.seed"
local svc = require "t2t.sim.exo"

local EXADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"

local function new_sim(users)
  local state = seed.pair { users = users or 40, seed = 7 }
  local sim = { state = state, rng = model.rng(42), clock = seed.BASE_TIME + 86400, faults = {} }
  function sim:now() return self.clock end
  function sim:visible(obj)
    return not (self.lag and obj.created and obj.created > self.clock - self.lag)
  end
  function sim:auth(req)
    if not req.claims then return nil, { status = 401, headers = {}, body = "" } end
    return req.claims
  end
  sim.src = state.tenants[state.pair.source]
  sim.tgt = state.tenants[state.pair.target]
  return sim
end

local function claims(t, o)
  o = o or {}
  return { tid = t.id, roles = o.roles or { "Exchange.ManageAsApp" }, wids = o.wids or { EXADMIN } }
end

-- call(sim, tenant, cmdlet, params, opts) -> status, decoded body (or raw), response
local function call(sim, t, cmdlet, params, o)
  o = o or {}
  local body = o.body or exo.json_encode { CmdletInput = { CmdletName = cmdlet,
    Parameters = params and next(params) and params or cjson.decode("{}") } }
  local req = { method = "POST", path = o.path or ("/adminapi/beta/" .. (o.tenant_key or t.id) ..
    "/InvokeCommand"), host = "outlook.office365.com", body = body, query = o.query or {},
    headers = { prefer = o.prefer }, claims = o.claims == nil and claims(t, o) or o.claims or nil,
    delay = o.delay }
  local r = svc.handle(sim, req)
  local doc = r.body
  if type(doc) == "string" and doc:find("^%s*{") then doc = cjson.decode(doc) end
  return r.status, doc, r
end

local function detail(doc)
  local m = doc.error.details[1].message
  local id, typ, text = m:match("^(Ex%x+)|([^|]+)|(.*)$")
  return typ, text, id
end

local function ok(sim, t, cmdlet, params, o)
  local st, doc = call(sim, t, cmdlet, params, o)
  if st ~= 200 then error(cmdlet .. " -> " .. st .. " " .. cjson.encode(doc), 2) end
  return doc.value, doc
end

local MAILBOX_MIGRATION = "f7264778-fba9-422d-8e9e-2675a2c4b513"
local EXO_APPID = "00000002-0000-0ff1-ce00-000000000000"
local APP_ID, SECRET = "6f1c5d1e-aaaa-4bbb-8ccc-123456789abc", "sim~secret~value~0123"

-- Consented app, scope group, both organization relationships and the endpoint "ep".
local function setup_cross_tenant(sim)
  local src, tgt = sim.src, sim.tgt
  model.add_object(sim.state, tgt, { ["@odata.type"] = model.ODATA.application, id = sim.rng:guid(),
    appId = APP_ID, displayName = "xtm", passwordCredentials = { { keyId = sim.rng:guid(),
    _secret = SECRET, endDateTime = sim.clock + 86400 } } })
  local sp = model.add_object(sim.state, src, { ["@odata.type"] = model.ODATA.servicePrincipal,
    id = sim.rng:guid(), appId = APP_ID, appOwnerOrganizationId = tgt.id, appRoles = {} })
  model.add_app_role_assignment(src, { id = sim.rng:guid(), principalId = sp.id,
    resourceId = model.sp_by_appid(src, EXO_APPID).id, appRoleId = MAILBOX_MIGRATION })
  ok(sim, src, "New-DistributionGroup", { Name = "MigScope", Type = "Security" })
  ok(sim, src, "New-OrganizationRelationship", { Name = "to-fab", DomainNames = { tgt.id },
    Enabled = true, MailboxMoveEnabled = true, MailboxMoveCapability = "RemoteOutbound",
    OAuthApplicationId = APP_ID, MailboxMovePublishedScopes = { "MigScope" } })
  ok(sim, tgt, "New-OrganizationRelationship", { Name = "from-con", DomainNames = { src.id },
    Enabled = true, MailboxMoveEnabled = true, MailboxMoveCapability = "Inbound" })
  ok(sim, tgt, "New-MigrationEndpoint", { Name = "ep", RemoteServer = "outlook.office.com",
    RemoteTenant = src.initial_domain, Credentials = { UserName = APP_ID, Password = SECRET },
    ExchangeRemoteMove = true, ApplicationId = APP_ID })
end

-- A SecureString as the module sends it: sealed with the simulated module's key (wire.md §2.4).
local function seal(sim, plain)
  local crypto = require "t2t.crypto"
  return crypto.base64_encode(model.securestring_key(sim.state, true):public_key():encrypt(plain))
end

return { new_sim = new_sim, claims = claims, call = call, detail = detail, ok = ok, seal = seal,
         EXADMIN = EXADMIN, setup_cross_tenant = setup_cross_tenant, APP_ID = APP_ID, SECRET = SECRET }
