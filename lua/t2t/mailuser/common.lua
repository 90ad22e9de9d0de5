-- t2t.mailuser.common: what the parts of t2t.mailuser share — addresses and proxies, GUIDs,
-- sizes as Exchange prints them, and reading one Exchange object.
local tenant = require "t2t.tenant"

local M = {}
local lower = string.lower

M.ZERO = "00000000-0000-0000-0000-000000000000"
M.failure = tenant.failure
M.CTUDM_CAPABILITY = "ExchangeT2TMbxMove"
M.CTUDM_SKU = "946ce899-873d-44bb-9d8b-671870cbfdbf"
M.CTUDM_PART = "Cross_tenant_user_data_migration"

-- Mailbox kinds a cross-tenant move takes (Get-Mailbox -RecipientTypeDetails).
M.MOVABLE = { "UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox" }

-- (JSON null, as Exchange sends for a GUID that is not set, is no GUID either.)
function M.is_zero(g) return type(g) ~= "string" or g == "" or lower(g) == M.ZERO end

-- GUIDs equal (case-insensitively), and not the zero GUID.
function M.guid_eq(a, b)
  return not M.is_zero(a) and not M.is_zero(b) and lower(a) == lower(b)
end

-- A multi-valued property as a list (EXO gives a list, one string, or nothing).
function M.list(v)
  if type(v) == "table" then return v end
  if type(v) ~= "string" then return {} end   -- nil, or null from a conformed output
  return { v }
end

-- "smtp:a@b" -> "smtp", "a@b"; "a@b" -> nil, "a@b".
function M.split_proxy(p)
  local pre, rest = tostring(p):match("^(%a[%w]*):(.*)$")
  if pre then return pre, rest end
  return nil, p
end

function M.is_smtp(p)
  local pre = M.split_proxy(p)
  return pre ~= nil and lower(pre) == "smtp"
end

-- X500 and X400 proxies (what a target copies verbatim).
function M.is_x500(p)
  local pre = M.split_proxy(p)
  return pre ~= nil and (lower(pre) == "x500" or lower(pre) == "x400")
end

-- A plausible e-mail address (local@domain.tld), not a display name or an alias.
function M.is_address(s)
  return type(s) == "string" and s:match("^[^@%s]+@[%w%-%.]+%.%w+$") ~= nil
end

function M.domain_of(addr)
  local d = tostring(addr or ""):match("@([^@]+)$")
  return d and lower(d)
end

-- The address part of a proxy or an ExternalEmailAddress ("SMTP:a@b" -> "a@b").
function M.address(p)
  if p == nil then return nil end
  return (select(2, M.split_proxy(p)))
end

-- Does list hold value (case-insensitively)?
function M.has(list, value)
  local v = lower(value)
  for _, x in ipairs(M.list(list)) do
    if lower(x) == v then return true end
  end
  return false
end

-- Bytes of a size as Exchange prints it ("1.5 GB (1,610,612,736 bytes)"), a number, or nil.
function M.bytes(v)
  if type(v) == "number" then return v end
  if type(v) ~= "string" then return nil end
  local n = v:match("%(([%d,]+) bytes%)")
  if n then return tonumber((n:gsub(",", ""))) end
  if v:lower() == "unlimited" then return math.huge end
  return tonumber(v)
end

function M.gb(bytes)
  return string.format("%.1f GB", (bytes or 0) / 1073741824)
end

-- A user record's key: its primary address, lower-case.
function M.key(u) return lower(u.PrimarySmtpAddress or u.Name or "") end

-- An EXO error's exception short name.
M.exo_code = tenant.exo_code

local function not_found(err)
  local c = M.exo_code(err)
  return c == "ManagementObjectNotFoundException" or (type(err) == "table" and err.status == 404)
end
M.not_found = not_found

-- get_one(t, cmdlet, params [, opts]) -> the object | nil (it does not exist) | nil, err.
function M.get_one(t, cmdlet, params, opts)
  local list, err = t:xo(cmdlet, params, opts)
  if list then return list[1] end
  if not_found(err) then return nil end
  return nil, err
end

-- A per-user problem: {code, message, fix, exception}; tostring gives the message.
local ProblemMT = { __tostring = function(p) return p.message end }
function M.problem(code, message, fix, extra)
  local p = setmetatable({ code = code, message = message, fix = fix }, ProblemMT)
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

return M
