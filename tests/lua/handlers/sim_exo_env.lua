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

-- A SecureString as the module sends it: sealed with the simulated module's key (wire.md §2.4).
local function seal(sim, plain)
  local crypto = require "t2t.crypto"
  return crypto.base64_encode(model.securestring_key(sim.state, true):public_key():encrypt(plain))
end

return { new_sim = new_sim, claims = claims, call = call, detail = detail, ok = ok, seal = seal,
         EXADMIN = EXADMIN }
