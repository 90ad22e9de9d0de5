-- t2t.auth: access tokens from Entra ID (wire.md §0-1) for Graph, Exchange, ARM and Key Vault.
--
--   local auth = require "t2t.auth"
--   local cred = assert(auth.credential{tenant = "contoso.onmicrosoft.com", client_id = ID,
--                                       secret = "env:T2T_SECRET"})
--   local tok = assert(cred:token("graph"))                 -- "exo", "arm", "vault" or a URI
--   local ex = require("t2t.exo").new{tenant = tid, http = client,
--                                     token = cred:token_provider("exo")}
--   local client = cred:client{service = "graph"}          -- http client with on_401 wired
--
-- Credentials: client secret, certificate (client assertion, PS256 + x5t#S256, RS256 + x5t
-- fallback), device code, refresh token.  One token per (cloud, tenant, client, resource),
-- kept in memory and in a 0600 cache file, refreshed before it expires and once on a 401.
-- Errors are tables {code = "AADSTSnnn", error, message, status, service = "login",
-- request_id, retryable, ...} whose message says what to fix.  See docs/auth.md.
local cjson = require "cjson"
local log = require "t2t.log"

local M = {}

---------------------------------------------------------------------------------------------
-- The cloud matrix (wire.md §0): a cloud selects every host together.

local clouds = require "t2t.clouds"

-- name -> {name, login, graph, exo, arm, vault (resource), vault_suffix, remote_server}
M.clouds = clouds.ALL

-- endpoints(cloud) -> a copy of the cloud's hosts | nil, err.  nil cloud means global.
function M.endpoints(cloud)
  local c, err = clouds.get(cloud)
  if not c then return nil, err end
  local t = {}
  for k, v in pairs(c) do t[k] = v end
  return t
end

-- cloud_of_login(url) -> the cloud whose login host this is (AZURE_AUTHORITY_HOST) | nil.
M.cloud_of_login = clouds.of_login

local ALIASES = { graph = "graph", exo = "exo", exchange = "exo", arm = "arm", azure = "arm",
                  management = "arm", vault = "vault", keyvault = "vault" }
local GUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
M.GUID_PATTERN = GUID

-- resource(name, cloud) -> resource URI without "/.default" or a trailing "/" | nil, err.
-- name: graph | exo | arm | vault (aliases exchange, azure, management, keyvault), a URI, a
-- scope URI/.default, or an appId GUID.
function M.resource(name, cloud)
  if type(name) ~= "string" or name == "" then return nil, "resource name expected" end
  local alias = ALIASES[name:lower()]
  if alias then
    local ep, err = M.endpoints(cloud)
    if not ep then return nil, err end
    return ep[alias]
  end
  local r = name:gsub("/%.default$", "")
  if r:match("^https?://[^%s]+$") then return (r:gsub("/+$", "")) end
  if r:match(GUID) then return r:lower() end
  return nil, "unknown resource '" .. name .. "' (graph, exo, arm, vault, or a resource URI)"
end

-- scope(name, cloud) -> "{resource}/.default" | nil, err.
function M.scope(name, cloud)
  local r, err = M.resource(name, cloud)
  if not r then return nil, err end
  return r .. "/.default"
end

---------------------------------------------------------------------------------------------
-- Errors: AADSTS codes -> what to fix (wire.md §1.8).

local Err = { __name = "t2t.auth.Error" }
Err.__index = Err
Err.__tostring = function(e) return e.message or e.code or "auth error" end
M.Error = Err

local function new_err(t)
  t.service = t.service or "login"
  if t.retryable == nil then t.retryable = false end
  return setmetatable(t, Err)
end
M.new_err = new_err

