-- t2t.cli: the command line.  Parses global options once (t2t.options), then dispatches to a
-- command.  Errors reach the user as one line; the traceback only with --log-level debug.
-- Kept small and lazy: `t2t -e ''` must start about as fast as bare lua5.4.
local options = require "t2t.options"

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
  help RUNBOOK|FILE          a runbook's parameters and what it does
  doctor                     check this machine and the config file (t2t run doctor)
  init [FILE]                write a commented config file to fill in (default: the config path)
  -e CODE                    run a line of Lua (repeatable); connect("NAME") opens a tenant
  FILE.lua [args]            run a Lua script (modules load on use, as in the REPL); a runbook
                             file runs as with 'run'
  sim [options]              the simulated Microsoft cloud, standalone (see `t2t sim --help`)
  version, --version         print the version

global options (before or after the command):
  --profile NAME             tenant profile from the config file ("env": the AZURE_* variables)
  --config FILE              config file (default $XDG_CONFIG_HOME/t2t/config.lua)
  --plan                     dry run: print what would change, change nothing
  --yes                      answer yes to confirmations
  --output text|json         output format of results (default text)
  --log-level LEVEL          error, warn, info (default), debug (adds tracebacks), trace
  --audit FILE               append every applied change to FILE (JSON lines)
  --sim[=STATE.json]         run against an in-process simulator (state file: with '=')
  --dns HOST[:PORT],...      DNS servers for lookups (default: the config's dns = "...",
                             else /etc/resolv.conf)
  --warn-expiry DAYS         name a credential a run signs in with that expires within DAYS
                             (default 30; 0: never)
  -h, --help                 this help

exit codes: 0 ok, 1 failure, 2 usage error, 3 partial (some items failed)
]]

local function usage_error(fmt, ...)
  io.stderr:write("t2t: ", string.format(fmt, ...), "\n",
                  "Try 't2t --help'.\n")
  return M.EXIT.usage
end

-- Print a message as "t2t: message" and return the failure exit code.
local function failed(msg, code)
  io.stderr:write("t2t: ", require("t2t.log").redact(tostring(msg)), "\n")
  return code or M.EXIT.failure
end

---------------------------------------------------------------------------------------------
-- What the global options ask for before a command runs.

-- --sim[=STATE.json]: an in-process simulator for this run (opts.sim_instance; also
-- require("t2t.sim").current()), stopped at exit -- its temporary CA file removed, STATE.json
-- saved when given.  Returns a to-be-closed guard, nil without --sim, or false after reporting.
local function start_sim(opts, cmd)
  if not opts.sim or cmd == "sim" then return nil end
  -- Ed25519 keys: made at once, and only t2t talks to this simulator (`t2t sim` keeps RSA)
  local s, err = require("t2t.sim").start { state = type(opts.sim) == "string" and opts.sim or nil,
                                            key_type = "ed25519" }
  if not s then
    failed("--sim: " .. tostring(err):gsub("^server: ", ""))
    return false
  end
  opts.sim_instance = s
  return setmetatable({}, { __close = function()
    local ok, e = s:stop()
    -- one line about an unwritable state: the run may have said so already (t2t.context)
    if not ok and not opts.sim_state_reported then
      io.stderr:write("t2t: --sim: could not save the state: ", tostring(e), "\n")
    end
  end })
end

-- --profile NAME / --config FILE: the config file must be valid data and the profile must exist
-- (a simulator tenant under --sim) before anything runs -- except for what diagnoses the config
-- itself (doctor).  Library code then reads it with config.selected / connect().
local function check_profile(opts, cmd, decl)
  if not (opts.profile or opts.config) or cmd == "sim" or cmd == "help" or cmd == "version"
     or cmd == "init" or (decl and decl.diagnoses_config) then return true end
  local config = require "t2t.config"
  if opts.profile then return config.selected(opts) end
  return config.load(opts.config)
end

