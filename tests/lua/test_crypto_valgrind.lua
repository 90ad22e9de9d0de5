-- The crypto plugin under valgrind: every C entry point of t2t.core.crypto / t2t.core.x509,
-- success and failure paths, in a child t2t.  Any memory error or definite leak fails.
-- (RSA keys come from a JWK, not keygen, to keep valgrind's run short.)
local lu = require "luaunit"

local WORKLOAD = [==[
local crypto = require "t2t.crypto"
local jwt = require "t2t.jwt"
local jwk = assert(load("return " .. arg[1]))()
local rsa = assert(crypto.rsa_from_jwk(jwk))
local ed = assert(crypto.generate_key("ed25519"))
assert(crypto.base64_decode(crypto.base64_encode("abc")) == "abc")
assert(not crypto.base64url_decode("!"))
assert(crypto.hex_decode(crypto.hex_encode("xyz")) == "xyz")
assert(#crypto.hmac("sha512", "k", "d") == 64 and #crypto.digest("sha1", "") == 20)
assert(#crypto.random_bytes(10) == 10 and #crypto.uuid4() == 36)
for _, alg in ipairs({ "RS256", "PS256", "RS512", "PS384" }) do
  assert(rsa:verify(alg, "m", rsa:sign(alg, "m")))
end
assert(ed:verify("EdDSA", "m", ed:sign("EdDSA", "m")))
assert(not ed:verify("EdDSA", "m", "short"))
assert(crypto.load_key(rsa:private_pem("pw"), "pw"))
assert(not crypto.load_key(rsa:private_pem("pw"), "bad"))
assert(not crypto.load_key(rsa:private_pem("pw")))
assert(crypto.load_key(ed:public_pem()) and crypto.load_key(rsa:public_der()))
assert(not crypto.load_key("junk"))
assert(crypto.key_from_jwk(rsa:jwk()) and crypto.key_from_jwk(ed:jwk()))
assert(not crypto.key_from_jwk { kty = "RSA", n = "!", e = "AQAB" })
local bad = {}
for k, v in pairs(jwk) do bad[k] = v end
bad.n = crypto.base64url_encode(crypto.random_bytes(256))
assert(not crypto.key_from_jwk(bad))
assert(not pcall(crypto.key_from_jwk, { kty = "RSA", n = "AQAB", e = "AQAB", d = "AQAB", p = "AQAB" }))
local ca = assert(crypto.new_ca { subject = "CN=ca", key = rsa })
local srv = assert(crypto.new_cert { subject = "CN=s,O=o", key = ed, issuer_cert = ca, issuer_key = rsa,
                                     san = { "a.example", "IP:10.0.0.1", "::1", "email:x@y", "URI:https://x" } })
assert(not crypto.create_cert { key = ed, san = { "IP:bad" } })
assert(not crypto.create_cert { key = ed, subject = "ZZ=1" })
assert(not pcall(crypto.create_cert, { key = ed, ext_key_usage = { "bad eku" } }))
assert(crypto.verify_cert(srv, { ca }, { host = "a.example" }))
assert(not crypto.verify_cert(srv, { ca }, { host = "b.example" }))
assert(not crypto.verify_cert(srv, {}, { untrusted = { ca } }))
local info = srv:info()
assert(#info.san == 5 and info.subject == "CN=s,O=o" and srv:public_key():equals(ed))
assert(crypto.load_cert(srv:pem()) == srv and crypto.load_cert(srv:der()) == srv)
assert(not crypto.load_cert("junk") and #crypto.load_certs(srv:pem() .. ca:pem()) == 2)
local pfx = assert(crypto.pkcs12_export { key = ed, cert = srv, chain = { ca }, passphrase = "p" })
assert(#assert(crypto.pkcs12_import(pfx, "p")).chain == 1)
assert(not crypto.pkcs12_import(pfx, "q") and not crypto.pkcs12_import("\48\3\1\1\1"))
assert(crypto.pkcs12_import(assert(crypto.pkcs12_export { key = rsa, cert = ca, legacy = true })))
local tok = jwt.encode({ exp = os.time() + 60 }, rsa, { alg = "PS256", cert = ca })
assert(jwt.verify(tok, { srv, ca }))
assert(not jwt.verify(tok, srv))
do local k <close> = crypto.generate_key("ed25519") end
ed:close(); ed:close(); srv:close()
collectgarbage()
print("workload done")
]==]

local function shq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

TestCryptoValgrind = {}

function TestCryptoValgrind.test_no_errors_no_leaks()
  local t2t = os.getenv("T2T") or "build/t2t"
  lu.skipIf(t2t:find("san/", 1, true), "not under a sanitizer build")
  lu.skipIf(not os.execute("command -v valgrind >/dev/null 2>&1"), "valgrind is not installed")
  local tmp = os.tmpname()
  local dir = tmp .. ".lua"
  local f = assert(io.open(dir, "w"))
  f:write(WORKLOAD)
  f:close()
  -- the RFC 7515 A.2 key, passed as a Lua table literal
  local jwk = "{kty='RSA'"
  local src = assert(io.open("tests/lua/test_jwt.lua")):read("a")
  for _, k in ipairs({ "n", "e", "d", "p", "q", "dp", "dq", "qi" }) do
    jwk = jwk .. "," .. k .. "='" .. assert(src:match("\n%s+" .. k .. ' = "([%w_%-]+)"')) .. "'"
  end
  jwk = jwk .. "}"
  local cmd = "valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite " ..
              t2t .. " " .. dir .. " " .. shq(jwk) .. " 2>&1"
  local p = io.popen(cmd)
  local out = p:read("a")
  local _, _, code = p:close()
  os.remove(dir)
  os.remove(tmp)
  lu.assertStrContains(out, "workload done")
  lu.assertEquals(code, 0, out)
end
