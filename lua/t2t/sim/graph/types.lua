-- t2t.sim.graph.types: the Graph metadata (t2t.sim.graph_schema) put to work — body validation
-- the way Graph rejects unknown or ill-typed properties, output projection ($select, default
-- properties, [] for empty collections), and "is this a Graph path at all" for unrouted URLs.
local schema = require "t2t.sim.graph_schema"
local util = require "t2t.sim.graph.util"

local M = {}
local T = schema.types

-- Properties of a type including inherited ones: name -> edm type. Cached.
local prop_cache = {}
function M.props(tname)
  local c = prop_cache[tname]
  if c then return c end
  c = {}
  local t = T[tname]
  while t do
    for k, v in pairs(t.props or {}) do if c[k] == nil then c[k] = v end end
    t = t.base and T[t.base]
  end
  prop_cache[tname] = c
  return c
end

local nav_cache = {}
function M.navs(tname)
  local c = nav_cache[tname]
  if c then return c end
  c = {}
  local t = T[tname]
  while t do
    for k, v in pairs(t.nav or {}) do if c[k] == nil then c[k] = v end end
    t = t.base and T[t.base]
  end
  nav_cache[tname] = c
  return c
end

function M.is_open(tname) return T[tname] and T[tname].open or false end

-- canonical(tname, name) -> the declared spelling of a property or navigation property of
-- tname matched case-insensitively (Graph takes mailNickName for mailNickname) | nil.
local canon_cache = {}
function M.canonical(tname, name)
  if type(name) ~= "string" then return nil end
  local c = canon_cache[tname]
  if not c then
    c = {}
    for k in pairs(M.navs(tname)) do c[k:lower()] = k end
    for k in pairs(M.props(tname)) do c[k:lower()] = k end
    canon_cache[tname] = c
  end
  return c[name:lower()]
end

local function elem(t) return t:match("^Collection%((.*)%)$") end

-- Properties Graph sets itself; a write is rejected as read-only.
local READ_ONLY = {
  application = { id = true, appId = true, createdDateTime = true, publisherDomain = true,
                  deletedDateTime = true },
  servicePrincipal = { id = true, appOwnerOrganizationId = true, deletedDateTime = true,
                       appDisplayName = true },
  user = { id = true, createdDateTime = true, proxyAddresses = true, assignedLicenses = true,
           assignedPlans = true, provisionedPlans = true, onPremisesSyncEnabled = true,
           securityIdentifier = true, deletedDateTime = true, licenseAssignmentStates = true },
  group = { id = true, createdDateTime = true, proxyAddresses = true, mail = true,
            securityIdentifier = true, deletedDateTime = true, onPremisesSyncEnabled = true,
            renewedDateTime = true },
}

local EDM_CHECK = {
  ["Edm.String"] = function(v) return type(v) == "string" end,
  ["Edm.Boolean"] = function(v) return type(v) == "boolean" end,
  ["Edm.Int32"] = function(v) return math.type(v) == "integer" end,
  ["Edm.Int64"] = function(v) return math.type(v) == "integer" end,
  ["Edm.Double"] = function(v) return type(v) == "number" end,
  ["Edm.Guid"] = util.is_guid,
  ["Edm.DateTimeOffset"] = function(v) return util.parse_iso(v) ~= nil end,
  ["Edm.Date"] = function(v) return type(v) == "string" and v:match("^%d%d%d%d%-%d%d%-%d%d$") ~= nil end,
  ["Edm.Binary"] = function(v) return type(v) == "string" and v:match("^[%w+/=_-]*$") ~= nil end,
}

local function type_error(name, want)
  util.fail(400, "BadRequest", string.format(
    "Invalid value for property '%s': a value of type '%s' was expected.", name, want))
end

-- Check one value against an EDM or complex type name.
local function check_value(name, tname, v)
  if v == util.null then return end
  local e = elem(tname)
  if e then
    if type(v) ~= "table" then type_error(name, tname) end
    for k, x in pairs(v) do
      if math.type(k) ~= "integer" then type_error(name, tname) end
      check_value(name, e, x)
    end
    return
  end
  local check = EDM_CHECK[tname]
  if check then
    if not check(v) then type_error(name, tname) end
  elseif T[tname] then
    if type(v) ~= "table" then type_error(name, "microsoft.graph." .. tname) end
    M.check_body(tname, v, { nested = true })
  elseif tname:sub(1, 4) ~= "Edm." then
    -- an enum (names only in the extract): a string member name
    if type(v) ~= "string" then type_error(name, "microsoft.graph." .. tname) end
  end
