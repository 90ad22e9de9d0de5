-- t2t.config.template: the commented config file `t2t init` writes.  It parses as it is (no
-- profiles yet); each commented profile is one way to sign in, ready to uncomment and fill in.
local M = {}

M.TEXT = [==[
-- t2t config: tenant profiles, one per tenant you administer (t2t --profile NAME, connect("NAME")).
-- This file is DATA: one `return { ... }` of strings, numbers, booleans and tables; code is refused.
-- Secrets are never written here: refer to them as "env:VARIABLE" or "file:/path" (mode 0600).
-- Check it with: t2t doctor
return {
  -- default = "contoso",            -- the profile used when none is named
  -- dns = "10.0.0.53",               -- DNS servers for lookups (DKIM, SPF, DMARC), as --dns; default /etc/resolv.conf

  profiles = {
    -- An app registration with a client secret (Entra ID > App registrations > your app):
    -- contoso = {
    --   tenant = "contoso.onmicrosoft.com",            -- or tenant_id = "GUID"
    --   client_id = "00000000-0000-0000-0000-000000000000",
    --   secret = "env:CONTOSO_CLIENT_SECRET",          -- or "file:/home/me/.t2t/contoso.secret"
    -- },

    -- An app with a certificate (PEM with its key, or key = "/path/key.pem" beside it):
    -- fabrikam = {
    --   tenant = "fabrikam.onmicrosoft.com",
    --   client_id = "00000000-0000-0000-0000-000000000000",
    --   certificate = "/home/me/.t2t/fabrikam.pem",
    --   -- key_passphrase = "env:FABRIKAM_KEY_PASSPHRASE",
    -- },

    -- An admin signing in interactively (device code; Exchange Online PowerShell's public app):
    -- admin = { tenant = "contoso.onmicrosoft.com", device_code = true },

    -- Other clouds: cloud = "usgov" | "usgovhigh" | "dod" | "china" (default "global").
    -- Key Vault / ARM work (setup-target --keyvault): subscription = "GUID".
  },
}

-- Without a profile: the AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or
-- AZURE_CLIENT_CERTIFICATE_PATH) environment variables work as a profile named "env".
]==]

-- write(path) -> true | nil, err: the template at path (mode 0600, parent made 0700); never over
-- an existing file.
function M.write(path)
  local fs = require "t2t.core.fs"
  local f = io.open(path, "r")
  if f then
    f:close()
    return nil, path .. " exists already: t2t init never overwrites a config (check it with 't2t doctor')"
  end
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then fs.mkdir(dir, tonumber("700", 8)) end
  return fs.write_private(path, M.TEXT)
end

return M
