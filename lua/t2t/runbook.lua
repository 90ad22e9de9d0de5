-- t2t.runbook: what a runbook is, how it is found, loaded, parameterised and run.
--
--   return runbook{
--     name = "setup-target", description = "one line\n\nmore text",
--     params = { {name = "app-name", type = "string", default = "...", help = "..."}, ... },
--     needs = { graph = {...}, exchange = {...} },   -- what it needs in a tenant (t2t.roles.needs)
--     run = function(ctx, p) ... end,
--   }
-- Runbook files load in text mode, in a fresh environment with strict globals, where `runbook`
-- declares and `connect(name)` opens a tenant with the run's options (bound by t2t.context).
-- The command line around it (t2t run/help/list) is t2t.cli's; global options are t2t.options'.
local host = require "t2t.core.host"
local options = require "t2t.options"

local M = {}

M.TYPES = { string = true, integer = true, number = true, boolean = true, list = true,
            file = true, secret = true }

local function decl_error(where, fmt, ...)
  error(string.format("%s: invalid runbook declaration: " .. fmt, where, ...), 3)
end

-- Validate a declaration; returns it with params normalised (key = lua name).
local function declare(decl, where)
  if type(decl) ~= "table" then decl_error(where, "runbook{...} takes a table") end
  for _, field in ipairs { "name", "description" } do
    if type(decl[field]) ~= "string" or decl[field] == "" then
      decl_error(where, "field '%s' must be a non-empty string", field)
    end
  end
  if type(decl.run) ~= "function" then decl_error(where, "field 'run' must be a function") end
  local params = decl.params or {}
  if type(params) ~= "table" then decl_error(where, "field 'params' must be a list") end
  local seen = {}
  for i, p in ipairs(params) do
    if type(p) ~= "table" or type(p.name) ~= "string" or not p.name:match("^[%a][%w%-_]*$") then
      decl_error(where, "params[%d] needs a name of letters, digits, '-' or '_'", i)
    end
    p.type = p.type or "string"
    if not M.TYPES[p.type] then
      decl_error(where, "param '%s' has unknown type '%s'", p.name, tostring(p.type))
    end
    p.flag = p.name:gsub("_", "-")
    p.key = p.name:gsub("%-", "_")
    if seen[p.flag] then decl_error(where, "param '%s' declared twice", p.name) end
    seen[p.flag] = p
    if p.type == "secret" and p.default ~= nil then
      decl_error(where, "secret param '%s' cannot have a default", p.name)
    end
    if (p.min ~= nil or p.max ~= nil) and p.type ~= "integer" and p.type ~= "number" then
      decl_error(where, "param '%s': min and max are for integer and number params", p.name)
    end
  end
  decl.params = params
  decl.by_flag = seen
  if decl.needs ~= nil then      -- what it needs in each tenant (docs/roles.md), checked now
    local needs = require "t2t.roles.needs"
    local ok, err = needs.check(decl.needs)
    if not ok then decl_error(where, "%s", err) end
    for _, n in ipairs({ decl.needs, decl.needs.target or {}, decl.needs.source or {} }) do
      for k in pairs(n.when or {}) do
        local p = needs.when_key(k)
        if not seen[(p:gsub("_", "-"))] then decl_error(where, "needs.when.%s names no parameter", k) end
      end
    end
  end
  -- rest = "NAME": a list param that also takes the arguments given without --NAME (files)
  if decl.rest ~= nil and not (seen[decl.rest] and seen[decl.rest].type == "list") then
    decl_error(where, "field 'rest' must name a list param")
  end
  return decl
end
M.declare = declare

-- A strict environment: reading or creating an undeclared global is an error naming it.
function M.strict_env(extra)
  local base = {}
  for k, v in pairs(_G) do base[k] = v end
  for k, v in pairs(extra or {}) do base[k] = v end
  base._G = nil
  local env = {}
  env._G = env
  return setmetatable(env, {
    __index = function(_, k)
      local v = base[k]
      if v == nil then error(string.format("undefined global '%s'", tostring(k)), 2) end
      return v
    end,
    __newindex = function(_, k)
      error(string.format("assignment to undeclared global '%s' (use 'local')", tostring(k)), 2)
    end,
  })
end

-- Regular files of bounded size only: a FIFO or device must not hang or exhaust memory.
local function read_file(path, kind)
  return require("t2t.files").read(path, kind or "runbook")
end

-- Is `name` a path to a runbook file rather than a bundled runbook's name?
function M.is_path(name)
  return name:match("%.lua$") ~= nil or name:find("/", 1, true) ~= nil
end

-- Does this Lua source declare a runbook (a line starting "return runbook")?  Lets `t2t FILE.lua`
-- run a runbook file as `t2t run FILE.lua` does.
function M.declares(src)
  return ("\n" .. src):find("\n%s*return%s+runbook%s*[{(]") ~= nil
end

