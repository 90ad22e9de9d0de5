-- t2t.connect: service clients for a tenant profile — Graph, Exchange Online and Azure, sharing
-- one credential (t2t.auth) and the profile's TLS settings (connect_to + CA under the simulator).
--
--   local c = connect("contoso")              -- in the REPL, -e code and runbook files alike
--   for _, m in ipairs(assert(c.exo:invoke("Get-Mailbox", {ResultSize = 10}))) do ... end
--   c.graph:get("/users?$filter=startswith(displayName,'A')")
--
-- connect(name) raises one line naming what to fix when the profile cannot be used; the library
-- form connect.profile(name, opts) returns nil, err instead.  Profiles come from the config file,
-- the AZURE_* environment variables, or (--sim) the simulator: see t2t.config.selected.
local errors = require "t2t.errors"

local M = {}

-- Token functions (refresh -> bearer) per resource ("graph", "exo", "arm", "vault") for a
-- profile, from t2t.auth.  Under --sim tokens stay in memory: they mean nothing elsewhere.
local function tokens(profile, http_client, simi)
  local auth = require "t2t.auth"
  local cache = nil                    -- the default token cache file...
  if simi then cache = false end       -- ...but never for the simulator's tokens
  local o = { http = http_client, cache = cache, ca_file = http_client.ca_file, connect_to = http_client.connect_to }
  if simi and profile.device_code then
    -- a simulated device-code sign-in is approved by the simulator as profile.sim_user (default:
    -- the tenant's seeded admin), at once
    o.sleep = function() end
    o.prompt = function(info)
      simi:control("POST", "/_sim/device/approve", { user_code = info.user_code, user = profile.sim_user })
    end
  end
  local cred, err = auth.credential(profile, o)
  if not cred then return nil, err end
  return function(resource) return cred:token_provider(resource) end
end

M.EXO_CONCURRENCY = 3       -- requests in flight per tenant; profile.exo_concurrency overrides

-- A connection prints as one line: it holds clients (and, under --sim, a simulated secret in its
-- profile) that are no one's business on a screen.
local Connection = { __name = "t2t.connection" }
Connection.__index = Connection
Connection.__tostring = function(c)
  local p = c.profile or {}
  return string.format("<connection %s: tenant %s, cloud %s -- .graph .exo .azure .profile>",
                       tostring(p.name or "?"), tostring(p.tenant_id or p.tenant or "?"), tostring(p.cloud or "global"))
end

-- Clients for a profile {tenant_id, cloud, client_id, ...} and the http options that reach the
-- simulator (connect_to, ca_file).  Returns {graph, exo, azure, profile} | nil, err.
function M.clients(profile, http_opts, simi)
  local http = require "t2t.http"
  local o = http_opts or {}
  local function client(service, concurrency)
    return http.client { service = service, ca_file = o.ca_file, connect_to = o.connect_to,
                         concurrency = concurrency }
  end
  local token_for, err = tokens(profile, client("login"), simi)
  if not token_for then return nil, err end
  local tid = profile.tenant_id or profile.tenant
  local c = setmetatable({ profile = profile }, Connection)
  c.graph = require("t2t.graph").new { tenant = tid, http = client("graph"), cloud = profile.cloud,
                                       token = token_for("graph") }
  -- Exchange Online allows a few requests in flight per tenant (more get the "maximum number of
  -- concurrent requests per tenant" 429): start there, halve on a 429, grow back (t2t.http).
  local exo_n = math.max(1, math.tointeger(profile.exo_concurrency) or M.EXO_CONCURRENCY)
  local exo_http = client("exo", { initial = exo_n, max = exo_n, slow_start = false })
  c.exo = require("t2t.exo").new { tenant = tid, http = exo_http, cloud = profile.cloud,
                                   token = token_for("exo"), secure_string_key = profile.exo_securestring_key }
  c.azure = require("t2t.azure").new { tenant = tid, http = client("arm"), vault_http = client("keyvault"),
                                       cloud = profile.cloud, token = token_for("arm"),
                                       vault_token = token_for("vault"), subscription = profile.subscription }
  return c
end

-- profile(name [, opts]) -> clients for the profile `name` | nil, err.  opts: the run's global
-- options (--profile, --config, --sim), default t2t.options.current().  A profile that cannot be
-- found is a usage error (err.usage); one whose credential cannot be read is not.
function M.profile(name, opts)
  opts = opts or require("t2t.options").current()
  local prof, err = require("t2t.config").selected(opts, name)
  if not prof then return nil, errors.new(tostring(err), { usage = true }) end
  local simi = opts.sim_instance or (opts.sim and require("t2t.sim").current()) or nil
  local c, cerr = M.clients(prof, { ca_file = prof.ca_file, connect_to = prof.connect_to }, simi)
  if not c then return nil, errors.new(string.format("profile '%s': %s", tostring(prof.name), tostring(cerr))) end
  return c
end

-- open(name [, opts]) -> clients, or raises the reason as one line (what connect(name) does).
function M.open(name, opts)
  local c, err = M.profile(name, opts)
  if not c then error(err, 2) end
  return c
end

-- connect(name [, opts]) in the REPL and -e code is connect.open.
return setmetatable(M, { __call = function(_, name, opts) return M.open(name, opts) end })
