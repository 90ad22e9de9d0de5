-- t2t.crypto: known answers, and cross-checks against the openssl command line (files in a
-- private temp dir).  RSA keys are generated once per run and shared; one RSA-4096 keygen.
local lu = require "luaunit"
local crypto = require "t2t.crypto"

local H = {}                               -- helpers, shared with test_crypto_*.lua / test_jwt

function H.sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok == true, out
end

local tmpdir
function H.tmp(name)
  if not tmpdir then
    tmpdir = os.tmpname()
    os.remove(tmpdir)
    assert(os.execute("mkdir -m 700 " .. tmpdir))
    -- removed when the state closes (run.lua exits with close = true): test keys on disk go too
    H.cleanup = setmetatable({}, { __gc = function() os.execute("rm -rf '" .. tmpdir .. "'") end })
  end
  return tmpdir .. "/" .. name
end

function H.write(name, data)
  local path = H.tmp(name)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

function H.read(path)
  local f = assert(io.open(path, "rb"))
  local d = f:read("a")
  f:close()
  return d
end

H.have_openssl = H.sh("openssl version")

local keys = {}
function H.rsa()
  keys.rsa = keys.rsa or assert(crypto.generate_key("rsa", 2048))
  return keys.rsa
end
function H.rsa2()
  keys.rsa2 = keys.rsa2 or assert(crypto.generate_key("rsa", 2048))
  return keys.rsa2
end
function H.ed()
  keys.ed = keys.ed or assert(crypto.generate_key("ed25519"))
  return keys.ed
end
-- A CA and a server certificate for the simulated Microsoft hosts.
function H.pki()
  if not keys.ca then
    keys.ca = assert(crypto.new_ca { subject = "CN=t2t test CA,O=t2t", key = H.rsa(),
                                          not_before = 1600000000, not_after = 2000000000 })
    keys.server = assert(crypto.new_cert {
      subject = "CN=login.microsoftonline.com,O=t2t simulator", key = H.ed(),
      issuer_cert = keys.ca, issuer_key = H.rsa(),
      san = { "login.microsoftonline.com", "graph.microsoft.com", "outlook.office365.com",
              "management.azure.com", "*.vault.azure.net", "127.0.0.1", "::1" },
      not_before = 1700000000, not_after = 1900000000, serial = "0A1B2C3D",
    })
  end
  return keys.ca, keys.server
end
package.loaded["t2t.test.crypto_helpers"] = H

local function need_openssl()
  lu.skipIf(not H.have_openssl, "openssl command line not installed")
end

TestCryptoEncoding = {}

function TestCryptoEncoding.test_base64_rfc4648()
  local v = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
              fooba = "Zm9vYmE=", foobar = "Zm9vYmFy" }
  for plain, enc in pairs(v) do
    lu.assertEquals(crypto.base64_encode(plain), enc)
    lu.assertEquals(crypto.base64_decode(enc), plain)
    lu.assertEquals(crypto.base64url_encode(plain), (enc:gsub("=", "")))
    lu.assertEquals(crypto.base64url_decode((enc:gsub("=", ""))), plain)
  end
  lu.assertEquals(crypto.base64_encode("\251\255\191"), "+/+/")
  lu.assertEquals(crypto.base64url_encode("\251\255\191"), "-_-_")
  lu.assertEquals(crypto.base64_decode("Zm9v\nYmFy\r\n"), "foobar")
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  all = table.concat(all)
  lu.assertEquals(crypto.base64url_decode(crypto.base64url_encode(all)), all)
  lu.assertEquals(crypto.base64_decode(crypto.base64_encode(all)), all)
end

function TestCryptoEncoding.test_base64_rejects_garbage()
  for _, bad in ipairs({ "Zm9v!", "Z", "Zm=9", "Zm9vY===" }) do
    local v, err = crypto.base64_decode(bad)
    lu.assertNil(v, bad)
    lu.assertEquals(err, "invalid base64")
  end
  lu.assertNil(crypto.base64url_decode("ab+c"))
  lu.assertNil(crypto.base64_decode("ab_c"))
end

