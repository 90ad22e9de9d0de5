-- t2t.log: levelled messages to stderr, with colour on a terminal (NO_COLOR honoured) and
-- redaction: any string registered with log.secret() is replaced by "***" in everything logged.
local M = {}

local LEVELS = { error = 1, warn = 2, info = 3, debug = 4, trace = 5 }
M.LEVELS = LEVELS
local level = LEVELS.info
local secrets = {}
local sink = io.stderr

local COLOR = { error = "\27[31m", warn = "\27[33m", info = "", debug = "\27[2m", trace = "\27[2m" }
local color_on

local function use_color()
  if color_on == nil then
    local ok, term = pcall(require, "t2t.core.term")
    color_on = ok and term.isatty(2) and (os.getenv("NO_COLOR") or "") == "" or false
  end
  return color_on
end

function M.set_level(name)
  level = assert(LEVELS[name], "unknown log level")
end

function M.level() return level end

function M.enabled(name) return LEVELS[name] <= level end

-- Replace every registered secret in s.
function M.redact(s)
  s = tostring(s)
  for secret in pairs(secrets) do
    local i, j = s:find(secret, 1, true)
    while i do
      s = s:sub(1, i - 1) .. "***" .. s:sub(j + 1)
      i, j = s:find(secret, i + 3, true)
    end
  end
  return s
end

-- Register a value that must never appear in output (secrets shorter than 4 chars are ignored:
-- they would redact ordinary text).
function M.secret(value)
  if type(value) == "string" and #value >= 4 then secrets[value] = true end
  return value
end

-- Redirect output (tests).
function M.set_sink(f) sink = f; color_on = false end

local function emit(name, fmt, ...)
  if LEVELS[name] > level then return end
  local msg = select("#", ...) > 0 and string.format(fmt, ...) or tostring(fmt)
  msg = M.redact(msg)
  local prefix = name == "info" and "" or (name .. ": ")
  if use_color() and COLOR[name] ~= "" then
    sink:write(COLOR[name], prefix, msg, "\27[0m\n")
  else
    sink:write(prefix, msg, "\n")
  end
end

for name in pairs(LEVELS) do
  M[name] = function(fmt, ...) emit(name, fmt, ...) end
end

return M
