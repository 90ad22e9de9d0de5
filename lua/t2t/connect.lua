-- t2t.connect: service clients for a tenant profile — Graph, Exchange Online and Azure, sharing
-- one credential (t2t.auth) and the profile's TLS settings (connect_to + CA under the simulator).
--   local c = require("t2t.connect").profile("contoso")     -- --profile / --sim aware
--   connect("contoso")                                       -- the same, in the REPL and -e
--   for _, m in ipairs(assert(c.exo:invoke("Get-Mailbox", {ResultSize = 10}))) do ... end
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

-- Clients for a profile {tenant_id, cloud, client_id, ...} and the http options that reach the
-- simulator (connect_to, ca_file).  Returns {graph, exo, azure, profile} | nil, err.
function M.clients(profile, http_opts, simi)
  local http = require "t2t.http"
  local o = http_opts or {}
  local function client(service)
    return http.client { service = service, ca_file = o.ca_file, connect_to = o.connect_to }
  end
  local token_for, err = tokens(profile, client("login"), simi)
  if not token_for then return nil, err end
  local tid = profile.tenant_id or profile.tenant
  local c = { profile = profile }
  c.graph = require("t2t.graph").new { tenant = tid, http = client("graph"), cloud = profile.cloud,
                                       token = token_for("graph") }
  c.exo = require("t2t.exo").new { tenant = tid, http = client("exo"), cloud = profile.cloud,
                                   token = token_for("exo"), secure_string_key = profile.exo_securestring_key }
  c.azure = require("t2t.azure").new { tenant = tid, http = client("arm"), vault_http = client("keyvault"),
                                       cloud = profile.cloud, token = token_for("arm"),
                                       vault_token = token_for("vault"), subscription = profile.subscription }
  return c
end

-- connect.profile(name [, opts]) -> clients for the profile `name` (or --profile; under --sim
-- the simulator's tenant, default the seeded source) | nil, err.  opts default to the command
-- line's global options.
function M.profile(name, opts)
  opts = opts or require("t2t.cli").opts or {}
  local prof, err = require("t2t.config").selected(opts, name)
  if not prof then return nil, err end
  local simi = opts.sim_instance or (opts.sim and require("t2t.sim").current()) or nil
  return M.clients(prof, { ca_file = prof.ca_file, connect_to = prof.connect_to }, simi)
end

-- connect(name [, opts]) in the REPL and -e code is connect.profile.
return setmetatable(M, { __call = function(_, name, opts) return M.profile(name, opts) end })
