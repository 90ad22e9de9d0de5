-- t2t.jwt: compact JWS/JWT — sign (RS256/384/512, PS256/384/512, EdDSA), decode without
-- verifying (to read tid, exp, roles, wids from access tokens), and verify (for the simulator:
-- signature against a key or certificate, algorithm allow-list, exp/nbf with leeway, aud, iss).
-- "none" and HMAC algorithms are never accepted.  See docs/crypto.md.
local cjson = require "cjson"
local crypto = require "t2t.crypto"

local M = {}

local SIGN_ALGS = { RS256 = "rsa", RS384 = "rsa", RS512 = "rsa", PS256 = "rsa", PS384 = "rsa",
                    PS512 = "rsa", EdDSA = "ed25519" }
local DEFAULT_VERIFY_ALGS = { "RS256", "PS256", "EdDSA" }

local Err = {}
Err.__index = Err
Err.__tostring = function(e) return "jwt: " .. e.message end

-- An expected failure: {code, message} with __tostring.  Codes: malformed, unsupported_alg,
-- no_key, bad_signature, expired, not_yet_valid, missing_claim, bad_audience, bad_issuer.
local function fail(code, message)
  return nil, setmetatable({ code = code, message = message, service = "jwt" }, Err)
end
M.Error = Err

-- JSON object with keys in sorted order (deterministic headers: {"alg":..,"typ":..,"x5t":..}).
local function encode_sorted(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = cjson.encode(k) .. ":" .. cjson.encode(t[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function default_alg(key)
  return key:type() == "rsa" and "RS256" or "EdDSA"
end

--- encode(claims, key, opts) -> compact JWS.
-- claims: a table (JSON-encoded) or a string (the exact payload bytes).
-- opts.alg: default RS256 for RSA keys, EdDSA for Ed25519.
-- opts.typ: default "JWT"; false leaves it out.
-- opts.header: extra header fields (kid, x5c, ...), or a string used verbatim as the header.
-- opts.cert: adds its thumbprint: x5t#S256 for PS*/EdDSA, x5t for RS* — or exactly the names
--   listed in opts.thumbprints = {"x5t", "x5t#S256"}.
function M.encode(claims, key, opts)
  opts = opts or {}
  local alg = opts.alg or default_alg(key)
  local kt = SIGN_ALGS[alg]
  if not kt then error("jwt.encode: unsupported alg " .. tostring(alg), 2) end
  if kt ~= key:type() then error("jwt.encode: alg " .. alg .. " needs an " .. kt .. " key", 2) end
  local header_json
  if type(opts.header) == "string" then
    header_json = opts.header
    local ok, h = pcall(cjson.decode, header_json)
    if not ok or type(h) ~= "table" or h.alg ~= alg then
      error("jwt.encode: the verbatim header must be JSON with alg " .. alg, 2)
    end
  else
    local h = { alg = alg }
    if opts.typ ~= false then h.typ = opts.typ or "JWT" end
    if opts.cert then
      local names = opts.thumbprints or { alg:sub(1, 2) == "RS" and "x5t" or "x5t#S256" }
      for _, n in ipairs(names) do
        if n == "x5t" then h.x5t = opts.cert:x5t()
        elseif n == "x5t#S256" then h["x5t#S256"] = opts.cert:x5t_s256()
        else error("jwt.encode: thumbprints entries are x5t or x5t#S256", 2) end
      end
    end
    for k, v in pairs(opts.header or {}) do h[k] = v end
    header_json = encode_sorted(h)
  end
  local payload = type(claims) == "string" and claims or cjson.encode(claims)
  local input = crypto.base64url_encode(header_json) .. "." .. crypto.base64url_encode(payload)
  return input .. "." .. crypto.base64url_encode(key:sign(alg, input))
end
M.sign = M.encode

local TIME_CLAIMS = { "exp", "nbf", "iat", "auth_time" }

--- decode(token) -> {header, claims, payload, signature, signing_input} | nil, err
-- NO verification: use it to read claims of tokens issued to us, never to trust them.
-- claims is nil when the payload is not a JSON object (payload has the raw bytes).
function M.decode(token)
  if type(token) ~= "string" then return fail("malformed", "token is not a string") end
  local h64, p64, s64 = token:match("^([%w_%-]+)%.([%w_%-]*)%.([%w_%-]*)$")
  if not h64 then return fail("malformed", "not a compact JWS (three base64url parts)") end
  local hj, pj, sig = crypto.base64url_decode(h64), crypto.base64url_decode(p64),
                      crypto.base64url_decode(s64)
  if not (hj and pj and sig) then return fail("malformed", "invalid base64url") end
  local ok, header = pcall(cjson.decode, hj)
  if not ok or type(header) ~= "table" or type(header.alg) ~= "string" then
    return fail("malformed", "the header is not a JSON object with alg")
  end
  local claims
  local okc, c = pcall(cjson.decode, pj)
  if okc and type(c) == "table" then
    claims = c
    for _, k in ipairs(TIME_CLAIMS) do
      if type(c[k]) == "number" then c[k] = math.tointeger(c[k]) or c[k] end
    end
  end
  return { header = header, claims = claims, payload = pj, signature = sig,
           signing_input = h64 .. "." .. p64 }
end

--- claims(token) -> the decoded claims (unverified) | nil, err
function M.claims(token)
  local t, err = M.decode(token)
  if not t then return nil, err end
  if not t.claims then return fail("malformed", "the payload is not a JSON object") end
  return t.claims
end

local function mtname(v)
  local mt = type(v) == "userdata" and getmetatable(v)
  return mt and mt.__name
end
local function is_key(v) return mtname(v) == "t2t.crypto.Key" end
local function is_cert(v) return mtname(v) == "t2t.crypto.Cert" end

-- The public key for header h from what the caller gave: a Key, a Cert, a list of Certs (chosen
-- by x5t#S256 or x5t), or a function(header, claims) returning a Key or Cert (or nil, why).
local function resolve_key(src, h, claims)
  if type(src) == "function" then
    local k, why = src(h, claims)
    if not k then return nil, why or "no key for this token" end
    src = k
  end
  if is_key(src) then return src end
  if is_cert(src) then return src:public_key() end
  if type(src) == "table" then
    for _, c in ipairs(src) do
      if (h["x5t#S256"] and h["x5t#S256"] == c:x5t_s256()) or (h.x5t and h.x5t == c:x5t()) then
        return c:public_key()
      end
    end
    return nil, "no registered certificate matches the token's x5t/x5t#S256"
  end
  error("jwt.verify: key must be a Key, a Cert, a list of Certs or a function", 3)
end

local function aud_matches(aud, want)
  local wants = type(want) == "table" and want or { want }
  local auds = type(aud) == "table" and aud or { aud }
  for _, a in ipairs(auds) do
    for _, w in ipairs(wants) do if a == w then return true end end
  end
  return false
end

--- verify(token, key, opts) -> claims, header | nil, err
-- opts.algs: allowed algorithms (default RS256, PS256, EdDSA); opts.now (default os.time());
-- opts.leeway: seconds of clock skew allowed for exp/nbf (default 0); opts.require_exp
-- (default true); opts.aud: string or list, one must match; opts.iss: exact issuer.
function M.verify(token, key, opts)
  opts = opts or {}
  local t, err = M.decode(token)
  if not t then return nil, err end
  local h, claims = t.header, t.claims
  local allowed = false
  for _, a in ipairs(opts.algs or DEFAULT_VERIFY_ALGS) do allowed = allowed or a == h.alg end
  if not allowed or not SIGN_ALGS[h.alg] then
    return fail("unsupported_alg", "algorithm " .. tostring(h.alg) .. " is not accepted")
  end
  local k, why = resolve_key(key, h, claims)
  if not k then return fail("no_key", why) end
  local good, verr = k:verify(h.alg, t.signing_input, t.signature)
  if not good then
    return fail("bad_signature", verr and ("signature check failed: " .. verr)
                                      or "the signature does not verify with the key")
  end
  if not claims then return fail("malformed", "the payload is not a JSON object") end
  local now, leeway = opts.now or os.time(), opts.leeway or 0
  if type(claims.exp) ~= "number" then
    if claims.exp ~= nil or opts.require_exp ~= false then
      return fail("missing_claim", "the token has no valid exp claim")
    end
  elseif now > claims.exp + leeway then
    return fail("expired", ("the token expired at %d (now %d)"):format(claims.exp, now))
  end
  if claims.nbf ~= nil then
    if type(claims.nbf) ~= "number" then return fail("malformed", "nbf is not a number") end
    if now + leeway < claims.nbf then
      return fail("not_yet_valid", ("the token is not valid before %d (now %d)"):format(claims.nbf, now))
    end
  end
  if opts.aud and not aud_matches(claims.aud, opts.aud) then
    return fail("bad_audience", "the token's aud " .. tostring(type(claims.aud) == "table"
      and table.concat(claims.aud, " ") or claims.aud) .. " is not the expected audience")
  end
  if opts.iss and claims.iss ~= opts.iss then
    return fail("bad_issuer", "the token's iss is not the expected issuer")
  end
  return claims, h
end

return M
