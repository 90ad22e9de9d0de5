-- t2t.runbook: what a runbook is, how it is found, loaded, parameterised and run.
--
--   return runbook{
--     name = "setup-target", description = "one line\n\nmore text",
--     params = { {name = "app-name", type = "string", default = "...", help = "..."}, ... },
--     needs = { graph = {...}, exchange = {...} },   -- what it needs in a tenant (t2t.roles.needs)
--     run = function(ctx, p) ... end,
--   }
-- Runbook files load in text mode, in a fresh environment with strict globals.
local host = require "t2t.core.host"

local M = {}

local EXIT = { ok = 0, failure = 1, usage = 2, partial = 3 }
M.EXIT = EXIT

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
  end
  decl.params = params
  decl.by_flag = seen
  if decl.needs ~= nil then      -- what it needs in each tenant (docs/roles.md), checked now
    local ok, err = require("t2t.roles.needs").check(decl.needs)
    if not ok then decl_error(where, "%s", err) end
    for _, n in ipairs({ decl.needs, decl.needs.target or {}, decl.needs.source or {} }) do
      for p in pairs(n.when or {}) do
        if not seen[(p:gsub("_", "-"))] then decl_error(where, "needs.when.%s names no parameter", p) end
      end
    end
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

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

-- Find a runbook's source: a path to a .lua file, the development tree, or the embedded copy.
local function find_source(name)
  if name:match("%.lua$") or name:find("/", 1, true) then
    local src, err = read_file(name)
    if not src then return nil, "cannot read runbook file: " .. err end
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
  local env = M.strict_env { runbook = function(d) return declare(d, chunk:sub(2)) end }
  local fn, err = load(src, chunk, "t", env)
  if not fn then return nil, err end
  local ok, decl = pcall(fn)
  if not ok then return nil, tostring(decl) end
  if type(decl) ~= "table" or type(decl.run) ~= "function" or not decl.by_flag then
    return nil, chunk:sub(2) .. ": a runbook file must 'return runbook{...}'"
  end
  decl.env = env
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
    local s, err = read_file(path)
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

local function convert(p, raw)
  local t = p.type
  if t == "integer" then
    local v = math.tointeger(tonumber(raw))
    if not v then return nil, string.format("--%s expects an integer, got '%s'", p.flag, raw) end
    return v
  elseif t == "number" then
    local v = tonumber(raw)
    if not v then return nil, string.format("--%s expects a number, got '%s'", p.flag, raw) end
    return v
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
  local cli = require "t2t.cli"
  local out, i = {}, 1
  while i <= #args do
    local a = args[i]
    local nexti, gerr = cli.take_global(opts, args, i)
    if nexti then
      i = nexti
      goto continue
    elseif nexti == false then
      return nil, gerr
    end
    do
      local name, inline = a:match("^%-%-([%w][%w%-_]*)=(.*)$")
      name = name or a:match("^%-%-([%w][%w%-_]*)$")
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

function M.cli_list()
  local names = M.names()
  local width = 0
  for _, n in ipairs(names) do width = math.max(width, #n) end
  for _, n in ipairs(names) do
    local decl, err = M.load(n)
    local desc = decl and first_line(decl.description) or ("(does not load: " .. err .. ")")
    io.write(string.format("%-" .. width .. "s  %s\n", n, desc))
  end
  return EXIT.ok
end

function M.help_text(decl)
  local lines = { string.format("t2t run %s [parameters]", decl.name), "", decl.description, "" }
  if #decl.params == 0 then
    lines[#lines + 1] = "This runbook takes no parameters."
  else
    lines[#lines + 1] = "parameters:"
    local rows, width = {}, 0
    for _, p in ipairs(decl.params) do
      local left = "--" .. p.flag
      if p.type == "boolean" then left = left .. ", --no-" .. p.flag
      elseif p.type == "list" then left = left .. " A,B,..."
      else left = left .. " " .. p.type:upper() end
      width = math.max(width, #left)
      local right = p.help or ""
      local notes = {}
      if p.required then notes[#notes + 1] = "required" end
      if p.default ~= nil then
        local d = p.default
        if type(d) == "table" then d = table.concat(d, ",") end
        notes[#notes + 1] = "default: " .. tostring(d)
      end
      if p.type == "secret" then notes[#notes + 1] = SECRET_HELP end
      if #notes > 0 then right = right .. (right ~= "" and " " or "") .. "(" .. table.concat(notes, "; ") .. ")" end
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

function M.cli_help(_, name)
  local decl, err = M.load(name)
  if not decl then
    io.stderr:write("t2t: ", err, "\n")
    return EXIT.usage
  end
  io.write(M.help_text(decl))
  return EXIT.ok
end

function M.cli_run(opts, name, args)
  local decl, err = M.load(name)
  if not decl then
    io.stderr:write("t2t: ", err, "\n")
    return EXIT.usage
  end
  for _, a in ipairs(args) do
    if a == "-h" or a == "--help" then io.write(M.help_text(decl)) return EXIT.ok end
  end
  local params, perr = M.parse_args(decl, args, opts)
  if not params then
    io.stderr:write("t2t: ", perr, "\n")
    return EXIT.usage
  end
  local guard, rc = require("t2t.cli").prepare(opts, "run")
  if guard == false then return rc end
  local _ <close> = guard
  local ctx = require("t2t.context").new(opts, decl)
  return ctx:execute(decl, params)
end

return M
