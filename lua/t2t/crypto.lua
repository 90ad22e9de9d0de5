-- t2t.crypto: the OpenSSL primitives of t2t.core.crypto and t2t.core.x509, re-exported, plus
-- Lua conveniences: named digests, distinguished-name strings, certificate thumbprints and
-- info, files, PEM-or-PFX credentials.  See docs/crypto.md.
local C = require "t2t.core.crypto"
local X = require "t2t.core.x509"

local M = {}
for k, v in pairs(C) do M[k] = v end
for k, v in pairs(X) do M[k] = v end
M.Key, M.Cert = nil, nil            -- method tables: extended below, not part of the API

M.rsa_from_jwk = C.key_from_jwk

function M.sha1(s) return C.digest("sha1", s) end
function M.sha256(s) return C.digest("sha256", s) end
function M.sha512(s) return C.digest("sha512", s) end
function M.sha256_hex(s) return C.hex_encode(C.digest("sha256", s)) end
function M.hmac_sha256(key, data) return C.hmac("sha256", key, data) end

-- Split s on unescaped sep; "\," keeps a literal comma.
local function split_escaped(s, sep)
  local out, cur, i = {}, {}, 1
  while i <= #s do
    local c = s:sub(i, i)
    if c == "\\" and i < #s then
      cur[#cur + 1] = s:sub(i + 1, i + 1); i = i + 2
    elseif c == sep then
      out[#out + 1] = table.concat(cur); cur = {}; i = i + 1
    else
      cur[#cur + 1] = c; i = i + 1
    end
  end
  out[#out + 1] = table.concat(cur)
  return out
end

local DN_ORDER = { "C", "ST", "L", "O", "OU", "CN" }

--- A distinguished name as the list of {field, value} pairs in DER order, from
-- "CN=x,O=y" (RFC 2253: most specific first, as cert:subject() prints it), "/O=y/CN=x"
-- (OpenSSL's -subj form, DER order), a map {CN=, O=, ...} or a list of pairs.
function M.parse_dn(dn)
  if type(dn) == "table" then
    if dn[1] then return dn end
    local out = {}
    for _, f in ipairs(DN_ORDER) do
      if dn[f] then out[#out + 1] = { f, tostring(dn[f]) } end
    end
    for f, v in pairs(dn) do
      local known = false
      for _, g in ipairs(DN_ORDER) do known = known or g == f end
      if not known then out[#out + 1] = { f, tostring(v) } end
    end
    return out
  end
  assert(type(dn) == "string" and dn ~= "", "distinguished name expected")
  local parts, reverse
  if dn:sub(1, 1) == "/" then
    parts = split_escaped(dn:sub(2), "/")
  else
    parts, reverse = split_escaped(dn, ","), true
  end
  local out = {}
  for _, p in ipairs(parts) do
    local f, v = p:match("^%s*([%w%.]+)%s*=%s*(.-)%s*$")
    if not f then error("bad distinguished name component '" .. p .. "'", 2) end
    out[#out + 1] = { f, v }
  end
  if reverse then
    for i = 1, #out // 2 do out[i], out[#out + 1 - i] = out[#out + 1 - i], out[i] end
  end
  return out
end

--- create_cert(opts) -> Cert | nil, err.  As t2t.core.x509's, but subject (and the default
-- for a missing subject, "CN=t2t") may be any form parse_dn takes.
function M.create_cert(opts)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.subject = M.parse_dn(opts.subject or "CN=t2t")
  return X.create_cert(o)
end

--- new_ca{subject=, key= or key_type/bits, days=, pathlen=} -> cert, key: a self-signed CA.
function M.new_ca(opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.ca = true
  return M.new_cert(o)
end

--- new_cert{subject=, san=, issuer_cert=, issuer_key=, key= or key_type/bits, ...} -> cert, key
-- A leaf (server/client) certificate, CA-signed when issuer_* is given, else self-signed.
function M.new_cert(opts)
  local key = opts.key
  if not key then
    local err
    key, err = C.generate_key(opts.key_type or "rsa", opts.bits)
    if not key then return nil, err end
  end
  local o = {}
  for k, v in pairs(opts) do if k ~= "key_type" and k ~= "bits" then o[k] = v end end
  o.key = key
  local cert, err = M.create_cert(o)
  if not cert then return nil, err end
  return cert, key
end

local Cert = X.Cert

--- cert:thumbprint([alg="sha1"] [, enc="hex"]) — alg "sha1" | "sha256"; enc "hex" (upper case,
-- as Azure and Windows show it), "b64url" (the JOSE x5t / x5t#S256 form), "base64" or "raw".
function Cert:thumbprint(alg, enc)
  local raw = self:fingerprint(alg or "sha1")
  enc = enc or "hex"
  if enc == "hex" then return C.hex_encode(raw, true)
  elseif enc == "b64url" then return C.base64url_encode(raw)
  elseif enc == "base64" then return C.base64_encode(raw)
  elseif enc == "raw" then return raw end
  error("thumbprint encoding must be hex, b64url, base64 or raw", 2)
end

--- cert:x5t() / cert:x5t_s256(): JOSE header values (base64url SHA-1 / SHA-256 of the DER).
function Cert:x5t() return C.base64url_encode(self:fingerprint("sha1")) end
function Cert:x5t_s256() return C.base64url_encode(self:fingerprint("sha256")) end

--- cert:info() -> plain table of the readable fields.
function Cert:info()
  return {
    subject = self:subject(), issuer = self:issuer(), serial = self:serial(),
    not_before = self:not_before(), not_after = self:not_after(), san = self:san(),
    ca = self:is_ca(), thumbprint = self:thumbprint("sha1"),
    thumbprint_sha256 = self:thumbprint("sha256"),
  }
end

--- cert:dns_names() -> the DNS entries of the SAN list, without the "DNS:" prefix.
function Cert:dns_names()
  local out = {}
  for _, s in ipairs(self:san()) do
    local n = s:match("^DNS:(.*)$")
    if n then out[#out + 1] = n end
  end
  return out
end

-- Key, certificate and PFX files: regular files of bounded size only (t2t.files).
local function read_file(path)
  return require("t2t.files").read(path, "credential")
end
M.read_file = read_file

--- load_key_file(path [, passphrase]) -> Key | nil, err
function M.load_key_file(path, passphrase)
  local data, err = read_file(path)
  if not data then return nil, err end
  local key, kerr = C.load_key(data, passphrase)
  if not key then return nil, path .. ": " .. kerr end
  return key
end

--- rsa_from_xml(text) -> Key | nil, err: a .NET RSAKeyValue (<Modulus> and <Exponent> in base64),
-- the form the Exchange Online module and ExoHelper publish their SecureString key in.
function M.rsa_from_xml(text)
  local function field(name)
    local v = type(text) == "string" and text:match("<" .. name .. ">%s*([%w+/=%s]-)%s*</" .. name .. ">")
    v = v and C.base64_decode((v:gsub("%s", "")))
    return v and v ~= "" and C.base64url_encode(v) or nil
  end
  local n, e = field("Modulus"), field("Exponent")
  if not n or not e then return nil, "rsa_from_xml: no <RSAKeyValue> with <Modulus> and <Exponent>" end
  local ok, key, err = pcall(C.key_from_jwk, { kty = "RSA", n = n, e = e })
  if not ok then return nil, "rsa_from_xml: " .. tostring(key) end
  return key, err
end

--- public_key_from(text_or_path) -> Key | nil, err: an RSA key given as PEM, as RSAKeyValue
-- XML, or as the path of a file holding either.
function M.public_key_from(v)
  if type(v) ~= "string" or v == "" then return nil, "a key (PEM, RSAKeyValue XML or a file path) is needed" end
  local text = v
  if not v:find("-----BEGIN", 1, true) and not v:find("<RSAKeyValue", 1, true) then
    local data, err = read_file(v)
    if not data then return nil, err end
    text = data
  end
  if text:find("<RSAKeyValue", 1, true) then return M.rsa_from_xml(text) end
  return C.load_key(text)
end

--- load_cert_file(path) -> Cert | nil, err
function M.load_cert_file(path)
  local data, err = read_file(path)
  if not data then return nil, err end
  local cert, cerr = X.load_cert(data)
  if not cert then return nil, path .. ": " .. cerr end
  return cert
end

local function is_pem(data) return data:find("-----BEGIN ", 1, true) ~= nil end

--- pkcs12_import(der_or_base64 [, passphrase]) — as t2t.core.x509's, but also takes the
-- base64 text Key Vault hands out (a PFX is a DER SEQUENCE, so it starts with 0x30).
function M.pkcs12_import(data, passphrase)
  if data:byte(1) ~= 0x30 then
    local der = C.base64_decode(data)
    if not der then return nil, "pkcs12_import: neither DER nor base64" end
    data = der
  end
  return X.pkcs12_import(data, passphrase)
end

--- load_credential(data [, passphrase]) -> {key=, cert=, chain={...}} | nil, err: a PEM holding
-- a private key and its certificate (in any order, perhaps with a chain), or a PFX/PKCS#12
-- (DER or base64) — what AZURE_CLIENT_CERTIFICATE_PATH may point at.
function M.load_credential(data, passphrase)
  if is_pem(data) then
    local key, err = C.load_key(data, passphrase)
    if not key then return nil, err end
    local certs = X.load_certs(data)
    local cert, chain = nil, {}
    for _, c in ipairs(certs) do
      if not cert and c:matches_key(key) then cert = c else chain[#chain + 1] = c end
    end
    if not cert then return nil, "load_credential: no certificate for the private key in the PEM" end
    return { key = key, cert = cert, chain = chain }
  end
  local t, err = M.pkcs12_import(data, passphrase)
  if not t then return nil, err end
  if not t.key or not t.cert then return nil, "load_credential: the PFX lacks a key or certificate" end
  return t
end

--- load_credential_file(path [, passphrase])
function M.load_credential_file(path, passphrase)
  local data, err = read_file(path)
  if not data then return nil, err end
  local t, cerr = M.load_credential(data, passphrase)
  if not t then return nil, path .. ": " .. cerr end
  return t
end

return M
