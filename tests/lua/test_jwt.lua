-- t2t.jwt: RFC 7515 A.2 byte for byte, round trips for every algorithm t2t uses, decoding
-- without verification, and every verification failure the simulator relies on.
local lu = require "luaunit"
local crypto = require "t2t.crypto"
local jwt = require "t2t.jwt"

-- RFC 7515 Appendix A.2 (JWS using RSASSA-PKCS1-v1_5 SHA-256): the RSA key of A.2.1 as a JWK,
-- the JWS Protected Header {"alg":"RS256"}, the payload with its CRLFs, and the resulting
-- JWS Compact Serialization.  RS256 is deterministic, so t2t must reproduce it exactly.
local A2 = {
  jwk = {
    kty = "RSA",
    n = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
    e = "AQAB",
    d = "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ",
    p = "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc",
    q = "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc",
    dp = "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0",
    dq = "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU",
    qi = "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U",
  },
  header = '{"alg":"RS256"}',
  payload = '{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}',
  header_b64 = "eyJhbGciOiJSUzI1NiJ9",
  payload_b64 = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
  jws = "eyJhbGciOiJSUzI1NiJ9" ..
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ" ..
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw",
  -- the first bytes of the signature, as listed (decimal octets) in A.2.1
  sig_head = { 112, 46, 33, 137, 67, 232, 143, 209, 30, 181, 216, 45, 191, 120, 69, 243 },
}

local function helpers()
  if not package.loaded["t2t.test.crypto_helpers"] then
    assert(loadfile("tests/lua/test_crypto.lua", "t"))()
  end
  return package.loaded["t2t.test.crypto_helpers"]
end

TestJwtRfc7515 = {}

