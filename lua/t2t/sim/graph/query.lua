-- t2t.sim.graph.query: OData query options as the directory serves them — $filter (eq, ne, in,
-- startswith, endswith, and, or, not, any()), $select, $orderby (one property), $search
-- ("property:value" prefix search), $top + opaque $skiptoken paging, $count.  Property names
-- match case-insensitively (rewritten to the declared spelling), as Graph's do.
local util = require "t2t.sim.graph.util"
local types = require "t2t.sim.graph.types"

local M = {}

local function unsupported(msg)
  util.fail(400, "Request_UnsupportedQuery", msg or "Unsupported or invalid query filter clause specified.")
end

-- Tokenizer: strings, guids/numbers/words, punctuation.
local function tokenize(s)
  local toks, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == "'" then
      local j, buf = i + 1, {}
      while true do
        if j > n then unsupported("Unterminated string literal in filter.") end
        local d = s:sub(j, j)
        if d == "'" then
          if s:sub(j + 1, j + 1) == "'" then buf[#buf + 1] = "'"; j = j + 2
          else break end
        else buf[#buf + 1] = d; j = j + 1 end
      end
      toks[#toks + 1] = { "str", table.concat(buf) }
      i = j + 1
    elseif c == "(" or c == ")" or c == "," or c == ":" then
      toks[#toks + 1] = { c }
      i = i + 1
    else
      local w = s:match("^[%w%._/%-@$+]+", i)
      if not w then unsupported("Invalid character in filter: " .. c) end
      toks[#toks + 1] = { "word", w }
      i = i + #w
    end
  end
  return toks
end

local ADVANCED = { ne = true, ["not"] = true, endswith = true }

-- Recursive-descent parser producing a predicate tree.
local function parse(s)
  local toks, pos = tokenize(s), 1
  local advanced = false
  local function peek() return toks[pos] end
  local function take(kind, val)
    local t = toks[pos]
    if not t or t[1] ~= kind or (val and t[2]:lower() ~= val) then
      unsupported("Invalid filter clause: syntax error at position " .. pos .. ".")
    end
    pos = pos + 1
    return t
  end
  local function literal()
    local t = toks[pos]
    if not t then unsupported() end
    pos = pos + 1
    if t[1] == "str" then return t[2] end
    if t[1] ~= "word" then unsupported() end
    local w = t[2]
    if w == "true" then return true elseif w == "false" then return false
    elseif w == "null" then return util.null end
    if tonumber(w) then return tonumber(w) end
    if util.is_guid(w) then return w end
    unsupported("Invalid filter clause: '" .. w .. "' is not a literal.")
  end
  local expr
  local function primary(lambda_var)
    local t = peek()
    if not t then unsupported() end
    if t[1] == "(" then
      pos = pos + 1
      local e = expr(lambda_var)
      take(")")
      return e
    end
    if t[1] ~= "word" then unsupported() end
    local w = t[2]
    local lw = w:lower()
    if lw == "not" then
      pos = pos + 1
      advanced = true
      return { op = "not", expr = primary(lambda_var) }
    end
    if (lw == "startswith" or lw == "endswith") and toks[pos + 1] and toks[pos + 1][1] == "(" then
      pos = pos + 2
      if ADVANCED[lw] then advanced = true end
      local prop = take("word")[2]
      take(",")
      local v = literal()
      take(")")
      return { op = lw, prop = prop, value = v }
    end
    pos = pos + 1
    -- prop/any(x:x eq 'v')
    local coll, fn = w:match("^(.-)/(%a+)$")
    if coll and (fn == "any" or fn == "all") and peek() and peek()[1] == "(" then
      pos = pos + 1
      local var = take("word")[2]
      take(":")
      local inner = expr(var)
      take(")")
      return { op = fn, prop = coll, var = var, expr = inner }
    end
    local opt = take("word")[2]:lower()
    if opt == "in" then                    -- prop in ('a', 'b'): eq against any of the list
      take("(")
      local values = { literal() }
      while peek() and peek()[1] == "," do pos = pos + 1; values[#values + 1] = literal() end
      take(")")
      return { op = "in", prop = w, values = values }
    end
    if opt ~= "eq" and opt ~= "ne" and opt ~= "ge" and opt ~= "le" and opt ~= "gt" and opt ~= "lt" then
      unsupported("Unsupported operator '" .. opt .. "' in filter.")
    end
    if opt ~= "eq" then advanced = true end
    return { op = opt, prop = w, value = literal() }
  end
  local function conj(lv)
    local left = primary(lv)
    while peek() and peek()[1] == "word" and peek()[2]:lower() == "and" do
      pos = pos + 1
      left = { op = "and", left, primary(lv) }
    end
    return left
  end
  expr = function(lv)
    local left = conj(lv)
    while peek() and peek()[1] == "word" and peek()[2]:lower() == "or" do
      pos = pos + 1
      left = { op = "or", left, conj(lv) }
    end
    return left
  end
  local tree = expr()
  if pos <= #toks then unsupported("Invalid filter clause: unexpected token.") end
  return tree, advanced
end

local function get(obj, path, var, item)
  if var and path == var then return item end
  if var and path:sub(1, #var + 1) == var .. "/" then obj, path = item, path:sub(#var + 2) end
  local v = obj
  for seg in path:gmatch("[^/]+") do
    if type(v) ~= "table" then return nil end
    v = v[seg]
  end
  return v
end

local function norm(v)
  if type(v) == "string" then return v:lower() end
  return v
end

local function eval(node, obj, var, item)
  local op = node.op
  if op == "and" then return eval(node[1], obj, var, item) and eval(node[2], obj, var, item) end
  if op == "or" then return eval(node[1], obj, var, item) or eval(node[2], obj, var, item) end
  if op == "not" then return not eval(node.expr, obj, var, item) end
  if op == "any" or op == "all" then
    local list = get(obj, node.prop, var, item)
    if type(list) ~= "table" then return op == "all" end
    for _, x in ipairs(list) do
      local r = eval(node.expr, obj, node.var, x)
      if op == "any" and r then return true end
      if op == "all" and not r then return false end
    end
    return op == "all"
  end
  local v = get(obj, node.prop, var, item)
  if op == "in" then
    local a = norm(v)
    for _, x in ipairs(node.values) do
      if a == norm(x) or (x == util.null and v == nil) then return true end
    end
    return false
  end
  local want = node.value
  if op == "startswith" or op == "endswith" then
    if type(v) ~= "string" or type(want) ~= "string" then return false end
    v, want = v:lower(), want:lower()
    if op == "startswith" then return v:sub(1, #want) == want end
    return #want == 0 or v:sub(-#want) == want
  end
  if want == util.null then
    if op == "eq" then return v == nil or v == util.null end
    if op == "ne" then return v ~= nil and v ~= util.null end
  end
  local a, b = norm(v), norm(want)
  if op == "eq" then return a == b end
  if op == "ne" then return a ~= b end
  if type(a) ~= type(b) or (type(a) ~= "number" and type(a) ~= "string") then return false end
  if op == "ge" then return a >= b elseif op == "le" then return a <= b
  elseif op == "gt" then return a > b else return a < b end
end

-- The declared spelling of property `name` of tname; 400 when the type has none (as Graph
-- answers for $filter and $search).
local function check_prop(tname, name)
  local canon = types.canonical(tname, name)
  if not canon or not types.props(tname)[canon] then
    util.fail(400, "Request_BadRequest", string.format(
      "Property '%s' does not exist as a declared property or extension property.", name))
  end
  return canon
end

-- A filter path "prop" or "prop/sub" with its first segment in the declared spelling.
local function canon_path(tname, path)
  local first, rest = path:match("^([^/]+)(.*)$")
  return check_prop(tname, first) .. rest
end

-- Check that filtered properties exist on the type (Graph answers 400 otherwise).
local function check_props(node, tname, var)
  if node.op == "and" or node.op == "or" then
    check_props(node[1], tname, var); check_props(node[2], tname, var)
  elseif node.op == "not" then
    check_props(node.expr, tname, var)
  elseif node.op == "any" or node.op == "all" then
    node.prop = canon_path(tname, node.prop)
  elseif node.prop and not (var and (node.prop == var or node.prop:sub(1, #var + 1) == var .. "/")) then
    node.prop = canon_path(tname, node.prop)
  end
end

-- Compile a $filter for type tname; returns predicate(obj) and whether it is an advanced query.
function M.filter(s, tname)
  if s == nil or s == "" then return nil, false end
  local tree, advanced = parse(s)
  if tname then check_props(tree, tname) end
  return function(obj) return eval(tree, obj) end, advanced
end

function M.select_list(q, tname)
  local s = q["$select"]
  if not s or s == "" then return nil end
  local list = {}
  for name in s:gmatch("[^,%s]+") do list[#list + 1] = name end
  if tname then types.check_select(tname, list) end
  return list
end

-- $top: default 100, 1..999 (outside → 400 as the directory does).
function M.top(q, default, max)
  local t = q["$top"]
  if t == nil then return default or 100 end
  local n = math.tointeger(tonumber(t))
  if not n or n < 1 or n > (max or 999) then
    util.fail(400, "Request_BadRequest", string.format(
      "Invalid page size specified: '%s'. Must be between 1 and %d inclusive.", tostring(t), max or 999))
  end
  return n
end

-- The k smallest items (by less) for which keep(item) holds (all when keep is nil), in order;
-- a bounded max-heap keeps the cost O(n log k) so paging a 100k-user tenant stays cheap.
local function smallest(items, k, less, keep)
  local heap, n = {}, 0
  local function up(i)
    while i > 1 do
      local p = i // 2
      if not less(heap[p], heap[i]) then break end
      heap[p], heap[i] = heap[i], heap[p]
      i = p
    end
  end
  local function down(i)
    while true do
      local l, r, m = 2 * i, 2 * i + 1, i
      if l <= n and less(heap[m], heap[l]) then m = l end
      if r <= n and less(heap[m], heap[r]) then m = r end
      if m == i then return end
      heap[m], heap[i] = heap[i], heap[m]
      i = m
    end
  end
  for _, it in ipairs(items) do
    if not keep or keep(it) then
      if n < k then
        n = n + 1; heap[n] = it; up(n)
      elseif less(it, heap[1]) then
        heap[1] = it; down(1)
      end
    end
  end
  table.sort(heap, less)
  return heap
end

local function by_id(a, b) return a.id < b.id end


---------------------------------------------------------------------------------------------
-- $orderby: one property, asc/desc.

-- Sort key of a value: (rank, value).  Numbers and booleans rank first, then strings compared
-- case-insensitively, then objects without the property (so they come last ascending and
-- first descending: desc is the exact reverse of asc).
local function sort_key(v)
  local t = type(v)
  if t == "number" then return 1, v end
  if t == "boolean" then return 1, v and 1 or 0 end
  if t == "string" then return 2, v:lower() end
  return 3, ""
end

-- Parse $orderby for type tname (nil: any property); nil when absent, else {prop=, desc=}.
-- Raises 400 for bad syntax, several keys, or a property the type does not declare.
function M.orderby(s, tname)
  if s == nil then return nil end
  local text = s:match("^%s*(.-)%s*$")
  if text:find(",", 1, true) then
    util.fail(400, "Request_UnsupportedQuery", "Sorting not supported for current query.")
  end
  local prop, rest = text:match("^([%w_]+)(.*)$")
  local dir = rest and rest:match("^%s+(%a+)$")
  local ldir = dir and dir:lower()
  if not prop or (rest ~= "" and not dir) or (dir and ldir ~= "asc" and ldir ~= "desc") then
    local at = prop and (#prop + #(rest:match("^%s*"))) or 0
    util.fail(400, "BadRequest", string.format("Syntax error at position %d in '%s'.", at, s))
  end
  if tname then
    local canon = types.canonical(tname, prop)
    if not canon or not types.props(tname)[canon] then
      util.fail(400, "BadRequest", string.format(
        "Could not find a property named '%s' on type 'microsoft.graph.%s'.", prop, tname))
    end
    prop = canon
  end
  return { prop = prop, desc = ldir == "desc" }
end

-- Does this sort work without ConsistencyLevel: eventual (no $filter; displayName, or
-- userPrincipalName on users)?  Everything else is an advanced query.
function M.basic_order(order, tname)
  return order.prop == "displayName" or (order.prop == "userPrincipalName" and tname == "user")
end

-- A total order over objects for the sort (ties broken by id, so paging is stable).
local function order_less(order)
  local prop, desc = order.prop, order.desc
  return function(a, b)
    local ra, va = sort_key(a[prop])
    local rb, vb = sort_key(b[prop])
    if desc then ra, va, rb, vb, a, b = rb, vb, ra, va, b, a end
    if ra ~= rb then return ra < rb end
    if va ~= vb then return va < vb end
    return a.id < b.id
  end
end

---------------------------------------------------------------------------------------------
-- $skiptoken: opaque to clients.  Unsorted pages carry the last id served ("RFNwdAIA" +
-- base64url(id)); sorted pages carry the last sort key and id ("RFNwdAIB" + base64url of
-- rank, id and key on lines), so the next page starts after it whatever was added meanwhile.

local function b64_decode(body)
  local s = body:gsub("-", "+"):gsub("_", "/")
  s = s .. string.rep("=", (4 - #s % 4) % 4)
  local B = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local bits = s:gsub("=", ""):gsub(".", function(c)
    local v = B:find(c, 1, true)
    if not v then util.bad("Invalid $skiptoken.", "Request_BadRequest") end
    local r = ""
    for i = 5, 0, -1 do r = r .. ((((v - 1) >> i) & 1 == 1) and "1" or "0") end
    return r
  end)
  return (bits:gsub("%d%d%d?%d?%d?%d?%d?%d?", function(b)
    if #b ~= 8 then return "" end
    return string.char(tonumber(b, 2))
  end))
end

function M.skiptoken(last_id) return "RFNwdAIA" .. util.b64(last_id, true) end

local function sorted_skiptoken(order, last)
  local rank, key = sort_key(last[order.prop])
  if rank == 1 then key = string.format("%.17g", key) end
  return "RFNwdAIB" .. util.b64(rank .. "\n" .. last.id .. "\n" .. key, true)
end

-- The position a $skiptoken names: the last id (unsorted), or nil and a stand-in object with
-- the last sort key and id (sorted).  Raises 400 for anything else.
function M.from_skiptoken(tok, order)
  if tok == nil then return nil end
  local kind, body = nil, nil
  if type(tok) == "string" then kind, body = tok:match("^RFNwdAI([AB])(.+)$") end
  if not body or (kind == "B") ~= (order ~= nil) then
    util.bad("Invalid $skiptoken.", "Request_BadRequest")
  end
  local s = b64_decode(body)
  if kind == "A" then return s end
  local rank, id, key = s:match("^([123])\n([^\n]*)\n(.*)$")
  if rank == "1" then key = tonumber(key) elseif rank == "3" then key = nil end
  if not rank or (rank == "1" and not key) then util.bad("Invalid $skiptoken.", "Request_BadRequest") end
  return nil, { id = id, [order.prop] = key }
end

-- One page of matched objects: the first `top` in id order, or in `order` ($orderby), after
-- the $skiptoken `tok`.  Returns the page, the skiptoken of the next page (nil on the last),
-- and whether this is a later page (tok given).
function M.page(matched, top, order, tok)
  local after, cursor = M.from_skiptoken(tok, order)
  local less, keep = by_id, nil
  if order then
    less = order_less(order)
    if cursor then keep = function(it) return less(cursor, it) end end
  elseif after then
    keep = function(it) return it.id > after end
  end
  local page = smallest(matched, top, less, keep)
  local next_tok
  if #page == top then
    local last = page[#page]
    for _, o in ipairs(matched) do
      if less(last, o) then
        next_tok = order and sorted_skiptoken(order, last) or M.skiptoken(last.id)
        break
      end
    end
  end
  return page, next_tok, tok ~= nil
end

-- page_ordered(src, top, keep, tok) -> page, next skiptoken | nil, later: one page over an
-- ordered index (src.ids sorted; src.get(id) -> visible object | nil) after the $skiptoken,
-- keeping objects for which keep(obj) holds (nil: all).  Costs O(log n + scanned): a page
-- never rescans the tenant.  The next link is given when one more match follows within
-- another page's worth of ids, or when that look-ahead ends short of the end (the next page
-- may then be empty, as Graph's may).
function M.page_ordered(src, top, keep, tok)
  local after = M.from_skiptoken(tok, nil)
  local ids, fetch = src.ids, src.get
  local n = #ids
  local i = require("t2t.sim.index").upper(ids, after)
  local page = {}
  while i <= n and #page < top do
    local o = fetch(ids[i])
    if o and (not keep or keep(o)) then page[#page + 1] = o end
    i = i + 1
  end
  local next_tok
  if #page > 0 and i <= n then
    local limit = math.min(n, i + top)
    local found = false
    for j = i, limit do
      local o = fetch(ids[j])
      if o and (not keep or keep(o)) then found = true; break end
    end
    if found or limit < n then next_tok = M.skiptoken(page[#page].id) end
  end
  return page, next_tok, tok ~= nil
end

---------------------------------------------------------------------------------------------
-- $search: "property:value" clauses joined by AND / OR (AND binds tighter).  A clause matches
-- when every word of value starts a word of the property's string value (or of one string in
-- a string list); words are runs of letters and digits, compared case-insensitively — the
-- directory's tokenized prefix search.

local WORD = "[%w\128-\255]+"

local function search_error(s, pos, what)
  util.fail(400, "BadRequest", string.format("Syntax error: %s at position %d in '%s'. $search "
    .. "takes \"property:value\" clauses, each in double quotes, joined by AND or OR.",
    what, pos - 1, s))
end

-- Tokens of a $search: {"clause", prop, words, pos} and {"and"|"or", pos}.
local function search_tokens(s, tname)
  local toks, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == '"' then
      local j = s:find('"', i + 1, true)
      if not j then search_error(s, i, "the quote is not closed") end
      local body = s:sub(i + 1, j - 1)
      local prop, value = body:match("^%s*([%w_]+):(.*)$")
      if not prop then search_error(s, i, "clause '" .. s:sub(i, j) .. "' has no property name") end
      local words = {}
      for w in value:lower():gmatch(WORD) do words[#words + 1] = w end
      if #words == 0 then
        search_error(s, i, "clause '" .. s:sub(i, j) .. "' has no value to search for")
      end
      if tname then prop = check_prop(tname, prop) end
      toks[#toks + 1] = { "clause", prop, words, i }
      i = j + 1
    else
      local w = s:match("^%a+", i)
      local lw = w and w:lower()
      if lw ~= "and" and lw ~= "or" then
        search_error(s, i, "character '" .. c .. "' is not valid")
      end
      toks[#toks + 1] = { lw, i }
      i = i + #w
    end
  end
  return toks
end

local function clause_matches(v, words)
  if type(v) == "table" then
    for _, x in ipairs(v) do if clause_matches(x, words) then return true end end
    return false
  end
  if type(v) ~= "string" then return false end
  local have = {}
  for w in v:lower():gmatch(WORD) do have[#have + 1] = w end
  for _, want in ipairs(words) do
    local found = false
    for _, w in ipairs(have) do
      if w:sub(1, #want) == want then found = true; break end
    end
    if not found then return false end
  end
  return true
end

-- Compile a $search for type tname (nil: any property); predicate(obj), or nil when absent.
function M.search(s, tname)
  if s == nil then return nil end
  local toks = search_tokens(s, tname)
  if #toks == 0 then search_error(s, 1, "the search is empty") end
  -- alternating clause, operator, clause...: a list of AND-groups joined by OR
  local groups, group = {}, {}
  for k, t in ipairs(toks) do
    local want_clause = k % 2 == 1
    if want_clause ~= (t[1] == "clause") then
      search_error(s, t[#t], want_clause and "a quoted \"property:value\" clause is expected"
        or "AND or OR is expected")
    end
    if t[1] == "clause" then group[#group + 1] = t
    elseif t[1] == "or" then groups[#groups + 1] = group; group = {} end
  end
  if toks[#toks][1] ~= "clause" then
    search_error(s, #s + 1, "a clause is missing after " .. toks[#toks][1]:upper())
  end
  groups[#groups + 1] = group
  return function(obj)
    for _, g in ipairs(groups) do
      local all = true
      for _, c in ipairs(g) do
        if not clause_matches(obj[c[2]], c[3]) then all = false; break end
      end
      if all then return true end
    end
    return false
  end
end
return M
