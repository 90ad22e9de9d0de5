-- t2t.sim.graph.expand: $expand of the navigation properties t2t and common tools read —
-- members, owners, memberOf, transitiveMemberOf, appRoleAssignments, appRoleAssignedTo — on a
-- single object and on every item of a collection.  `nav($select=a,b)` narrows the expanded
-- objects.  As the directory does, at most 20 related objects come back per property (Graph's
-- documented $expand limit for directory objects).  Another navigation property of the type
-- answers 501 (a valid Graph request the simulator does not model); a name the type does not
-- have is 400.
local util = require "t2t.sim.graph.util"
local types = require "t2t.sim.graph.types"
local model = require "t2t.sim.model"

local M = {}

M.LIMIT = 20

local function kind(obj)
  local t = obj and obj["@odata.type"]
  return type(t) == "string" and t:match("graph%.(%w+)$") or nil
end

local function visible(ctx, o)
  return o ~= nil and (not ctx.sim.visible or ctx.sim:visible(o))
end

local function objects(ctx, ids)
  local out = {}
  for _, id in ipairs(ids) do
    local o = ctx.tenant.dir.objects[id]
    if visible(ctx, o) then out[#out + 1] = o end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

local function keys(set)
  local out = {}
  for k in pairs(set or {}) do out[#out + 1] = k end
  return out
end

-- The groups obj is a direct member of; transitive: through nested groups as well.
local function member_of(ctx, obj, transitive)
  local of = model.idx(ctx.tenant).members_of
  local seen, order = {}, {}
  local function walk(id)
    for gid in pairs(of[id] or {}) do
      if not seen[gid] then
        seen[gid] = true
        order[#order + 1] = gid
        if transitive then walk(gid) end
      end
    end
  end
  walk(obj.id)
  return objects(ctx, order)
end

local function assignments(ctx, field, id)
  local out = {}
  for _, a in pairs(ctx.tenant.dir.app_role_assignments or {}) do
    if a[field] == id and visible(ctx, a) then out[#out + 1] = a end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

-- Each navigation: the related stored objects, and their type (nil: mixed directory objects).
local NAVS = {
  members = function(ctx, obj)
    return objects(ctx, keys(ctx.tenant.dir.members and ctx.tenant.dir.members[obj.id]))
  end,
  owners = function(ctx, obj) return objects(ctx, obj._owners or {}) end,
  memberOf = function(ctx, obj) return member_of(ctx, obj, false) end,
  transitiveMemberOf = function(ctx, obj) return member_of(ctx, obj, true) end,
  appRoleAssignments = function(ctx, obj)
    return assignments(ctx, "principalId", obj.id), "appRoleAssignment"
  end,
  appRoleAssignedTo = function(ctx, obj)
    return assignments(ctx, "resourceId", obj.id), "appRoleAssignment"
  end,
}

-- parse(text, tname) -> list of {nav = declared name, select = list | nil} | nil when absent.
function M.parse(text, tname)
  if text == nil or text == "" then return nil end
  local out, depth, start = {}, 0, 1
  local parts = {}
  for i = 1, #text do
    local c = text:sub(i, i)
    if c == "(" then depth = depth + 1
    elseif c == ")" then depth = depth - 1
    elseif c == "," and depth == 0 then parts[#parts + 1] = text:sub(start, i - 1); start = i + 1 end
  end
  parts[#parts + 1] = text:sub(start)
  for _, p in ipairs(parts) do
    local name, opts = p:match("^%s*([%w_]+)%s*(.-)%s*$")
    if not name or (opts ~= "" and not opts:match("^%b()$")) then
      util.fail(400, "BadRequest", "Parsing OData Select and Expand failed: syntax error in '" .. text .. "'.")
    end
    local canon = types.canonical(tname, name)
    if not canon or not types.navs(tname)[canon] then
      util.fail(400, "BadRequest", string.format("Parsing OData Select and Expand failed: Could not find "
        .. "a property named '%s' on type 'microsoft.graph.%s'.", name, tname))
    end
    if not NAVS[canon] then
      util.fail(501, "NotImplemented", string.format("The simulator does not expand '%s' (valid in "
        .. "Graph); it expands members, owners, memberOf, transitiveMemberOf, appRoleAssignments and "
        .. "appRoleAssignedTo.", canon))
    end
    local sel
    local inner = opts:match("^%((.*)%)$")
    if inner and inner ~= "" then
      local k, v = inner:match("^%s*%$?([Ss][Ee][Ll][Ee][Cc][Tt])%s*=%s*(.-)%s*$")
      if not k then
        util.fail(501, "NotImplemented", "The simulator takes only $select inside $expand: '" .. p .. "'.")
      end
      sel = {}
      for x in v:gmatch("[^,%s]+") do sel[#sel + 1] = x end
    end
    out[#out + 1] = { nav = canon, select = sel }
  end
  return out
end

-- apply(ctx, spec, obj, out): add each expanded property of stored obj to its projection out.
function M.apply(ctx, spec, obj, out)
  if not spec then return out end
  for _, e in ipairs(spec) do
    local list, t = NAVS[e.nav](ctx, obj)
    local value = {}
    for i = 1, math.min(#list, M.LIMIT) do
      local o = list[i]
      local k = t or kind(o) or "directoryObject"
      local sel = e.select
      if sel then
        sel = { table.unpack(sel) }
        for j, name in ipairs(sel) do sel[j] = types.canonical(k, name) or name end
      end
      local v = types.project(k, o, sel)
      if not t then v["@odata.type"] = "#microsoft.graph." .. k end
      value[i] = v
    end
    out[e.nav] = util.array(value)
  end
  return out
end

return M
