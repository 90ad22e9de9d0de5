-- t2t.sim: start and stop the simulated Microsoft cloud from the main thread (docs/simulator.md).
--   local sim = require "t2t.sim"
--   local s = assert(sim.start { users = 50, seed = 1, state = "st.json", faults = "429=0.05" })
--   s.port, s.ca_file, s.connect_to, s.profile        -- what clients need
--   s:control("GET", "/_sim/log")                     -- the control API (with the key)
--   s:stop()                                          -- saves the state file, if one was given
-- The server runs t2t.sim.handler in its own thread and lua_State; this side talks to it over
-- HTTPS only (the control API), exactly as any other client would.
local M = {}

local Instance = {}
Instance.__index = Instance

local running = {}                           -- started, not yet stopped (newest last)
local KEYS = setmetatable({}, { __mode = "k" })  -- instance -> control key (never printed)


-- The names the simulator's CA may ever certify: the simulated hosts (a constraint covers its
-- subdomains: vault.azure.net covers NAME.vault.azure.net) and loopback.  A CA file someone
-- adds to a trust store can then vouch for nothing else, even if its key were stolen.
function M.ca_constraints(hosts)
  local out, seen = {}, {}
  for _, h in ipairs(hosts) do
    local name = h:gsub("^%*%.", "")
    if not seen[name] then seen[name] = true; out[#out + 1] = "DNS:" .. name end
  end
  out[#out + 1] = "IP:127.0.0.0/255.0.0.0"
  out[#out + 1] = "IP:::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
  return out
end

-- One CA and one server certificate naming every simulated host (router.CERT_HOSTS) plus the
-- loopback names, so both real URLs (via connect_to) and https://127.0.0.1:PORT verify.
-- key_type: "rsa" (default: every TLS client takes it) or "ed25519" (made in a fraction of the
-- time; for a simulator only t2t itself talks to, such as the tests' in-process ones).
local function make_certs(crypto, hosts, key_type)
  local ca, ca_key = crypto.new_ca { subject = "CN=t2t simulator CA,O=t2t", days = 30,
                                     key_type = key_type, name_constraints = M.ca_constraints(hosts) }
  if not ca then return nil, "simulator CA: " .. tostring(ca_key) end
  local san = {}
  for i, h in ipairs(hosts) do san[i] = "DNS:" .. h end
  san[#san + 1] = "IP:127.0.0.1"
  local cert, key = crypto.new_cert { subject = "CN=t2t simulator,O=t2t", san = san, days = 30,
                                      key_type = key_type, issuer_cert = ca, issuer_key = ca_key }
  if not cert then return nil, "simulator certificate: " .. tostring(key) end
  return { ca_pem = ca:pem(), cert_pem = cert:pem(), key_pem = key:private_pem() }
end

-- connect_to(port) -> curl CONNECT_TO entries mapping every real host to the simulator.  The
-- last entry (empty host) catches the per-vault hosts NAME.vault.azure.net.
function M.connect_to(port)
  local router = require "t2t.sim.router"
  local out = {}
  for _, h in ipairs(router.CERT_HOSTS) do
    if not h:find("*", 1, true) and h ~= "localhost" then
      out[#out + 1] = h .. ":443:127.0.0.1:" .. port
    end
  end
  out[#out + 1] = ":443:127.0.0.1:" .. port
  return out
end

-- client_profile(p, tenant) -> a tenant profile in the shape t2t's config profiles use.
local function client_profile(s, t)
  local a = t.admin_app or {}
  return {
    name = t.name, tenant = t.id, tenant_id = t.id, domain = t.initial_domain,
    initial_domain = t.initial_domain, domains = t.domains, display_name = t.display_name,
    cloud = "global", client_id = a.app_id, client_secret = a.client_secret, secret = a.client_secret,
    app_object_id = a.object_id, sp_id = a.sp_id, admin_user = t.admin_user,
    subscription = t.subscription, connect_to = s.connect_to, ca_file = s.ca_file,
    exo_securestring_key = function() return s:securestring_public_pem() end,
  }
end

-- start_proxy(self, port) -> true | nil, err: the CONNECT proxy (t2t.core.proxy) in front of
-- the server, tunnelling CONNECT HOST:443 for the simulated hosts only (docs/simulator-server.md).
local function start_proxy(self, port)
  local router = require "t2t.sim.router"
  local hosts = {}
  for _, h in ipairs(router.CERT_HOSTS) do
    if h ~= "localhost" then hosts[#hosts + 1] = h end
  end
  local p, err = require("t2t.core.proxy").start { port = port, upstream_port = self.port,
                                                   hosts = hosts }
  if not p then return nil, err end
  self.proxy = p
  self.proxy_port = p:port()
  self.proxy_url = "http://127.0.0.1:" .. self.proxy_port
  return true
end

-- start{users, seed, state, faults, latency, log, log_bodies, port, target_users, dns, scenario,
--       connect_proxy = PORT (0: any), speed = N (migration speed factor, kept in the state),
--       key_type = "rsa" | "ed25519" (see make_certs)} -> instance | nil, err.
-- dns = true: serve the tenants' domains from a real DNS server at once (Knot, when
-- installed); otherwise instance:dns() starts it on first use.  scenario: a population scenario
-- (path of a JSON file, or a table) applied after seeding (docs/simulator.md "Population").
function M.start(o)
  o = o or {}
  local okc, crypto = pcall(require, "t2t.crypto")
  if not okc then return nil, "the simulator needs t2t.crypto: " .. tostring(crypto) end
  local server = require "t2t.core.server"
  local router = require "t2t.sim.router"
  local ctx = require "t2t.sim.context"
  -- reject bad specs here, with the user's words, rather than as a server start failure
  local _, ferr = ctx.parse_faults(o.faults)
  if ferr then return nil, ferr end
  local _, lerr = ctx.parse_latency(o.latency)
  if lerr then return nil, lerr end
  local certs, cerr = make_certs(crypto, router.CERT_HOSTS, o.key_type)
  if not certs then return nil, cerr end
  local ca_file = os.tmpname()
  assert(require("t2t.core.fs").write_private(ca_file, certs.ca_pem))
  -- the control API's key: only this process (and whom it hands the key file to) has it
  local control_key = crypto.hex_encode(crypto.random_bytes(32))
  local srv, err = server.start {
    port = o.port or 0, cert_pem = certs.cert_pem, key_pem = certs.key_pem,
    handler_module = "t2t.sim.handler", log_errors = o.log_errors,
    handler_arg = { users = o.users, seed = o.seed, state = o.state, faults = o.faults,
                    latency = o.latency, log = o.log, log_bodies = o.log_bodies,
                    target_users = o.target_users, log_errors = o.log_errors,
                    control_key = control_key, dns = o.dns,
                    scenario = o.scenario, speed = o.speed },
  }
  if not srv then
    os.remove(ca_file)
    -- the reason, not the server's stack, and without the server's own "server: " prefix: the
    -- caller names the simulator already
    return nil, (tostring(err):gsub("\nstack traceback:.*$", ""):gsub("^server: ", ""))
  end
  local port = srv:port()
  local self = setmetatable({ server = srv, port = port, ca_file = ca_file, ca_pem = certs.ca_pem,
                              state_file = o.state, base_url = "https://127.0.0.1:" .. port,
                              connect_to = M.connect_to(port) }, Instance)
  KEYS[self] = control_key
  if o.connect_proxy then
    local ok, perr = start_proxy(self, o.connect_proxy)
    if not ok then
      self:stop { save = false }
      return nil, perr
    end
  end
  local prof, perr = self:control("GET", "/_sim/profile")
  if type(prof) ~= "table" then
    self:stop { save = false }
    return nil, "simulator profile: " .. tostring(perr or prof)
  end
  prof.port, prof.ca_file, prof.connect_to = port, ca_file, self.connect_to
  prof.base_url = self.base_url
  prof.proxy_url = self.proxy_url
  self.dns_info = prof.dns and prof.dns.address and prof.dns or nil   -- {address, tsig} (o.dns)
  for name, t in pairs(prof.tenants or {}) do prof.tenants[name] = client_profile(self, t) end
  self.profile = prof
  running[#running + 1] = self
  M.instance = self
  return self
end

-- control(method, path, body) -> decoded JSON (or the raw body), status | nil, err.
-- body: a table (sent as JSON) or a string.
function Instance:control(method, path, body)
  if not self.server then return nil, "the simulator is stopped" end
  local http = require "t2t.http"
  local cjson = require "cjson"
  local headers = { accept = "application/json", ["x-t2t-sim-control"] = KEYS[self] }
  if type(body) == "table" then
    body = cjson.encode(body)
    headers["content-type"] = "application/json"
  elseif body ~= nil then
    headers["content-type"] = "application/json"
  end
  local r, err = http.request { method = method, url = self.base_url .. path, headers = headers,
                                body = body, ca_file = self.ca_file, timeout = 120 }
  if not r then return nil, tostring(err and (err.message or err) or "request failed") end
  local ok, v = pcall(cjson.decode, r.body or "")
  if r.status >= 400 then
    local msg = ok and type(v) == "table" and v.error and v.error.message or r.body
    return nil, string.format("%s %s: %d %s", method, path, r.status, tostring(msg))
  end
  if ok then return v, r.status end
  return r.body, r.status
end

-- dns() -> {address, tsig} | nil, err: the simulator's DNS server (Knot, started on first use),
-- serving the tenants' domains; tsig is the key RFC 2136 updates to their own zones take.
function Instance:dns()
  if self.dns_info then return self.dns_info end
  local r, err = self:control("POST", "/_sim/dns", {})
  if type(r) ~= "table" or not r.address then return nil, err end
  self.dns_info = r
  return r
end

-- mail{tenant, from, to, subject, body} -> raw message signed by the tenant's EXO | nil, err.
function Instance:mail(o)
  local r, err = self:control("POST", "/_sim/mail", o)
  if type(r) ~= "table" then return nil, err end
  return r.message, r
end

-- control_header() -> the header line that authorizes a control API call ("X-T2T-Sim-Control:
-- KEY"), for handing to another process through a private file (t2t sim does).
function Instance:control_header()
  return "X-T2T-Sim-Control: " .. tostring(KEYS[self])
end

-- securestring_public_pem() -> the simulated Exchange Online module's SecureString public key
-- (PEM; the simulator makes the key on first use) | nil, err.
function Instance:securestring_public_pem()
  if not self.securestring_pem then
    local r, err = self:control("GET", "/_sim/securestring-key")
    if type(r) ~= "table" then return nil, "simulator SecureString key: " .. tostring(err or r) end
    self.securestring_pem = r.public_pem
  end
  return self.securestring_pem
end

-- save(path?) -> true | nil, err: write the state (default: the --state file).
function Instance:save(path)
  local r, err = self:control("POST", "/_sim/save", path and { path = path } or {})
  if not r then return nil, err end
  return true
end

-- stop{save = true} -> true | nil, err.  Saves the state file first when one was given; the
-- server stops in any case.  Idempotent.
function Instance:stop(o)
  if not self.server then return true end
  local ok, err = true, nil
  if self.state_file and not (o and o.save == false) then ok, err = self:save() end
  if self.proxy then self.proxy:stop(); self.proxy = nil end
  self.server:stop()
  self.server = nil
  if self.ca_file then os.remove(self.ca_file) end
  for i = #running, 1, -1 do if running[i] == self then table.remove(running, i) end end
  if M.instance == self then M.instance = running[#running] end
  return ok, err
end
Instance.__close = function(self) self:stop() end

-- current() -> the most recently started instance still running | nil.
function M.current() return running[#running] end

-- stop_all(): stop every running instance (saving their state files), e.g. at exit.
function M.stop_all()
  local err
  for i = #running, 1, -1 do
    local ok, e = running[i]:stop()
    if not ok then err = err or e end
  end
  return err == nil, err
end

return M