-- code -> {short description, what to fix}.  %a is the client id, %t the tenant, %c the cloud.
M.AADSTS = {
  [7000215] = { "wrong client secret",
    "the client secret for app %a is wrong: use the secret's Value (shown once when it was made), " ..
    "not its Secret ID, and check for a truncated copy or stray spaces" },
  [7000222] = { "client secret expired",
    "the client secret of app %a has expired: make a new one (App registrations > the app > " ..
    "Certificates & secrets) and update the secret the profile refers to" },
  [700016] = { "app not found in that tenant",
    "app %a is not in tenant %t: check client_id and tenant in the profile; a multi-tenant app " ..
    "needs admin consent there first (a service principal); right after creating or consenting, " ..
    "wait a minute for replication and try again" },
  [7000112] = { "app disabled", "app %a is disabled in tenant %t: enable its service principal " ..
    "(Enterprise applications > the app > Properties > Enabled for users to sign in)" },
  [700027] = { "certificate assertion rejected",
    "the certificate's signature was not accepted for app %a: upload this certificate (the public " ..
    ".cer) to the app's Certificates & secrets, and make sure the key file belongs to that certificate" },
  [50012] = { "certificate assertion rejected",
    "the client assertion's thumbprint or signature is not valid for app %a: upload this certificate " ..
    "to the app and check that the key matches it" },
  [700024] = { "assertion outside its time window",
    "the client assertion is not within its valid time range: this machine's clock is probably wrong " ..
    "(sync it with NTP)" },
  [700021] = { "assertion issuer mismatch",
    "the client assertion's iss/sub is not the client_id %a" },
  [7000218] = { "no client credential",
    "the request carried neither a client secret nor a certificate: app %a is not a public client, so " ..
    "give the profile a secret or certificate (or enable 'Allow public client flows' for device code)" },
  [90002] = { "tenant not found",
    "tenant %t was not found in the %c cloud: check for a typo in tenant/tenant_id, and that cloud is " ..
    "right (global, usgov, usgovhigh, dod, china)" },
  [900023] = { "invalid tenant", "'%t' is neither a tenant GUID nor a domain: fix tenant in the profile" },
  [90038] = { "wrong cloud", "tenant %t is in another national cloud than %c: set cloud in the profile" },
  [9001023] = { "common endpoint with app-only",
    "app-only tokens need a tenant GUID or domain, not common/organizations/consumers" },
  [500011] = { "resource not in tenant",
    "the resource principal was not found in tenant %t: the service (e.g. Exchange Online) is not " ..
    "provisioned or licensed there, or the resource URI is wrong for the %c cloud" },
  [700022] = { "several resources in one scope",
    "a token request named scopes of more than one resource: ask for one resource's /.default per token" },
  [70011] = { "invalid scope", "the scope is not valid: use '{resource}/.default' for app-only tokens" },
  [1002012] = { "scope without /.default", "app-only tokens need the scope '{resource}/.default'" },
  [65001] = { "consent missing",
    "no consent: an admin of tenant %t must grant app %a its permissions (admin consent)" },
  [70016] = { "sign-in pending", "the device-code sign-in has not been completed yet" },
  [70018] = { "bad device code", "the device code was not recognised: sign in again" },
  [70019] = { "device code expired", "the device code expired before the sign-in was completed: run again " ..
    "and sign in within the time shown" },
  [700082] = { "refresh token expired", "the saved sign-in expired through inactivity: sign in again with device code" },
  [70008] = { "refresh token expired", "the saved sign-in expired: sign in again with device code" },
  [70043] = { "sign-in frequency", "Conditional Access sign-in frequency requires a new sign-in (device code)" },
  [50076] = { "MFA required", "multi-factor authentication is required: sign in again with device code" },
  [50079] = { "MFA registration required", "the account must register for MFA, then sign in with device code" },
  [53003] = { "blocked by Conditional Access", "a Conditional Access policy blocked the sign-in: ask the " ..
    "tenant's admin to allow this client or location" },
  [900144] = { "missing parameter", "the token request lacked a required parameter" },
  [9002313] = { "invalid refresh token", "the saved sign-in is not valid: sign in again with device code" },
}

-- What a token-endpoint error means for the caller (issue 9): "credentials" (wrong, expired or
-- unusable secret or certificate), "consent" (no admin consent), "tenant" (no such tenant, or
-- another cloud), "app" (no such app there, or disabled), "throttled", "transient" (the service
-- failed: worth a retry), "signin" (a person must sign in again), or "other".  Only throttled
-- and transient errors are retried: waiting does not fix a wrong secret.
M.KIND = {
  [7000215] = "credentials", [7000222] = "credentials", [700027] = "credentials", [50012] = "credentials",
  [700024] = "credentials", [700021] = "credentials", [7000218] = "credentials",
  [65001] = "consent",
  [90002] = "tenant", [900023] = "tenant", [90038] = "tenant", [9001023] = "tenant", [500011] = "tenant",
  [700016] = "app", [7000112] = "app",
  [50196] = "throttled",
  [70016] = "signin", [70018] = "signin", [70019] = "signin", [700082] = "signin", [70008] = "signin",
  [70043] = "signin", [50076] = "signin", [50079] = "signin", [53003] = "signin", [9002313] = "signin",
}
local RETRIED = { throttled = true, transient = true }

-- classify(aadsts_number, http_status, oauth_error) -> kind, retryable
function M.classify(num, status, error_name)
  local st = tonumber(status) or 0
  local kind = num and M.KIND[math.tointeger(num) or num]
  if not kind then
    if st == 429 then kind = "throttled"
    elseif st >= 500 or error_name == "temporarily_unavailable" then kind = "transient"
    else kind = "other" end
  end
  return kind, RETRIED[kind] or false
end

local function fill(s, ctx)
  return (s:gsub("%%([atc])", function(k)
    local v = k == "a" and ctx.client_id or k == "t" and (ctx.tenant_id or ctx.tenant) or ctx.cloud
    return "'" .. tostring(v or "?") .. "'"
  end))
end