-- prepare(opts, cmd [, decl]) -> a to-be-closed guard (or nil) | false, exit code after
-- reporting the problem: the --sim simulator and the --profile/--config check.
function M.prepare(opts, cmd, decl)
  local guard = start_sim(opts, cmd)
  if guard == false then return false, M.EXIT.failure end
  if opts.dns then                     -- --dns: the resolver every lookup uses (t2t.dns)
    local ok, err = require("t2t.dns").configure { servers = opts.dns }
    if not ok then
      if guard then getmetatable(guard).__close() end
      io.stderr:write("t2t: --dns: ", tostring(err), "\n")
      return false, M.EXIT.usage
    end
  end
  local prof_ok, prof_err = check_profile(opts, cmd, decl)
  if not prof_ok then
    if guard then getmetatable(guard).__close() end
    return false, failed(prof_err, M.EXIT.usage)
  end
  -- the config's own resolver (dns = "..."; t2t sim --write-config writes its DNS server's),
  -- when the run names the config and --dns does not say otherwise
  if not opts.dns and not opts.sim and (opts.profile or opts.config) then
    local cfg = require("t2t.config").load(opts.config)
    if cfg and cfg.dns then
      local ok, err = require("t2t.dns").configure { servers = cfg.dns }
      if not ok then
        if guard then getmetatable(guard).__close() end
        return false, failed(string.format("%s: dns: %s", cfg.path, tostring(err)), M.EXIT.usage)
      end
    end
  end
  return guard
end

---------------------------------------------------------------------------------------------
-- Commands.

local commands = {}

function commands.version()
  local host = require "t2t.core.host"
  io.write("t2t ", host.version, " (", host.lua_release, ")\n")
  return 0
end

function commands.help(_, args)
  if not args[1] then io.write(USAGE) return 0 end
  local runbook = require "t2t.runbook"
  local decl, err = runbook.load(args[1])
  if not decl then return failed(err, M.EXIT.usage) end
  io.write(runbook.help_text(decl))
  return M.EXIT.ok
end

function commands.list()
  io.write(require("t2t.runbook").list_text())
  return M.EXIT.ok
end

-- Run a loaded runbook: its parameters (and global options among them), then --sim and the
-- profile check, then the run itself.
local function run_decl(opts, decl, args)
  local runbook = require "t2t.runbook"
  for _, a in ipairs(args) do
    if a == "-h" or a == "--help" then io.write(runbook.help_text(decl)) return M.EXIT.ok end
  end
  local params, perr = runbook.parse_args(decl, args, opts)
  if not params then
    if not perr:find("'t2t help ", 1, true) then
      perr = perr .. string.format(" ('t2t help %s' lists the parameters)", decl.invoked)
    end
    return failed(perr, M.EXIT.usage)
  end
  if opts.log_level then require("t2t.log").set_level(opts.log_level) end
  local guard, rc = M.prepare(opts, "run", decl)
  if guard == false then return rc end
  local _ <close> = guard
  -- kill (SIGTERM) or a closed terminal (SIGHUP) ends the run as Ctrl-C does: recorded as
  -- interrupted, its temporary files and simulator removed
  require("t2t.core.host").stop_on_term()
  return runbook.execute(decl, params, opts)
end

