-- t2t.errors: errors for people.  A user error (a missing profile, a bad file, a wrong
-- parameter) is one line that names the thing and the fix; it is raised as an object whose
-- __tostring is that line, so the host's message handlers add no traceback to it.  Any other
-- error is shown as its message alone; the traceback only at --log-level debug or trace.
local M = {}

local User = { __name = "t2t.error" }
User.__index = User
User.__tostring = function(e) return e.message end

-- new(message [, fields]) -> a user error; fields.usage = true makes it a usage error (exit 2).
function M.new(message, fields)
  local e = setmetatable({ message = tostring(message) }, User)
  for k, v in pairs(fields or {}) do e[k] = v end
  return e
end

-- raise(message [, fields]): raise a user error.
function M.raise(message, fields)
  error(M.new(message, fields), 0)
end

function M.is_user(e) return getmetatable(e) == User end

-- split(err) -> message, traceback | nil: an error as a message handler left it.
function M.split(err)
  local s = tostring(err)
  local i = s:find("\nstack traceback:\n", 1, true)
  if not i then return s, nil end
  return s:sub(1, i - 1), s:sub(i + 1)
end

-- Is the traceback wanted (--log-level debug or trace)?
local function verbose()
  local log = require "t2t.log"
  return log.level() >= log.LEVELS.debug
end

-- format(err [, verbose]) -> what to print: the message, plus the traceback when verbose
-- (default: --log-level debug or trace).  A raw Lua error raised inside t2t's own modules
-- ("t2t/x.lua:12: attempt to ...") is a bug, not a mistake of the user's: say so and how to
-- see more.
function M.format(err, want_traceback)
  if want_traceback == nil then want_traceback = verbose() end
  local msg, tb = M.split(err)
  if want_traceback and tb then return msg .. "\n" .. tb end
  if not M.is_user(err) and msg:match("^t2t/[%w_/%-]+%.lua:%d+: ") then
    msg = msg .. " (this is a bug in t2t: --log-level debug shows where)"
  end
  return msg
end

return M
