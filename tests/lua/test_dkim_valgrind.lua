-- The dns and dkim plugins under valgrind: every C entry point of t2t.core.dns, t2t.core.dkim
-- and t2t.core.dkim_sign, success and failure paths, in a child t2t (queries answered by Knot
-- when it is installed, else refused by a closed port; a query still in flight when the
-- resolver closes; a resolver never closed but collected).  Any memory error or definite leak
-- fails.
local lu = require "luaunit"

local WORKLOAD = [==[
local C = require "t2t.core.dkim"
local S = require "t2t.core.dkim_sign"
local D = require "t2t.core.dns"
local dns = require "t2t.dns"
local t2t = require "t2t"
-- dkim
for _, kind in ipairs { "rsa", "ed25519" } do
  local pem, p = S.generate_key(kind, 1024)
  local key = assert(C.key("v=DKIM1; k=" .. kind .. "; p=" .. p))
  local raw = "From: a@b.example\nTo: c@d.example\nSubject: x\n\nbody  \n\n"
  for _, c in ipairs { "simple/simple", "relaxed/relaxed" } do
    local sig = S.sign(raw, { domain = "b.example", selector = "s", key = pem, canon = c, body_length = true, oversign = true })
    local m = C.message(sig .. raw)
    assert(m:verify(1, key).result == "pass")
    assert(#m:signatures() == 1 and #m:headers() == 4 and m:from() == 1 and m:body())
  end
  assert(#C.message("From: a@b.example\r\n\r\nx"):signatures() == 0)
end
assert(not C.key("v=DKIM1; p=") and not C.key("p=!!") and not C.key("a=1; a=2"))
assert(not C.taglist("a=1;;b") and C.taglist("a=1;;b=2", true))
assert(S.canon_body("a \r\n\r\n", "relaxed") == "a\r\n" and S.canon_header("A : b ", "relaxed") == "a:b")
assert(not pcall(S.sign, "no from\r\n\r\n", { domain = "b.example", selector = "s", key = "junk" }))
local m = C.message(string.rep("X-A: " .. string.rep("y", 100) .. "\r\n", 300) ..
                    "DKIM-Signature: v=1; a=rsa-sha1; b=AA==; bh=AA==; d=x; h=from; s=s\r\n\r\n")
assert(m:signatures()[1].error)
-- dns
assert(D.parse(string.rep("\0", 12)) and not D.parse("x"))
local server = arg[1] ~= "" and arg[1] or "127.0.0.1:1"
local r = dns.resolver { servers = server, timeout = 300, tries = 1 }
local res = r:query("example.com", "TXT")
assert(res or true)
local res2 = t2t.parallel({ "a.example.com", "b.example.com" }, function(n) return r:query(n, "A") end)
assert(#res2 == 2)
local c = D.resolver { servers = server, timeout = 300, tries = 1 }
local q = c:query("in-flight.example.com", "A")     -- closed while in flight
c:close()
assert(q:done() and q:result().status == "closed")
local leaked = D.resolver { servers = server }     -- collected, never closed
leaked:query("x.example.com", "A")
leaked = nil
r:close()
collectgarbage()
collectgarbage()
print("workload done")
]==]

TestDkimValgrind = {}

function TestDkimValgrind.test_no_errors_no_leaks()
  local t2t = os.getenv("T2T") or "build/t2t"
  lu.skipIf(t2t:find("san/", 1, true), "not under a sanitizer build")
  lu.skipIf(not os.execute("command -v valgrind >/dev/null 2>&1"), "valgrind is not installed")
  local ds = require "t2t.sim.dnsserver"
  local srv = ds.available() and ds.start { zones = { ["example.com"] = { records = {
    { name = "@", type = "TXT", data = string.rep("v", 700) }, { name = "a", type = "A", data = "192.0.2.1" } } } } }
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(WORKLOAD)
  f:close()
  local p = io.popen("valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite " ..
                     t2t .. " " .. path .. " '" .. (srv and srv.address or "") .. "' 2>&1")
  local out = p:read("a")
  local _, _, code = p:close()
  os.remove(path)
  if srv then srv:stop() end
  lu.assertStrContains(out, "workload done")
  lu.assertEquals(code, 0, out)
end