function TestJwtRfc7515.test_a2_byte_for_byte()
  local key = assert(crypto.rsa_from_jwk(A2.jwk))
  lu.assertTrue(key:is_private())
  lu.assertEquals(key:bits(), 2048)
  lu.assertEquals(crypto.base64url_encode(A2.header), A2.header_b64)
  lu.assertEquals(crypto.base64url_encode(A2.payload), A2.payload_b64)
  local token = jwt.encode(A2.payload, key, { alg = "RS256", header = A2.header })
  lu.assertEquals(token, A2.jws)
  -- the typ-less header built by t2t is byte-identical too
  lu.assertEquals(jwt.encode(A2.payload, key, { typ = false }), A2.jws)
  local sig = crypto.base64url_decode(A2.jws:match("[^.]+$"))
  lu.assertEquals({ sig:byte(1, 16) }, A2.sig_head)
  lu.assertEquals(#sig, 256)
  -- the public half from n/e alone verifies it (A.2.2); exp 1300819380 = 2011-03-22
  local pub = assert(crypto.rsa_from_jwk { kty = "RSA", n = A2.jwk.n, e = A2.jwk.e })
  local claims = assert(jwt.verify(A2.jws, pub, { now = 1300819000 }))
  lu.assertEquals(claims.iss, "joe")
  lu.assertEquals(claims["http://example.com/is_root"], true)
  lu.assertEquals(math.type(claims.exp), "integer")
  local no, err = jwt.verify(A2.jws, pub)
  lu.assertNil(no)
  lu.assertEquals(err.code, "expired")
  lu.assertTrue(key:jwk().n == A2.jwk.n)
end

function TestJwtRfc7515.test_a2_inconsistent_private_key_refused()
  local bad = {}
  for k, v in pairs(A2.jwk) do bad[k] = v end
  bad.n = crypto.base64url_encode(crypto.random_bytes(256))
  local k, err = crypto.rsa_from_jwk(bad)
  lu.assertNil(k)
  lu.assertStrContains(err, "key_from_jwk")
end

TestJwt = {}

function TestJwt.test_round_trips()
  local H = helpers()
  local _, srv = H.pki()
  local now = os.time()
  local claims = { aud = "https://login.microsoftonline.com/t/oauth2/v2.0/token", iss = "app",
                   sub = "app", jti = crypto.uuid4(), nbf = now, exp = now + 600, iat = now }
  for _, case in ipairs({ { H.rsa(), "PS256" }, { H.rsa(), "RS256" }, { H.ed(), "EdDSA" } }) do
    local key, alg = case[1], case[2]
    local tok = jwt.encode(claims, key, { alg = alg })
    local got, h = jwt.verify(tok, key:public_key(), { aud = claims.aud })
    lu.assertNotNil(got, alg)
    lu.assertEquals(h.alg, alg)
    lu.assertEquals(h.typ, "JWT")
    lu.assertEquals(got.jti, claims.jti)
    lu.assertEquals(got.exp, claims.exp)
  end
  -- header thumbprints from the certificate
  local tok = jwt.encode(claims, H.ed(), { cert = srv })
  local t = assert(jwt.decode(tok))
  lu.assertEquals(t.header["x5t#S256"], srv:x5t_s256())
  lu.assertNil(t.header.x5t)
  tok = jwt.encode(claims, H.rsa(), { alg = "RS256", cert = srv })
  lu.assertEquals(assert(jwt.decode(tok)).header.x5t, srv:x5t())
  tok = jwt.encode(claims, H.rsa(), { alg = "PS256", cert = srv, thumbprints = { "x5t", "x5t#S256" },
                                      header = { kid = "k1" } })
  local h = assert(jwt.decode(tok)).header
  lu.assertEquals(h.x5t, srv:x5t())
  lu.assertEquals(h["x5t#S256"], srv:x5t_s256())
  lu.assertEquals(h.kid, "k1")
  -- sorted, deterministic header text
  lu.assertEquals(crypto.base64url_decode(tok:match("^[^.]+")),
    '{"alg":"PS256","kid":"k1","typ":"JWT","x5t":"' .. srv:x5t() .. '","x5t#S256":"' .. srv:x5t_s256() .. '"}')
end

function TestJwt.test_decode_without_verifying()
  local H = helpers()
  local tok = jwt.encode({ tid = "72f988bf-86f1-41af-91ab-2d7cd011db47", aud = "https://graph.microsoft.com",
    roles = { "User.Read.All", "Group.ReadWrite.All" }, wids = { "29232cdf-9323-42fd-ade2-1d097af3e4de" },
    exp = 1700000000 }, H.rsa2())
  local c = assert(jwt.claims(tok))
  lu.assertEquals(c.tid, "72f988bf-86f1-41af-91ab-2d7cd011db47")
  lu.assertEquals(c.roles, { "User.Read.All", "Group.ReadWrite.All" })
  lu.assertEquals(c.wids[1], "29232cdf-9323-42fd-ade2-1d097af3e4de")
  lu.assertEquals(c.exp, 1700000000)
  lu.assertEquals(math.type(c.exp), "integer")
  for _, bad in ipairs({ "abc", "a.b", "a.b.c.d", "", "!!.e30.", 42 }) do
    local v, err = jwt.decode(bad)
    lu.assertNil(v)
    lu.assertEquals(err.code, "malformed")
    lu.assertStrContains(tostring(err), "jwt: ")
  end
  local raw = assert(jwt.decode(jwt.encode("not json", H.ed())))
  lu.assertNil(raw.claims)
  lu.assertEquals(raw.payload, "not json")
end

function TestJwt.test_verify_failures()
  local H = helpers()
  local ca, srv = H.pki()
  local now = 1800000000
  local good = { iss = "i", aud = "a", nbf = now - 10, exp = now + 300 }
  local tok = jwt.encode(good, H.ed(), { cert = srv })
  local function code(...)
    local v, err = jwt.verify(...)
    lu.assertNil(v)
    return err.code, err
  end
  lu.assertNotNil(jwt.verify(tok, srv, { now = now }))          -- a Cert works as key
  lu.assertNotNil(jwt.verify(tok, { ca, srv }, { now = now }))  -- chosen by x5t#S256
  lu.assertEquals(code(tok, { ca }, { now = now }), "no_key")
  lu.assertEquals(code(tok, function() return nil, "unknown app" end, { now = now }), "no_key")
  lu.assertNotNil(jwt.verify(tok, function(h) lu.assertEquals(h.alg, "EdDSA"); return srv end, { now = now }))
  lu.assertEquals(code(tok, H.rsa(), { now = now }), "bad_signature")     -- alg/key mismatch
  lu.assertEquals(code(tok, crypto.generate_key("ed25519"), { now = now }), "bad_signature")
  -- tampered payload, signature kept
  local h64, _, s64 = tok:match("^([^.]+)%.([^.]+)%.([^.]+)$")
  local forged = h64 .. "." .. crypto.base64url_encode('{"iss":"i","aud":"a","exp":9999999999}') .. "." .. s64
  lu.assertEquals(code(forged, srv, { now = now }), "bad_signature")
  -- time window, with and without leeway
  lu.assertEquals(code(tok, srv, { now = now + 301 }), "expired")
  lu.assertNotNil(jwt.verify(tok, srv, { now = now + 301, leeway = 60 }))
  lu.assertEquals(code(tok, srv, { now = now - 11 }), "not_yet_valid")
  lu.assertNotNil(jwt.verify(tok, srv, { now = now - 11, leeway = 5 }))
  -- audience and issuer
  lu.assertEquals(code(tok, srv, { now = now, aud = "b" }), "bad_audience")
  lu.assertNotNil(jwt.verify(tok, srv, { now = now, aud = { "b", "a" } }))
  lu.assertEquals(code(tok, srv, { now = now, iss = "x" }), "bad_issuer")
  -- algorithm allow-list: none/HS256 never, others only when listed
  local none = crypto.base64url_encode('{"alg":"none"}') .. "." .. crypto.base64url_encode('{"exp":9999999999}') .. "."
  lu.assertEquals(code(none, srv, { now = now }), "unsupported_alg")
  lu.assertEquals(code(none, srv, { now = now, algs = { "none" } }), "unsupported_alg")
  local hs = crypto.base64url_encode('{"alg":"HS256"}') .. "." .. crypto.base64url_encode("{}") .. "." ..
             crypto.base64url_encode(crypto.hmac_sha256(srv:public_key():public_pem(), "x"))
  lu.assertEquals(code(hs, srv, { now = now, algs = { "HS256" } }), "unsupported_alg")
  lu.assertEquals(code(tok, srv, { now = now, algs = { "PS256" } }), "unsupported_alg")
  -- exp is required unless asked otherwise
  local noexp = jwt.encode({ iss = "i" }, H.ed())
  lu.assertEquals(code(noexp, H.ed()), "missing_claim")
  lu.assertNotNil(jwt.verify(noexp, H.ed(), { require_exp = false }))
end

function TestJwt.test_encode_misuse_raises()
  local H = helpers()
  lu.assertErrorMsgContains("unsupported alg", jwt.encode, {}, H.ed(), { alg = "HS256" })
  lu.assertErrorMsgContains("needs an rsa key", jwt.encode, {}, H.ed(), { alg = "PS256" })
  lu.assertErrorMsgContains("verbatim header", jwt.encode, {}, H.ed(), { header = '{"alg":"RS256"}' })
  lu.assertErrorMsgContains("private key", jwt.encode, {}, H.ed():public_key())
end
