-- t2t.repl: the interactive prompt.  Every t2t module is a global that loads on first use;
-- `return <line>` is tried before the line as a statement (as lua.c does); incomplete chunks
-- continue on the next line; results are pretty-printed (secrets masked); Ctrl-C cancels the
-- running chunk; an error shows its message (the traceback only at --log-level debug).
-- connect("NAME") opens a tenant with the options t2t was started with (t2t.options).
local M = {}

-- Globals the REPL and -e code get on first use (name -> module).
M.AUTOLOAD = {
  cjson = "cjson", pretty = "t2t.pretty", log = "t2t.log", runbook = "t2t.runbook",
}
-- t2t modules that may be present in this build; listed only if they load.
local OPTIONAL = { "http", "crypto", "jwt", "auth", "graph", "exo", "azure", "tenant", "plan", "connect",
                   "config", "clouds", "progress",
                   "mailuser", "batch", "dkim", "roles", "csv", "dns", "sim" }

local env_cache

local function module_exists(name)
  if package.preload[name] then return true end
  return package.searchpath(name, package.path) ~= nil
end

-- The environment REPL lines and `t2t -e` code run in: _G plus lazily loaded modules.
function M.environment()
  if env_cache then return env_cache end
  for _, n in ipairs(OPTIONAL) do
    if module_exists("t2t." .. n) then M.AUTOLOAD[n] = "t2t." .. n end
  end
  M.AUTOLOAD.t2t = "t2t"
  if not module_exists("t2t") then M.AUTOLOAD.t2t = nil end
  env_cache = setmetatable({}, {
    __index = function(t, k)
      local v = _G[k]
      if v == nil and M.AUTOLOAD[k] then
        v = require(M.AUTOLOAD[k])
        rawset(t, k, v)
      end
      return v
    end,
  })
  return env_cache
end

local function state_dir()
  local base = os.getenv("XDG_STATE_HOME")
  if not base or base == "" then
    local home = os.getenv("HOME")
    if not home then return nil end
    base = home .. "/.local/state"
  end
  return base .. "/t2t"
end

-- Candidates for completing `word`: globals, or fields of the table the dotted prefix names.
function M.complete(word)
  local env = M.environment()
  local prefix, sep, partial = word:match("^(.*)([%.:])([%w_]*)$")
  local scope, names = nil, {}
  if prefix then
    local v = env
    for part in prefix:gmatch("[^%.:]+") do
      if type(v) ~= "table" then v = nil break end
      v = v[part]
    end
    scope = v
  else
    partial, prefix, sep = word, "", ""
    for k in pairs(_G) do names[k] = true end
    for k in pairs(M.AUTOLOAD) do names[k] = true end
    for k in pairs(env) do names[k] = true end
  end
  if type(scope) == "table" then
    for k in pairs(scope) do names[k] = true end
    local mt = getmetatable(scope)
    if mt and type(mt.__index) == "table" then
      for k in pairs(mt.__index) do names[k] = true end
    end
  end
  local out = {}
  for k in pairs(names) do
    if type(k) == "string" and k:match("^[%a_][%w_]*$") and k:sub(1, #partial) == partial then
      out[#out + 1] = prefix .. sep .. k
    end
  end
  table.sort(out)
  return out
end

local function incomplete(err)
  return err:sub(-5) == "<eof>"
end

-- Compile a chunk: "return <chunk>" first, then the chunk as statements.
function M.compile(chunk, env)
  local fn = load("return " .. chunk, "=stdin", "t", env)
  if fn then return fn end
  local err
  fn, err = load(chunk, "=stdin", "t", env)
  if fn then return fn end
  if incomplete(err) then return nil, err, true end
  return nil, err
end

local function print_results(n, ...)
  if n == 0 then return end
  local pretty = require "t2t.pretty"
  local parts = {}
  for i = 1, n do parts[i] = pretty.format((select(i, ...))) end
  io.write(require("t2t.log").redact(table.concat(parts, "\t")), "\n")
end

-- Run a compiled line; print its results, or its error as the message alone.
function M.evaluate(fn)
  local host = require "t2t.core.host"
  local function handle(ok, ...)
    if not ok then
      io.stderr:write(require("t2t.log").redact(require("t2t.errors").format((...))), "\n")
      return
    end
    print_results(select("#", ...), ...)
  end
  handle(host.pcall(fn))
end

function M.run(_)
  local term = require "t2t.core.term"
  local host = require "t2t.core.host"
  local env = M.environment()
  local dir = state_dir()
  local history = dir and (dir .. "/history")
  if dir then
    require("t2t.core.fs").mkdir(dir, tonumber("700", 8))
    term.load_history(history, 1000)
  end
  term.set_completer(M.complete)
  io.write("t2t ", host.version, " -- Lua ", host.lua_release:match("[%d%.]+$") or "",
           " REPL.  Modules load on use (graph, exo, ...); Ctrl-D exits.\n")
  while true do
    local line, why = term.readline("t2t> ")
    if line == nil then io.write("\n") break end
    if why == "interrupt" then io.write("\n") end    -- a fresh prompt on a line of its own
    if why ~= "interrupt" and line:match("%S") then
      local chunk = line
      local fn, err, more = M.compile(chunk, env)
      while more do
        local cont
        cont, why = term.readline(">> ")
        if cont == nil or why == "interrupt" then io.write("\n") fn, err = nil, nil break end
        chunk = chunk .. "\n" .. cont
        fn, err, more = M.compile(chunk, env)
      end
      term.add_history(chunk)
      if fn then M.evaluate(fn)
      elseif err then io.stderr:write(err, "\n") end
    end
  end
  if history then term.save_history(history, 1000) end
  return 0
end

return M
