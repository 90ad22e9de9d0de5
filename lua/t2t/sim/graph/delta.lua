-- t2t.sim.graph.delta: GET /{users|groups|applications|servicePrincipals}/delta (also delta()).
-- The first round pages every object (@odata.nextLink with a $skiptoken) and ends with an
-- @odata.deltaLink; following the deltaLink later returns only the objects added or changed
-- since (their current state) and the removed ones as {"id", "@removed": {"reason":
-- "changed"}} (a deleted user or group is soft-deleted in Entra ID), then a new deltaLink.
-- Changes come from the change log t2t.sim.index keeps in the state (started by the first
-- delta query), so a deltaLink survives a state save and load.
local util = require "t2t.sim.graph.util"
local store = require "t2t.sim.graph.store"
local query = require "t2t.sim.graph.query"
local types = require "t2t.sim.graph.types"
local index = require "t2t.sim.index"

local M = {}
local route = store.routes(M)

local function b64d(s)
  local ok, crypto = pcall(require, "t2t.crypto")
  if not ok then return nil end
  local r = crypto.base64_decode((s:gsub("-", "+"):gsub("_", "/")) .. string.rep("=", (4 - #s % 4) % 4))
  return r
end

-- Tokens: "SIMd" + base64url(seq .. "/" .. last id) while paging the first round (the change
-- number it started at rides along), "SIMd" + base64url(seq) for a deltaLink.
local function token(seq, last) return "SIMd" .. util.b64(seq .. (last and ("/" .. last) or ""), true) end

local function read_token(tok)
  local raw = type(tok) == "string" and tok:match("^SIMd(.+)$") and b64d(tok:sub(5))
  local seq, last = (raw or ""):match("^(%d+)/?(.*)$")
  if not seq then util.bad("Invalid delta token or skip token.", "BadRequest") end
  return math.tointeger(tonumber(seq)), last ~= "" and last or nil
end

local function link(set, q, name, tok)
  local nq = {}
  if q["$select"] then nq["$select"] = q["$select"] end
  nq[name] = tok
  return store.ROOT .. "/" .. set .. "/delta?" .. util.query_string(nq)
end

local function project(kind, select, o)
  return types.project(kind, o, select)
end

-- The first round: every visible object of the kind, in id order, one page at a time.
local function first_round(ctx, set, kind, select, top, seq, after)
  local src = store.source(ctx, kind)
  local tok = after and query.skiptoken(after) or nil
  local page, more = query.page_ordered(src, top, nil, tok)
  local value = {}
  for i, o in ipairs(page) do value[i] = project(kind, select, o) end
  local body = { value = util.array(value) }
  if more then body["@odata.nextLink"] = link(set, ctx.q, "$skiptoken", token(seq, page[#page].id))
  else body["@odata.deltaLink"] = link(set, ctx.q, "$deltatoken", token(seq)) end
  return body
end

-- A later round: what the change log holds after change number `since`, for this kind.
local function changes(ctx, set, kind, select, since)
  local dir = ctx.tenant.dir
  local log, base = dir.delta_log or {}, dir.delta_base or 0
  local typ = "#microsoft.graph." .. kind
  local seen, value = {}, {}
  for i = math.max(1, since - base + 1), #log do
    local t, id = log[i]:match("^(%S+) (%S+)$")
    if t == typ and not seen[id] then
      seen[id] = true
      local o = store.get(ctx, id, kind)
      if o then value[#value + 1] = project(kind, select, o)
      elseif not dir.objects[id] then
        value[#value + 1] = { ["@odata.type"] = typ, id = id, ["@removed"] = { reason = "changed" } }
      end
    end
  end
  return { value = util.array(value),
           ["@odata.deltaLink"] = link(set, ctx.q, "$deltatoken", token(base + #log)) }
end

local SETS = { users = "user", groups = "group", applications = "application",
               servicePrincipals = "servicePrincipal" }   -- authorization: t2t.sim.authz

for set, kind in pairs(SETS) do
  route("GET", set .. "/delta", function(ctx)
    local q = ctx.q
    local select = query.select_list(q, kind)
    local body
    if q["$deltatoken"] then
      body = changes(ctx, set, kind, select, (read_token(q["$deltatoken"])))
    else
      local seq, after = index.track(ctx.tenant), nil
      if q["$skiptoken"] then seq, after = read_token(q["$skiptoken"]) end
      body = first_round(ctx, set, kind, select, query.top(q, 100, 999), seq, after)
    end
    local ctxname = set .. (select and ("(" .. table.concat(select, ",") .. ")") or "")
    body["@odata.context"] = store.ROOT .. "/$metadata#" .. ctxname .. "/$delta"
    return { status = 200, body = body }
  end)
end

return M
