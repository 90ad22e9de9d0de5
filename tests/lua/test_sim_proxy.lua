-- The CONNECT proxy in front of the simulator (t2t.core.proxy, `t2t sim --connect-proxy`):
-- tunnels CONNECT for the simulated hosts only, with TLS end to end, checked with curl as an
-- independent client.
local lu = require "luaunit"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  return out, tonumber(out:match("rc=(%d+)%s*$"))
end

TestSimProxy = {}

function TestSimProxy.test_tunnels_simulated_hosts_refuses_others()
  local s = assert(require("t2t.sim").start { users = 5, seed = 1, connect_proxy = 0 })
  local proxy, ca = s.proxy_url, s.ca_file
  lu.assertStrMatches(proxy, "http://127%.0%.0%.1:%d+")
  lu.assertEquals(s.profile.proxy_url, proxy)
  -- a real host name through the tunnel: the simulator's Graph answers (no token: 401)
  local out, rc = sh(string.format("curl -sS --proxy %s --cacert %s -o - -w ' status=%%{http_code}' "
    .. "https://graph.microsoft.com/v1.0/organization", proxy, ca))
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "InvalidAuthenticationToken")
  lu.assertStrContains(out, "status=401")
  -- a per-vault name matches *.vault.azure.net
  out = sh(string.format("curl -sS --proxy %s --cacert %s https://nosuchvault.vault.azure.net/secrets"
    .. "?api-version=7.4", proxy, ca))
  lu.assertStrContains(out, "VaultNotFound")
  -- another host: CONNECT refused with 403, curl never reaches TLS
  out, rc = sh(string.format("curl -sS --proxy %s https://example.com/", proxy))
  lu.assertNotEquals(rc, 0)
  lu.assertStrContains(out, "403")
  -- a plain proxied GET is not a tunnel: 405
  out = sh(string.format("curl -sS -o /dev/null -w '%%{http_code}' --proxy %s http://graph.microsoft.com/", proxy))
  lu.assertStrContains(out, "405")
  local st = s.proxy:stats()
  lu.assertEquals(st.tunnels, 2)
  lu.assertEquals(st.refused, 2)
  s:stop()
  lu.assertNil(s.proxy)
end

function TestSimProxy.test_bad_options_raise()
  local proxy = require "t2t.core.proxy"
  lu.assertErrorMsgContains("upstream_port", proxy.start, { hosts = {} })
  lu.assertErrorMsgContains("hosts", proxy.start, { upstream_port = 1 })
  lu.assertErrorMsgContains("strings expected", proxy.start, { upstream_port = 1, hosts = { 1 } })
  local p = assert(proxy.start { upstream_port = 1, hosts = { "a.example" } })
  lu.assertTrue(p:port() > 0)
  p:stop()
  p:stop()
  lu.assertErrorMsgContains("stopped proxy", p.port, p)
end

-- A local user holding every slot with idle sockets (no CONNECT head) must not lock others out:
-- a new client takes the slot of the one idle the longest.  (Failed before: 256 idle sockets
-- made the proxy drop every new client.)
function TestSimProxy.test_idle_sockets_cannot_starve_clients()
  local s = assert(require("t2t.sim").start { users = 2, seed = 1, connect_proxy = 0 })
  local port = s.proxy_url:match(":(%d+)$")
  local ready = os.tmpname()
  os.execute(string.format("bash -c 'for i in $(seq 10 300); do eval \"exec $i<>/dev/tcp/127.0.0.1/%s\" || exit 1; done; " ..
    "echo up > %s; sleep 20' >/dev/null 2>&1 &", port, ready))
  for _ = 1, 200 do
    local f = io.open(ready)
    local up = f and f:read("a") or ""
    if f then f:close() end
    if up:find("up") then break end
    os.execute("sleep 0.05")
  end
  local out, rc = sh(string.format("curl -sS --max-time 20 --proxy %s --cacert %s -o /dev/null -w 'status=%%{http_code}' "
    .. "https://graph.microsoft.com/v1.0/organization", s.proxy_url, s.ca_file))
  os.remove(ready)
  s:stop()
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "status=401")
end