-- Find a runbook's source: a path to a .lua file, the development tree, or the embedded copy.
local function find_source(name)
  if M.is_path(name) then
    local src, err = read_file(name)
    if not src then
      return nil, tostring(err) .. " -- give a runbook .lua file, or a bundled runbook's name ('t2t list')"
    end
    return src, "@" .. name
  end
  if host.lua_dir then
    local path = host.lua_dir .. "/scripts/" .. name .. ".lua"
    local src = read_file(path)
    if src then return src, "@scripts/" .. name .. ".lua" end
    return nil, string.format("no runbook named '%s' (in %s/scripts)", name, host.lua_dir)
  end
  local src, chunk = host.source(name, "runbook")
  if src then return src, chunk end
  return nil, string.format("no runbook named '%s' ('t2t list' shows them)", name)
end

-- Load a runbook by name or path; returns the validated declaration or nil, message.
function M.load(name)
  local src, chunk = find_source(name)
  if not src then return nil, chunk end
  local env = M.strict_env { runbook = function(d) return declare(d, chunk:sub(2)) end,
                             connect = function() error("connect() is for a runbook's run function", 2) end }
  local fn, err = load(src, chunk, "t", env)
  if not fn then return nil, err end
  local ok, decl = pcall(fn)
  if not ok then return nil, tostring(decl) end
  if type(decl) ~= "table" or type(decl.run) ~= "function" or not decl.by_flag then
    return nil, chunk:sub(2) .. ": a runbook file must 'return runbook{...}'"
  end
  decl.env = env
  decl.invoked = M.is_path(name) and name or decl.name   -- what `t2t run` was given
  return decl
end