-- explain(doc, status, ctx) -> error table for an Entra ID error body (wire.md §1.1).
-- ctx: {client_id, tenant, cloud, request_id}.
function M.explain(doc, status, ctx)
  ctx = ctx or {}
  doc = type(doc) == "table" and doc or {}
  local num = type(doc.error_codes) == "table" and math.tointeger(doc.error_codes[1]) or nil
  local desc = type(doc.error_description) == "string" and doc.error_description or ""
  if not num then num = math.tointeger(tonumber(desc:match("^AADSTS(%d+)"))) end
  local first = desc:match("^[^\r\n]*"):gsub("^AADSTS%d+:%s*", "")
  if #first > 300 then first = first:sub(1, 297) .. "..." end
  local hint = num and M.AADSTS[num]
  local what = hint and fill(hint[2], ctx) or (first ~= "" and first) or
               ("the sign-in failed (HTTP " .. tostring(status) .. ")")
  local code = num and ("AADSTS" .. num) or (doc.error or ("HTTP" .. tostring(status)))
  local msg = code .. " " .. (doc.error or "error") .. ": " .. what
  if hint and first ~= "" then msg = msg .. " [Entra ID: " .. first .. "]" end
  local trace = doc.trace_id or ctx.request_id
  if trace then msg = msg .. " (trace id " .. tostring(trace) .. ")" end
  local kind, retryable = M.classify(num, status, doc.error)
  return new_err {
    code = code, aadsts = num, error = doc.error, message = log.redact(msg), status = status,
    description = desc ~= "" and log.redact(desc) or nil, request_id = trace,
    correlation_id = doc.correlation_id, summary = hint and hint[1] or nil,
    kind = kind, retryable = retryable,
  }
end

---------------------------------------------------------------------------------------------
-- Secret references: "env:NAME", "file:PATH"; anything else is the value itself (API use).

-- expand_home(path), is_ref(s): what a reference looks like is the config file's business.
local config = require "t2t.config"
local expand_home = config.expand_home
M.expand_home = expand_home
M.is_ref = config.is_ref

-- read_ref(ref, what) -> value | nil, err.  The value is registered with log.secret.
function M.read_ref(ref, what)
  what = what or "secret"
  if type(ref) ~= "string" or ref == "" then return nil, what .. ": a value or env:NAME / file:PATH expected" end
  local var = ref:match("^env:([%w_]+)$")
  if var then
    local v = os.getenv(var)
    if not v or v == "" then return nil, string.format("%s: environment variable %s is not set", what, var) end
    return log.secret(v)
  end
  local path = ref:match("^file:(.+)$")
  if path then
    path = expand_home(path)
    -- a regular file of bounded size: a FIFO or /dev/zero must not hang or exhaust memory
    local v, err = require("t2t.files").first_line(path, what:find("passphrase", 1, true) and "passphrase" or "secret")
    if not v then return nil, string.format("%s: %s", what, err) end
    if v == "" then return nil, string.format("%s: %s is empty (the value goes on its first line)", what, path) end
    return log.secret(v)
  end
  return log.secret(ref)
end

---------------------------------------------------------------------------------------------
-- Clock: wall-clock seconds as a float (token expiry is wall time; the cache file outlives us).

local wall0, mono0
local function wall_now()
  local ok, t2t = pcall(require, "t2t")
  if not ok then return os.time() end
  if not wall0 then wall0, mono0 = os.time(), t2t.now() end
  return wall0 + (t2t.now() - mono0)
end
M.now = wall_now

-- refresh_at(obtained, expires_in, skew) -> when to fetch a new token: skew (300 s) before it
-- expires, but never later than half-way through a short lifetime.
function M.refresh_at(obtained, expires_in, skew)
  skew = skew or 300
  return obtained + expires_in - math.min(skew, expires_in / 2)
end

---------------------------------------------------------------------------------------------
-- Token cache file: JSON {version = 1, entries = {[key] = entry}} in a 0600 file in a 0700
-- directory; written to a new 0600 file (mktemp) and renamed over, so it is never readable by
-- others, even for a moment, and never half-written.


-- cache_path() -> $XDG_CACHE_HOME/t2t/tokens.json (or ~/.cache/t2t/tokens.json) | nil.
function M.cache_path()
  local x = os.getenv("XDG_CACHE_HOME")
  if x and x ~= "" then return x .. "/t2t/tokens.json" end
  local home = os.getenv("HOME")
  if home and home ~= "" then return home .. "/.cache/t2t/tokens.json" end
end

-- cache_read(path) -> entries table ({} when absent or unreadable).
function M.cache_read(path)
  local f = path and io.open(path, "r")
  if not f then return {} end
  local s = f:read("a")
  f:close()
  local ok, doc = pcall(cjson.decode, s)
  if not ok or type(doc) ~= "table" or type(doc.entries) ~= "table" then return {} end
  return doc.entries
end

-- write_private(path, text) -> true | nil, err: atomically, mode 0600; a missing directory is
-- made 0700 (t2t.core.fs).
M.write_private = require("t2t.core.fs").write_private

