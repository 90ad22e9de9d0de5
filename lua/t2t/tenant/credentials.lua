-- t2t.tenant.credentials: the credential half of t2t.tenant (installed into it as methods): the
-- app's client secrets -- made once, never left live with nobody holding the value -- its
-- certificates, and which of them expire soon.  See t2t.tenant for the contract.
local log = require "t2t.log"

return function(M, H)
local failure = H.failure

local time = require "t2t.time"
local iso, parse_iso = time.iso, time.parse_iso
M.iso, M.parse_iso = iso, parse_iso

-- Credentials of the app that expire within `window_days` (or already did): list of
-- {kind, name, ends (epoch), expired}.
function M:expiring(app, window_days)
  local now = self.now()
  local out = {}
  local function one(kind, c)
    local ends = parse_iso(c.endDateTime)
    if not ends then return end
    local name = c.displayName or c.hint or c.keyId or "?"
    if ends <= now then
      out[#out + 1] = { kind = kind, name = name, ends = ends, expired = true }
    elseif ends <= now + (window_days or 0) * 86400 then
      out[#out + 1] = { kind = kind, name = name, ends = ends, expired = false }
    end
  end
  for _, c in ipairs(app.passwordCredentials or {}) do one("secret", c) end
  for _, c in ipairs(app.keyCredentials or {}) do one("certificate", c) end
  return out
end

-- check_credentials(app, window_days): expiring(), with a warning for each.
function M:check_credentials(app, window_days)
  local out = self:expiring(app, window_days)
  for _, c in ipairs(out) do
    if c.expired then
      self:warn("the app's %s '%s' expired on %s: an endpoint using it fails to authenticate " ..
                "(AADSTS7000222); add a new one (setup-target --new-secret) and update the endpoint",
                c.kind, c.name, iso(c.ends):sub(1, 10))
    else
      self:warn("the app's %s '%s' expires on %s, within %d days (--warn-expiry): " ..
                "plan a rotation (setup-target --new-secret) before then", c.kind, c.name,
                iso(c.ends):sub(1, 10), window_days)
    end
  end
  return out
end

-- remove_secrets(app, label, why [, keep]): delete the app's client secrets named `label` (one
-- change each); with `keep`, the others beside the secret whose keyId it is, and only when the
-- app holds that one.  Used for secrets whose value was lost: with a lost response, or by a
-- killed run.
function M:remove_secrets(app, label, why, keep)
  local a, err = self:gget("/applications/" .. app.id)
  if err then return nil, err end
  local creds = a and a.passwordCredentials or {}
  if keep then                    -- siblings of a secret this app holds, never of another app's
    local held = false
    for _, c in ipairs(creds) do held = held or c.keyId == keep end
    if not held then return true end
  end
  for _, c in ipairs(creds) do
    if c.displayName == label and (keep == nil or c.keyId ~= keep) then
      local _, derr = self:checked({
        kind = "delete", target = "unusable client secret '" .. label .. "' (keyId " .. tostring(c.keyId) ..
          ") on application '" .. tostring(app.displayName) .. "'", tenant = self.name, operation = "add_secret",
        note = why,
        apply = function()   -- 204, no body: success is "no error"
          local r, e = self:gpost("/applications/" .. app.id .. "/removePassword", { keyId = c.keyId })
          if r == nil and e ~= nil then return nil, e end
          return true
        end,
      }, function()
        local now = self:gget("/applications/" .. app.id)
        for _, x in ipairs(now and now.passwordCredentials or {}) do if x.keyId == c.keyId then return nil end end
        return true
      end)
      if derr and derr ~= "planned" then return nil, derr end
    end
  end
  return true
end

-- Once a secret is made after attempts whose outcome was unknown: any other secret under its
-- label is one of those attempts' (the directory may show it only now, replication being
-- eventual), so it is removed.  A removal that fails here is left to the next run (the label
-- and keyId are on record: t2t.tenant.session.clean_pending_secret); the new secret stands.
local function sweep_siblings(self, app, label, keep)
  local ok, err = self:remove_secrets(app, label, "made by an earlier attempt whose answer was lost", keep)
  if not ok then
    self:warn("could not check for another client secret '%s' on application '%s' (%s): the next " ..
              "setup-target run removes it", label, tostring(app.displayName), tostring(err))
  end
end

