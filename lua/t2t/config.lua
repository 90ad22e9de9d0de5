-- t2t.config: the config file of tenant profiles ($XDG_CONFIG_HOME/t2t/config.lua, --config).
--
--   return {
--     default = "contoso",
--     profiles = {
--       contoso = { tenant = "contoso.onmicrosoft.com", tenant_id = "GUID", cloud = "global",
--                   client_id = "GUID", secret = "env:CONTOSO_SECRET" },
--       fabrikam = { tenant = "fabrikam.onmicrosoft.com", client_id = "GUID",
--                    certificate = "~/.t2t/fabrikam.pem", key_passphrase = "file:~/.t2t/pass" },
--     },
--   }
--
-- The file is DATA: before anything runs, a small parser checks that it is exactly one
-- `return` of a table constructor made of strings, numbers, booleans and nested tables — no
-- names read, no calls, no operators, no functions.  Only then is it loaded (text mode, empty
-- environment, instruction limit).  Secrets are referenced (env:NAME, file:PATH), never inline.
local M = {}

---------------------------------------------------------------------------------------------
-- The data-only check.

-- Limits that keep a hostile or broken config cheap to refuse: tokens (each costs a small
-- table while checking) and nesting of tables (the Lua compiler itself stops near 200 levels,
-- with "C stack overflow").
M.MAX_TOKENS = 200000
M.MAX_DEPTH = 32