end

-- Validate a request body against type tname as Graph does: unknown properties, wrong types,
-- read-only properties (opts.allow_read_only lists the exceptions a create accepts).
function M.check_body(tname, body, opts)
  opts = opts or {}
  if type(body) ~= "table" then util.bad("A JSON object was expected as the request body.", "BadRequest") end
  local odt = body["@odata.type"]
  if type(odt) == "string" then
    local derived = odt:match("^#?microsoft%.graph%.(.+)$")
    if derived and T[derived] then tname = derived end
  end
  local props, navs = M.props(tname), M.navs(tname)
  local ro = not opts.nested and READ_ONLY[tname] or {}
  -- property names are case-insensitive: rename the body's keys to the declared spelling
  local renames = {}
  for k in pairs(body) do
    if type(k) == "string" then
      local base, ann = k:match("^([^@]*)(@.*)$")
      local canon = M.canonical(tname, base or k)
      if canon and canon ~= (base or k) and base ~= "" then renames[k] = canon .. (ann or "") end
    end
  end
  for from, to in pairs(renames) do
    if body[to] == nil then body[to], body[from] = body[from], nil end
  end
  for k, v in pairs(body) do
    if type(k) ~= "string" then util.bad("A JSON object was expected as the request body.", "BadRequest") end
    local bind = k:match("^(.-)@odata%.bind$")
    if bind then
      if not navs[bind] then
        util.fail(400, "BadRequest", string.format(
          "The property '%s' does not exist on type 'microsoft.graph.%s'. Make sure to only use "
          .. "property names that are defined by the type or mark the type as open type.", bind, tname))
      end
    elseif k:sub(1, 7) == "@odata." or k:find("@", 1, true) then -- luacheck: ignore 542
      -- control information / instance annotations: ignored
    elseif props[k] == nil then
      if T[tname] and T[tname].open then
        util.bad(string.format("Property '%s' does not exist as a declared property or extension "
          .. "property.", k))
      end
      util.fail(400, "BadRequest", string.format(
        "The property '%s' does not exist on type 'microsoft.graph.%s'. Make sure to only use "
        .. "property names that are defined by the type or mark the type as open type.", k, tname))
    elseif ro[k] and not (opts.allow_read_only and opts.allow_read_only[k]) then
      util.bad(string.format("Property '%s' is read-only and cannot be set.", k))
    else
      check_value(k, props[k], v)
    end
  end
  return tname
end

-- Validate an action body against actions["binding.name"].params.
function M.check_action(sig, body)
  local a = schema.actions[sig]
  body = body or {}
  if type(body) ~= "table" then util.bad("A JSON object was expected as the request body.", "BadRequest") end
  for k, v in pairs(body) do
    local p = a.params[k]
    if not p then
      util.fail(400, "BadRequest", string.format(
        "The parameter '%s' in the request payload is not a valid parameter for the operation '%s'.",
        tostring(k), sig:match("%.(.+)$")))
    end
    check_value(k, p[1], v)
  end
  for k, p in pairs(a.params) do
    if p.required and body[k] == nil then
      util.fail(400, "BadRequest", string.format(
        "The parameter '%s' in the request payload is required for the operation '%s'.", k,
        sig:match("%.(.+)$")))
    end
  end
end

