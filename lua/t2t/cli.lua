-- t2t.cli: the command line.  Parses global options once, then dispatches to a command.
-- Kept small and lazy: `t2t -e ''` must start about as fast as bare lua5.4.
local M = {}

M.EXIT = { ok = 0, failure = 1, usage = 2, partial = 3 }

local USAGE = [[
usage: t2t [global options] [command] [args]

commands:
  (none)                     interactive Lua REPL (when stdin is a terminal; otherwise
                             stdin is run as a Lua script)
  run RUNBOOK|FILE [--param value ...]
                             run a bundled runbook by name, or a runbook .lua file
  list                       bundled runbooks, one line each
  help RUNBOOK               a runbook's parameters and what it does
  -e CODE                    run a line of Lua (repeatable)
  FILE.lua [args]            run a Lua script (modules load on use, as in the REPL)
  sim [options]              the simulated Microsoft cloud, standalone (see `t2t sim --help`)
  version                    print the version

global options (before or after the command):
  --profile NAME             tenant profile from the config file
  --config FILE              config file (default $XDG_CONFIG_HOME/t2t/config.lua)
  --plan                     dry run: print what would change, change nothing
  --yes                      answer yes to confirmations
  --output text|json         output format of results (default text)
  --log-level LEVEL          error, warn, info (default), debug, trace
  --audit FILE               append every applied change to FILE (JSON lines)
  --sim[=STATE.json]         run against an in-process simulator
  -h, --help                 this help

exit codes: 0 ok, 1 failure, 2 usage error, 3 partial (some items failed)
]]

-- Global options: name -> spec.  `ready = false` marks options whose machinery is not built
-- yet; using one is an error rather than being silently ignored.
M.GLOBALS = {
  profile   = { arg = true,  ready = true },
  config    = { arg = true,  ready = true },
  plan      = { arg = false, ready = true },
  yes       = { arg = false, ready = true },
  output    = { arg = true,  ready = true, choices = { text = true, json = true } },
  ["log-level"] = { arg = true, ready = true,
                    choices = { error = true, warn = true, info = true, debug = true, trace = true } },
  audit     = { arg = true,  ready = true },
  sim       = { arg = "optional", ready = true },
}

local function usage_error(fmt, ...)
  io.stderr:write("t2t: ", string.format(fmt, ...), "\n",
                  "Try 't2t --help'.\n")
  return M.EXIT.usage
end
M.usage_error = usage_error

