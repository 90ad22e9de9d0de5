-- t2t.tenant.session: what the setup runbooks share — opening a tenant (a config profile, or
-- the simulator's seeded pair under --sim), the hand-off file between the two admins, and
-- delivering a new client secret (shown once on a terminal, or written to a 0600 file).
local tenant = require "t2t.tenant"
local log = require "t2t.log"

local M = {}

local function fail(fmt, ...) return nil, tenant.failure("Session", fmt, ...) end

-- must(ctx, v, err) -> v, or ends the run with err (a value and "planned" from --plan pass);
-- a profile that cannot be found is a usage error (exit 2).
function M.must(ctx, v, err)
  if v == nil and err ~= nil and err ~= "planned" then
    if type(err) == "table" and err.code == "Profile" then ctx:usage("%s", tostring(err)) end
    ctx:fail("%s", tostring(err))
  end
  return v
end

-- The running simulator for this session, if any (--sim, or the demo's).
function M.sim(ctx)
  if ctx.opts.sim_instance then return ctx.opts.sim_instance end
  if not ctx.opts.sim then return nil end
  local ok, sim = pcall(require, "t2t.sim")
  local s = ok and (sim.current and sim.current() or sim.instance)
  if s then return s end
  -- never fall through to real tenants when the admin asked for the simulator
  ctx:fail("--sim was given but no simulator is running (this is a bug in t2t; the CLI starts " ..
           "it before the runbook runs)")
end

-- Clients for a profile (t2t.connect): {graph, exo, azure, profile} | nil, err.
M.clients = require("t2t.connect").clients

-- The profile named `name` for `role` ("source"/"target"): from the simulator's seeded pair
-- under --sim (defaults: source contoso, target fabrikam), else from the config file.
function M.profile(ctx, role, name)
  local s = M.sim(ctx)
  if s then
    local p = s.profile or {}
    name = name or (role == "source" and "contoso" or "fabrikam")
    local t = p.tenants and p.tenants[name]
    if not t then
      return nil, tenant.failure("Profile", "the simulator has no tenant '%s' (it has the seeded pair contoso and fabrikam)", name)
    end
    local prof = {}
    for k, v in pairs(t) do prof[k] = v end
    prof.name = name
    return prof, { connect_to = p.connect_to, ca_file = s.ca_file or p.ca_file }
  end
  local config = require "t2t.config"
  if not name and not ctx.opts.profile then return nil end
  local prof, err = config.selected(ctx.opts, name)
  if not prof then
    return nil, tenant.failure("Profile", "profile '%s': %s", tostring(name or ctx.opts.profile), tostring(err))
  end
  return prof, { ca_file = prof.ca_file, connect_to = prof.connect_to }
end

-- The certificate file of a certificate profile, as a credential of the app for t:expiring
-- (its notAfter), when it can be read without a passphrase; else nil.
local function local_certificate(prof)
  if type(prof.certificate) ~= "string" then return nil end
  local cert = require("t2t.crypto").load_cert_file((prof.certificate:gsub("^~", os.getenv("HOME") or "~")))
  if not cert then return nil end
  return { keyCredentials = { { displayName = prof.certificate, endDateTime = tenant.iso(cert:not_after()) } } }
end

-- The profile's own credential (the app t2t signs in as): a secret or certificate of that app
-- expiring within `days` is named, with its date, at the start of every run that uses it.
-- Read from the app registration when the profile may read it, else from a certificate
-- profile's own file; silent for a secret the profile may not read.  Called through
-- ctx:check_expiry (t2t.context), once per credential and run.
function M.warn_own_expiry(t, prof, days)
  if not days or days <= 0 or not prof.client_id then return end
  local app = t.graph and t:gget("/applications(appId='" .. tostring(prof.client_id) .. "')")
  if type(app) ~= "table" then app = local_certificate(prof) end
  if not app then return end
  for _, c in ipairs(t:expiring(app, days)) do
    t:warn("the %s '%s' of app %s, which profile '%s' signs in with, %s %s: make a new one (App registrations " ..
           "> the app > Certificates & secrets) and update the profile before then", c.kind, c.name,
           tostring(prof.client_id), tostring(prof.name), c.expired and "expired on" or "expires on",
           tenant.iso(c.ends):sub(1, 10))
  end
end

-- open(ctx, role, name) -> tenant object (ids discovered) | nil (no profile given) | nil, err.
-- The profile's credential is named when it expires soon (ctx:check_expiry, --warn-expiry).
function M.open(ctx, role, name)
  local prof, http_opts = M.profile(ctx, role, name)
  if not prof then return nil, http_opts end
  local c, err = M.clients(prof, http_opts, M.sim(ctx))
  if not c then return fail("%s", err) end
  local t = tenant.new {
    name = prof.name or name, id = prof.tenant_id, domain = prof.initial_domain or prof.domain,
    cloud = prof.cloud or "global", graph = c.graph, exo = c.exo, azure = c.azure, plan = ctx.plan,
    say = function(line) ctx:say("%s", line) end, log = ctx.log,
  }
  t.profile = prof
  if ctx.preflight then ctx:preflight(role, t) end   -- the runbook's needs, before any change
  local ok, derr = t:discover()
  if not ok then return nil, M.explain_connect(derr, t) end
  if ctx.check_expiry then ctx:check_expiry(t, prof) end
  return t
end

-- Turn a connection/token error into what to fix (wrong cloud, wrong tenant, no consent).
function M.explain_connect(err, t)
  local s = tostring(err)
  local code = s:match("AADSTS(%d+)")
  if code == "90002" or code == "900023" or code == "90038" or s:find("national cloud", 1, true) then
    return tenant.failure("WrongCloud", "tenant %s is not in the %s cloud (%s): set cloud = \"usgovhigh\" | " ..
      "\"dod\" | \"china\" | \"global\" in its profile -- cross-cloud moves are not supported at all",
      tostring(t.name), t.cloud, s)
  end
  if code == "7000222" then
    return tenant.failure("ExpiredSecret", "the admin app's client secret for %s has expired (%s): make a new " ..
      "one in Entra ID > App registrations > the app > Certificates & secrets and update the profile", tostring(t.name), s)
  end
  return err
end

---------------------------------------------------------------------------------------------
-- Hand-off file: what the source admin needs from the target admin (no secrets in it).

function M.read_handoff(path)
  if not require("t2t.core.fs").mode(path) then return nil end          -- none yet
  local s, err = require("t2t.files").read(path, "handoff")
  if not s then return nil, tenant.failure("BadHandoff", "%s", err) end
  local ok, doc = pcall(require("cjson").decode, s)
  if not ok or type(doc) ~= "table" or not doc.app_id then
    return nil, tenant.failure("BadHandoff", "%s is not a t2t hand-off file (expected JSON with app_id, " ..
      "target_tenant_id, ...)", path)
  end
  return doc
end

function M.write_handoff(path, doc)
  local cjson = require "cjson"
  local keys = {}
  for k in pairs(doc) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = string.format("  %s: %s", cjson.encode(k), cjson.encode(doc[k])) end
  local text = "{\n" .. table.concat(parts, ",\n") .. "\n}\n"
  -- a new file renamed into place: a link planted at path is replaced, never written through
  return require("t2t.core.fs").write_private(path, (text:gsub("\\/", "/")))
end

---------------------------------------------------------------------------------------------
-- Secrets.

local function isatty(fd)
  local ok, term = pcall(require, "t2t.core.term")
  return ok and term.isatty(fd)
end

-- Read a secret kept in a file (first line), or nil.
function M.read_secret_file(path)
  local s = path and require("t2t.core.fs").mode(path) and require("t2t.files").first_line(path, "secret")
  if s and #s > 0 then return log.secret(s) end
end

-- Write secret to path with mode 0600, atomically: never world-readable, even when the file
-- existed with another mode.
function M.write_secret_file(path, secret)
  return require("t2t.core.fs").write_private(path, secret .. "\n")
end

-- Deliver a newly made secret: to secret_file (0600), or shown once on the terminal.
-- Returns true or nil, err (then the caller must not make a secret it cannot hand over).
function M.can_deliver(ctx, secret_file)
  if secret_file then return true end
  if ctx.json or not isatty(1) then
    return nil, "a new client secret would have nowhere safe to go: pass --secret-file PATH (written with mode " ..
      "0600), or run on a terminal to see it once"
  end
  return true
end

function M.deliver(ctx, s, secret_file, journal)
  if secret_file then
    -- the second line names the secret: a later run tells this delivered secret from one whose
    -- value was lost (see clean_pending_secret); read_secret_file reads the first line only
    local ok, err = require("t2t.core.fs").write_private(secret_file, string.format(
      "%s\n# t2t client secret '%s' (keyId %s), expires %s\n", s.secret, s.name, tostring(s.keyId), s.ends))
    if not ok then return nil, err end
    if journal then os.remove(journal) end
    ctx:say("  client secret '%s' written to %s (mode 0600); it expires %s", s.name, secret_file, s.ends:sub(1, 10))
    return true
  end
  -- shown once, straight to the terminal: not through ctx:say, which redacts it
  io.write("\n  NEW CLIENT SECRET (shown once; store it in your vault now, t2t does not keep it):\n    ",
           s.secret, "\n  expires ", s.ends:sub(1, 10), "\n\n")
  io.flush()
  -- the journal now names the delivered secret (no value): the next run keeps it and removes
  -- any other under its label (see clean_pending_secret)
  if journal then
    local fs, cjson = require "t2t.core.fs", require "cjson"
    local ok, doc = pcall(cjson.decode, fs.read_file(journal, 64 * 1024) or "")
    if ok and type(doc) == "table" and doc.label == s.name then
      doc.keep = s.keyId
      fs.write_private(journal, cjson.encode(doc))
    end
  end
  return true
end

---------------------------------------------------------------------------------------------
-- Secrets a killed run made: the label of a secret about to be made is recorded first (a
-- journal file), and removed once its value is delivered.  A journal still there at the next
-- run names a secret whose value nobody has: it is removed from the app, never left live.

-- secret_journal(t, app, secret_file) -> the journal's path: beside the secret file, or in the
-- state directory ($XDG_STATE_HOME/t2t, ~/.local/state/t2t) for a secret shown on the terminal.
function M.secret_journal(t, app, secret_file)
  if secret_file then return secret_file .. ".pending" end
  local base = os.getenv("XDG_STATE_HOME")
  if not base or base == "" then base = (os.getenv("HOME") or ".") .. "/.local/state" end
  return string.format("%s/t2t/pending-secret-%s-%s.json", base, tostring(t.id or t.name), tostring(app.id))
end

-- journal_writer(path, app) -> function(label) for tenant:add_secret's `before`.  Once the
-- secret is shown on the terminal, deliver() adds `keep` (its keyId) to the journal.
function M.journal_writer(path, app)
  return function(label)
    local ok, err = require("t2t.core.fs").write_private(path, require("cjson").encode {
      app_object_id = app.id, app_id = app.appId, label = label })
    if not ok then return nil, tenant.failure("Journal", "cannot record the secret about to be made in %s: %s " ..
      "(nothing was made)", path, tostring(err)) end
    return true
  end
end

-- The secret a secret file holds, from its second line: label, keyId | nil.
local function delivered(secret_file)
  local data = secret_file and require("t2t.core.fs").read_file(secret_file, 64 * 1024)
  if not data then return nil end
  return data:match("\n# t2t client secret '([^'\n]*)' %(keyId ([^)\n]*)%)")
end

-- The journal at path when it is about this app: {label, keep = keyId | nil} | nil.
local function read_journal(path, app)
  local text = require("t2t.core.fs").read_file(path, 64 * 1024)
  local ok, doc = pcall(require("cjson").decode, text or "")
  if not ok or type(doc) ~= "table" or doc.app_object_id ~= app.id or type(doc.label) ~= "string" then
    return nil                               -- none, another app's, or not ours: leave it
  end
  return doc
end

-- clean_pending_secret(ctx, t, app, secret_file): remove the secret an interrupted run made but
-- never delivered (its journal is still there), and any other secret under the label of the
-- delivered one (an attempt whose answer was lost, seen only after that run ended); the
-- delivered secret is kept.  true | nil, err
function M.clean_pending_secret(ctx, t, app, secret_file)
  if app.planned then return true end
  local path = M.secret_journal(t, app, secret_file)
  local doc = read_journal(path, app)
  local label, keep = delivered(secret_file)
  if doc and doc.keep then label, keep = doc.label, doc.keep end
  if doc and doc.label ~= label then
    ctx:say("  an earlier run was interrupted after asking for client secret '%s' and before keeping its " ..
            "value: it is removed", doc.label)
    local rok, rerr = t:remove_secrets(app, doc.label, "made by an interrupted run; its value was never kept")
    if not rok then return nil, rerr end
  end
  if label and keep then
    local rok, rerr = t:remove_secrets(app, label, "made beside the delivered one by an attempt whose " ..
                                       "answer was lost; its value was never kept", keep)
    if not rok then return nil, rerr end
  end
  if doc and not ctx.opts.plan then os.remove(path) end
  return true
end

return M
