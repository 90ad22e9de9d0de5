-- t2t.sim.graph.store: the simulated directory as Graph sees it — typed lookups over
-- tenant.dir.objects honouring replication lag (sim:visible), alternate keys, and the
-- collection response (filter, count, paging, projection).
local util = require "t2t.sim.graph.util"
local types = require "t2t.sim.graph.types"
local query = require "t2t.sim.graph.query"
local expand = require "t2t.sim.graph.expand"
local index = require "t2t.sim.index"

-- The shared model keeps side indexes (UPNs, consents, memberships) current through its add_*
-- helpers, so the token endpoint and EXO see Graph's writes at once.
local model = require "t2t.sim.model"

local M = {}

M.ROOT = "https://graph.microsoft.com/v1.0"

-- The simulated clock in whole seconds (model times are epoch seconds; types.project shows
-- them as ISO 8601).
function M.now(ctx) return math.floor(ctx.sim:now()) end

function M.kind(obj)
  local t = obj and obj["@odata.type"]
  return type(t) == "string" and t:match("graph%.(%w+)$") or nil
end

function M.visible(ctx, obj)
  if obj == nil then return false end
  local v = ctx.sim.visible
  if v then return v(ctx.sim, obj) and true or false end
  return true
end

function M.dir(ctx) return ctx.tenant.dir end

-- A visible directory object by id, optionally of a given kind.
function M.get(ctx, id, kind)
  local obj = ctx.tenant.dir.objects[id]
  if obj == nil and type(id) == "string" then obj = ctx.tenant.dir.objects[id:lower()] end
  if obj == nil or not M.visible(ctx, obj) then return nil end
  if kind and M.kind(obj) ~= kind then return nil end
  return obj
end

function M.must(ctx, id, kind)
  local obj = M.get(ctx, id, kind)
  if not obj then util.not_found(id) end
  return obj
end