-- Try to take a global option at args[i]; returns the next index, or nil if args[i] is not one,
-- or false, message on a usage error.
function M.take_global(opts, args, i)
  local a = args[i]
  local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
  name = name or a:match("^%-%-([%w%-]+)$")
  local spec = name and M.GLOBALS[name]
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
      local c = {}
      for k in pairs(spec.choices) do c[#c + 1] = k end
      table.sort(c)
      return false, string.format("option --%s: '%s' is not one of %s", name, value,
                                  table.concat(c, ", "))
    end
  elseif spec.arg == "optional" then
    value = inline or true
  else
    if inline ~= nil then return false, "option --" .. name .. " takes no value" end
    value = true
  end
  if not spec.ready then
    return false, "option --" .. name .. " is documented but not available in this build yet"
  end
  opts[name:gsub("%-", "_")] = value
  return i + 1
end

local commands = {}

function commands.version()
  local host = require "t2t.core.host"
  io.write("t2t ", host.version, " (", host.lua_release, ")\n")
  return 0
end

function commands.help(opts, args)
  if not args[1] then io.write(USAGE) return 0 end
  return require("t2t.runbook").cli_help(opts, args[1])
end

function commands.list(opts)
  return require("t2t.runbook").cli_list(opts)
end

function commands.run(opts, args)
  if not args[1] then return usage_error("run: which runbook? ('t2t list' shows them)") end
  return require("t2t.runbook").cli_run(opts, args[1], table.move(args, 2, #args, 1, {}))
end

function commands.sim(opts, args)
  local ok, sim = pcall(require, "t2t.sim.cli")
  if not ok then
    io.stderr:write("t2t: the simulator is not available in this build yet\n")
    return M.EXIT.failure
  end
  return sim.main(opts, args)
end

-- Run Lua code (from -e or stdin) in the REPL's environment.
local function run_code(code, chunkname)
  local env = require("t2t.repl").environment()
  local fn, err = load(code, chunkname, "t", env)
  if not fn then
    io.stderr:write("t2t: ", err, "\n")
    return M.EXIT.failure
  end
  fn()
  return 0
end

-- `t2t FILE.lua [args]`: run a plain Lua script, with `arg` as lua5.4 sets it.
function M.script(path, rest)
  local fn, err = loadfile(path, "t", require("t2t.repl").environment())
  if not fn then
    io.stderr:write("t2t: ", err, "\n")
    return M.EXIT.failure
  end
  local a = { [0] = path }
  table.move(rest, 2, #rest, 1, a)
  _G.arg = a
  fn(table.unpack(a))
  return 0
end

-- --sim[=STATE.json]: an in-process simulator for this run (opts.sim_instance; also
-- require("t2t.sim").current()), stopped at exit, saving STATE.json when given.  Returns a
-- to-be-closed guard, nil without --sim, or false after reporting a start failure.
local function start_sim(opts, cmd)
  if not opts.sim or cmd == "sim" then return nil end
  local s, err = require("t2t.sim").start { state = type(opts.sim) == "string" and opts.sim or nil }
  if not s then
    io.stderr:write("t2t: --sim: ", tostring(err), "\n")
    return false
  end
  opts.sim_instance = s
  return setmetatable({}, { __close = function()
    local ok, e = s:stop()
    if not ok then io.stderr:write("t2t: --sim: could not save the state: ", tostring(e), "\n") end
  end })
end

-- --profile NAME / --config FILE: the config file must be valid data and the profile must exist
-- (a simulator tenant under --sim) before anything runs.  Runbooks and the REPL then read it
-- with require("t2t.config").selected(opts) or require("t2t.auth").selected(opts).
local function check_profile(opts, cmd)
  if not (opts.profile or opts.config) or cmd == "sim" or cmd == "help" or cmd == "version" then return true end
  local config = require "t2t.config"
  if opts.profile then return config.selected(opts) end
  return config.load(opts.config)
end

-- Start what the global options ask for before a command runs: the --sim simulator and the
-- --profile/--config check.  Returns a to-be-closed guard (or nil), or false, exit code after
-- reporting the problem.
function M.prepare(opts, cmd)
  local guard = start_sim(opts, cmd)
  if guard == false then return false, M.EXIT.failure end
  local prof_ok, prof_err = check_profile(opts, cmd)
  if not prof_ok then
    if guard then getmetatable(guard).__close() end
    io.stderr:write("t2t: ", tostring(prof_err), "\n")
    return false, M.EXIT.usage
  end
  return guard
end

function M.main(argv)
  local opts, rest, code = {}, {}, {}
  local i, n = 1, #argv
  while i <= n do
    local a = argv[i]
    if a == "-e" then
      if not argv[i + 1] then return usage_error("-e needs an argument") end
      code[#code + 1] = argv[i + 1]
      i = i + 2
    elseif a == "-h" or a == "--help" then
      if #rest == 0 then io.write(USAGE) return 0 end
      rest[#rest + 1] = a
      i = i + 1
    elseif a == "--" then
      table.move(argv, i + 1, n, #rest + 1, rest)
      break
    else
      local nexti, err = M.take_global(opts, argv, i)
      if nexti then
        i = nexti
      elseif nexti == false then
        return usage_error("%s", err)
      else
        rest[#rest + 1] = a
        i = i + 1
        -- the runbook's own parameters follow its name: leave them to the runbook parser
        if #rest >= 2 and rest[1] == "run" then
          table.move(argv, i, n, #rest + 1, rest)
          break
        end
      end
    end
  end
  M.opts = opts
  -- `run` starts the simulator and checks the profile once the runbook's arguments (which may
  -- hold global options such as --sim) are parsed: see runbook.cli_run -> M.prepare.
  local guard, rc
  if rest[1] ~= "run" then
    guard, rc = M.prepare(opts, rest[1])
    if guard == false then return rc end
  end
  local _ <close> = guard
  if #code > 0 then
    for k, c in ipairs(code) do
      local crc = run_code(c, "=(command line)" .. (k > 1 and k or ""))
      if crc ~= 0 then return crc end
    end
    return 0
  end
  local cmd = rest[1]
  if cmd == nil then
    local term = require "t2t.core.term"
    if term.isatty(0) then return require("t2t.repl").run(opts) end
    return run_code(io.read("a"), "=stdin")
  end
  local f = commands[cmd]
  if not f then
    if cmd:match("%.lua$") then return M.script(cmd, rest) end
    return usage_error("unknown command '%s'", cmd)
  end
  return f(opts, table.move(rest, 2, #rest, 1, {}))
end

return M
