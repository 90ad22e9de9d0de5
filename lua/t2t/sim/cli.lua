-- t2t.sim.cli: `t2t sim` — run the simulated Microsoft cloud until Ctrl-C and print what a
-- client needs to use it (hosts, CA file, tenant ids, admin app credentials).
local M = {}

local HELP = [[
usage: t2t sim [options]

Runs the simulated Microsoft cloud (Entra ID token endpoint, Graph, Exchange Online
InvokeCommand, ARM, Key Vault) on loopback until Ctrl-C or SIGTERM, with a seeded tenant pair: source
"contoso" (N mailboxes of realistic variety) and target "fabrikam".  Prints the profiles that
make t2t (or curl, or any client) use it: every real host is mapped to the simulator with
connect_to, and the simulator's CA file is trusted.

options:
  --port N            listen on 127.0.0.1:N (default: any free port)
  --users N           source mailboxes to seed (default 50)
  --seed S            seed for every random choice (default 1): same seed, same tenants
  --state FILE        load the state from FILE if it exists (else seed), save it at exit
  --faults SPEC       e.g. 429=0.05,503=0.02,reset=0.01,lost=0.01,lag=2s,exo_concurrency=3,
                      graph_rate=600, graph.504=0.1 (one service only); shares are 0..1
  --latency MS|A-B    added latency per response, fixed or a uniform range (milliseconds)
  --speed N           migration speed factor: moves run N times faster than the service's
                      (default 1; a demo moves gigabytes in seconds with 20000)
  --log FILE          append every request and its outcome as JSON lines (no bodies, no secrets)
  --scenario FILE     after seeding, apply a population scenario (JSON: mailboxes, mail users,
                      contacts, holds, licences, delegates ...; see docs/simulator.md)
  --log-bodies        with --log: also each request's JSON body (EXO: the cmdlet's parameters),
                      every secret in it masked (passwords, client secrets, assertions, tokens,
                      SecureStrings, key material)
  --connect-proxy N   also run an HTTP CONNECT proxy on 127.0.0.1:N (0: any free port) that
                      tunnels the real Microsoft host names to the simulator, so any client
                      that honours HTTPS_PROXY reaches it (trust the CA file; docs/simulator.md)
  --write-config F    write a config file F for these tenants (profiles contoso and fabrikam),
                      their secrets beside it in F.contoso.secret etc. (mode 0600), so that
                      t2t --config F --profile contoso ... reaches this simulator.  F may
                      replace only a config an earlier `t2t sim` wrote, never another file
  --json              print the profile as one line of JSON instead of the text form
  --no-dns            do not start the DNS server (Knot) for the tenants' domains
  -h, --help          this help

The control API is at https://127.0.0.1:PORT/_sim/ (profile, state, log, faults, clock).
Every call needs this instance's key: the header line in the 0600 file printed at start
(curl -H @FILE ...); other local users cannot use it.  See docs/simulator.md.
]]

local SPEC = { port = "int", users = "int", seed = "int", ["target-users"] = "int",
               state = "str", faults = "str", latency = "str", log = "str", json = "flag",
               scenario = "str", ["write-config"] = "str", ["no-dns"] = "flag", ["log-bodies"] = "flag",
               ["connect-proxy"] = "int", speed = "num" }

-- parse(args) -> options | nil, err | "help"
function M.parse(args)
  local o = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then return "help" end
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    local kind = name and SPEC[name]
    if not kind then return nil, "sim: unknown option '" .. a .. "'" end
    local v
    if kind == "flag" then
      if inline then return nil, "sim: --" .. name .. " takes no value" end
      v = true
    else
      v = inline
      if v == nil then
        i = i + 1
        v = args[i]
        if v == nil then return nil, "sim: --" .. name .. " needs a value" end
      end
      if kind == "num" then
        local n = tonumber(v)
        if not n or n <= 0 then return nil, "sim: --" .. name .. " needs a positive number, got '" .. v .. "'" end
        v = n
      elseif kind == "int" then
        local n = math.tointeger(tonumber(v))
        if not n or n < 0 then return nil, "sim: --" .. name .. " needs a whole number, got '" .. v .. "'" end
        v = n
      end
    end
    o[name:gsub("%-", "_")] = v
    i = i + 1
  end
  if o.port and o.port > 65535 then return nil, "sim: --port must be 0..65535" end
  if o.connect_proxy and o.connect_proxy > 65535 then
    return nil, "sim: --connect-proxy must be 0..65535"
  end
  if o.log_bodies and not o.log then return nil, "sim: --log-bodies needs --log FILE" end
  return o
end

local function lua_string(s) return string.format("%q", tostring(s)) end

local function lua_list(l)
  local out = {}
  for i, v in ipairs(l or {}) do out[i] = lua_string(v) end
  return "{ " .. table.concat(out, ", ") .. " }"
end