-- Default properties Graph returns for a user without $select (others: everything stored).
M.USER_DEFAULT = { "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                   "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id" }

-- Output value for a property: empty collections become [], complex values are walked.
local function out_value(tname, v, opts)
  if v == nil or v == util.null then
    return elem(tname) and util.EMPTY or util.null
  end
  if tname == "Edm.DateTimeOffset" and type(v) == "number" then return util.iso(v) end
  local e = elem(tname)
  if e then
    if type(v) ~= "table" or next(v) == nil then return util.EMPTY end
    if T[e] then
      local a = {}
      for i, x in ipairs(v) do a[i] = M.project(e, x, nil, opts) end
      return a
    end
    return v
  end
  if T[tname] and type(v) == "table" then return M.project(tname, v, nil, opts) end
  return v
end

-- Project a stored object onto type tname: only metadata properties (internal fields such as
-- `created` and secrets never leak), `select` (a list) or the default set.  opts.key_material:
-- keyCredentials keep `key` (Graph returns it only on $select of a single object).
function M.project(tname, obj, select, opts)
  local props = M.props(tname)
  local out = {}
  if select then
    for _, k in ipairs(select) do
      if props[k] then out[k] = out_value(props[k], obj[k], opts) end
    end
  elseif tname == "user" then
    for _, k in ipairs(M.USER_DEFAULT) do out[k] = out_value(props[k], obj[k], opts) end
  else
    -- like Graph: every declared property, null (or [] for a collection) when unset
    for k, t in pairs(props) do
      if t ~= "Edm.Stream" then out[k] = out_value(t, obj[k], opts) end
    end
  end
  -- secrets are never read back (secretText only in the addPassword answer); key material only
  -- on a single object's $select
  if tname == "passwordCredential" and out.secretText ~= nil then out.secretText = util.null end
  if tname == "keyCredential" and out.key ~= nil and not (opts and opts.key_material) then
    out.key = util.null
  end
  return out
end

-- Check a $select list against the type, rewriting each name to its declared spelling;
-- raises Graph's OData error for an unknown name.
function M.check_select(tname, list)
  for i, k in ipairs(list) do
    local canon = M.canonical(tname, k)
    if canon then list[i] = canon end
    if not canon then
      util.fail(400, "BadRequest", string.format(
        "Parsing OData Select and Expand failed: Could not find a property named '%s' on type "
        .. "'microsoft.graph.%s'.", k, tname))
    end
  end
end

-- Does a concrete path (segments, decoded) match a metadata template? Returns its entry.
local compiled
local literal_after                  -- prefix of literal/"{}" segments -> {literal = true}
local function compile()
  compiled, literal_after = {}, {}
  for _, p in ipairs(schema.paths) do
    local segs, key = {}, ""
    for s in p[1]:gmatch("[^/]+") do
      s = s:gsub("%(%)$", "")              -- a function's "()" is optional: delta() = delta
      local param = s:find("{", 1, true) ~= nil
      if not param then
        local set = literal_after[key] or {}
        literal_after[key] = set
        set[s:lower()] = true
      end
      key = key .. "/" .. (param and "{}" or s:lower())
      local pat = "^" .. s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"):gsub("'?{[^}]+}'?", ".+") .. "$"
      segs[#segs + 1] = pat
    end
    compiled[#compiled + 1] = { segs = segs, entry = p }
  end
end

-- is_literal(segs, i) -> true when Graph's metadata has a fixed segment segs[i] (delta,
-- getByIds, $count ...) after segs[1..i-1], read with "{}" for any key: such a segment is
-- never an id, whatever a route's ":id" would capture.
function M.is_literal(segs, i)
  if not compiled then compile() end
  local keys = { "" }
  for j = 1, i - 1 do
    local nxt = {}
    for _, k in ipairs(keys) do
      local lit = k .. "/" .. segs[j]:lower()
      if literal_after[k] and literal_after[k][segs[j]:lower()] then nxt[#nxt + 1] = lit end
      nxt[#nxt + 1] = k .. "/{}"
    end
    keys = nxt
    if #keys > 64 then break end
  end
  local want = segs[i]:lower():gsub("%(%)$", "")
  for _, k in ipairs(keys) do
    if literal_after[k] and literal_after[k][want] then return true end
  end
  return false
end

function M.match_path(segs)
  if not compiled then compile() end
  local n = #segs
  local last = segs[n]
  if last == "$count" then n = n - 1 end
  for _, c in ipairs(compiled) do
    if #c.segs == n then
      local ok = true
      for i = 1, n do
        if not segs[i]:match(c.segs[i]) then ok = false; break end
      end
      if ok then return c.entry end
    end
  end
  return nil
end

return M
