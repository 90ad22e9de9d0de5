-- bench: sim_users_page_ms_1k, sim_users_page_ms_50k = one GET /users?$top=999 page (the
-- median of 15, at spread $skiptoken positions) from a simulator seeded with 1,000 and 50,000
-- users, through the real graph and http clients over TLS on loopback; their ratio must stay
-- near 1 (≤ 2): a page costs O(page), not a scan of the tenant (issue 14).
-- bench: sim_list_all_users_s_100k = seconds to list every user of a 100,000-user tenant with
-- $top=999 pages (the graph client's paging), ~100 pages.
--   build/t2t tests/bench/bench_sim_graph.lua        (from the source tree root)
local t2t = require "t2t"
local graph = require "t2t.graph"

local function client(s)
  local t = s.profile.tenants.contoso
  local tok = assert(s:control("POST", "/_sim/token", { tid = t.tenant_id,
    aud = "https://graph.microsoft.com", roles = { "User.Read.All" }, lifetime = 3600 })).access_token
  local http = require("t2t.http").client { service = "graph", ca_file = s.ca_file,
                                            connect_to = s.connect_to }
  return graph.new { token = function() return tok end, http = http, tenant = t.tenant_id }
end

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

-- The full $top=999 pages of a simulator: the first and the links of the next full ones.
local function full_pages(g)
  local links, link = {}, "/users?$top=999&$select=id,displayName"
  while link and #links < 15 do
    local page = assert(g:get(link))
    if #page.value == 999 then links[#links + 1] = link end
    link = page["@odata.nextLink"]
  end
  return links
end

-- Both simulators run at once and the pages are fetched alternately, so the machine's noise
-- (other work on the 2 cores) falls on both alike; the median of 31 each.
local sims, gs, links, times = {}, {}, {}, {}
for i, users in ipairs { 1000, 50000 } do
  sims[i] = assert(require("t2t.sim").start { users = users, seed = 1 })
  gs[i] = client(sims[i])
  links[i] = full_pages(gs[i])
  times[i] = {}
end
for r = 1, 31 do
  for i = 1, 2 do
    local t0 = t2t.now()
    assert(gs[i]:get(links[i][(r - 1) % #links[i] + 1]))
    times[i][r] = (t2t.now() - t0) * 1000
  end
end
for i = 1, 2 do sims[i]:stop() end
local small, large = median(times[1]), median(times[2])
print(string.format("bench: sim_users_page_ms_1k = %.1f", small))
print(string.format("bench: sim_users_page_ms_50k = %.1f", large))
print(string.format("bench: sim_users_page_ratio_50k_1k = %.2f", large / small))

local s = assert(require("t2t.sim").start { users = 100000, seed = 1 })
local g = client(s)
local t0, n = t2t.now(), 0
for _ in g:items("/users?$top=999&$select=id,userPrincipalName") do n = n + 1 end
local dt = t2t.now() - t0
s:stop()
if n < 100000 then io.stderr:write("bench_sim_graph: listed only ", n, " users\n") end
print(string.format("bench: sim_list_all_users_s_100k = %.2f", dt))
