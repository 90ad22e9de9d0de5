-- bench: nonidempotent_resend_overhead -- wall time of 500 sequential POSTs (Graph group
-- creates, against the simulator) sent as t2t sends a request that may not repeat (resend =
-- false: libcurl's silent re-send refused, the connection still reused) divided by the same
-- POSTs with libcurl's default (reuse, re-send allowed).  For comparison,
-- nonidempotent_fresh_connection_overhead: each POST on a connection of its own (fresh = true),
-- the other way to make a re-send impossible.  Rounds of 50 alternate, so drift hits all alike.
local http = require "t2t.http"
local t2t = require "t2t"
local sim = require "t2t.sim"
local session = require "t2t.tenant.session"

local s = assert(sim.start { users = 1 })
local c = assert(session.clients(s.profile.tenants.fabrikam, { ca_file = s.ca_file, connect_to = s.connect_to }, s))
local tok = assert(c.graph.token(false))
local n = 0
local function post(o)
  n = n + 1
  local r, err = http.request { method = "POST", url = "https://graph.microsoft.com/v1.0/groups",
    headers = { authorization = "Bearer " .. tok, ["content-type"] = "application/json" },
    body = string.format('{"displayName":"bench %d","mailEnabled":false,"securityEnabled":true,"mailNickname":"b%d"}', n, n),
    ca_file = s.ca_file, connect_to = s.connect_to, no_proxy = "*", resend = o.resend, fresh = o.fresh }
  assert(r and r.status == 201, tostring(err or (r and r.status)))
end
local modes = { policy = { resend = false }, reuse = { resend = true }, fresh = { resend = false, fresh = true } }
local spent = { policy = 0, reuse = 0, fresh = 0 }
post(modes.reuse)                                      -- warm: connection, token, caches
for _ = 1, 10 do
  for _, m in ipairs { "policy", "reuse", "fresh" } do
    local t0 = t2t.now()
    for _ = 1, 50 do post(modes[m]) end
    spent[m] = spent[m] + (t2t.now() - t0)
  end
end
s:stop { save = false }
print(string.format("bench: nonidempotent_resend_overhead = %.3f", spent.policy / spent.reuse))
print(string.format("bench: nonidempotent_fresh_connection_overhead = %.3f", spent.fresh / spent.reuse))
print(string.format("bench: post_ms_with_policy = %.2f", spent.policy / 500 * 1000))