function TestCryptoEncoding.test_hex()
  lu.assertEquals(crypto.hex_encode("\0\1\171\255"), "0001abff")
  lu.assertEquals(crypto.hex_encode("\0\1\171\255", true), "0001ABFF")
  lu.assertEquals(crypto.hex_decode("0001ABff"), "\0\1\171\255")
  lu.assertEquals(crypto.hex_decode("00:01:AB:FF"), "\0\1\171\255")
  lu.assertNil(crypto.hex_decode("abc"))
  lu.assertNil(crypto.hex_decode("zz"))
end

TestCryptoHash = {}

function TestCryptoHash.test_known_digests()
  lu.assertEquals(crypto.hex_encode(crypto.sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d")
  lu.assertEquals(crypto.sha256_hex("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  lu.assertEquals(crypto.hex_encode(crypto.sha512("abc")):sub(1, 32), "ddaf35a193617abacc417349ae204131")
  lu.assertEquals(#crypto.digest("sha384", ""), 48)
  lu.assertErrorMsgContains("invalid option", crypto.digest, "md5", "x")
end

function TestCryptoHash.test_hmac_rfc4231_case1()
  local mac = crypto.hmac_sha256(string.rep("\11", 20), "Hi There")
  lu.assertEquals(crypto.hex_encode(mac),
    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
  lu.assertEquals(#crypto.hmac("sha1", "", ""), 20)
end

function TestCryptoHash.test_hmac_matches_openssl()
  need_openssl()
  local f = H.write("hmac.in", "the quick brown fox")
  local ok, out = H.sh("openssl dgst -sha256 -hmac s3cr3t -r " .. f)
  lu.assertTrue(ok, out)
  lu.assertEquals(out:match("^(%x+)"), crypto.hex_encode(crypto.hmac_sha256("s3cr3t", "the quick brown fox")))
end

function TestCryptoHash.test_random_and_uuid()
  lu.assertEquals(#crypto.random_bytes(0), 0)
  lu.assertEquals(#crypto.random_bytes(33), 33)
  lu.assertNotEquals(crypto.random_bytes(16), crypto.random_bytes(16))
  lu.assertErrorMsgContains("must be 0..1048576", crypto.random_bytes, -1)
  local seen = {}
  for _ = 1, 200 do
    local u = crypto.uuid4()
    lu.assertStrMatches(u, "%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x")
    lu.assertNil(seen[u])
    seen[u] = true
  end
  lu.assertTrue(crypto.equal("abc", "abc"))
  lu.assertFalse(crypto.equal("abc", "abd"))
  lu.assertFalse(crypto.equal("abc", "ab"))
end

TestCryptoKeys = {}

function TestCryptoKeys.test_generate()
  local r, e = H.rsa(), H.ed()
  lu.assertEquals(r:type(), "rsa")
  lu.assertEquals(r:bits(), 2048)
  lu.assertTrue(r:is_private())
  lu.assertEquals(e:type(), "ed25519")
  lu.assertStrContains(tostring(e), "ed25519")
  lu.assertErrorMsgContains("2048, 3072 or 4096", crypto.generate_key, "rsa", 1024)
  lu.assertErrorMsgContains("invalid option", crypto.generate_key, "dsa")
end

function TestCryptoKeys.test_rsa_4096_once()
  local k = assert(crypto.generate_key("rsa", 4096))
  lu.assertEquals(k:bits(), 4096)
  local sig = k:sign("PS256", "data")
  lu.assertEquals(#sig, 512)
  lu.assertTrue(k:verify("PS256", "data", sig))
  k:close()
end

function TestCryptoKeys.test_close_is_idempotent_and_misuse_raises()
  local k = assert(crypto.generate_key("ed25519"))
  do
    local k2 <close> = assert(crypto.generate_key("ed25519"))
    lu.assertTrue(k2:is_private())
  end
  k:close()
  k:close()
  lu.assertStrContains(tostring(k), "closed")
  lu.assertErrorMsgContains("key is closed", k.sign, k, "EdDSA", "x")
  lu.assertErrorMsgContains("does not match the key type", H.rsa().sign, H.rsa(), "EdDSA", "x")
  lu.assertErrorMsgContains("private key", H.rsa():public_key().sign, H.rsa():public_key(), "RS256", "x")
  local ok, err = H.ed():verify("RS256", "x", "sig")
  lu.assertNil(ok)
  lu.assertStrContains(err, "does not match")
end

function TestCryptoKeys.test_pem_round_trip_and_public()
  local r = H.rsa()
  local pem = r:private_pem()
  lu.assertStrContains(pem, "-----BEGIN PRIVATE KEY-----")
  local back = assert(crypto.load_key(pem))
  lu.assertTrue(back:equals(r))
  lu.assertTrue(back:is_private())
  local pub = assert(crypto.load_key(r:public_pem()))
  lu.assertFalse(pub:is_private())
  lu.assertTrue(pub:equals(r))
  lu.assertTrue(pub:verify("RS256", "m", r:sign("RS256", "m")))
  local der = assert(crypto.load_key(r:public_der()))
  lu.assertTrue(der:equals(r))
  lu.assertFalse(r:equals(H.rsa2()))
  local ed = assert(crypto.load_key(H.ed():private_pem()))
  lu.assertTrue(ed:equals(H.ed()))
  lu.assertEquals(r:jwk().kty, "RSA")
  lu.assertEquals(r:jwk().e, "AQAB")
  lu.assertNil(r:jwk().d)                 -- jwk() is the public half only
  local nokey, err = crypto.load_key((H.pki()):pem())
  lu.assertNil(nokey)
  lu.assertStrContains(err, "no key in this PEM")
  nokey, err = crypto.load_key("garbage")
  lu.assertNil(nokey)
  lu.assertStrContains(err, "load_key")
end

function TestCryptoKeys.test_encrypted_pkcs8_round_trip()
  local pass = "correct horse battery staple"
  local pem = H.rsa():private_pem(pass)
  lu.assertStrContains(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----")
  local back = assert(crypto.load_key(pem, pass))
  lu.assertTrue(back:equals(H.rsa()))
  local k, err = crypto.load_key(pem, "hunter2-guess")
  lu.assertNil(k)
  lu.assertStrContains(err, "wrong passphrase")
  lu.assertNotStrContains(err, "hunter2")  -- the error names the problem, never the input
  k, err = crypto.load_key(pem)
  lu.assertNil(k)
  lu.assertStrContains(err, "passphrase is needed")
  local ek = assert(crypto.load_key(H.ed():private_pem("x"), "x"))
  lu.assertTrue(ek:equals(H.ed()))
end

-- RSA encryption (the EXO SecureString wire form): both paddings, each way against openssl.
function TestCryptoKeys.test_rsa_encrypt_decrypt_with_openssl()
  need_openssl()
  local k = H.rsa()
  local priv, pub = H.write("enc-priv.pem", k:private_pem()), H.write("enc-pub.pem", k:public_pem())
  for _, pad in ipairs({ "pkcs1", "oaep" }) do
    local ct = k:public_key():encrypt("Pa55 wörd\0!", pad)
    lu.assertEquals(#ct, 256)
    lu.assertEquals(k:decrypt(ct, pad), "Pa55 wörd\0!")
    local ctf, out = H.write("ct-" .. pad, ct), H.tmp("pt-" .. pad)
    local ok, msg = H.sh("openssl pkeyutl -decrypt -inkey " .. priv .. " -pkeyopt rsa_padding_mode:" .. pad
                         .. " -in " .. ctf .. " -out " .. out)
    lu.assertTrue(ok, msg)
    lu.assertEquals(H.read(out), "Pa55 wörd\0!")
    local inf, back = H.write("in-" .. pad, "from openssl"), H.tmp("ct2-" .. pad)
    ok, msg = H.sh("openssl pkeyutl -encrypt -pubin -inkey " .. pub .. " -pkeyopt rsa_padding_mode:" .. pad
                   .. " -in " .. inf .. " -out " .. back)
    lu.assertTrue(ok, msg)
    lu.assertEquals(k:decrypt(H.read(back), pad), "from openssl")
  end
  local bad, err = k:decrypt(string.rep("x", 256))
  lu.assertNil(bad)
  lu.assertStrContains(err, "decrypt")
  lu.assertErrorMsgContains("private key", function() k:public_key():decrypt("x") end)
  lu.assertErrorMsgContains("RSA key", function() H.ed():encrypt("x") end)
  lu.assertNil((k:encrypt(string.rep("x", 300))))            -- longer than the key allows
end

function TestCryptoKeys.test_encrypted_pkcs8_with_openssl()
  need_openssl()
  local f = H.write("enc.pem", H.rsa():private_pem("pw1"))
  local ok, out = H.sh("openssl pkey -in " .. f .. " -passin pass:pw1 -pubout")
  lu.assertTrue(ok, out)
  lu.assertEquals(out, H.rsa():public_pem())
  ok = H.sh("openssl pkey -in " .. f .. " -passin pass:nope -noout")
  lu.assertFalse(ok)
  -- and a key encrypted by openssl loads in t2t
  local g = H.tmp("ossl-enc.pem")
  ok, out = H.sh("openssl genpkey -algorithm ed25519 -aes-256-cbc -pass pass:pw2 -out " .. g)
  lu.assertTrue(ok, out)
  local k = assert(crypto.load_key_file(g, "pw2"))
  lu.assertEquals(k:type(), "ed25519")
  local bad, err = crypto.load_key_file(g, "pw3")
  lu.assertNil(bad)
  lu.assertStrContains(err, "wrong passphrase")
end

-- Sign in t2t, verify with openssl; sign with openssl, verify in t2t.
function TestCryptoKeys.test_rsa_signatures_with_openssl()
  need_openssl()
  local r = H.rsa()
  local data = "header.payload " .. crypto.uuid4()
  local df, pub, priv = H.write("sig.data", data), H.write("rsa.pub", r:public_pem()),
                        H.write("rsa.key", r:private_pem())
  local pss = " -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest"
  for _, case in ipairs({ { "PS256", pss }, { "RS256", "" } }) do
    local alg, opt = case[1], case[2]
    local sf = H.write(alg .. ".sig", r:sign(alg, data))
    local ok, out = H.sh("openssl dgst -sha256" .. opt .. " -verify " .. pub .. " -signature " .. sf .. " " .. df)
    lu.assertTrue(ok, alg .. ": " .. out)
    lu.assertStrContains(out, "Verified OK")
    local of = H.tmp(alg .. ".ossl.sig")
    ok, out = H.sh("openssl dgst -sha256" .. opt .. " -sign " .. priv .. " -out " .. of .. " " .. df)
    lu.assertTrue(ok, out)
    lu.assertTrue(r:verify(alg, data, H.read(of)), alg)
    lu.assertFalse(r:verify(alg, data .. "x", H.read(of)), alg)
  end
  -- PS256 is salted (two signatures differ), RS256 deterministic
  lu.assertNotEquals(r:sign("PS256", data), r:sign("PS256", data))
  lu.assertEquals(r:sign("RS256", data), r:sign("RS256", data))
  -- a PSS signature with a different salt length is refused (RFC 7518: salt = digest length)
  local mf = H.tmp("pss-max.sig")
  local ok = H.sh("openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:max -sign "
                  .. priv .. " -out " .. mf .. " " .. df)
  lu.assertTrue(ok)
  lu.assertFalse(r:verify("PS256", data, H.read(mf)))
end

function TestCryptoKeys.test_ed25519_signatures_with_openssl()
  need_openssl()
  local e = H.ed()
  local data = "ed25519 message " .. crypto.uuid4()
  local df, pub, priv = H.write("ed.data", data), H.write("ed.pub", e:public_pem()),
                        H.write("ed.key", e:private_pem())
  local sf = H.write("ed.sig", e:sign("EdDSA", data))
  local ok, out = H.sh("openssl pkeyutl -verify -pubin -inkey " .. pub .. " -rawin -in " .. df .. " -sigfile " .. sf)
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "Signature Verified Successfully")
  local of = H.tmp("ed.ossl.sig")
  ok, out = H.sh("openssl pkeyutl -sign -inkey " .. priv .. " -rawin -in " .. df .. " -out " .. of)
  lu.assertTrue(ok, out)
  lu.assertEquals(H.read(of), e:sign("EdDSA", data))   -- Ed25519 is deterministic
  lu.assertTrue(e:verify("EdDSA", data, H.read(of)))
end

function TestCryptoKeys.test_key_from_jwk()
  -- the public JWK of a key rebuilds the same public key
  local pub = assert(crypto.key_from_jwk(H.rsa():jwk()))
  lu.assertFalse(pub:is_private())
  lu.assertTrue(pub:equals(H.rsa()))
  local epub = assert(crypto.key_from_jwk(H.ed():jwk()))
  lu.assertTrue(epub:equals(H.ed()))
  local bad, err = crypto.key_from_jwk { kty = "RSA", n = "!!", e = "AQAB" }
  lu.assertNil(bad)
  lu.assertStrContains(err, "field n")
  lu.assertErrorMsgContains("kty must be", crypto.key_from_jwk, { kty = "EC" })
  lu.assertErrorMsgContains("needs n and e", crypto.key_from_jwk, { kty = "RSA", n = "AQAB" })
  -- private Ed25519 JWK (d) with a mismatching x
  bad, err = crypto.key_from_jwk { kty = "OKP", crv = "Ed25519", x = H.ed():jwk().x,
                                   d = crypto.base64url_encode(string.rep("\7", 32)) }
  lu.assertNil(bad)
  lu.assertStrContains(err, "does not match")
end

TestCryptoCerts = {}

function TestCryptoCerts.test_fields()
  local ca, srv = H.pki()
  lu.assertEquals(ca:subject(), "CN=t2t test CA,O=t2t")
  lu.assertEquals(ca:issuer(), ca:subject())
  lu.assertTrue(ca:is_ca())
  lu.assertFalse(srv:is_ca())
  lu.assertEquals(srv:subject(), "CN=login.microsoftonline.com,O=t2t simulator")
  lu.assertEquals(srv:issuer(), "CN=t2t test CA,O=t2t")
  lu.assertEquals(srv:serial(), "0A1B2C3D")
  lu.assertEquals(srv:not_before(), 1700000000)
  lu.assertEquals(srv:not_after(), 1900000000)
  local short = assert(crypto.create_cert { key = H.ed(), days = 30 })
  lu.assertEquals(short:not_after() - short:not_before(), 30 * 86400)
  lu.assertTrue(math.abs(short:not_before() - os.time()) < 5)
  lu.assertEquals(srv:san(), { "DNS:login.microsoftonline.com", "DNS:graph.microsoft.com",
    "DNS:outlook.office365.com", "DNS:management.azure.com", "DNS:*.vault.azure.net",
    "IP:127.0.0.1", "IP:::1" })
  lu.assertEquals(srv:dns_names()[5], "*.vault.azure.net")
  lu.assertTrue(srv:matches_key(H.ed()))
  lu.assertFalse(srv:matches_key(H.rsa()))
  lu.assertTrue(srv:public_key():equals(H.ed()))
  lu.assertTrue(srv:verify_signature(ca))
  lu.assertFalse(ca:verify_signature(H.ed()))
  local info = srv:info()
  lu.assertEquals(info.thumbprint, srv:thumbprint())
  lu.assertEquals(#info.thumbprint, 40)
  -- PEM and DER round trips
  local again = assert(crypto.load_cert(srv:pem()))
  lu.assertTrue(again == srv)
  lu.assertTrue(assert(crypto.load_cert(srv:der())) == srv)
  local both = crypto.load_certs(srv:pem() .. ca:pem())
  lu.assertEquals(#both, 2)
  lu.assertTrue(both[2] == ca)
  local c, err = crypto.load_cert("not a certificate")
  lu.assertNil(c)
  lu.assertStrContains(err, "load_cert")
end

function TestCryptoCerts.test_subject_forms()
  local k = H.ed()
  local a = assert(crypto.create_cert { key = k, subject = "/C=US/O=Contoso/CN=app" })
  lu.assertEquals(a:subject(), "CN=app,O=Contoso,C=US")
  local b = assert(crypto.create_cert { key = k, subject = { CN = "app", O = "Contoso", C = "US" } })
  lu.assertEquals(b:subject(), "CN=app,O=Contoso,C=US")
  local c = assert(crypto.create_cert { key = k, subject = "CN=a\\, b,O=x" })
  lu.assertStrContains(c:subject(), "a\\, b")
  local bad, err = crypto.create_cert { key = k, subject = "XX=1" }
  lu.assertNil(bad)
  lu.assertStrContains(err, "bad subject field")
  bad, err = crypto.create_cert { key = k, san = { "IP:300.1.1.1" } }
  lu.assertNil(bad)
  lu.assertStrContains(err, "bad san entry")
  lu.assertErrorMsgContains("must be private", crypto.create_cert, { key = k:public_key() })
  lu.assertErrorMsgContains("does not match", crypto.create_cert,
    { key = k, issuer_cert = (H.pki()), issuer_key = H.rsa2() })
  lu.assertErrorMsgContains("unknown key_usage", crypto.create_cert, { key = k, key_usage = { "@x" } })
end

function TestCryptoCerts.test_verify_cert_in_process()
  local ca, srv = H.pki()
  lu.assertTrue(crypto.verify_cert(srv, { ca }, { time = 1800000000, host = "graph.microsoft.com" }))
  lu.assertTrue(crypto.verify_cert(srv, { ca }, { time = 1800000000, host = "contoso.vault.azure.net" }))
  local ok, err = crypto.verify_cert(srv, { ca }, { time = 1800000000, host = "evil.example" })
  lu.assertNil(ok)
  lu.assertStrContains(err, "hostname mismatch")
  ok, err = crypto.verify_cert(srv, { ca }, { time = 1950000000 })
  lu.assertNil(ok)
  lu.assertStrContains(err, "expired")
  local other = assert(crypto.new_ca { subject = "CN=other", key = H.rsa2() })
  ok, err = crypto.verify_cert(srv, { other }, { time = 1800000000 })
  lu.assertNil(ok)
  lu.assertStrContains(err, "issuer certificate")
end

function TestCryptoCerts.test_openssl_verify_and_text()
  need_openssl()
  local ca, srv = H.pki()
  local caf, srvf = H.write("ca.pem", ca:pem()), H.write("server.pem", srv:pem())
  local ok, out = H.sh("openssl verify -attime 1800000000 -CAfile " .. caf .. " " .. srvf)
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "server.pem: OK")
  -- a leaf signed by a different CA does not verify against ours
  local stranger = assert(crypto.new_cert { subject = "CN=x", key = H.ed(),
    issuer_cert = assert(crypto.new_ca { subject = "CN=other", key = H.rsa2() }), issuer_key = H.rsa2() })
  ok = H.sh("openssl verify -CAfile " .. caf .. " " .. H.write("stranger.pem", stranger:pem()))
  lu.assertFalse(ok)
  ok, out = H.sh("openssl x509 -noout -text -in " .. caf)
  lu.assertTrue(ok, out)
  lu.assertStrMatches(out, ".*Basic Constraints: critical%s+CA:TRUE.*")
  lu.assertStrMatches(out, ".*Certificate Sign, CRL Sign.*")
  lu.assertStrContains(out, "Subject Key Identifier")
  ok, out = H.sh("openssl x509 -noout -text -in " .. srvf)
  lu.assertStrContains(out, "DNS:*.vault.azure.net, IP Address:127.0.0.1")
  lu.assertStrContains(out, "TLS Web Server Authentication")
  lu.assertStrContains(out, "Authority Key Identifier")
  ok, out = H.sh("openssl x509 -noout -serial -in " .. srvf)
  lu.assertStrContains(out, "serial=0A1B2C3D")
end

function TestCryptoCerts.test_thumbprints_match_openssl()
  need_openssl()
  local _, srv = H.pki()
  local f = H.write("thumb.pem", srv:pem())
  for _, alg in ipairs({ "sha1", "sha256" }) do
    local ok, out = H.sh("openssl x509 -noout -fingerprint -" .. alg .. " -in " .. f)
    lu.assertTrue(ok, out)
    local hex = out:match("Fingerprint=([%x:]+)"):gsub(":", "")
    lu.assertEquals(srv:thumbprint(alg), hex)
    lu.assertEquals(srv:thumbprint(alg, "b64url"), crypto.base64url_encode(crypto.hex_decode(hex)))
  end
  lu.assertEquals(srv:x5t(), srv:thumbprint("sha1", "b64url"))
  lu.assertEquals(srv:x5t_s256(), srv:thumbprint("sha256", "b64url"))
  lu.assertEquals(srv:thumbprint("sha256", "raw"), crypto.sha256(srv:der()))
end

TestCryptoPkcs12 = {}

function TestCryptoPkcs12.test_round_trip_in_process()
  local ca, srv = H.pki()
  local pfx = assert(crypto.pkcs12_export { key = H.ed(), cert = srv, chain = { ca },
                                            passphrase = "pfx-pass", name = "sim" })
  local t = assert(crypto.pkcs12_import(pfx, "pfx-pass"))
  lu.assertTrue(t.key:equals(H.ed()))
  lu.assertTrue(t.key:is_private())
  lu.assertTrue(t.cert == srv)
  lu.assertEquals(#t.chain, 1)
  lu.assertTrue(t.chain[1] == ca)
  -- Key Vault hands PFX out as base64 text with no password
  local kv = crypto.base64_encode(assert(crypto.pkcs12_export { key = H.rsa(), cert = ca }))
  local t2 = assert(crypto.pkcs12_import(kv))
  lu.assertTrue(t2.cert == ca)
  local bad, err = crypto.pkcs12_import(pfx, "wrong")
  lu.assertNil(bad)
  lu.assertStrContains(err, "wrong passphrase")
  bad, err = crypto.pkcs12_import("\48\1\1")
  lu.assertNil(bad)
  lu.assertStrContains(err, "PKCS#12")
  lu.assertErrorMsgContains("does not match", crypto.pkcs12_export, { key = H.rsa2(), cert = srv })
end

function TestCryptoPkcs12.test_t2t_pfx_opens_in_openssl()
  need_openssl()
  local ca, srv = H.pki()
  for _, legacy in ipairs({ false, true }) do
    local f = H.write("t2t.pfx", assert(crypto.pkcs12_export { key = H.ed(), cert = srv,
      chain = { ca }, passphrase = "p12", legacy = legacy }))
    local ok, out = H.sh("openssl pkcs12 -in " .. f .. " -passin pass:p12 -nodes")
    lu.assertTrue(ok, out)
    lu.assertStrContains(out, srv:pem())
    lu.assertStrContains(out, ca:pem())
    lu.assertStrContains(out, "-----BEGIN PRIVATE KEY-----")
    lu.assertTrue(assert(crypto.load_key(out)):equals(H.ed()))
    ok = H.sh("openssl pkcs12 -in " .. f .. " -passin pass:bad -nodes")
    lu.assertFalse(ok)
  end
end

function TestCryptoPkcs12.test_openssl_pfx_imports()
  need_openssl()
  local ca = H.pki()
  local key, crt = H.write("o.key", H.rsa():private_pem()), H.write("o.crt", ca:pem())
  local f = H.tmp("ossl.pfx")
  local ok, out = H.sh("openssl pkcs12 -export -inkey " .. key .. " -in " .. crt ..
                       " -passout pass:from-openssl -out " .. f)
  lu.assertTrue(ok, out)
  local t = assert(crypto.pkcs12_import(H.read(f), "from-openssl"))
  lu.assertTrue(t.key:equals(H.rsa()))
  lu.assertTrue(t.cert == ca)
  -- old-style PFX (RC2-40 certificates: needs OpenSSL's legacy provider, loaded on demand)
  local lf = H.tmp("legacy.pfx")
  if H.sh("openssl pkcs12 -export -legacy -inkey " .. key .. " -in " .. crt ..
          " -passout pass:old -out " .. lf) then
    local lt, err = crypto.pkcs12_import(H.read(lf), "old")
    lu.assertNotNil(lt, err)
    lu.assertTrue(lt.cert == ca)
  end
end

function TestCryptoPkcs12.test_load_credential_pem_and_pfx()
  local ca, srv = H.pki()
  local pem = srv:pem() .. H.ed():private_pem("cp") .. ca:pem()
  local t = assert(crypto.load_credential(pem, "cp"))
  lu.assertTrue(t.cert == srv)
  lu.assertTrue(t.key:equals(H.ed()))
  lu.assertEquals(#t.chain, 1)
  local path = H.write("cred.pfx", assert(crypto.pkcs12_export { key = H.ed(), cert = srv, passphrase = "cp" }))
  local t2 = assert(crypto.load_credential_file(path, "cp"))
  lu.assertTrue(t2.cert == srv)
  local bad, err = crypto.load_credential(H.rsa():private_pem() .. srv:pem())
  lu.assertNil(bad)
  lu.assertStrContains(err, "no certificate for the private key")
end

-- Regressions found in review: malformed options to create_cert must raise, never crash.
TestCryptoCreateCertMisuse = {}

function TestCryptoCreateCertMisuse.test_san_not_a_list_raises()
  -- san = "host" (a string, not a list) used to index the string as a table: SIGSEGV
  local ok, err = pcall(crypto.create_cert, { key = H.ed(), san = "example.com" })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "san must be a list")
end

function TestCryptoCreateCertMisuse.test_subject_entries_must_be_pairs()
  -- a list of strings instead of {field, value} pairs: lua_rawgeti on a string, SIGSEGV
  local ok, err = pcall(crypto.create_cert, { key = H.ed(), subject = { "CN=x" } })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "subject")
  ok, err = pcall(crypto.create_cert, { key = H.ed(), subject = { { "CN", "x" }, 42 } })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "subject")
end


function TestCryptoCreateCertMisuse.test_huge_days_is_rejected_not_overflowed()
  -- nb + days * 86400 overflowed lua_Integer (signed overflow in C: UBSan reports it)
  local ok, err = pcall(crypto.create_cert, { key = H.ed(), days = math.maxinteger // 2 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "days")
  ok, err = pcall(crypto.create_cert, { key = H.ed(), not_before = math.mininteger, days = 1 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "not_before")
end

function TestCryptoCreateCertMisuse.test_cert_compared_with_other_userdata()
  -- __eq raised "bad argument #2" when a Cert met a Key (or any other userdata)
  local c = assert(crypto.create_cert { key = H.ed() })
  lu.assertFalse(c == H.ed())
  lu.assertFalse(H.ed() == c)
  lu.assertFalse(c == io.stdout)
  lu.assertTrue(c == c)
end

-- Regression: a P-256 key (from an EC certificate or PFX) passed alg_fits as Ed25519, so
-- verify("EdDSA", ...) accepted an ECDSA-SHA256 signature and sign("EdDSA") made one.
function TestCryptoCreateCertMisuse.test_ec_key_is_not_ed25519()
  need_openssl()
  local key, crt, msg, sig = H.tmp("ec.key"), H.tmp("ec.crt"), H.write("ec.msg", "hello"), H.tmp("ec.sig")
  assert(H.sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " ..
    key .. " -out " .. crt .. " -subj /CN=ec -days 2"))
  assert(H.sh("openssl dgst -sha256 -sign " .. key .. " -out " .. sig .. " " .. msg))
  local pub = assert(crypto.load_cert(H.read(crt))):public_key()
  lu.assertEquals(pub:type(), "EC")                 -- it said "ed25519" for any non-RSA key
  lu.assertStrContains(tostring(pub), "(EC 256, public)")
  local ok, err = pub:verify("EdDSA", "hello", H.read(sig))
  lu.assertNil(ok)
  lu.assertStrContains(err, "does not match this EC key")
  -- load_key and pkcs12_import take only the key types t2t signs with, and say so
  local _, lerr = crypto.load_key(H.read(key))
  lu.assertStrContains(lerr, "only RSA and Ed25519 keys are supported")
  local ok2, perr = H.sh("openssl pkcs12 -export -inkey " .. key .. " -in " .. crt ..
    " -passout pass:x -out " .. H.tmp("ec.pfx"))
  assert(ok2, perr)
  local t, ierr = crypto.pkcs12_import(H.read(H.tmp("ec.pfx")), "x")
  lu.assertNil(t)
  lu.assertStrContains(ierr, "the key is EC; only RSA and Ed25519 keys are supported")
end
