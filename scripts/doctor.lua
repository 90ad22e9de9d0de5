-- doctor: check that this machine can run t2t against Microsoft 365 (or the simulator), and
-- diagnose the config file -- above all when it is broken, which is when doctor is needed.
local config = require "t2t.config"

-- The t2t build: version, and each plugin loading its library.
local function check_build(check)
  local host = require "t2t.core.host"
  check(host.version ~= nil, "t2t " .. host.version .. " on " .. host.lua_release, "")
  local function plugin(mod, what, version)
    local ok, m = pcall(require, mod)
    check(ok, what .. (ok and (" (" .. version(m) .. ")") or ""),
          ok and "" or ("cannot load it: " .. tostring(m) .. "; is the t2t install complete?"))
  end
  plugin("t2t.core.http", "HTTP client", function(m) return (m.version():match("^%S+")) end)
  plugin("t2t.core.crypto", "crypto", function(m) return tostring(m.openssl_version) end)
  plugin("t2t.core.server", "simulator server", function() return "libmicrohttpd" end)
end

local function check_tls(check, ca_file)
  local found
  for _, b in ipairs { "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt" } do
    local f = io.open(b, "r")
    if f then f:close() found = b break end
  end
  check(found ~= nil, "system CA bundle " .. (found or "(none)"),
        "install ca-certificates: TLS verification is always on")
  if ca_file then check(true, "extra CA file " .. ca_file, "") end
end

-- Can this profile's credential be built (its secret reference read, its certificate loaded)?
-- No network: a wrong secret shows only when signing in.
local function check_credential(check, name, prof)
  local auth = require "t2t.auth"
  local cred, err = auth.credential(prof, { cache = false })
  check(cred ~= nil, string.format("profile '%s': %s credential for %s", name,
        cred and cred.kind or "no", tostring(prof.tenant_id or prof.tenant)),
        tostring(err) .. " -- fix the profile (or the variable/file it refers to)")
end

-- The config file: found, valid data, its profiles usable.  A missing file is only a warning.
local function check_config(check, opts)
  local path = config.path(opts.config)
  local f = path and io.open(path, "r")
  if not f then
    check(false, "config file " .. tostring(path),
          "none yet: 't2t init' writes one to fill in (or use AZURE_* variables, or --sim)", not opts.config)
    return
  end
  f:close()
  local cfg, err = config.load(opts.config)
  if not cfg then
    check(false, "config file " .. path .. " is not valid", tostring(err) .. " -- fix it there, then run t2t doctor again", false)
    return
  end
  local names = {}
  for n in pairs(cfg.profiles) do names[#names + 1] = n end
  table.sort(names)
  check(#names > 0, string.format("config file %s: %d profile(s)%s", path, #names,
        cfg.default and (", default " .. cfg.default) or ""), "no profiles yet: uncomment one and fill it in", true)
  for _, n in ipairs(names) do
    if not opts.profile or opts.profile == n then
      local p = {}
      for k, v in pairs(cfg.profiles[n]) do p[k] = v end
      check_credential(check, n, p)
    end
  end
end

-- Azure Identity's variables, when set.
local function check_env(check)
  local p, err = config.from_env()
  if p then check_credential(check, "env (AZURE_* variables)", p)
  elseif err then check(false, "AZURE_* variables", err) end
end

return runbook {
  name = "doctor",
  description = "Check this machine and the config: t2t build, Lua, TLS trust store, config file and profiles.\n\n" ..
    "Read-only, no network.  Each check prints [Passed], [Warning] or [Failed] with what to do.  A broken\n" ..
    "config file is diagnosed (which line, what is wrong), as is each profile's credential: a secret\n" ..
    "variable that is not set, a file that cannot be read, a certificate that does not load.  With\n" ..
    "--profile NAME only that profile; the AZURE_* variables are checked when set.",
  diagnoses_config = true,
  needs = {},                 -- this machine only: no tenant
  params = {
    { name = "ca-file", type = "file", help = "an extra CA bundle to check is readable" },
    { name = "strict", type = "boolean", default = false, help = "treat warnings as failures" },
  },
  run = function(ctx, p)
    local passed, warned, failed = 0, 0, 0
    local function check(ok, what, fix, warn_only)
      if ok then
        passed = passed + 1
        ctx:say("[Passed]  %s", what)
      elseif warn_only and not p.strict then
        warned = warned + 1
        ctx:say("[Warning] %s -- %s", what, fix)
      else
        failed = failed + 1
        ctx:say("[Failed]  %s -- %s", what, fix)
        ctx:item(what, false, fix)
      end
    end
    check_build(check)
    check_tls(check, p.ca_file)
    if ctx.opts.sim then
      check(true, "--sim: the simulated tenants (contoso, fabrikam) need no config", "")
    else
      check_config(check, ctx.opts)
      check_env(check)
    end
    ctx:summary("passed", passed)
    ctx:summary("warnings", warned)
    ctx:summary("failed", failed)
  end,
}