local function sorted_tenants(p)
  local names = {}
  for n in pairs(p.tenants or {}) do names[#names + 1] = n end
  table.sort(names)
  return names
end

-- The secret reference a profile uses: file:F.NAME.secret with --write-config, else an
-- environment variable (config files never hold secrets inline).
local function secret_ref(name, config_path)
  if config_path then return "file:" .. config_path .. "." .. name .. ".secret" end
  return "env:T2T_SIM_" .. name:upper() .. "_SECRET"
end

-- The first words of every config t2t sim writes: how --write-config knows a file it may replace.
M.CONFIG_MARK = "-- t2t config for the simulator on "

-- config(profile [, config_path]) -> the text of a config file for the simulator's tenants.
function M.config(p, config_path)
  local b = {}
  local function w(...) b[#b + 1] = table.concat({ ... }) end
  w(M.CONFIG_MARK, p.base_url, " (", p.source or "contoso", " -> ",
    p.target or "fabrikam", ")")
  w("return {")
  w("  default = ", lua_string(p.source or "contoso"), ",")
  if p.dns and p.dns.address then
    w("  dns = ", lua_string(p.dns.address), ",      -- the simulator's DNS server (Knot): every lookup asks it")
  end
  w("  profiles = {")
  for _, n in ipairs(sorted_tenants(p)) do
    local t = p.tenants[n]
    w("    ", n, " = {")
    w("      tenant_id = ", lua_string(t.tenant_id), ", tenant = ", lua_string(t.domain), ",")
    w("      client_id = ", lua_string(t.client_id), ",")
    w("      secret = ", lua_string(secret_ref(n, config_path)), ",")
    if t.subscription then w("      subscription = ", lua_string(t.subscription), ",") end
    w("      cloud = \"global\", ca_file = ", lua_string(p.ca_file), ",")
    if type(t.exo_securestring_key) == "string" then
      w("      exo_securestring_key = ", lua_string(t.exo_securestring_key), ",")
    end
    w("      connect_to = ", lua_list(p.connect_to), ",")
    w("    },")
  end
  w("  },")
  w("}")
  return table.concat(b, "\n") .. "\n"
end

-- may_replace(path) -> true | nil, err: path does not exist, or is a regular file that an
-- earlier `t2t sim --write-config` wrote.  Anything else (an admin's real config, a link, a
-- directory) is left alone: simulated credentials never overwrite real ones.
function M.may_replace(path)
  local fs = require "t2t.core.fs"
  local state, err = fs.check_write(path)
  if not state then return nil, err end
  if state == "new" then return true end
  local head = fs.read_file(path, 64 * 1024)
  if head and head:sub(1, #M.CONFIG_MARK) == M.CONFIG_MARK then return true end
  return nil, string.format("%s exists and is not a config t2t sim wrote: not overwriting it " ..
                            "(choose another path, or move the file away)", path)
end

-- write_config(profile, path) -> true | nil, err: the config file and one 0600 secret file per
-- tenant beside it (all 0600; an existing file is replaced only if t2t sim wrote it).
function M.write_config(p, path)
  local fs = require "t2t.core.fs"
  local ok, err = M.may_replace(path)
  if not ok then return nil, err end
  for _, n in ipairs(sorted_tenants(p)) do
    ok, err = fs.write_private(path .. "." .. n .. ".secret", p.tenants[n].client_secret .. "\n")
    if not ok then return nil, err end
  end
  return fs.write_private(path, M.config(p, path))
end

-- text(profile [, config_path]) -> the human form: a summary, the secrets, a config file.
function M.text(p, config_path)
  local b = {}
  local function w(...) b[#b + 1] = table.concat({ ... }) end
  w("t2t simulator on ", p.base_url, "  (Ctrl-C stops it)")
  w("CA certificate: ", p.ca_file)
  if p.control_header_file then
    w("control API key: ", p.control_header_file, "  (curl -H @", p.control_header_file, " ", p.base_url, "/_sim/profile)")
  end
  w("source: ", p.source or "contoso", "   target: ", p.target or "fabrikam", "   seed: ",
    tostring(math.tointeger(p.seed) or p.seed))
  w("")
  if config_path then
    w("config written to ", config_path, " (secrets beside it, mode 0600). Try:")
    w("  t2t --config ", config_path, " --profile contoso -e 'for _, m in ipairs(assert(connect().exo:invoke(\"Get-Mailbox\", {ResultSize = 5}))) do print(m.PrimarySmtpAddress) end'")
  else
    w("-- the seeded admin apps' secrets (simulated: they open nothing but this simulator):")
    for _, n in ipairs(sorted_tenants(p)) do
      w("export ", secret_ref(n):sub(5), "='", p.tenants[n].client_secret, "'")
    end
    w("")
    w("-- a config file for them (t2t --config FILE --profile contoso ...; or use --write-config):")
    b[#b + 1] = M.config(p)
  end
  w("")
  if p.dns and p.dns.address then
    w("DNS server (Knot) for the tenants' domains: ", p.dns.address, "  -- t2t --dns ", p.dns.address, " ...")
  elseif p.dns and p.dns.error then
    w("no DNS server: ", p.dns.error)
  end
  b[#b + 1] = M.curl_lines(p, config_path)
  if p.proxy_url then
    w("-- CONNECT proxy for clients that honour HTTPS_PROXY (Node: docs/simulator.md):")
    w("--   HTTPS_PROXY=", p.proxy_url, " NODE_EXTRA_CA_CERTS=", p.ca_file, " node app.js")
    w("--   curl --proxy ", p.proxy_url, " --cacert ", p.ca_file,
      " https://graph.microsoft.com/v1.0/organization")
  end
  return table.concat(b, "\n") .. "\n"
end

-- curl_lines(profile [, config_path]) -> shell lines that call Graph with curl: a token from the
-- simulated login (client credentials of the source's admin app), then a request with it.
function M.curl_lines(p, config_path)
  local name = p.source or "contoso"
  local t = p.tenants[name]
  local secret = config_path and string.format("$(cat '%s.%s.secret')", config_path, name)
                 or "$" .. secret_ref(name):sub(5)
  local tls = string.format("--cacert '%s' --connect-to ::127.0.0.1:%s", p.ca_file, tostring(p.port))
  return table.concat({
    "-- curl (or any HTTP client): a token from the simulated login, then Graph with it:",
    string.format("TOKEN=$(curl -s %s https://login.microsoftonline.com/%s/oauth2/v2.0/token " ..
      "-d grant_type=client_credentials -d client_id=%s --data-urlencode \"client_secret=%s\" " ..
      "-d scope=https://graph.microsoft.com/.default | sed -n 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/p')",
      tls, t.tenant_id, t.client_id, secret),
    string.format("curl -s %s -H \"Authorization: Bearer $TOKEN\" https://graph.microsoft.com/v1.0/organization", tls),
  }, "\n")
end

-- main(opts, args) -> exit code.  Serves until Ctrl-C or SIGTERM, then stops (saving --state).
function M.main(_, args)
  local o, err = M.parse(args or {})
  if o == "help" then io.write(HELP) return 0 end
  if not o then
    io.stderr:write("t2t: ", err, "\nTry 't2t sim --help'.\n")
    return 2
  end
  if o.write_config then                 -- before anything is started or written
    local ok, werr = M.may_replace(o.write_config)
    if not ok then
      io.stderr:write("t2t: sim: --write-config: ", tostring(werr), "\n")
      return 1
    end
  end
  local sim = require "t2t.sim"
  local s, serr = sim.start { port = o.port, users = o.users, seed = o.seed, state = o.state,
                              faults = o.faults, latency = o.latency, log = o.log,
                              log_bodies = o.log_bodies, target_users = o.target_users,
                              connect_proxy = o.connect_proxy, dns = not o.no_dns, scenario = o.scenario,
                              speed = o.speed }
  if not s then
    io.stderr:write("t2t: sim: ", tostring(serr), "\n")
    return 1
  end
  -- the SecureString public key, as a file the printed profiles and config name
  local pem, kerr = s:securestring_public_pem()
  local key_file = (o.write_config or s.ca_file) .. ".exo-securestring.pem"
  local kok = pem and require("t2t.core.fs").write_private(key_file, pem)
  if not kok then
    io.stderr:write("t2t: sim: ", tostring(kerr or ("cannot write " .. key_file)), "\n")
    s:stop()
    return 1
  end
  for _, t in pairs(s.profile.tenants or {}) do t.exo_securestring_key = key_file end
  -- the control API's key, as a header line in a 0600 file only this user can read
  local control_file = (o.write_config or s.ca_file) .. ".control"
  local cok, cerr = require("t2t.core.fs").write_private(control_file, s:control_header() .. "\n")
  if not cok then
    io.stderr:write("t2t: sim: ", tostring(cerr), "\n")
    s:stop()
    return 1
  end
  s.profile.control_header_file = control_file
  if o.write_config then
    local ok, werr = M.write_config(s.profile, o.write_config)
    if not ok then
      io.stderr:write("t2t: sim: --write-config: ", tostring(werr), "\n")
      s:stop()
      return 1
    end
  end
  if o.json then
    io.write(require("cjson").encode(s.profile), "\n")
  else
    io.write(M.text(s.profile, o.write_config))
  end
  io.stdout:flush()
  local host = require "t2t.core.host"
  local t2t = require "t2t"
  -- Ctrl-C is the stop signal: "interrupted!", raised from the event loop (woken by the signal)
  -- or by host's hook, ends the wait; host.pcall takes the hook off, so the save below runs.
  host.stop_on_term()                 -- SIGTERM (a service manager, kill) saves the state too
  local seen = host.interrupted()
  host.pcall(function()
    while host.interrupted() == seen do t2t.sleep(0.25) end
  end)
  local ok, stop_err = s:stop()
  os.remove(control_file)                                 -- the key dies with the instance
  if not o.write_config then os.remove(key_file) end     -- it lived beside the temporary CA file
  if not ok then
    io.stderr:write("t2t: sim: could not save the state: ", tostring(stop_err), "\n")
    return 1
  end
  if o.state then io.stderr:write("t2t: sim: state saved to ", o.state, "\n") end
  return 0
end

return M