-- add_secret(app, {name, days, before = fn(label) -> true | nil, err}): a new client secret.
-- Returns {secret, keyId, ends, name} (the secret is registered with the log redactor and never
-- printed by t2t), or nil, "planned" | err.  before(label) runs ahead of every request that may
-- make one: the caller records the label durably, so a secret made by a run that is killed
-- before its value is kept can be found and removed by the next run (remove_secrets).
-- A secret whose response was lost can never be read again: it is removed and made anew; every
-- attempt carries the same label, so whatever one of them made is found under it.
function M:add_secret(app, o)
  o = o or {}
  local days = o.days or 180
  local label = (o.name or "t2t migration") .. " " .. iso(self.now())
  local ends = iso(self.now() + days * 86400)
  local target = "client secret '" .. label .. "' on application '" .. tostring(app.displayName) .. "'"
  if app.planned then
    self.plan:change { kind = "add", target = target, tenant = self.name, operation = "add_secret",
      after = { displayName = label, endDateTime = ends }, apply = function() end }
    return nil, "planned"
  end
  if o.before then
    local ok, berr = o.before(label)
    if not ok then return nil, berr end
  end
  local unknown = false
  for _ = 1, 3 do
    local res, err = self.plan:change {
      kind = "add", target = target, tenant = self.name, operation = "add_secret",
      after = { displayName = label, endDateTime = ends },
      note = "valid " .. days .. " days; the value is shown once and never logged",
      apply = function()
        return self:gpost("/applications/" .. app.id .. "/addPassword",
                          { passwordCredential = { displayName = label, endDateTime = ends } })
      end,
    }
    if err == "planned" then return nil, "planned" end
    if res and res.secretText then
      log.secret(res.secretText)
      if unknown then sweep_siblings(self, app, label, res.keyId) end
      return { secret = res.secretText, keyId = res.keyId, ends = ends, name = label }
    end
    -- Unknown outcome: a secret made without us seeing its value is useless; remove it.
    unknown = true
    self.sleep(self.poll)
    local ok, rerr = self:remove_secrets(app, label, "its value was lost with the response")
    if not ok then return nil, rerr end
    if err and type(err) == "table" and err.retryable == false and err.status and err.status < 500 then
      return nil, err
    end
  end
  return nil, failure("SecretFailed", "could not add a client secret to application '%s'", app.displayName)
end

-- add_certificate(app, {cer = base64 DER, thumbprint_b64 = base64 SHA-1, subject, ends, starts}):
-- the certificate as an AsymmetricX509Cert/Verify key credential (kept with the existing ones).
function M:add_certificate(app, o)
  local target = "certificate '" .. tostring(o.subject) .. "' on application '" .. app.displayName .. "'"
  local cred = { type = "AsymmetricX509Cert", usage = "Verify", key = o.cer,
                 customKeyIdentifier = o.thumbprint_b64, displayName = o.subject,
                 startDateTime = o.starts and iso(o.starts) or iso(self.now()),
                 endDateTime = iso(o.ends) }
  if app.planned then
    self.plan:change { kind = "add", target = target, tenant = self.name, operation = "add_certificate",
                       after = { displayName = o.subject, endDateTime = cred.endDateTime }, apply = function() end }
    return nil, "planned"
  end
  local function has(a)
    for _, k in ipairs(a and a.keyCredentials or {}) do
      if k.customKeyIdentifier and o.thumbprint_b64 and k.customKeyIdentifier == o.thumbprint_b64 then return k end
    end
  end
  local current = self:gget("/applications/" .. app.id) or app
  if has(current) then
    self:note("= certificate '%s' already on application '%s'", tostring(o.subject), app.displayName)
    return true
  end
  local keep = {}
  for _, k in ipairs(current.keyCredentials or {}) do
    keep[#keep + 1] = { keyId = k.keyId, type = k.type, usage = k.usage, key = k.key,
                        customKeyIdentifier = k.customKeyIdentifier, displayName = k.displayName,
                        startDateTime = k.startDateTime, endDateTime = k.endDateTime }
  end
  keep[#keep + 1] = cred
  local res, err = self.plan:change {
    kind = "add", target = target, tenant = self.name, operation = "add_certificate",
    after = { displayName = o.subject, endDateTime = cred.endDateTime },
    apply = function() return self:gpatch("/applications/" .. app.id, { keyCredentials = keep }) end,
  }
  if err == "planned" then return nil, "planned" end
  if res then return true end
  if self:eventually(function() return has(self:gget("/applications/" .. app.id)) end) then return true end
  return nil, err
end

end