-- cache_update(path, changes, now) -> true | nil, err: merges changes (key -> entry | false)
-- into the file, dropping access tokens that have expired.
function M.cache_update(path, changes, now)
  local entries = M.cache_read(path)
  for k, v in pairs(changes) do entries[k] = v or nil end
  now = now or os.time()
  for k, e in pairs(entries) do
    if type(e) ~= "table" or (e.expires_at and e.expires_at <= now and not e.refresh_token) then
      entries[k] = nil
    end
  end
  local ok, text = pcall(cjson.encode, { version = 1, entries = entries })   -- {} stays {}
  if not ok then return nil, text end
  M.tighten_dir(path)
  return M.write_private(path, text)
end

-- tighten_dir(path): the directory holding path becomes 0700 when it is ours and open to
-- others (an existing ~/.cache/t2t made by hand or by an older version): tokens are secrets.
function M.tighten_dir(path)
  local fs = require "t2t.core.fs"
  local dir = path:match("^(.+)/[^/]+$")
  if not dir then return end
  local mode, uid = fs.mode(dir)
  if mode and uid == fs.uid() and mode & 63 ~= 0 then       -- 63 = 0077
    local ok, err = fs.chmod(dir, 448)                      -- 448 = 0700
    if not ok then log.warn("auth: could not make %s private: %s", dir, tostring(err)) end
  end
end

---------------------------------------------------------------------------------------------
-- Credentials.

local Cred = {}
Cred.__index = Cred
Cred.__name = "t2t.auth.Credential"
Cred.__tostring = function(c)
  return string.format("auth credential (%s) for app %s in tenant %s (%s)", c.kind,
                       tostring(c.client_id), tostring(c.tenant), c.cloud)
end
M.Credential = Cred

-- Secrets live here, keyed by credential, so printing a credential never shows them.
local SECRETS = setmetatable({}, { __mode = "k" })

local DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
local JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
M.DEVICE_GRANT, M.JWT_BEARER = DEVICE_GRANT, JWT_BEARER

