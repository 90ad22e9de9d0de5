-- t2t.sim.tokens: the simulator's access tokens.  A key pair is made when the simulator starts
-- (RSA 2048, RS256 via t2t.jwt); tokens carry the claims Entra ID puts in v1 access tokens
-- (aud, iss, tid, appid, oid, roles, wids, scp, exp ...).  Verified tokens are cached by their
-- text, so a client reusing a token costs one table lookup per request, not an RSA verify.
local cjson = require "cjson"

local M = {}

local ok_jwt, jwt = pcall(require, "t2t.jwt")
local ok_crypto, crypto = pcall(require, "t2t.crypto")
M.signed = ok_jwt and ok_crypto           -- false: a build without crypto (unsigned test tokens)

local CACHE_MAX = 4096

local Tokens = {}
Tokens.__index = Tokens

-- new{now = fn() -> epoch seconds, rng = model rng, key = crypto key?} -> tokens object.
function M.new(o)
  o = o or {}
  local self = setmetatable({
    now = o.now or os.time, rng = o.rng, cache = {}, cached = 0, kid = nil,
  }, Tokens)
  if M.signed then
    self.key = o.key or assert(crypto.generate_key("rsa", 2048))
    self.kid = (crypto.base64url_encode(crypto.sha256(self.key:public_pem())):sub(1, 27))
  else
    self.secret = o.rng and (o.rng:hex(32) .. o.rng:hex(32)) or tostring(os.time())
  end
  -- both sim.tokens:issue{...} and sim.tokens.issue{...} (the form docs/simulator.md first showed)
  self.issue = function(a, b) if a == self then return Tokens.issue(self, b) end return Tokens.issue(self, a) end
  self.verify = function(a, b) if a == self then return Tokens.verify(self, b) end return Tokens.verify(self, a) end
  return self
end

local function b64url(s)
  return (ok_crypto and crypto.base64url_encode or function(x)
    local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    local out = {}
    for i = 1, #x, 3 do
      local a, b, c = x:byte(i, i + 2)
      local n = (a << 16) | ((b or 0) << 8) | (c or 0)
      local k = b and (c and 4 or 3) or 2
      for j = 1, k do
        local v = (n >> (18 - 6 * (j - 1))) & 63
        out[#out + 1] = alphabet:sub(v + 1, v + 1)
      end
    end
    return table.concat(out)
  end)(s)
end

-- Unsigned fallback only: a keyed FNV-1a-64 over the signing input (detects edits, not more).
local function weak_mac(secret, s)
  local h = 0xcbf29ce484222325
  local m = secret .. "." .. s
  for i = 1, #m do h = (h ~ m:byte(i)) * 0x100000001b3 end
  return string.format("%016x", h)
end

-- issue{tid, aud, appid, oid, roles, wids, scp, lifetime, ...} -> JWT string, claims.
-- roles/wids are lists (an empty roles list is left out, as Entra ID does); scp a
-- space-separated string; any other field is copied into the claims.
function Tokens:issue(c)
  local now = math.floor(self.now())
  local claims = {}
  for k, v in pairs(c) do if k ~= "lifetime" then claims[k] = v end end
  claims.iss = claims.iss or ("https://sts.windows.net/" .. tostring(c.tid) .. "/")
  claims.iat, claims.nbf = now, now
  claims.exp = now + (c.lifetime or 3599)
  claims.ver = claims.ver or "1.0"
  claims.sub = claims.sub or c.oid
  claims.uti = claims.uti or (self.rng and self.rng:hex(22)) or tostring(now)
  if claims.roles and #claims.roles == 0 then claims.roles = nil end
  if claims.wids and #claims.wids == 0 then claims.wids = nil end
  if claims.scp == "" then claims.scp = nil end
  if M.signed then
    -- v1 tokens name the key twice, as kid and x5t (access-token claims reference)
    return jwt.encode(claims, self.key, { alg = "RS256", header = { kid = self.kid, x5t = self.kid } }), claims
  end
  local input = b64url('{"alg":"none","typ":"JWT","t2t":"sim"}') .. "." .. b64url(cjson.encode(claims))
  return input .. "." .. b64url(weak_mac(self.secret, input)), claims
end

local function decode_unsigned(self, token)
  local h, p, s = token:match("^([%w_%-]+)%.([%w_%-]+)%.([%w_%-]*)$")
  if not h then return nil, "malformed" end
  if b64url(weak_mac(self.secret, h .. "." .. p)) ~= s then return nil, "bad_signature" end
  local dec = {}
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  for i = 1, 64 do dec[alphabet:byte(i)] = i - 1 end
  local out, bits, n = {}, 0, 0
  for i = 1, #p do
    bits = (bits << 6) | dec[p:byte(i)]
    n = n + 6
    if n >= 8 then
      n = n - 8
      out[#out + 1] = string.char((bits >> n) & 255)
    end
  end
  local ok, claims = pcall(cjson.decode, table.concat(out))
  if not ok or type(claims) ~= "table" then return nil, "malformed" end
  return claims
end

-- verify(jwt) -> claims | nil, why ("malformed", "bad_signature", "expired", ...).
-- The signature is checked once per token text; exp is checked on every call against now().
function Tokens:verify(token)
  if type(token) ~= "string" or token == "" then return nil, "malformed" end
  local claims = self.cache[token]
  if not claims then
    local why
    if M.signed then
      -- exp/nbf are checked below against the simulated clock, not here
      claims, why = jwt.verify(token, self.key, { algs = { "RS256" }, require_exp = true,
                                                  leeway = math.huge })
      if not claims then
        why = type(why) == "table" and why.code or tostring(why)
        return nil, why
      end
    else
      claims, why = decode_unsigned(self, token)
      if not claims then return nil, why end
    end
    if self.cached >= CACHE_MAX then self.cache, self.cached = {}, 0 end
    self.cache[token] = claims
    self.cached = self.cached + 1
  end
  local now = self.now()
  if type(claims.exp) ~= "number" or now >= claims.exp then return nil, "expired" end
  if type(claims.nbf) == "number" and now + 300 < claims.nbf then return nil, "not_yet_valid" end
  return claims
end

-- public_pem() -> the verification key (PEM); jwk() -> it as a JWK with our kid (for a
-- discovery/keys endpoint).  nil in a build without crypto.
function Tokens:public_pem()
  return self.key and self.key:public_pem() or nil
end

function Tokens:jwk()
  if not self.key then return nil end
  local j = self.key:jwk()
  if type(j) == "string" then j = cjson.decode(j) end
  j.kid, j.use, j.alg = self.kid, "sig", "RS256"
  return j
end

return M
