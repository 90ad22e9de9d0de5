-- bench: sim_mailbox_page_ms_1k, sim_mailbox_page_ms_50k = one Get-Mailbox page of 1000
-- (Prefer: odata.maxpagesize=1000, -ResultSize Unlimited) from simulators seeded with 1,000 and
-- 50,000 mailboxes, through the real exo client over TLS; both run at once and are asked in
-- turn so machine noise falls on both; the median of 21.  Pages walk the recipient index, so the
-- ratio stays near 1 (issue 14).
--   build/t2t tests/bench/bench_sim_exo_list.lua        (from the source tree root)
local t2t = require "t2t"
local exo = require "t2t.exo"

local function client(s)
  local t = s.profile.tenants.contoso
  local tok = assert(s:control("POST", "/_sim/token", { tid = t.tenant_id,
    aud = "https://outlook.office365.com", roles = { "Exchange.ManageAsApp" },
    wids = { "29232cdf-9323-42fd-ade2-1d097af3e4de" }, lifetime = 3600 })).access_token
  local http = require("t2t.http").client { service = "exo", ca_file = s.ca_file,
                                            connect_to = s.connect_to }
  return exo.new { tenant = t.tenant_id, token = function() return tok end, http = http }
end

local sims, clients, times = {}, {}, { {}, {} }
for i, users in ipairs { 1000, 50000 } do
  sims[i] = assert(require("t2t.sim").start { users = users, seed = 1 })
  clients[i] = client(sims[i])
  assert(clients[i]:invoke("Get-Mailbox", { ResultSize = 1000 }))   -- builds the index
end
for r = 1, 21 do
  for i = 1, 2 do
    local t0 = t2t.now()
    local list = assert(clients[i]:invoke("Get-Mailbox", { ResultSize = 1000 }))
    times[i][r] = (t2t.now() - t0) * 1000
    if #list < 900 then io.stderr:write("bench_sim_exo_list: short page ", #list, "\n") end
  end
end
for i = 1, 2 do sims[i]:stop(); table.sort(times[i]) end
local small, large = times[1][11], times[2][11]
print(string.format("bench: sim_mailbox_page_ms_1k = %.1f", small))
print(string.format("bench: sim_mailbox_page_ms_50k = %.1f", large))
print(string.format("bench: sim_mailbox_page_ratio_50k_1k = %.2f", large / small))
