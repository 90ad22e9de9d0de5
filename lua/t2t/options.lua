-- t2t.options: the global options a run was started with (--profile, --config, --sim, --plan,
-- --yes, --output, --log-level, --audit, --dns, --warn-expiry).  The host (t2t.cli) parses them
-- with options.take and hands the table down: to a runbook's ctx.opts, to the REPL, and here, so
-- library code that was given no options (connect(), auth.selected()) uses the run's own.
-- Nothing here reaches up.
local M = {}

-- name -> {arg = true (a value) | false (a flag) | "optional" (--name or --name=VALUE),
-- choices = {value = true}, count = "what the number counts" (a whole number >= 0)}.  A value
-- that may look like a file name is only taken with "=".
M.SPEC = {
  profile   = { arg = true },
  config    = { arg = true },
  plan      = { arg = false },
  yes       = { arg = false },
  output    = { arg = true, choices = { text = true, json = true } },
  ["log-level"] = { arg = true, choices = { error = true, warn = true, info = true, debug = true, trace = true } },
  audit     = { arg = true },
  sim       = { arg = "optional" },
  dns       = { arg = true },
  -- every credential a run signs in with (and verify-setup's app's) that expires within DAYS
  -- is named, with its date, at the start of the run (t2t.context: expiry_window)
  ["warn-expiry"] = { arg = true, count = "days (0 or more; 0 turns the warnings off)" },
}

local function choices(spec)
  local c = {}
  for k in pairs(spec.choices) do c[#c + 1] = k end
  table.sort(c)
  return table.concat(c, ", ")
end

-- take(opts, args, i) -> the next index after a global option at args[i] (stored in opts, '-'
-- turned into '_'), nil when args[i] is not one, or false, message on a usage error.
function M.take(opts, args, i)
  local a = args[i]
  local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
  name = name or a:match("^%-%-([%w%-]+)$")
  local spec = name and M.SPEC[name]
  if not spec then return nil end
  local value
  if spec.arg == true then
    value = inline
    if value == nil then
      value = args[i + 1]
      if value == nil then return false, "option --" .. name .. " needs a value" end
      i = i + 1
    end
    if spec.choices and not spec.choices[value] then
      return false, string.format("option --%s: '%s' is not one of %s", name, value, choices(spec))
    end
    if spec.count then
      local n = math.tointeger(tonumber(value))
      if not n or n < 0 then
        return false, string.format("option --%s: '%s' is not a number of %s", name, value, spec.count)
      end
      value = n
    end
  elseif spec.arg == "optional" then
    value = inline or true
    if value == "" then return false, "option --" .. name .. "= needs a file name after '='" end
  else
    if inline ~= nil then return false, "option --" .. name .. " takes no value" end
    value = true
  end
  opts[name:gsub("%-", "_")] = value
  return i + 1
end

local current = {}

-- set(opts): the host records the options of this run (the table itself: later additions, such
-- as the running simulator, are seen too).
function M.set(opts) current = opts or {} end

-- current() -> the options of this run ({} before the host set them).
function M.current() return current end

return M
