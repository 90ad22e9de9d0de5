-- bench: sim_exo_rps = simple InvokeCommand calls per second (Get-OrganizationConfig and
-- Get-Mailbox -Identity, alternating) through the real exo client and http client, over TLS on
-- loopback to the simulator started in-process (its own server thread), at concurrency 16.
-- The median of 3 rounds; everything (client, TLS, server, Lua handlers) shares the 2 cores.
--   build/t2t tests/bench/bench_exo.lua        (from the source tree root)
local t2t = require "t2t"
local exo = require "t2t.exo"

local N, C, ROUNDS = 3000, 16, 3

local s = assert(require("t2t.sim").start { users = 200, seed = 1 })
local t = s.profile.tenants.contoso
local tok = assert(s:control("POST", "/_sim/token", { tid = t.tenant_id,
  aud = "https://outlook.office365.com", roles = { "Exchange.ManageAsApp" },
  wids = { "29232cdf-9323-42fd-ade2-1d097af3e4de" }, lifetime = 3600 })).access_token
local http = require("t2t.http").client { service = "exo", ca_file = s.ca_file,
                                          connect_to = s.connect_to,
                                          concurrency = { initial = C, max = C } }
local ex = exo.new { tenant = t.tenant_id, token = function() return tok end, http = http }
local mbx = assert(ex:invoke("Get-Mailbox", { ResultSize = 1 }))[1].PrimarySmtpAddress

local items = {}
for i = 1, N do items[i] = i end
local rates = {}
for r = 1, ROUNDS do
  local failed = 0
  local t0 = t2t.now()
  t2t.parallel(items, function(i)
    local list, err
    if i % 2 == 0 then list, err = ex:invoke("Get-OrganizationConfig", {})
    else list, err = ex:invoke("Get-Mailbox", { Identity = mbx }) end
    if not list then failed = failed + 1; if failed == 1 then io.stderr:write(tostring(err), "\n") end end
  end, { concurrency = C })
  local dt = t2t.now() - t0
  rates[r] = N / dt
  if failed > 0 then io.stderr:write(string.format("bench_exo: round %d: %d failed\n", r, failed)) end
end
table.sort(rates)
s:stop()
print(string.format("bench: sim_exo_rps = %d", math.floor(rates[(ROUNDS + 1) // 2])))