-- The objects of `items` (an array, or an ordered source) for which keep holds.
local function matching(items, keep)
  local out = {}
  if items.ids then
    for _, id in ipairs(items.ids) do
      local o = items.get(id)
      if o and (not keep or keep(o)) then out[#out + 1] = o end
    end
    return out
  end
  if not keep then return items end
  for _, o in ipairs(items) do if keep(o) then out[#out + 1] = o end end
  return out
end

-- source(ctx, kind) -> the visible objects of a kind as an ordered source for M.collection:
-- {ids = sorted ids (t2t.sim.index), get = fn(id) -> visible object | nil}.  Paging it costs
-- O(log n + page), not a scan of the tenant.
function M.source(ctx, kind)
  local objects, vis, sim = ctx.tenant.dir.objects, ctx.sim.visible, ctx.sim
  return {
    ids = index.dir_ids(ctx.tenant, "#microsoft.graph." .. kind),
    get = function(id)
      local o = objects[id]
      if o and (not vis or vis(sim, o)) then return o end
      return nil
    end,
  }
end

-- touch(ctx, obj): a PATCH or membership change, for delta queries.
function M.touch(ctx, obj) index.changed(ctx.tenant, obj) end

-- Visible objects of a kind, as an array (in id order).
function M.list(ctx, kind)
  return matching(M.source(ctx, kind))
end

-- Directory writes go through the model (indexes); the tables a hand-built test state may
-- lack are made first.
function M.add(ctx, obj)
  obj.created = ctx.sim:now()
  local dir = ctx.tenant.dir
  dir.by_appid_sp = dir.by_appid_sp or {}
  ctx.sim.state.apps_by_appid = ctx.sim.state.apps_by_appid or {}
  return model.add_object(ctx.sim.state, ctx.tenant, obj)
end

-- Delete a directory object and what hangs off it (assignments, memberships).
function M.remove(ctx, id)
  return model.remove_object(ctx.sim.state, ctx.tenant, id)
end

function M.add_app_role_assignment(ctx, a)
  local dir = ctx.tenant.dir
  dir.app_role_assignments = dir.app_role_assignments or {}
  return model.add_app_role_assignment(ctx.tenant, a)
end

function M.remove_app_role_assignment(ctx, id)
  return model.remove_app_role_assignment(ctx.tenant, id)
end

function M.add_role_assignment(ctx, a)
  local dir = ctx.tenant.dir
  dir.role_assignments = dir.role_assignments or {}
  return model.add_role_assignment(ctx.tenant, a)
end

function M.add_member(ctx, gid, mid)
  local dir = ctx.tenant.dir
  dir.members = dir.members or {}
  M.touch(ctx, dir.objects[gid])
  return model.add_member(ctx.tenant, gid, mid)
end

function M.remove_member(ctx, gid, mid)
  local set = ctx.tenant.dir.members and ctx.tenant.dir.members[gid]
  if set then set[mid] = nil end
  M.touch(ctx, ctx.tenant.dir.objects[gid])
  model.reindex(ctx.tenant)
end

-- The EXO recipient of a Graph user (ExternalDirectoryObjectId), or nil.
function M.recipient_of(ctx, user_id)
  local exo = ctx.tenant.exo
  if not (exo and exo.recipients) then return nil end
  local r = model.find_recipient(ctx.tenant, user_id)
  if r and r.ExternalDirectoryObjectId == user_id then return r end
  return nil
end

function M.update_recipient(ctx, r, changes)
  return model.update_recipient(ctx.tenant, r, changes)
end

function M.add_recipient(ctx, r)
  ctx.tenant.exo.recipients = ctx.tenant.exo.recipients or {}
  return model.add_recipient(ctx.tenant, r)
end

function M.user_by_upn(ctx, upn)
  local u = model.user_by_upn(ctx.tenant, upn)
  if u and u["@odata.type"] == "#microsoft.graph.user" and M.visible(ctx, u) then return u end
  return nil
end

-- Resolve a key segment: a plain id, "alt=value" for alternate keys, a UPN for users.
function M.resolve(ctx, kind, key)
  local alt, val = key:match("^(%w+)=(.*)$")
  if alt then
    if alt == "appId" and kind == "servicePrincipal" then
      local id = ctx.tenant.dir.by_appid_sp and ctx.tenant.dir.by_appid_sp[val]
      return id and M.get(ctx, id, kind) or nil
    elseif alt == "appId" and kind == "application" then
      for _, a in ipairs(M.list(ctx, "application")) do
        if a.appId == val then return a end
      end
      return nil
    elseif alt == "userPrincipalName" and kind == "user" then
      return M.user_by_upn(ctx, val)
    elseif alt == "uniqueName" and (kind == "application" or kind == "group") then
      local o = M.by_unique_name(ctx, kind, val)
      return M.visible(ctx, o) and o or nil
    end
    util.bad(string.format("The alternate key '%s' is not supported on this entity set.", alt))
  end
  local obj = M.get(ctx, key, kind)
  if not obj and kind == "user" and key:find("@", 1, true) then obj = M.user_by_upn(ctx, key) end
  return obj
end

-- The object of `kind` whose uniqueName is `name` (case-insensitive), replicated or not:
-- the key is unique at write time, whatever a read may still see.
function M.by_unique_name(ctx, kind, name)
  local want, lname = "#microsoft.graph." .. kind, name:lower()
  for _, o in pairs(ctx.tenant.dir.objects) do
    if o["@odata.type"] == want and type(o.uniqueName) == "string" and o.uniqueName:lower() == lname then
      return o
    end
  end
end

-- Whether the request carries "Prefer: <token>" (a list of preferences, any case).
function M.prefers(ctx, token)
  for k, v in pairs(ctx.req_headers or {}) do
    if type(k) == "string" and k:lower() == "prefer" then
      for item in tostring(v):gmatch("[^,]+") do
        if item:match("^%s*(.-)%s*$"):lower() == token then return true end
      end
    end
  end
  return false
end

-- upsert_target(ctx, kind, key) for PATCH /{set}/{key}: the object to update; or, for
-- (uniqueName='x') naming nothing, nil and x when "Prefer: create-if-missing" asks to create it
-- (Graph's upsert: 201 with the new object), else 404 as for any missing key.  A uniqueName in
-- the body must match (it is set once, at creation).
function M.upsert_target(ctx, kind, key)
  local alt, val = key:match("^(%w+)=(.*)$")
  local body = ctx.json or {}
  if alt ~= "uniqueName" then
    local obj = M.must_resolve(ctx, kind, key)
    if body.uniqueName ~= nil and body.uniqueName ~= obj.uniqueName then
      util.bad("Property 'uniqueName' is read-only and cannot be changed.")
    end
    return obj
  end
  if kind ~= "application" and kind ~= "group" then
    util.bad(string.format("The alternate key '%s' is not supported on this entity set.", alt))
  end
  if body.uniqueName ~= nil and tostring(body.uniqueName):lower() ~= val:lower() then
    util.bad("Property 'uniqueName' in the body does not match the key.")
  end
  local obj = M.by_unique_name(ctx, kind, val)
  if obj then return obj end
  if not M.prefers(ctx, "create-if-missing") then util.not_found(val) end
  return nil, val
end

function M.must_resolve(ctx, kind, key)
  local obj = M.resolve(ctx, kind, key)
  if not obj then
    local alt, val = key:match("^(%w+)=(.*)$")
    util.not_found(alt and val or key)
  end
  return obj
end

-- A JSON 200 (or status) response body with @odata.context; $select and $expand apply.
-- keyCredentials keep their key on a single object's $select (Graph's rule).
function M.entity(ctx, tname, context, obj, status)
  local spec = expand.parse(ctx.q["$expand"], tname)
  local select = query.select_list(ctx.q, tname)
  local key_material = false
  for _, k in ipairs(select or {}) do if k == "keyCredentials" then key_material = true end end
  local body = types.project(tname, obj, select, { key_material = key_material })
  expand.apply(ctx, spec, obj, body)
  local ctxname = context
  if select then ctxname = context .. "(" .. table.concat(select, ",") .. ")" end
  body["@odata.context"] = M.ROOT .. "/$metadata#" .. ctxname .. "/$entity"
  return { status = status or 200, body = body }
end

-- The advanced queries of wire.md §3.13 need ConsistencyLevel: eventual; raise 400 without it.
-- advanced: the $filter uses ne/not/endswith; filtered: there is a $filter; order: $orderby.
local function need_eventual(ctx, tname, advanced, filtered, order)
  if ctx.consistency_eventual then return end
  local q = ctx.q
  if advanced then
    util.fail(400, "Request_UnsupportedQuery",
      "Unsupported or invalid query filter clause specified for property. Use ConsistencyLevel: "
      .. "eventual and $count=true for advanced queries.")
  end
  if q["$search"] then
    util.fail(400, "Request_UnsupportedQuery",
      "Request with $search query parameter only works through MSGraph with a special request "
      .. "header: 'ConsistencyLevel: eventual'")
  end
  if order and (filtered or not query.basic_order(order, tname)) then
    util.fail(400, "Request_UnsupportedQuery", "Sorting not supported for current query.")
  end
end

-- Stored objects of one page projected for output (@odata.type per item when mixed), each
-- with its $expand properties.
local function project_page(ctx, page, tname, select, mixed, spec)
  local value = {}
  for i, o in ipairs(page) do
    local t = mixed and M.kind(o) or tname
    local v = types.project(t, o, select)
    if mixed then v["@odata.type"] = "#microsoft.graph." .. t end
    value[i] = expand.apply(ctx, spec, o, v)
  end
  return util.array(value)
end

-- The collection response: $filter, $search, $orderby, $count, $top, $skiptoken, $select,
-- $expand, @odata.nextLink.  items: an array of stored objects (already visible) or an ordered
-- source (M.source: pages cost O(page) unless $orderby or $count needs them all); tname their
-- type; context the @odata.context fragment; opts.mixed adds @odata.type per item.  $count=true
-- without ConsistencyLevel: eventual is ignored, as Graph ignores it on list requests.
function M.collection(ctx, tname, context, items, opts)
  opts = opts or {}
  local q = ctx.q
  -- a directoryObject collection takes properties of any derived type (members?$select=mail)
  local check_type = not opts.mixed and tname or nil
  local spec = expand.parse(q["$expand"], tname)
  local pred, advanced = query.filter(q["$filter"], check_type)
  local order = query.orderby(q["$orderby"], check_type)
  local count = q["$count"]
  if count ~= nil and count ~= "true" and count ~= "false" then
    util.bad("Invalid value for $count: '" .. tostring(count) .. "'.", "BadRequest")
  end
  need_eventual(ctx, tname, advanced, pred ~= nil, order)
  local counted = count == "true" and ctx.consistency_eventual
  local found = query.search(q["$search"], check_type)
  local select = query.select_list(q, check_type)
  local keep
  if pred or found then keep = function(o) return (not pred or pred(o)) and (not found or found(o)) end end
  local top = query.top(q, opts.default_top or 100, opts.max_top or 999)
  local page, next_tok, later, total
  if items.ids and not order then
    page, next_tok, later = query.page_ordered(items, top, keep, q["$skiptoken"])
    if counted and not later then total = #matching(items, keep) end
  else
    local matched = matching(items, keep)
    page, next_tok, later = query.page(matched, top, order, q["$skiptoken"])
    total = #matched
  end
  local body = { value = project_page(ctx, page, tname, select, opts.mixed, spec) }
  local ctxname = context
  if select then ctxname = context .. "(" .. table.concat(select, ",") .. ")" end
  body["@odata.context"] = M.ROOT .. "/$metadata#" .. ctxname
  if counted and not later then body["@odata.count"] = total end
  if next_tok then
    local nq = {}
    for k, v in pairs(q) do nq[k] = v end
    nq["$skiptoken"] = next_tok
    body["@odata.nextLink"] = M.ROOT .. ctx.path .. "?" .. util.query_string(nq)
  end
  return { status = 200, body = body }
end

function M.no_content() return { status = 204 } end

-- routes(M) -> route(method, "a/:id/b", fn): registers fn in M.routes (segments split once).
function M.routes(mod)
  mod.routes = mod.routes or {}
  return function(method, path, fn)
    local segs = {}
    for s in path:gmatch("[^/]+") do segs[#segs + 1] = s end
    mod.routes[#mod.routes + 1] = { method, segs, fn }
  end
end

-- apply_patch(obj, body, skip, special): a PATCH body onto obj.  Annotation keys and the
-- names in skip are ignored; JSON null removes a property; special[k](obj, v) handles k.
function M.apply_patch(obj, body, skip, special)
  for k, v in pairs(body) do
    if not k:find("@", 1, true) and not (skip and skip[k]) then
      if special and special[k] then special[k](obj, v)
      elseif v == util.null then obj[k] = nil
      else obj[k] = util.copy(v) end
    end
  end
end

-- GET /{set} listing every visible object of `kind` (its authorization: t2t.sim.authz).
function M.list_route(route, set, kind)
  route("GET", set, function(ctx)
    return M.collection(ctx, kind, set, M.source(ctx, kind))
  end)
end

-- DELETE /{kind}s/:id; check(ctx, obj) may refuse first (authorization: t2t.sim.authz).
function M.delete_route(route, path, kind, check)
  route("DELETE", path, function(ctx, p)
    local obj = M.must_resolve(ctx, kind, p.id)
    if check then check(ctx, obj) end
    M.remove(ctx, obj.id)
    return M.no_content()
  end)
end

return M
