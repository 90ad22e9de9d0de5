-- doctor: check that this machine can run t2t against Microsoft 365 (or the simulator).
return runbook {
  name = "doctor",
  description = "Check this machine: t2t build, Lua, TLS trust store, config and cache directories.\n\n" ..
    "Read-only.  Each check prints [Passed], [Warning] or [Failed] with what to do.",
  needs = {},                 -- this machine only: no tenant
  params = {
    { name = "ca-file", type = "file", help = "an extra CA bundle to check is readable" },
    { name = "strict", type = "boolean", default = false, help = "treat warnings as failures" },
  },
  run = function(ctx, p)
    local host = require "t2t.core.host"
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
    check(host.version ~= nil, "t2t " .. host.version .. " on " .. host.lua_release, "")
    -- the plugins: each loads its library on first use (T2T_LIB_DIR says where they are)
    local function plugin(mod, what, version)
      local ok, m = pcall(require, mod)
      check(ok, what .. (ok and (" (" .. version(m) .. ")") or ""),
            ok and "" or ("cannot load it: " .. tostring(m) .. "; is the t2t install complete?"))
    end
    plugin("t2t.core.http", "HTTP client", function(m) return (m.version():match("^%S+")) end)
    plugin("t2t.core.crypto", "crypto", function(m) return tostring(m.openssl_version) end)
    plugin("t2t.core.server", "simulator server", function() return "libmicrohttpd" end)
    local bundles = { "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt" }
    local found
    for _, b in ipairs(bundles) do
      local f = io.open(b, "r")
      if f then f:close() found = b break end
    end
    check(found ~= nil, "system CA bundle " .. (found or "(none)"),
          "install ca-certificates: TLS verification is always on")
    if p.ca_file then check(true, "extra CA file " .. p.ca_file, "") end
    local function dir_of(var, fallback)
      local v = os.getenv(var)
      if v and v ~= "" then return v .. "/t2t" end
      local home = os.getenv("HOME")
      return home and (home .. "/" .. fallback .. "/t2t") or nil
    end
    local cfg = dir_of("XDG_CONFIG_HOME", ".config")
    local f = cfg and io.open(cfg .. "/config.lua", "r")
    if f then f:close() end
    check(f ~= nil, "config file " .. (cfg and cfg .. "/config.lua" or "(no HOME)"),
          "no profiles yet: create it, or use --sim to try t2t against the simulator", true)
    ctx:summary("passed", passed)
    ctx:summary("warnings", warned)
    ctx:summary("failed", failed)
  end,
}