function commands.run(opts, args)
  if not args[1] then return usage_error("run: which runbook? ('t2t list' shows them)") end
  local decl, err = require("t2t.runbook").load(args[1])
  if not decl then return failed(err, M.EXIT.usage) end
  return run_decl(opts, decl, table.move(args, 2, #args, 1, {}))
end

-- `t2t doctor [--param ...]` is `t2t run doctor`.
function commands.doctor(opts, args)
  table.insert(args, 1, "doctor")
  return commands.run(opts, args)
end

-- `t2t init [FILE]`: a commented config file to fill in; never over an existing one.
function commands.init(opts, args)
  if #args > 1 or (args[1] or ""):match("^%-") then return usage_error("usage: t2t init [FILE]") end
  local config = require "t2t.config"
  local path = args[1] or config.path(opts.config)
  if not path then return failed("no config path: set HOME or XDG_CONFIG_HOME, or give one: t2t init FILE") end
  local ok, err = require("t2t.config.template").write(path)
  if not ok then return failed(err) end
  io.write("wrote ", path, " (mode 0600): fill in a profile, then check it with 't2t doctor'",
           args[1] and (" --config " .. path) or "", "\n")
  return M.EXIT.ok
end

function commands.sim(opts, args)
  local ok, sim = pcall(require, "t2t.sim.cli")
  if not ok then return failed("the simulator is not available in this build") end
  return sim.main(opts, args)
end

-- Run Lua code (from -e or stdin) in the REPL's environment.
local function run_code(code, chunkname)
  local env = require("t2t.repl").environment()
  local fn, err = load(code, chunkname, "t", env)
  if not fn then return failed(err) end
  fn()
  return 0
end

-- `t2t FILE.lua [args]`: a runbook file runs as `t2t run FILE.lua [args]`; any other Lua file
-- runs as a plain script, with `arg` as lua5.4 sets it.
local function script(opts, path, rest)
  local runbook = require "t2t.runbook"
  local src, err = require("t2t.files").read(path, "runbook")
  if not src then return failed(err, M.EXIT.usage) end
  if runbook.declares(src) then return commands.run(opts, rest) end
  local guard, rc = M.prepare(opts, "script")
  if guard == false then return rc end
  local _ <close> = guard
  local fn, lerr = load(src, "@" .. path, "t", require("t2t.repl").environment())
  if not fn then return failed(lerr) end
  local a = { [0] = path }
  table.move(rest, 2, #rest, 1, a)
  _G.arg = a
  local result = fn(table.unpack(a))
  if type(result) == "table" and result.by_flag and type(result.run) == "function" then
    result.invoked = path                     -- built with runbook{...} some other way
    return run_decl(opts, result, table.move(rest, 2, #rest, 1, {}))
  end
  return 0
end

---------------------------------------------------------------------------------------------
-- main.

-- parse(argv) -> opts, rest, code | nil, exit code (after a usage error or --help/--version).
local function parse(argv)
  local opts, rest, code = {}, {}, {}
  local i, n = 1, #argv
  while i <= n do
    local a = argv[i]
    if a == "-e" then
      if not argv[i + 1] then return nil, usage_error("-e needs an argument") end
      code[#code + 1] = argv[i + 1]
      i = i + 2
    elseif (a == "-h" or a == "--help") and #rest == 0 then
      io.write(USAGE)
      return nil, 0
    elseif (a == "--version" or a == "-V") and #rest == 0 then
      return nil, commands.version()
    elseif a == "--" then
      table.move(argv, i + 1, n, #rest + 1, rest)
      break
    else
      local nexti, err = options.take(opts, argv, i)
      if nexti then
        i = nexti
      elseif nexti == false then
        return nil, usage_error("%s", err)
      else
        rest[#rest + 1] = a
        i = i + 1
        -- a runbook's own parameters follow its name: leave them to the runbook parser
        if #rest >= 2 and (rest[1] == "run" or rest[1] == "doctor") then
          table.move(argv, i, n, #rest + 1, rest)
          break
        end
      end
    end
  end
  if #code > 0 and #rest > 0 then
    local hint = ""
    if opts.sim == true and rest[1]:match("%.json$") then
      hint = string.format(" (a state file goes with '=': --sim=%s)", rest[1])
    end
    return nil, usage_error("unexpected argument '%s' with -e%s", rest[1], hint)
  end
  return opts, rest, code
end

local function dispatch(opts, rest, code)
  local cmd = rest[1]
  -- `run` (and a runbook file) start the simulator and check the profile once the runbook's
  -- arguments (which may hold global options such as --sim) are parsed: see run_decl.
  local runs = cmd == "run" or cmd == "doctor" or (cmd and cmd:match("%.lua$"))
  local guard, rc
  if not runs then
    guard, rc = M.prepare(opts, cmd)
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
  if cmd == nil then
    local term = require "t2t.core.term"
    if term.isatty(0) then return require("t2t.repl").run(opts) end
    return run_code(io.read("a"), "=stdin")
  end
  local f = commands[cmd]
  if f then return f(opts, table.move(rest, 2, #rest, 1, {})) end
  if cmd:match("%.lua$") then return script(opts, cmd, rest) end
  return usage_error("unknown command '%s'", cmd)
end

-- An error that reached the top: one line (a traceback only at --log-level debug).
local function on_error(e)
  local errors = require "t2t.errors"
  if type(e) == "string" then e = debug.traceback(e, 2) end
  return { text = errors.format(e), usage = errors.is_user(e) and e.usage }
end

function M.main(argv)
  local opts, rest, code = parse(argv)
  if not opts then return rest end
  options.set(opts)
  if opts.log_level then require("t2t.log").set_level(opts.log_level) end
  -- host.xpcall: this is where an interruption (Ctrl-C, kill) is reported, once
  local ok, rc = require("t2t.core.host").xpcall(dispatch, on_error, opts, rest, code)
  if ok then return rc end
  return failed(rc.text, rc.usage and M.EXIT.usage or M.EXIT.failure)
end

return M