local function urlenc(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end
M.urlencode = urlenc

local function form(t, order)
  local out = {}
  for _, k in ipairs(order) do
    if t[k] ~= nil then out[#out + 1] = k .. "=" .. urlenc(t[k]) end
  end
  return table.concat(out, "&")
end

local FORM_ORDER = { "client_id", "scope", "grant_type", "client_secret", "client_assertion_type",
                     "client_assertion", "device_code", "refresh_token" }

-- load the certificate and key of a certificate credential -> {cert, key} | nil, err
local function load_certificate(p)
  local crypto = require "t2t.crypto"
  if type(p.certificate) == "userdata" then
    if not p.key or type(p.key) ~= "userdata" then return nil, "certificate: a key object is needed too" end
    return { cert = p.certificate, key = p.key }
  end
  local pass
  local pref = p.key_passphrase or p.certificate_password or p.pfx_passphrase
  if pref then
    local err
    pass, err = M.read_ref(pref, "key passphrase")
    if not pass then return nil, err end
  end
  local path = expand_home(tostring(p.pfx or p.certificate))
  if p.key and type(p.key) == "string" then
    local cert, cerr = crypto.load_cert_file(path)
    if not cert then return nil, "certificate: " .. tostring(cerr) end
    local key, kerr = crypto.load_key_file(expand_home(p.key), pass)
    if not key then return nil, "certificate key: " .. tostring(kerr) end
    if not cert:matches_key(key) then
      return nil, "certificate: the key in " .. p.key .. " does not belong to the certificate " .. path
    end
    return { cert = cert, key = key }
  end
  local t, err = crypto.load_credential_file(path, pass)
  if not t then return nil, "certificate: " .. tostring(err) end
  return { cert = t.cert, key = t.key }
end

-- The kind of credential a profile describes.
local function kind_of(p)
  if p.certificate or p.pfx then return "certificate" end
  if p.secret or p.client_secret then return "secret" end
  if p.device_code then return "device_code" end
  if p.refresh_token then return "refresh_token" end
end

-- credential(profile, opts) -> credential | nil, err.
-- profile: {tenant | tenant_id, cloud, client_id, and one of: secret | client_secret (value,
--   env:NAME or file:PATH); certificate (+ key, key_passphrase) | pfx; device_code = true;
--   refresh_token; optional alg = "PS256" | "RS256", connect_to, ca_file}.
-- opts: {http (client whose ca_file/connect_to are reused), login_http (used as is), ca_file,
--   connect_to, cache (path | false), now, sleep, prompt(info), skew (300), timeout}.
function M.credential(p, opts)
  if type(p) ~= "table" then return nil, "auth.credential: profile table expected" end
  opts = opts or {}
  local ep, cerr = M.endpoints(p.cloud)
  if not ep then return nil, cerr end
  local tenant = p.tenant_id or p.tenant or p.domain or p.initial_domain
  if type(tenant) ~= "string" or tenant == "" then return nil, "profile: tenant or tenant_id is required" end
  local client_id = p.client_id
  local kind = kind_of(p)
  if not kind then
    return nil, "profile: no credential: give secret = \"env:NAME\" | \"file:PATH\", certificate = PATH, " ..
                "device_code = true or refresh_token"
  end
  if type(client_id) ~= "string" or client_id == "" then
    if kind ~= "device_code" then return nil, "profile: client_id (the app's Application ID) is required" end
    client_id = M.PUBLIC_CLIENTS.exo                -- device code with no app: EXO PowerShell's
  end
  local secrets = {}
  if kind == "secret" then
    local v, err = M.read_ref(p.secret or p.client_secret, "client secret")
    if not v then return nil, err end
    secrets.secret = v
  elseif kind == "certificate" then
    local c, err = load_certificate(p)
    if not c then return nil, err end
    secrets.cert, secrets.key = c.cert, c.key
  end
  local borrowed = opts.http or {}
  local self = setmetatable({
    kind = kind, cloud = ep.name, endpoints = ep, tenant = tenant, client_id = client_id,
    name = p.name,
    ca_file = opts.ca_file or p.ca_file or borrowed.ca_file,
    connect_to = opts.connect_to or p.connect_to or borrowed.connect_to,
    alg = p.alg, alg_auto = p.alg == nil, skew = opts.skew or 300,
    now = opts.now or wall_now, sleep = opts.sleep, prompt = opts.prompt,
    timeout = opts.timeout or 60, login = opts.login_http,
    mem = {}, by_token = {}, locks = {}, serial = 0,
  }, Cred)
  -- a simulator's credential (connect_to) keeps its tokens in memory only: they open nothing
  -- real and must never sit in, or be read from, the real token cache
  if opts.cache == nil then self.cache_file = not self.connect_to and M.cache_path() or nil
  elseif opts.cache then self.cache_file = opts.cache end
  SECRETS[self] = secrets
  if kind == "refresh_token" or (kind == "device_code" and p.refresh_token) then
    local rt, err = M.read_ref(p.refresh_token, "refresh token")
    if not rt then return nil, err end
    secrets.refresh_token = rt
  end
  return self
end
M.from_profile = M.credential

-- Well-known public clients (wire.md §1.4).
M.PUBLIC_CLIENTS = {
  exo = "fb78d390-0c51-40cd-8e17-fdbfab77341b", graph = "14d82eec-204b-4c2f-b7e8-296a70dab67e",
  azure_cli = "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
}

-- client_secret{...}, certificate{...}, device_code{...}, refresh_token{...}: the same as
-- credential() with the kind made explicit.
function M.client_secret(p, opts)
  assert(p.secret or p.client_secret, "auth.client_secret: secret expected")
  return M.credential(p, opts)
end
function M.certificate(p, opts)
  assert(p.certificate or p.pfx, "auth.certificate: certificate expected")
  return M.credential(p, opts)
end
function M.device_code(p, opts)
  local q = {}
  for k, v in pairs(p) do q[k] = v end
  q.device_code = true
  return M.credential(q, opts)
end
function M.refresh_token(p, opts)
  assert(p.refresh_token, "auth.refresh_token: refresh_token expected")
  return M.credential(p, opts)
end

-- from_env(opts) -> credential | nil, err: Azure Identity's environment variables (the profile
-- t2t.config.from_env reads).
function M.from_env(opts)
  local p, err = config.from_env(opts and opts.cloud)
  if not p then
    return nil, err or "AZURE_TENANT_ID and AZURE_CLIENT_ID must be set (with AZURE_CLIENT_SECRET or " ..
                       "AZURE_CLIENT_CERTIFICATE_PATH)"
  end
  return M.credential(p, opts)
end

---------------------------------------------------------------------------------------------
-- Talking to the token endpoint.

function Cred:url(path)
  return self.endpoints.login .. "/" .. urlenc(self.tenant) .. "/oauth2/v2.0/" .. path
end

-- The login client: service "login", the simulator's connect_to and CA when given.
function Cred:login_client()
  if not self.login then
    local trace
    if log.enabled("trace") then
      trace = function(ev)
        log.trace("auth: %s %s -> %s attempt %d%s [%s]", ev.method, ev.url, tostring(ev.status or ev.code),
                  ev.attempt, ev.delay and string.format(" retry in %.2fs", ev.delay) or "",
                  tostring(ev.request_id))
      end
    end
    self.login = require("t2t.http").client { service = "login", ca_file = self.ca_file,
                                              connect_to = self.connect_to, trace = trace }
  end
  return self.login
end

function Cred:ctx()
  return { client_id = self.client_id, tenant = self.tenant, cloud = self.cloud }
end

-- POST a form to the endpoint -> doc, response | nil, err (transport or non-JSON answers).
function Cred:post(path, fields)
  local url = self:url(path)
  local res, herr = self:login_client():request {
    method = "POST", url = url, body = form(fields, FORM_ORDER), timeout = self.timeout,
    headers = { ["content-type"] = "application/x-www-form-urlencoded", accept = "application/json",
                ["x-client-sku"] = "t2t", ["x-client-ver"] = "1" },
  }
  if not res then
    local e = type(herr) == "table" and herr or { message = tostring(herr) }
    return nil, new_err { code = e.code or "transport", status = 0, request_id = e.request_id,
      retryable = e.retryable ~= false, kind = e.retryable ~= false and "transient" or "other",
      message = string.format("cannot reach %s (%s cloud): %s", self.endpoints.login, self.cloud,
                              log.redact(tostring(e.message or e.code))) }
  end
  local ok, doc = pcall(cjson.decode, res.body or "")
  if not ok or type(doc) ~= "table" then
    return nil, new_err { code = "HTTP" .. res.status, status = res.status, request_id = res.request_id,
      retryable = res.status >= 500, kind = res.status >= 500 and "transient" or "other",
      message = string.format("%s answered HTTP %d without a JSON body: is %s the right login host for " ..
                              "this cloud (%s)?", url, res.status, self.endpoints.login, self.cloud) }
  end
  return doc, res
end

function Cred:fail(doc, res)
  local c = self:ctx()
  c.request_id = res and res.request_id
  local e = M.explain(doc, res and res.status, c)
  e.tenant, e.client_id = self.tenant, self.client_id
  return nil, e
end

-- A client assertion (wire.md §1.3): fresh jti, nbf = iat = now, exp = now + 600.
function Cred:assertion(alg)
  local jwt, crypto = require "t2t.jwt", require "t2t.crypto"
  local s = SECRETS[self]
  local now = math.floor(self.now())
  local claims = { aud = self:url("token"), iss = self.client_id, sub = self.client_id,
                   jti = crypto.uuid4(), nbf = now, iat = now, exp = now + 600 }
  return jwt.encode(claims, s.key, { alg = alg, cert = s.cert,
                                     thumbprints = { alg == "RS256" and "x5t" or "x5t#S256" } })
end

-- One app-only token request (secret or certificate) -> doc | nil, err.
function Cred:client_credentials(scope)
  local s = SECRETS[self]
  local f = { client_id = self.client_id, scope = scope, grant_type = "client_credentials" }
  if self.kind == "secret" then
    f.client_secret = s.secret
    local doc, res = self:post("token", f)
    if not doc then return nil, res end
    if res.status == 200 and doc.access_token then return doc end
    return self:fail(doc, res)
  end
  local alg = self.alg or "PS256"
  f.client_assertion_type, f.client_assertion = JWT_BEARER, self:assertion(alg)
  local doc, res = self:post("token", f)
  if not doc then return nil, res end
  if res.status == 200 and doc.access_token then self.alg = alg return doc end
  local codes = doc.error_codes
  if self.alg_auto and alg == "PS256" and type(codes) == "table" and (codes[1] == 700027 or codes[1] == 50012) then
    -- older clouds and authorities take RS256 + x5t only: try that once (MSAL's fallback)
    log.debug("auth: PS256 assertion refused for %s; trying RS256 with x5t", self.client_id)
    f.client_assertion = self:assertion("RS256")
    local d2, r2 = self:post("token", f)
    if not d2 then return nil, r2 end
    if r2.status == 200 and d2.access_token then self.alg = "RS256" return d2 end
  end
  return self:fail(doc, res)
end

function Cred:rt_key()
  return table.concat({ "rt", self.cloud, self.tenant:lower(), self.client_id:lower(),
                        self.connect_to and "sim" or "" }, "|")
end

-- The refresh token: memory, then the cache file.
function Cred:get_rt()
  local s = SECRETS[self]
  if s.refresh_token then return s.refresh_token end
  if self.cache_file then
    local e = M.cache_read(self.cache_file)[self:rt_key()]
    if type(e) == "table" and type(e.refresh_token) == "string" then
      s.refresh_token = log.secret(e.refresh_token)
      return s.refresh_token
    end
  end
end

function Cred:store_rt(rt)
  SECRETS[self].refresh_token = log.secret(rt)
  if self.cache_file then
    local ok, err = M.cache_update(self.cache_file, { [self:rt_key()] = { refresh_token = rt,
                                                       saved = math.floor(self.now()) } }, self.now())
    if not ok then log.warn("auth: could not save the refresh token: %s", tostring(err)) end
  end
end

function Cred:refresh_grant(scope)
  local rt = self:get_rt()
  if not rt then return nil end
  local doc, res = self:post("token", { client_id = self.client_id, grant_type = "refresh_token",
                                        refresh_token = rt, scope = scope .. " offline_access" })
  if not doc then return nil, res end
  if res.status == 200 and doc.access_token then return doc end
  local _, err = self:fail(doc, res)
  if doc.error == "invalid_grant" or doc.error == "interaction_required" then
    SECRETS[self].refresh_token = nil
    if self.cache_file then M.cache_update(self.cache_file, { [self:rt_key()] = false }, self.now()) end
    err.sign_in_again = true
  end
  return nil, err
end

local function default_prompt(info)
  io.stderr:write(log.redact(tostring(info.message or ("To sign in, open " .. tostring(info.verification_uri) ..
                  " and enter the code " .. tostring(info.user_code)))), "\n")
  io.stderr:flush()
end

local DEVICE_STOP = {
  authorization_declined = "the sign-in was declined: run again and approve it (as an admin of %t)",
  expired_token = "the device code expired before the sign-in was completed: run again and sign in " ..
                  "within the time shown",
  bad_verification_code = "the device code was not recognised by Entra ID: run again",
}

-- The device-code flow (wire.md §1.4): the message is shown once; polls at `interval`,
-- +5 s on slow_down, until approved, declined or expired.
function Cred:device_flow(scope)
  local doc, res = self:post("devicecode", { client_id = self.client_id, scope = scope .. " offline_access" })
  if not doc then return nil, res end
  if res.status ~= 200 or not doc.device_code then return self:fail(doc, res) end
  local interval = math.tointeger(tonumber(doc.interval)) or 5
  local deadline = self.now() + (tonumber(doc.expires_in) or 900)
  ;(self.prompt or default_prompt)(doc)
  local sleep = self.sleep or require("t2t").sleep
  while true do
    sleep(interval)
    local t, r = self:post("token", { client_id = self.client_id, grant_type = DEVICE_GRANT,
                                      device_code = doc.device_code })
    if not t then return nil, r end
    if r.status == 200 and t.access_token then return t end
    local e = t.error
    if e == "slow_down" then
      interval = interval + 5
    elseif e ~= "authorization_pending" then
      local _, err = self:fail(t, r)
      if DEVICE_STOP[e] then
        err.message = log.redact(e .. ": " .. fill(DEVICE_STOP[e], self:ctx()) ..
                                 (err.request_id and (" (trace id " .. err.request_id .. ")") or ""))
        err.code = err.code ~= "HTTP" .. tostring(r.status) and err.code or e
      end
      return nil, err
    end
    if self.now() > deadline then
      return nil, new_err { code = "expired_token", error = "expired_token", status = 400,
                            message = "expired_token: " .. fill(DEVICE_STOP.expired_token, self:ctx()) }
    end
  end
end

-- fetch(resource uri) -> token response doc | nil, err, per credential kind.
function Cred:fetch(uri)
  local scope = uri .. "/.default"
  if self.kind == "secret" or self.kind == "certificate" then return self:client_credentials(scope) end
  local doc, err = self:refresh_grant(scope)
  if doc then return doc end
  if self.kind == "device_code" then return self:device_flow(scope) end
  if err then err.message = err.message .. " -- sign in again with a device_code = true profile" end
  return nil, err or new_err { code = "no_refresh_token", message = "no refresh token: sign in with device code" }
end

-- Cache key: (cloud, tenant, client, resource) plus which credential got it -- a short,
-- one-way fingerprint of the secret or the certificate's thumbprint -- so a changed or wrong
-- secret is never answered from a token another secret obtained.
function Cred:key(uri)
  if not self.fp then
    local s = SECRETS[self]
    local crypto = require "t2t.crypto"
    if s.secret then self.fp = "s" .. crypto.sha256_hex("t2t token cache|" .. s.secret):sub(1, 12)
    elseif s.cert then self.fp = "c" .. s.cert:x5t_s256()
    else self.fp = "u" end
  end
  return table.concat({ self.cloud, self.tenant:lower(), self.client_id:lower(), uri, self.fp,
                        self.connect_to and "sim" or "" }, "|")
end

local function valid_entry(e, now)
  return type(e) == "table" and type(e.access_token) == "string" and type(e.refresh_at) == "number"
         and now < e.refresh_at
end

-- The token for key: cached unless it is due for refresh, or o.refresh asks for a new one
-- (skipped when another caller refreshed it meanwhile: o.serial is what the caller saw).
function Cred:get(key, uri, o)
  local now = self.now()
  local e = self.mem[key]
  if not e and self.cache_file and not o.refresh then
    local d = M.cache_read(self.cache_file)[key]
    if valid_entry(d, now) then
      d.serial = 0
      self.mem[key], self.by_token[d.access_token] = d, uri
      e = d
    end
  end
  if e and valid_entry(e, now) then
    if not o.refresh then return e.access_token end
    if o.stale and e.access_token ~= o.stale then return e.access_token end
    if not o.stale and e.serial ~= o.serial then return e.access_token end
  end
  local doc, err = self:fetch(uri)
  if not doc then
    if e and not o.refresh and err.retryable and now < (e.expires_at or 0) - 30 then
      log.warn("auth: could not refresh the %s token early (%s); the current one is still valid", uri, err.message)
      return e.access_token
    end
    return nil, err
  end
  local expires_in = tonumber(doc.expires_in) or 3599
  self.serial = self.serial + 1
  local n = {
    access_token = doc.access_token, token_type = doc.token_type or "Bearer", resource = uri,
    obtained = now, expires_at = now + expires_in,
    refresh_at = M.refresh_at(now, expires_in, self.skew), serial = self.serial,
  }
  if e then self.by_token[e.access_token] = nil end
  self.mem[key], self.by_token[n.access_token] = n, uri
  log.debug("auth: new %s token for app %s in %s (expires in %ds)", uri, self.client_id, self.tenant, expires_in)
  if doc.refresh_token then self:store_rt(doc.refresh_token) end
  if self.cache_file then
    local ok, werr = M.cache_update(self.cache_file, { [key] = n }, now)
    if not ok then log.warn("auth: could not write the token cache %s: %s", self.cache_file, tostring(werr)) end
  end
  return n.access_token
end

-- cred:token(resource, {refresh = bool, stale = old token}) -> access token | nil, err.
-- Works inside and outside t2t tasks; concurrent callers share one request per resource.
function Cred:token(resource, o)
  o = o or {}
  local uri, rerr = M.resource(resource, self.cloud)
  if not uri then return nil, new_err { code = "bad_resource", message = rerr } end
  local key = self:key(uri)
  local seen = self.mem[key] and self.mem[key].serial
  local t2t = require "t2t"
  return t2t.run(function()
    local lock = self.locks[key]
    if not lock then lock = t2t.semaphore(1) self.locks[key] = lock end
    lock:acquire()
    local _ <close> = lock                 -- released on every way out, cancellation too
    return self:get(key, uri, { refresh = o.refresh, stale = o.stale, serial = seen })
  end)
end

-- cred:invalidate(resource): forget the token (memory and cache file); nil = every resource.
function Cred:invalidate(resource)
  local changes = {}
  for key, e in pairs(self.mem) do
    if resource == nil or e.resource == M.resource(resource, self.cloud) then
      self.by_token[e.access_token] = nil
      self.mem[key] = nil
      changes[key] = false
    end
  end
  if resource ~= nil then
    local uri = M.resource(resource, self.cloud)
    if uri then changes[self:key(uri)] = false end
  end
  if self.cache_file and next(changes) then M.cache_update(self.cache_file, changes, self.now()) end
end

-- cred:claims(resource) -> the (unverified) claims of the current token | nil, err.
function Cred:claims(resource)
  local tok, err = self:token(resource)
  if not tok then return nil, err end
  return require("t2t.jwt").claims(tok)
end

-- cred:token_provider(resource) -> function(refresh) -> token | nil, err: the form exo.new,
-- graph.new and azure.new take as `token`.
function Cred:token_provider(resource)
  return function(refresh) return self:token(resource, { refresh = refresh and true or nil }) end
end
function M.token_provider(cred, resource) return cred:token_provider(resource) end

-- cred:on_401() -> function(req, res) for http.client{on_401 = ...}: when the request carried
-- one of our tokens, fetch a new one, put it in the request and ask for a retry.
function Cred:on_401()
  return function(req)
    local h = req.headers or {}
    local name
    for k in pairs(h) do if k:lower() == "authorization" then name = k end end
    local old = name and tostring(h[name]):match("^[Bb]earer%s+(%S+)")
    local uri = old and self.by_token[old]
    if not uri then return false end
    local new = self:token(uri, { refresh = true, stale = old })
    if not new or new == old then return false end
    h[name] = "Bearer " .. new
    return true
  end
end

-- cred:client(opts) -> an http client (opts.service etc.) that reaches the same hosts the
-- login client does (connect_to, CA) and refreshes our tokens once on a 401.
function Cred:client(o)
  o = o or {}
  local c = {}
  for k, v in pairs(o) do c[k] = v end
  c.ca_file = c.ca_file or self.ca_file
  c.connect_to = c.connect_to or self.connect_to
  c.on_401 = c.on_401 or self:on_401()
  return require("t2t.http").client(c)
end

---------------------------------------------------------------------------------------------
-- Profiles selected on the command line.

-- selected(opts, name) -> credential, profile | nil, err: the --sim tenant (name, else the
-- seeded source) or the --profile from the config file.  opts defaults to the run's options.
function M.selected(opts, name, cred_opts)
  opts = opts or require("t2t.options").current()
  local prof, err = require("t2t.config").selected(opts, name)
  if not prof then return nil, err end
  local cred, cerr = M.credential(prof, cred_opts)
  if not cred then return nil, "profile '" .. tostring(prof.name) .. "': " .. tostring(cerr) end
  return cred, prof
end

-- for_context(ctx, name) -> credential, profile | nil, err (a runbook's ctx).
function M.for_context(ctx, name, cred_opts)
  return M.selected(ctx.opts, name, cred_opts)
end

return M