-- Names of all runbooks (embedded, or in the development tree), sorted.
function M.names()
  if host.lua_dir then
    local names = {}
    for _, f in ipairs(require("t2t.core.fs").list(host.lua_dir .. "/scripts") or {}) do
      local n = f:match("^(.+)%.lua$")
      if n then names[#names + 1] = n end
    end
    return names
  end
  return host.embedded("runbook")
end

local SECRET_HELP = "env:NAME (environment variable), file:PATH, or '-' (one line of stdin)"

-- Resolve a secret parameter's reference; literal secrets on the command line are refused
-- (they land in shell history and in `ps`).
local function read_secret(flag, ref)
  local var = ref:match("^env:(.+)$")
  if var then
    local v = os.getenv(var)
    if not v or v == "" then return nil, string.format("--%s: environment variable %s is not set", flag, var) end
    return v
  end
  local path = ref:match("^file:(.+)$")
  if path then
    local s, err = read_file(path, "secret")
    if not s then return nil, string.format("--%s: %s", flag, err) end
    return (s:gsub("[\r\n]+$", ""))
  end
  if ref == "-" then
    local line = io.read("l")
    if not line then return nil, string.format("--%s: nothing on standard input", flag) end
    return line
  end
  return nil, string.format("--%s takes a reference, not the secret itself: %s", flag, SECRET_HELP)
end

-- A number within the declaration's min/max, or nil, message.
local function in_range(p, v)
  if (p.min and v < p.min) or (p.max and v > p.max) then
    local range = p.min and p.max and string.format("from %s to %s", p.min, p.max)
               or p.min and string.format("at least %s", p.min) or string.format("at most %s", p.max)
    return nil, string.format("--%s must be %s, got %s", p.flag, range, tostring(v))
  end
  return v
end

local function convert(p, raw)
  local t = p.type
  if t == "integer" then
    local v = math.tointeger(tonumber(raw))
    if not v then return nil, string.format("--%s expects an integer, got '%s'", p.flag, raw) end
    return in_range(p, v)
  elseif t == "number" then
    local v = tonumber(raw)
    if not v then return nil, string.format("--%s expects a number, got '%s'", p.flag, raw) end
    return in_range(p, v)
  elseif t == "boolean" then
    if raw == "true" or raw == "yes" or raw == "1" then return true end
    if raw == "false" or raw == "no" or raw == "0" then return false end
    return nil, string.format("--%s expects true or false, got '%s'", p.flag, raw)
  elseif t == "file" then
    local f = io.open(raw, "rb")
    if not f then return nil, string.format("--%s: cannot read file '%s'", p.flag, raw) end
    f:close()
    return raw
  elseif t == "secret" then
    return read_secret(p.flag, raw)
  end
  return raw
end

-- Parse `--name value`, `--name=value`, `--flag`, `--no-flag`, `--list a,b` against the
-- declaration.  Global options are taken into `opts` on the way.  Returns params or nil, msg.
function M.parse_args(decl, args, opts)
  local out, i = {}, 1
  while i <= #args do
    local a = args[i]
    local nexti, gerr = options.take(opts, args, i)
    if nexti then
      i = nexti
      goto continue
    elseif nexti == false then
      return nil, gerr
    end
    do
      local name, inline = a:match("^%-%-([%w][%w%-_]*)=(.*)$")
      name = name or a:match("^%-%-([%w][%w%-_]*)$")
      if not name and decl.rest and a:sub(1, 2) ~= "--" then   -- a positional argument
        local key = decl.by_flag[decl.rest].key
        out[key] = out[key] or {}
        table.insert(out[key], a)
        i = i + 1
        goto continue
      end
      if not name then
        return nil, string.format("unexpected argument '%s' (parameters are --name value)", a)
      end
      name = name:gsub("_", "-")
      local p = decl.by_flag[name]
      local negated = false
      if not p and name:match("^no%-") then
        p = decl.by_flag[name:sub(4)]
        negated = p and p.type == "boolean"
        if not negated then p = nil end
      end
      if not p then
        return nil, string.format("%s: unknown parameter --%s ('t2t help %s' lists them)",
                                  decl.name, name, decl.name)
      end
      local raw
      if p.type == "boolean" and inline == nil then
        raw = negated and "false" or "true"
      elseif negated then
        return nil, string.format("--no-%s takes no value", p.flag)
      else
        raw = inline
        if raw == nil then
          raw = args[i + 1]
          if raw == nil then return nil, string.format("--%s needs a value", p.flag) end
          i = i + 1
        end
      end
      if p.type == "list" then
        local l = out[p.key] or {}
        for item in raw:gmatch("[^,]+") do l[#l + 1] = item:match("^%s*(.-)%s*$") end
        out[p.key] = l
      else
        local v, err = convert(p, raw)
        if v == nil then return nil, err end
        out[p.key] = v
      end
      i = i + 1
    end
    ::continue::
  end
  for _, p in ipairs(decl.params) do
    if out[p.key] == nil then
      if p.default ~= nil then
        local d = p.default
        if p.type == "list" and type(d) == "table" then d = table.move(d, 1, #d, 1, {}) end
        out[p.key] = d
      elseif p.required then
        return nil, string.format("%s: missing required parameter --%s%s", decl.name, p.flag,
                                  p.help and (" (" .. p.help .. ")") or "")
      end
    end
  end
  return out
end

local function first_line(s) return (s:match("^[^\n]*")) end

-- One line per runbook for `t2t list`: name and the first line of its description.
function M.list_text()
  local names = M.names()
  local width = 0
  for _, n in ipairs(names) do width = math.max(width, #n) end
  local out = {}
  for _, n in ipairs(names) do
    local decl, err = M.load(n)
    local desc = decl and first_line(decl.description) or ("(does not load: " .. err .. ")")
    out[#out + 1] = string.format("%-" .. width .. "s  %s\n", n, desc)
  end
  return table.concat(out)
end

local function param_row(p)
  local left = "--" .. p.flag
  if p.type == "boolean" then left = left .. ", --no-" .. p.flag
  elseif p.type == "list" then left = left .. " A,B,..."
  else left = left .. " " .. p.type:upper() end
  local right = p.help or ""
  local notes = {}
  if p.required then notes[#notes + 1] = "required" end
  if p.min and p.max then notes[#notes + 1] = p.min .. " to " .. p.max
  elseif p.min then notes[#notes + 1] = ">= " .. p.min
  elseif p.max then notes[#notes + 1] = "<= " .. p.max end
  if p.default ~= nil then
    local d = p.default
    if type(d) == "table" then d = table.concat(d, ",") end
    notes[#notes + 1] = "default: " .. tostring(d)
  end
  if p.type == "secret" then notes[#notes + 1] = SECRET_HELP end
  if #notes > 0 then right = right .. (right ~= "" and " " or "") .. "(" .. table.concat(notes, "; ") .. ")" end
  return left, right
end

-- help_text(decl) -> `t2t help NAME`: the command to type (the file's path for a runbook file),
-- the description and the parameters.
function M.help_text(decl)
  local lines = { string.format("t2t run %s [parameters]", decl.invoked or decl.name), "", decl.description, "" }
  if #decl.params == 0 then
    lines[#lines + 1] = "This runbook takes no parameters."
  else
    lines[#lines + 1] = "parameters:"
    local rows, width = {}, 0
    for _, p in ipairs(decl.params) do
      local left, right = param_row(p)
      width = math.max(width, #left)
      rows[#rows + 1] = { left, right }
    end
    for _, r in ipairs(rows) do
      lines[#lines + 1] = string.format("  %-" .. width .. "s  %s", r[1], r[2])
    end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "global options (--plan, --yes, --output, ...) are accepted too: see 't2t --help'."
  return table.concat(lines, "\n") .. "\n"
end

-- execute(decl, params, opts) -> exit code: run a loaded runbook with parsed parameters under
-- the run's options (a fresh ctx; its connect() and plan use them).
function M.execute(decl, params, opts)
  return require("t2t.context").new(opts, decl):execute(decl, params)
end

-- runbook{...} also works outside a runbook file (the REPL): it declares and validates.
return setmetatable(M, { __call = function(_, d) return declare(d, "runbook{}") end })
