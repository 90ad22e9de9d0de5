-- Break a prepared target the way a hand edit would (its LegacyExchangeDN X500 removed, its
-- ExternalEmailAddress pointed elsewhere), through the simulator's control API:
--   build/t2t tests/e2e/users_break.lua STATE.json TARGET-ADDRESS
local s = assert(require("t2t.sim").start { state = arg[1] })
local path = "/_sim/recipients/fabrikam/" .. arg[2]
local r = assert(s:control("GET", path))
local x500
for _, a in ipairs(r.EmailAddresses) do if a:lower():match("^x500:/o=exchangelabs") then x500 = a end end
assert(s:control("PATCH", path, { remove_addresses = { x500 }, ExternalEmailAddress = "SMTP:someone@elsewhere.org" }))
assert(s:stop())
