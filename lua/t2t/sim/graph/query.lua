-- t2t.sim.graph.query: OData query options as the directory serves them — $filter (eq, ne,
-- startswith, endswith, and, or, not, any()), $select, $top + opaque $skiptoken paging, $count.
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

-- Check that filtered properties exist on the type (Graph answers 400 otherwise).
local function check_props(node, tname, var)
  if node.op == "and" or node.op == "or" then
    check_props(node[1], tname, var); check_props(node[2], tname, var)
  elseif node.op == "not" then
    check_props(node.expr, tname, var)
  elseif node.op == "any" or node.op == "all" then
    check_props({ op = "eq", prop = node.prop }, tname, nil)
  elseif node.prop and not (var and (node.prop == var or node.prop:sub(1, #var + 1) == var .. "/")) then
    local first = node.prop:match("^[^/]+")
    if not types.props(tname)[first] then
      util.fail(400, "Request_BadRequest", string.format(
        "Property '%s' does not exist as a declared property or extension property.", first))
    end
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

-- The k smallest ids among items (each {id=...}) greater than `after`, in order; a bounded
-- max-heap keeps the cost O(n log k) so paging a 100k-user tenant stays cheap.
function M.page_ids(items, after, k)
  local heap, n = {}, 0
  local function up(i)
    while i > 1 do
      local p = i // 2
      if heap[p].id >= heap[i].id then break end
      heap[p], heap[i] = heap[i], heap[p]
      i = p
    end
  end
  local function down(i)
    while true do
      local l, r, m = 2 * i, 2 * i + 1, i
      if l <= n and heap[l].id > heap[m].id then m = l end
      if r <= n and heap[r].id > heap[m].id then m = r end
      if m == i then return end
      heap[m], heap[i] = heap[i], heap[m]
      i = m
    end
  end
  for _, it in ipairs(items) do
    if not after or it.id > after then
      if n < k then
        n = n + 1; heap[n] = it; up(n)
      elseif it.id < heap[1].id then
        heap[1] = it; down(1)
      end
    end
  end
  table.sort(heap, function(a, b) return a.id < b.id end)
  return heap
end

-- Opaque skiptoken carrying the last id served.
function M.skiptoken(last_id) return "RFNwdAIA" .. util.b64(last_id, true) end

function M.from_skiptoken(tok)
  if tok == nil then return nil end
  local body = type(tok) == "string" and tok:match("^RFNwdAIA(.+)$")
  if not body then util.bad("Invalid $skiptoken.", "Request_BadRequest") end
  local s = body:gsub("-", "+"):gsub("_", "/")
  s = s .. string.rep("=", (4 - #s % 4) % 4)
  local B = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local bits = s:gsub("=", ""):gsub(".", function(c)
    local v = B:find(c, 1, true) - 1
    local r = ""
    for i = 5, 0, -1 do r = r .. (((v >> i) & 1 == 1) and "1" or "0") end
    return r
  end)
  return (bits:gsub("%d%d%d?%d?%d?%d?%d?%d?", function(b)
    if #b ~= 8 then return "" end
    return string.char(tonumber(b, 2))
  end))
end

return M
