-- t2t.sim.graph: the simulated Microsoft Graph v1.0 (host graph.microsoft.com).
-- handle(sim, req) per docs/simulator.md: authenticate, rate-limit, route /v1.0/... to the
-- resource modules under t2t.sim.graph.*, answer in Graph's shapes (wire.md §3), $batch.
local util = require "t2t.sim.graph.util"
local types = require "t2t.sim.graph.types"
local store = require "t2t.sim.graph.store"
local authz = require "t2t.sim.authz"

local M = {}

local AUDIENCES = { "https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000" }
local GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"

-- Routes: { method, segment patterns (":x" captures one segment), fn(ctx, params) }.
local routes = {}
local function register(mod)
  for _, r in ipairs(mod.routes) do routes[#routes + 1] = r end
end
register(require "t2t.sim.graph.apps")
register(require "t2t.sim.graph.dir")
register(require "t2t.sim.graph.org")
register(require "t2t.sim.graph.roles")
register(require "t2t.sim.graph.pim_requests")
register(require "t2t.sim.graph.pim_policies")
register(require "t2t.sim.graph.delta")
register(require "t2t.sim.graph.migrations")     -- beta: the cross-tenant migration job API

-- Split "/v1.0/servicePrincipals(appId='x')/appRoleAssignedTo" into segments; key forms
-- set('id') and set(alt='v') become the segments set, "id" / "alt=v".
local function segments(path)
  local segs = {}
  for raw in path:gmatch("[^/]+") do
    local s = util.path_decode(raw)
    local set, key = s:match("^([%w%$]+)%((.*)%)$")
    if s:match("^%w+%(%)$") then
      segs[#segs + 1] = s:sub(1, -3)       -- a function call: delta() is delta
    elseif set then
      segs[#segs + 1] = set
      local alt, v = key:match("^(%w+)%s*=%s*'(.*)'$")
      if alt then segs[#segs + 1] = alt .. "=" .. v:gsub("''", "'")
      else segs[#segs + 1] = (key:match("^'(.*)'$") or key):gsub("''", "'") end
    else
      segs[#segs + 1] = s
    end
  end
  return segs
end

local function match_route(method, segs)
  local method_seen = false
  for _, r in ipairs(routes) do
    local pat = r[2]
    if #pat == #segs then
      local params, ok = {}, true
      for i, p in ipairs(pat) do
        if p:sub(1, 1) == ":" then
          -- "$count", "delta", "getByIds": a fixed segment of Graph's metadata is never an id
          if (segs[i]:sub(1, 1) == "$" and segs[i] ~= "$ref") or types.is_literal(segs, i) then
            ok = false; break
          end
          params[p:sub(2)] = segs[i]
        elseif p:lower() ~= segs[i]:lower() then
          ok = false; break
        end
      end
      if ok then
        if r[1] == method then return r, params end
        method_seen = true
      end
    end
  end
  return nil, method_seen
end

-- Graph error response (§3.0 shape, request ids echoed).
local function error_response(ctx, status, code, message, headers)
  local h = headers or {}
  h["content-type"] = "application/json"
  return {
    status = status,
    headers = h,
    body = { error = { code = code, message = message, innerError = {
      date = util.iso(ctx.sim:now()), ["request-id"] = ctx.request_id,
      ["client-request-id"] = ctx.client_request_id } } },
  }
end

-- The headers of a Graph 429 (wire.md §3.15): Retry-After and the identity service's
-- throttling headers (scope, information, the request's resource units).
function M.throttle_headers(claims, wait)
  local c = claims or {}
  return { ["retry-after"] = tostring(wait),
           ["x-ms-throttle-scope"] = "Tenant_Application/ReadWrite/" .. tostring(c.tid or "unknown")
             .. "/" .. tostring(c.appid or c.azp or "unknown"),
           ["x-ms-throttle-information"] = "ResourceUnitLimitExceeded",
           ["x-ms-resource-unit"] = "1" }
end

-- Per (tenant, app) Graph rate limit from sim.faults.graph_rate (requests per 10 s).
local windows = setmetatable({}, { __mode = "k" })
local function throttled(ctx)
  local rate = ctx.sim.faults and tonumber(ctx.sim.faults.graph_rate)
  if not rate or rate <= 0 then return nil end
  local now = ctx.sim:now()
  local w = windows[ctx.sim]
  if not w then w = {}; windows[ctx.sim] = w end
  local key = ctx.tenant.id .. "/" .. tostring(ctx.claims.appid or ctx.claims.azp or "?")
  local slot = w[key]
  local start = math.floor(now / 10) * 10
  if not slot or slot.start ~= start then slot = { start = start, n = 0 }; w[key] = slot end
  slot.n = slot.n + 1
  if slot.n > rate then return math.max(1, math.ceil(start + 10 - now)) end
  return nil
end

-- Run one request (top-level or a $batch item) inside an authenticated context.
-- Returns {status, headers, body(table|string)}.
-- Is the segment the caller's own tenant (myorganization, its id or one of its domains)?
-- Graph takes /v1.0/myorganization/users and /v1.0/{tenant id}/users for /v1.0/users.
local function own_tenant(base, seg)
  local s = seg:lower()
  if s == "myorganization" or s == base.tenant.id then return true end
  if s == base.tenant.initial_domain then return true end
  for _, d in ipairs(base.tenant.domains or {}) do
    if type(d.id) == "string" and d.id:lower() == s then return true end
  end
  return false
end

-- Query option names are case-insensitive ($Select, $FILTER): keep them as "$lower".
local function lower_options(q)
  local out = {}
  for k, v in pairs(q or {}) do
    if type(k) == "string" and k:sub(1, 1) == "$" then out[k:lower()] = v else out[k] = v end
  end
  return out
end

local function dispatch(base, method, path, q, headers, body)
  local ctx = setmetatable({ method = method, q = lower_options(q), req_headers = headers,
                             json = body }, { __index = base })
  local wait = throttled(ctx)
  if wait then
    return error_response(ctx, 429, "TooManyRequests",
      "Too many requests. Retry after " .. wait .. " seconds.", M.throttle_headers(ctx.claims, wait))
  end
  local segs = segments(path)
  local version = segs[1]
  if version ~= "v1.0" and version ~= "beta" then
    return error_response(ctx, 400, "BadRequest", "Invalid version: " .. tostring(segs[1]))
  end
  table.remove(segs, 1)
  local raw = {}
  for s in path:gmatch("[^/]+") do raw[#raw + 1] = s end
  table.remove(raw, 1)
  if #segs > 1 and own_tenant(base, segs[1]) then
    table.remove(segs, 1)
    table.remove(raw, 1)
  end
  ctx.path = "/" .. table.concat(raw, "/")
  local cl
  for k, v in pairs(headers or {}) do
    if type(k) == "string" and k:lower() == "consistencylevel" then cl = v end
  end
  ctx.consistency_eventual = type(cl) == "string" and cl:lower() == "eventual"
  if #segs == 0 then
    return { status = 200, body = { ["@odata.context"] = store.ROOT .. "/$metadata", value = util.EMPTY } }
  end
  local route, params = match_route(method, segs)
  -- beta routes (the migration job API) answer only under /beta, and /beta only them
  if route and (route.beta and version ~= "beta") then route, params = nil, nil end
  if version == "beta" and not (route and route.beta) then
    return error_response(ctx, 501, "NotImplemented", "The simulator serves /beta only for " ..
      "solutions/migrations/crossTenantMigrationJobs (Graph v1.0 otherwise).")
  end
  local ok, res = pcall(function()
    if not route then
      if params then
        util.fail(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request uri.")
      end
      local entry = types.match_path(segs)
      if entry then
        util.fail(501, "NotImplemented", string.format(
          "The simulator does not implement %s %s (a valid Graph v1.0 path).", method, entry[1]))
      end
      local bad = segs[#segs]
      for i = 1, #segs do
        local sub = {}
        for j = 1, i do sub[j] = segs[j] end
        if not types.match_path(sub) and not match_route("GET", sub) then bad = segs[i]; break end
      end
      util.fail(400, "BadRequest", string.format("Resource not found for the segment '%s'.", bad))
    end
    authz.graph(ctx, route, params)         -- the one authorization check (t2t.sim.authz)
    return route[3](ctx, params)
  end)
  if not ok then
    if util.is_error(res) then
      return error_response(ctx, res.status, res.code, res.message, res.headers)
    end
    error(res, 0)
  end
  return res
end

-- A header name as Graph spells it inside $batch responses ("Content-Type", "OData-Version"):
-- clients such as the Graph JS SDK look the names up with that case.
local function canonical_header(k)
  if k:lower() == "odata-version" then return "OData-Version" end
  return (k:lower():gsub("^%l", string.upper):gsub("%-%l", string.upper))
end

-- A $batch item's url: relative to the version root; "/v1.0/..." and absolute Graph URLs are
-- taken too (the Graph JS SDK sends "/v1.0/users").
local function batch_url(url)
  url = url:gsub("^[Hh][Tt][Tt][Pp][Ss]://[^/]+", "")
  if url:sub(1, 1) ~= "/" then url = "/" .. url end
  url = url:gsub("^/[Vv]1%.0/", "/")
  return url
end

local function lower_headers(h)
  local out = {}
  for k, v in pairs(h or {}) do if type(k) == "string" then out[k:lower()] = v end end
  return out
end

-- POST /v1.0/$batch (wire.md §3.14): ≤ 20 requests, dependsOn (424 on a failed dependency),
-- per-item status and throttling, responses in an order that is not the request order.
local function batch(base, body)
  local reqs = type(body) == "table" and body.requests
  if type(reqs) ~= "table" then util.bad("Invalid batch payload format.", "BadRequest") end
  if #reqs > 20 then
    util.bad("Number of batch request steps exceeds the maximum of 20.", "BadRequest")
  end
  local by_id, order = {}, {}
  for i, r in ipairs(reqs) do
    if type(r) ~= "table" or type(r.id) ~= "string" or type(r.method) ~= "string"
        or type(r.url) ~= "string" then
      util.bad("Invalid batch payload format.", "BadRequest")
    end
    local key = r.id:lower()
    if by_id[key] then util.bad("Batch request contains duplicate id: " .. r.id, "BadRequest") end
    if r.body ~= nil and not (type(r.headers) == "table" and lower_headers(r.headers)["content-type"]) then
      util.bad("Write request id : " .. r.id .. " does not contain Content-Type header or body.",
        "BadRequest")
    end
    by_id[key] = r
    order[i] = r
  end
  for _, r in ipairs(order) do
    for _, d in ipairs(r.dependsOn or {}) do
      if not by_id[tostring(d):lower()] then
        util.bad("Request " .. r.id .. " depends on a request that is not in the batch.", "BadRequest")
      end
    end
  end
  local results, state = {}, {}
  local function run(r)
    local key = r.id:lower()
    if state[key] == "done" then return results[key] end
    if state[key] == "running" then util.bad("Batch dependsOn has a cycle at " .. r.id, "BadRequest") end
    state[key] = "running"
    local failed_dep
    for _, d in ipairs(r.dependsOn or {}) do
      local dr = run(by_id[tostring(d):lower()])
      if dr.status >= 400 then failed_dep = true end
    end
    local res
    if failed_dep then
      res = error_response(base, 424, "FailedDependency", "The request was not run because a "
        .. "request it depends on failed.")
    else
      local path, q = util.split_query({ path = "/v1.0" .. batch_url(r.url) })
      res = dispatch(base, r.method:upper(), path, q, r.headers or {}, r.body)
    end
    local headers = {}
    for k, v in pairs(res.headers or {}) do headers[canonical_header(k)] = v end
    if res.body and not headers["Content-Type"] then
      headers["Content-Type"] = "application/json;odata.metadata=minimal;odata.streaming=true;"
        .. "IEEE754Compatible=false;charset=utf-8"
    end
    local item = { id = r.id, status = res.status, headers = next(headers) and headers or nil,
                   body = res.body }
    results[key] = item
    state[key] = "done"
    return item
  end
  local out = {}
  for _, r in ipairs(order) do out[#out + 1] = run(r) end
  -- responses can come back in any order (§3.14): a seeded shuffle makes clients cope
  for i = #out, 2, -1 do
    local j = base.sim.rng:int(1, i)
    out[i], out[j] = out[j], out[i]
  end
  return { status = 200, body = { responses = util.array(out) } }
end

-- Permissions the token carries: application roles plus delegated scopes.
local function permissions(claims)
  local perms, all = {}, false
  for _, r in ipairs(claims.roles or {}) do perms[r] = true end
  if type(claims.scp) == "string" then
    for s in claims.scp:gmatch("%S+") do perms[s] = true end
  end
  if perms["Directory.AccessAsUser.All"] then
    for _, w in ipairs(claims.wids or {}) do if w == GLOBAL_ADMIN then all = true end end
  end
  return perms, all
end

-- The OData control information, in the order Graph writes it: before any property.
local CONTROL = { "@odata.context", "@odata.type", "@odata.id", "@odata.count", "@odata.nextLink",
                  "@odata.deltaLink" }

-- JSON of a response body with its control information first (as OData JSON requires and
-- Graph does); with odata.metadata=none, @odata.context and @odata.type are left out.
local function encode(body, none)
  if none then
    body["@odata.context"], body["@odata.type"] = nil, nil
    if type(body.value) == "table" then
      for _, v in ipairs(body.value) do if type(v) == "table" then v["@odata.type"] = nil end end
    end
  end
  local head = {}
  for _, k in ipairs(CONTROL) do
    local v = body[k]
    if v ~= nil then
      head[#head + 1] = util.encode(k) .. ":" .. util.encode(v)
      body[k] = nil
    end
  end
  local rest = util.encode(body)
  if #head == 0 then return rest end
  if rest == "{}" or rest == "[]" then return "{" .. table.concat(head, ",") .. "}" end
  return "{" .. table.concat(head, ",") .. "," .. rest:sub(2)
end

local function finish(base, res)
  local h = res.headers or {}
  h["request-id"] = base.request_id
  h["client-request-id"] = base.client_request_id
  h["odata-version"] = "4.0"
  h["x-ms-ags-diagnostic"] = h["x-ms-ags-diagnostic"] or
    '{"ServerInfo":{"DataCenter":"Simulated","Slice":"E","Ring":"5","ScaleUnit":"000"}}'
  local body = res.body
  if type(body) == "table" then
    local accept = base.req and util.header(base.req, "accept") or ""
    local none = accept:lower():find("odata.metadata=none", 1, true) ~= nil
    body = encode(body, none)
    h["content-type"] = h["content-type"] or ("application/json;odata.metadata=" ..
      (none and "none" or "minimal") .. ";odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
  end
  return { status = res.status, headers = h, body = body }
end

function M.handle(sim, req)
  local path, q = util.split_query(req)
  local base = {
    sim = sim, req = req,
    request_id = sim.rng:guid(),
    client_request_id = util.header(req, "client-request-id"),
  }
  base.client_request_id = base.client_request_id or base.request_id
  local claims, deny = sim:auth(req, AUDIENCES)
  if not claims then
    local msg = "Access token is empty."
    if util.header(req, "authorization") then
      msg = "Access token validation failure. Invalid audience or signature."
      local b = deny and deny.body
      if type(b) == "string" then b = util.decode(b) end
      local m = type(b) == "table" and ((type(b.error) == "table" and b.error.message)
        or b.error_description or b.message)
      if type(m) == "string" then msg = m end
    end
    return finish(base, error_response(base, 401, "InvalidAuthenticationToken", msg,
      { ["www-authenticate"] = 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/'
        .. 'common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"' }))
  end
  base.claims = claims
  base.tenant = sim.state.tenants[claims.tid]
  if not base.tenant then
    return finish(base, error_response(base, 401, "InvalidAuthenticationToken",
      "Access token validation failure: unknown tenant."))
  end
  base.perms, base.all_access = permissions(claims)
  local body, berr = util.json_body(req)
  if berr then
    return finish(base, error_response(base, 400, "BadRequest", "Unable to read JSON request "
      .. "payload. Please ensure Content-Type header is set and payload is of valid JSON format."
      .. " (" .. tostring(berr) .. ")"))
  end
  local headers = lower_headers(req.headers)
  if path == "/v1.0/$batch" then
    if req.method ~= "POST" then
      return finish(base, error_response(base, 405, "Request_BadRequest",
        "Specified HTTP method is not allowed for the request uri."))
    end
    local ok, res = pcall(batch, base, body)
    if not ok then
      if not util.is_error(res) then error(res, 0) end
      res = error_response(base, res.status, res.code, res.message)
    end
    return finish(base, res)
  end
  return finish(base, dispatch(base, req.method, path, q, headers, body))
end

-- Injected faults (--faults 429=…,503=…) in Graph's shape, Retry-After in the headers.
local FAULT_CODES = { [429] = { "TooManyRequests", "Too many requests. Please retry after some time." },
  [503] = { "serviceNotAvailable", "Service unavailable. Please retry." },
  [504] = { "gatewayTimeout", "The gateway timed out." } }
function M.fault(sim, req, status)
  local f = FAULT_CODES[status]
  if not f then return nil end
  local base = { sim = sim, request_id = sim.rng:guid(),
                 client_request_id = util.header(req, "client-request-id") }
  base.client_request_id = base.client_request_id or base.request_id
  local ra = math.floor(sim.faults and sim.faults.retry_after or (status == 429 and 2 or 1))
  local h = { ["retry-after"] = tostring(ra) }
  if status == 429 then h = M.throttle_headers(sim:auth(req, AUDIENCES), ra) end
  return finish(base, error_response(base, status, f[1], f[2], h))
end

return M
