-- t2t.pretty: render Lua values for people — nested tables with sorted keys, cycles marked,
-- long strings and huge tables truncated, and the values of secret-looking fields (secret,
-- password, passphrase, *token, private_key) shown as "***" unless they are references
-- (env:NAME, file:PATH).  Never print a secret, simulated or not.
local M = {}

local SECRET_KEYS = { "secret", "password", "passphrase", "token$", "private_key", "privatekey" }

-- Is v, under key k, a secret to hide?
local function hidden(k, v)
  if type(k) ~= "string" or type(v) ~= "string" or v == "" then return false end
  if v:match("^env:[%w_]+$") or v:match("^file:") then return false end
  local lk = k:lower()
  for _, pat in ipairs(SECRET_KEYS) do
    if lk:find(pat) then return true end
  end
  return false
end
M.hidden = hidden

local DEFAULT = { depth = 6, items = 60, string = 400, indent = "  " }

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta == "number" or (tb ~= "number" and ta < tb) end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function fmt_string(s, max)
  if #s > max then
    return string.format("%q", s:sub(1, max)):gsub("\\\n", "\\n") .. string.format("... (%d bytes)", #s)
  end
  return (string.format("%q", s):gsub("\\\n", "\\n"))
end

local function fmt_key(k, o)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
  return "[" .. (type(k) == "string" and fmt_string(k, o.string) or tostring(k)) .. "]"
end

local function render(v, o, depth, seen, out)
  local t = type(v)
  if t == "string" then out[#out + 1] = fmt_string(v, o.string) return end
  if t ~= "table" then out[#out + 1] = tostring(v) return end
  local mt = getmetatable(v)
  if mt and mt.__tostring then out[#out + 1] = tostring(v) return end
  if seen[v] then out[#out + 1] = "<cycle>" return end
  if depth >= o.depth then out[#out + 1] = "{...}" return end
  local n = #v
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  if n == 0 and #keys == 0 then out[#out + 1] = "{}" return end
  table.sort(keys, key_order)
  seen[v] = true
  local pad = o.indent:rep(depth + 1)
  out[#out + 1] = "{\n"
  local shown = 0
  for i = 1, n do
    if shown >= o.items then break end
    out[#out + 1] = pad
    render(v[i], o, depth + 1, seen, out)
    out[#out + 1] = ",\n"
    shown = shown + 1
  end
  for _, k in ipairs(keys) do
    if shown >= o.items then break end
    out[#out + 1] = pad .. fmt_key(k, o) .. " = "
    if hidden(k, v[k]) then out[#out + 1] = '"***"'
    else render(v[k], o, depth + 1, seen, out) end
    out[#out + 1] = ",\n"
    shown = shown + 1
  end
  local total = n + #keys
  if shown < total then
    out[#out + 1] = pad .. string.format("-- %d more\n", total - shown)
  end
  out[#out + 1] = o.indent:rep(depth) .. "}"
  seen[v] = nil
end

-- pretty.format(value [, opts]) -> string.  opts: depth, items, string (max bytes shown).
function M.format(v, opts)
  local o = DEFAULT
  if opts then
    o = {}
    for k, d in pairs(DEFAULT) do o[k] = opts[k] or d end
  end
  local out = {}
  render(v, o, 0, {}, out)
  return table.concat(out)
end

return M