-- tokens(src) -> list of {t = kind, v = text, line} | nil, line, message.
-- kinds: name, string, number, and the punctuation itself ("{", "=", ...).
local function tokens(src)
  local out, i, line, n = {}, 1, 1, #src
  local function push(t, v) out[#out + 1] = { t = t, v = v, line = line } end
  while i <= n do
    if #out > M.MAX_TOKENS then
      return nil, line, string.format("too large: more than %d tokens (a config file holds profiles, not data)", M.MAX_TOKENS)
    end
    local c = src:sub(i, i)
    if c == "\n" then
      line = line + 1; i = i + 1
    elseif c:match("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "--" then
      local eq = src:match("^%[(=*)%[", i + 2)
      if eq then
        local close = "]" .. eq .. "]"
        local j = src:find(close, i, true)
        if not j then return nil, line, "unfinished long comment" end
        local _, nl = src:sub(i, j):gsub("\n", "")
        line = line + nl
        i = j + #close
      else
        local j = src:find("\n", i, true)
        i = j or n + 1
      end
    elseif c == "[" and src:match("^%[=*%[", i) then
      local eq = src:match("^%[(=*)%[", i)
      local close = "]" .. eq .. "]"
      local j = src:find(close, i, true)
      if not j then return nil, line, "unfinished long string" end
      push("string", src:sub(i, j + #close - 1))
      local _, nl = src:sub(i, j):gsub("\n", "")
      line = line + nl
      i = j + #close
    elseif c == '"' or c == "'" then
      local j = i + 1
      while true do
        local d = src:sub(j, j)
        if d == "" or d == "\n" then return nil, line, "unfinished string" end
        if d == "\\" then
          if src:sub(j + 1, j + 1) == "\n" then line = line + 1 end
          j = j + 2
        elseif d == c then break
        else j = j + 1 end
      end
      push("string", src:sub(i, j))
      i = j + 1
    elseif c:match("%d") or (c == "." and src:sub(i + 1, i + 1):match("%d")) then
      local s = src:match("^0[xX][%x%.]*[pP][%+%-]?%d+", i) or src:match("^0[xX][%x%.]*", i)
             or src:match("^[%d%.]+[eE][%+%-]?%d+", i) or src:match("^[%d%.]+", i)
      push("number", s)
      i = i + #s
    elseif c:match("[%a_]") then
      local s = src:match("^[%w_]+", i)
      push("name", s)
      i = i + #s
    else
      local three, two = src:sub(i, i + 2), src:sub(i, i + 1)
      local p = (three == "..." and three) or ((two == "==" or two == "~=" or two == "<=" or two == ">="
                 or two == "::" or two == "//" or two == ".." or two == "<<" or two == ">>") and two) or c
      push(p, p)
      i = i + #p
    end
  end
  push("<eof>", "end of file")
  return out
end

local LITERAL_NAMES = { ["true"] = true, ["false"] = true, ["nil"] = true }
local KEYWORDS = {}
for w in ("and break do else elseif end for function goto if in local not or repeat return then " ..
          "until while"):gmatch("%a+") do KEYWORDS[w] = true end

local function describe(tok)
  if tok.t == "name" then
    if tok.v == "function" then return "a function" end
    return "the name '" .. tok.v .. "'"
  end
  if tok.t == "<eof>" then return "the end of the file" end
  if tok.t == "(" then return "a call or parenthesis '('" end
  return "'" .. tostring(tok.v) .. "'"
end

-- check(src) -> true | nil, line, message: src is `return <constructor>` and nothing else.
function M.check(src)
  src = src:gsub("^\239\187\191", "")          -- a UTF-8 byte-order mark (editors on Windows)
  local toks, eline, emsg = tokens(src)
  if not toks then return nil, eline, emsg end
  local pos = 1
  local function peek() return toks[pos] end
  local function take() pos = pos + 1 return toks[pos - 1] end
  local function bad(tok, want)
    local extra = ""
    if tok.t == "name" and KEYWORDS[tok.v] then
      extra = tok.v == "function" and " -- functions are not allowed" or ""
    elseif tok.t == "(" or tok.t == "name" and toks[pos + 1] and (toks[pos + 1].t == "(" or toks[pos + 1].t == "{"
       or toks[pos + 1].t == "string") then
      extra = " -- function calls are not allowed"
    elseif tok.t == "name" and not LITERAL_NAMES[tok.v] then
      extra = " -- variables and globals are not allowed"
    end
    return nil, tok.line, string.format("%s expected, found %s%s (the config file is data: one " ..
      "'return { ... }' of strings, numbers, booleans and tables)", want, describe(tok), extra)
  end
  local value
  local depth = 0
  local function constructor()
    local open = take()                       -- "{"
    depth = depth + 1
    if depth > M.MAX_DEPTH then
      return nil, open.line, string.format("tables nested more than %d deep (a config needs three or four)", M.MAX_DEPTH)
    end
    while true do
      local t = peek()
      if t.t == "}" then take() depth = depth - 1 return true end
      if t.t == "[" then
        take()
        local ok, l, m = value("a key")
        if not ok then return nil, l, m end
        if peek().t ~= "]" then return bad(peek(), "']'") end
        take()
        if peek().t ~= "=" then return bad(peek(), "'='") end
        take()
      elseif t.t == "name" and toks[pos + 1].t == "=" then
        take(); take()
      end
      local ok, l, m = value("a value")
      if not ok then return nil, l, m end
      local sep = peek()
      if sep.t == "," or sep.t == ";" then take()
      elseif sep.t ~= "}" then return bad(sep, "',' or '}'") end
    end
  end
  value = function(want)
    local t = peek()
    if t.t == "string" or t.t == "number" then take() return true end
    if t.t == "name" and LITERAL_NAMES[t.v] then take() return true end
    if t.t == "-" and toks[pos + 1].t == "number" then take(); take() return true end
    if t.t == "{" then return constructor() end
    return bad(t, want)
  end
  local first = take()
  if not (first.t == "name" and first.v == "return") then
    return nil, first.line, "the config file must start with 'return {' (it is data, not a script); found " ..
                            describe(first)
  end
  if peek().t ~= "{" then return bad(peek(), "'{'") end
  local ok, l, m = value("a table")
  if not ok then return nil, l, m end
  if peek().t == ";" then take() end
  if peek().t ~= "<eof>" then return bad(peek(), "the end of the file") end
  return true
end

---------------------------------------------------------------------------------------------
-- Profiles.

M.PROFILE_FIELDS = {
  name = "string", description = "string", tenant = "string", tenant_id = "string",
  domain = "string", initial_domain = "string", cloud = "string", client_id = "string",
  secret = "secret", client_secret = "secret", certificate = "string", key = "string",
  pfx = "string", key_passphrase = "secret", refresh_token = "secret", device_code = "boolean",
  alg = "string", subscription = "string", admin_user = "string", domains = "table",
  ca_file = "string", connect_to = "table", exo_securestring_key = "string",
  exo_concurrency = "number",
}
local TOP_FIELDS = { profiles = true, default = true, version = true, dns = true }

-- looks like a secret value: an Entra client secret, a PEM private key, a JWT
local function secret_looking(s)
  return s:find("-----BEGIN", 1, true) ~= nil or s:find("PRIVATE KEY", 1, true) ~= nil
      or s:match("^[%w_%-%.~]+8Q~[%w_%-%.~]+$") ~= nil and #s >= 30
      or s:match("^eyJ[%w_%-]+%.[%w_%-]+%.") ~= nil
end
M.secret_looking = secret_looking

local function field_error(pname, k, fmt, ...)
  return nil, string.format("profile '%s', %s: " .. fmt, pname, k, ...)
end

-- expand_home(path) -> path with a leading "~/" made $HOME/.
function M.expand_home(p)
  if p:sub(1, 2) == "~/" then return (os.getenv("HOME") or "") .. p:sub(2) end
  return p
end

-- is_ref(s) -> true when s is a secret reference: "env:NAME" or "file:PATH".
function M.is_ref(s)
  return type(s) == "string" and (s:match("^env:[%w_]+$") ~= nil or s:match("^file:.+") ~= nil)
end

-- Is host (from a connect_to entry) this machine's loopback?  IPv4 127/8, IPv6 ::1, localhost.
local function loopback(host)
  host = host:lower():gsub("^%[(.*)%]$", "%1")
  if host == "localhost" or host == "::1" or host == "0:0:0:0:0:0:0:1" then return true end
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  return a == 127 and b <= 255 and c <= 255 and d <= 255
end
M.loopback = loopback

-- check_overrides(name, p) -> true | nil, err.  connect_to and ca_file exist for the simulator:
-- a config that could point them elsewhere could send the profile's credential to a server its
-- author picked.  So connect_to may only lead to loopback, and ca_file comes only with it.
local function check_overrides(pname, p)
  if p.ca_file ~= nil and p.connect_to == nil then
    return field_error(pname, "ca_file", "an extra CA is only for a simulator profile (one with connect_to " ..
      "to this machine); real profiles use the system's trusted CAs")
  end
  if p.connect_to == nil then return true end
  for i, e in ipairs(p.connect_to) do
    if type(e) ~= "string" then return field_error(pname, "connect_to", "entry %d must be a string", i) end
    local rest = e:match("^%b[]:%d*:(.*)$") or e:match("^[^:%[]*:%d*:(.*)$")
    local target = rest and rest:match("^(.+):%d*$")
    if not target or not loopback(target) then
      return field_error(pname, "connect_to", "'%s' would send this profile's requests (and its credential) " ..
        "to another machine: connect_to may only point at a simulator on this one (127.0.0.1, ::1, localhost)", e)
    end
  end
  local n = 0
  for _ in pairs(p.connect_to) do n = n + 1 end
  if n == 0 or n ~= #p.connect_to then
    return field_error(pname, "connect_to", "a list of \"HOST:PORT:127.0.0.1:PORT\" strings expected")
  end
  return true
end

-- check_ca_file(p) -> true | nil, err: the CA a simulator profile trusts must be a file only
-- its owner (you or root) can change: a CA another local user controls would let that user's
-- loopback server pass for the simulator.
function M.check_ca_file(p)
  if not p.ca_file then return true end
  local fs = require "t2t.core.fs"
  local path = M.expand_home(p.ca_file)
  local mode, uid = fs.mode(path)
  if not mode then return nil, string.format("profile '%s': ca_file %s: %s", tostring(p.name), path, tostring(uid)) end
  local me = fs.uid()
  if (uid ~= me and uid ~= 0) or mode & 18 ~= 0 then            -- 18 = 0022: group/other write
    return nil, string.format("profile '%s': ca_file %s is not safe to trust: it must belong to you or root " ..
      "and be writable by no one else (chmod go-w, or let t2t sim write it)", tostring(p.name), path)
  end
  return true
end

-- check_profile(name, p) -> true | nil, err.
function M.check_profile(pname, p)
  if type(p) ~= "table" then return nil, string.format("profile '%s' must be a table", pname) end
  for k, v in pairs(p) do
    local want = M.PROFILE_FIELDS[k]
    if not want then
      local known = {}
      for f in pairs(M.PROFILE_FIELDS) do known[#known + 1] = f end
      table.sort(known)
      return field_error(pname, tostring(k), "unknown field (known: %s)", table.concat(known, ", "))
    end
    if want == "secret" then
      if type(v) ~= "string" or not M.is_ref(v) then
        return field_error(pname, k, "secrets are never written in the config file: use %s = \"env:NAME\" " ..
          "(an environment variable) or %s = \"file:/path\" (a file only you can read)", k, k)
      end
    elseif type(v) ~= want then
      return field_error(pname, k, "%s expected, got %s", want, type(v))
    elseif want == "string" and secret_looking(v) then
      return field_error(pname, k, "this looks like a secret or key written inline: keep it in a file " ..
        "or an environment variable and refer to it (file:PATH, env:NAME, or a path for certificate/key)")
    end
  end
  if p.cloud then
    local _, err = require("t2t.clouds").get(p.cloud)
    if err then return field_error(pname, "cloud", "%s", err) end
  end
  local ook, oerr = check_overrides(pname, p)
  if not ook then return nil, oerr end
  if not (p.tenant or p.tenant_id) then return nil, string.format("profile '%s': tenant or tenant_id is required", pname) end
  local creds = 0
  for _, k in ipairs { "secret", "client_secret", "certificate", "pfx", "device_code" } do
    if p[k] then creds = creds + 1 end
  end
  if p.secret and p.client_secret then creds = creds - 1 end
  if creds > 1 then return nil, string.format("profile '%s': give one credential (secret, certificate or device_code)", pname) end
  if creds == 0 and not p.refresh_token then
    return nil, string.format("profile '%s': no credential: add secret = \"env:NAME\", certificate = \"/path/cert.pem\" " ..
                              "or device_code = true", pname)
  end
  if p.key and not p.certificate then return nil, string.format("profile '%s': key without certificate", pname) end
  if not p.client_id and not p.device_code then
    return nil, string.format("profile '%s': client_id (the app's Application ID) is required", pname)
  end
  return true
end

-- parse(src, chunkname) -> config {profiles = {name = profile}, default} | nil, err.
function M.parse(src, chunkname)
  chunkname = chunkname or "config"
  local shown = chunkname:gsub("^[@=]", "")
  src = src:gsub("^\239\187\191", "")
  local ok, line, msg = M.check(src)
  if not ok then return nil, string.format("%s:%d: %s", shown, line, msg) end
  local fn, err = load(src, "=" .. shown, "t", {})
  if not fn then return nil, err end
  local count = 0
  debug.sethook(function() count = count + 1 if count > 1000 then error("config: too much work", 0) end end, "", 1000)
  local rok, cfg = pcall(fn)
  debug.sethook()
  if not rok then return nil, shown .. ": " .. tostring(cfg) end
  if type(cfg) ~= "table" then return nil, shown .. ": must return a table" end
  for k in pairs(cfg) do
    if not TOP_FIELDS[k] then
      return nil, string.format("%s: unknown top-level field '%s' (profiles, default, dns)", shown, tostring(k))
    end
  end
  if cfg.dns ~= nil and (type(cfg.dns) ~= "string" or not cfg.dns:find("%S")) then
    return nil, string.format("%s: dns = the DNS servers every lookup uses, as --dns takes them " ..
                              "(\"127.0.0.1:5353\" or \"10.0.0.53,10.0.0.54\"): a string expected, got %s",
                              shown, type(cfg.dns))
  end
  local profiles = cfg.profiles or {}
  if type(profiles) ~= "table" then return nil, shown .. ": profiles must be a table of name = {...}" end
  for name, p in pairs(profiles) do
    if type(name) ~= "string" then return nil, shown .. ": profile names must be strings" end
    local pok, perr = M.check_profile(name, p)
    if not pok then return nil, shown .. ": " .. perr end
  end
  if cfg.default ~= nil and (type(cfg.default) ~= "string" or not profiles[cfg.default]) then
    return nil, string.format("%s: default = '%s' names no profile", shown, tostring(cfg.default))
  end
  return { profiles = profiles, default = cfg.default, dns = cfg.dns, path = shown }
end

-- path(explicit) -> the config file path: explicit, else $XDG_CONFIG_HOME/t2t/config.lua, else
-- ~/.config/t2t/config.lua.
function M.path(explicit)
  if explicit and explicit ~= "" then return M.expand_home(explicit) end
  local x = os.getenv("XDG_CONFIG_HOME")
  if x and x ~= "" then return x .. "/t2t/config.lua" end
  local home = os.getenv("HOME")
  return home and (home .. "/.config/t2t/config.lua") or nil
end

-- load(path) -> config | nil, err.  (path: nil for the default.)
function M.load(path)
  path = M.path(path)
  if not path then return nil, "no config file: set HOME or XDG_CONFIG_HOME, or pass --config FILE" end
  local src, err = require("t2t.files").read(path, "config")
  if not src then
    if tostring(err):find("No such file", 1, true) then
      err = err .. ": 't2t init' writes one to fill in; or set AZURE_TENANT_ID, AZURE_CLIENT_ID and " ..
            "AZURE_CLIENT_SECRET; or try --sim"
    end
    return nil, err
  end
  return M.parse(src, path)
end

-- profile(name, path) -> a copy of the profile (with .name) | nil, err.  name nil: the
-- config's default, else its only profile.
function M.profile(name, path)
  local cfg, err = M.load(path)
  if not cfg then return nil, err end
  if not name then
    name = cfg.default
    if not name then
      local only
      for n in pairs(cfg.profiles) do if only then only = false break end only = n end
      name = only or nil
    end
    if not name then return nil, cfg.path .. ": several profiles and no default: pass --profile NAME" end
  end
  local p = cfg.profiles[name]
  if p then
    local ok, cerr = M.check_ca_file({ name = name, ca_file = p.ca_file })
    if not ok then return nil, cfg.path .. ": " .. cerr end
  end
  if not p then
    local names = {}
    for n in pairs(cfg.profiles) do names[#names + 1] = n end
    table.sort(names)
    return nil, string.format("%s has no profile '%s' (it has: %s)", cfg.path, name,
                              #names > 0 and table.concat(names, ", ") or "none")
  end
  local out = {}
  for k, v in pairs(p) do out[k] = v end
  out.name = name
  return out
end
M.get = M.profile

-- list(path) -> sorted profile names | nil, err.
function M.list(path)
  local cfg, err = M.load(path)
  if not cfg then return nil, err end
  local names = {}
  for n in pairs(cfg.profiles) do names[#names + 1] = n end
  table.sort(names)
  return names
end

---------------------------------------------------------------------------------------------
-- Writing a profile (t2t run bootstrap): the file is re-written as data, keys sorted.

local function serialize(v, indent)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys, out = {}, {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  if #v > 0 then
    for i = 1, #v do out[#out + 1] = serialize(v[i], indent) end
    return "{ " .. table.concat(out, ", ") .. " }"
  end
  local pad = string.rep("  ", indent + 1)
  for _, k in ipairs(keys) do
    local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or ("[" .. serialize(k, 0) .. "]")
    out[#out + 1] = pad .. key .. " = " .. serialize(v[k], indent + 1) .. ","
  end
  return "{\n" .. table.concat(out, "\n") .. "\n" .. string.rep("  ", indent) .. "}"
end

-- same(a, b): equal data tables.
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- profile_change(path, name, profile) -> {path, text, before, changed} | nil, err: what writing
-- profile `name` into the config file would do (the other profiles and `default` kept; the
-- profile checked as a loaded one is).  Nothing is written.
function M.profile_change(path, name, profile)
  path = M.path(path)
  if not path then return nil, "no config file: set HOME or XDG_CONFIG_HOME, or pass --config FILE" end
  local ok, perr = M.check_profile(name, profile)
  if not ok then return nil, perr end
  local cfg = { profiles = {} }
  local f = io.open(path, "r")
  if f then
    f:close()
    local loaded, err = M.load(path)
    if not loaded then return nil, err end
    cfg = { profiles = loaded.profiles, default = loaded.default }
  end
  local before = cfg.profiles[name]
  local changed = not same(before, profile)
  cfg.profiles[name] = profile
  if cfg.default == nil then cfg.default = name end
  local text = "-- t2t profiles (data only: see docs/auth.md).  Written by t2t; comments are not kept.\n" ..
               "return " .. serialize({ default = cfg.default, profiles = cfg.profiles }, 0) .. "\n"
  local back, berr = M.parse(text, path)
  if not back then return nil, "t2t made an invalid config file (a bug): " .. tostring(berr) end
  return { path = path, text = text, before = before, changed = changed }
end

-- write_profile(change) -> true | nil, err: the file written atomically, mode 0600.
function M.write_profile(change)
  return require("t2t.core.fs").write_private(change.path, change.text)
end

---------------------------------------------------------------------------------------------
-- Azure Identity's environment variables: a profile like a config file's.

M.ENV_PROFILE = "env"

-- from_env([cloud]) -> a profile named "env" from AZURE_TENANT_ID, AZURE_CLIENT_ID and
-- AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH (+ AZURE_CLIENT_CERTIFICATE_PASSWORD),
-- in the cloud of AZURE_AUTHORITY_HOST | nil when AZURE_TENANT_ID/AZURE_CLIENT_ID are not set |
-- nil, err when they are but the rest is wrong.  Secrets stay references to the variables.
function M.from_env(cloud)
  local function env(n) local v = os.getenv(n) return v ~= "" and v or nil end
  local tenant, client = env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID")
  if not tenant or not client then return nil end
  local p = { name = M.ENV_PROFILE, tenant = tenant, client_id = client, cloud = cloud }
  local authority = env("AZURE_AUTHORITY_HOST")
  if authority and not p.cloud then
    p.cloud = require("t2t.clouds").of_login(authority)
    if not p.cloud then return nil, "AZURE_AUTHORITY_HOST " .. authority .. " is not a known cloud's login host" end
  end
  if env("AZURE_CLIENT_SECRET") then
    p.secret = "env:AZURE_CLIENT_SECRET"
  elseif env("AZURE_CLIENT_CERTIFICATE_PATH") then
    p.certificate = env("AZURE_CLIENT_CERTIFICATE_PATH")
    if env("AZURE_CLIENT_CERTIFICATE_PASSWORD") then p.key_passphrase = "env:AZURE_CLIENT_CERTIFICATE_PASSWORD" end
  else
    return nil, "AZURE_TENANT_ID and AZURE_CLIENT_ID are set: set AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH too"
  end
  return p
end

-- selected(opts, name) -> profile | nil, err: under --sim, the simulator's tenant `name` (or
-- opts.profile, or the seeded source); otherwise profile `name` (or --profile) from --config /
-- the default config file, where the name "env" (or no name at all while AZURE_TENANT_ID and
-- AZURE_CLIENT_ID are set, as Azure Identity does) is the environment's profile; with neither,
-- the config's default.  Simulator profiles carry connect_to and ca_file, which the login
-- client uses.
function M.selected(opts, name)
  opts = opts or {}
  name = name or opts.profile
  local s = opts.sim_instance
  if not s and opts.sim then
    local ok, sim = pcall(require, "t2t.sim")
    s = ok and sim.current and sim.current() or nil
  end
  if s then
    local p = s.profile or {}
    name = name or p.source or "contoso"
    local t = p.tenants and p.tenants[name]
    if not t then
      local names = {}
      for n in pairs(p.tenants or {}) do names[#names + 1] = n end
      table.sort(names)
      return nil, string.format("the simulator has no tenant '%s' (it has: %s)", name, table.concat(names, ", "))
    end
    local out = {}
    for k, v in pairs(t) do out[k] = v end
    out.name = name
    out.connect_to, out.ca_file = out.connect_to or s.connect_to, out.ca_file or s.ca_file
    return out
  end
  if name == nil or name == M.ENV_PROFILE then
    local p, err = M.from_env()
    if p or err then return p, err end
    if name then return nil, "profile 'env' is the AZURE_* environment variables: set AZURE_TENANT_ID, " ..
                             "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH" end
  end
  return M.profile(name, opts.config)
end

return M
