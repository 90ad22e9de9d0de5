-- The exo client against the simulator on loopback: the real http client, TLS, connect_to,
-- tokens from the simulator, the production URL https://outlook.office365.com/adminapi/...
local lu = require "luaunit"
local exo = require "t2t.exo"

local EXADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"
local S                                    -- one simulator for the file

local function sim()
  if S then return S end
  S = assert(require("t2t.sim").start { users = 120, seed = 3 })
  return S
end

local function tenant(name) return sim().profile.tenants[name] end

local function client(name, o)
  o = o or {}
  local s, t = sim(), tenant(name)
  local http = require("t2t.http").client { service = "exo", ca_file = s.ca_file,
                                            connect_to = s.connect_to }
  local calls = 0
  local function token(refresh)
    calls = calls + 1
    local r = assert(s:control("POST", "/_sim/token", { tid = t.tenant_id,
      aud = "https://outlook.office365.com", roles = o.roles or { "Exchange.ManageAsApp" },
      wids = o.wids or { EXADMIN }, appid = t.client_id }))
    return r.access_token
  end
  local ex = exo.new { tenant = t.tenant_id, token = token, http = http, page_size = o.page_size,
                       retry_base = 0.01, poll = 0.2 }
  return ex, function() return calls end
end

TestExoE2E = {}

function TestExoE2E.test_paging_many_pages()
  local ex = client("contoso", { page_size = 7 })
  local list, warnings = assert(ex:invoke("Get-Mailbox", { ResultSize = "Unlimited" }))
  lu.assertEquals(#list, 120)
  lu.assertEquals(warnings, {})
  local seen = {}
  for _, m in ipairs(list) do
    lu.assertNil(seen[m.Guid])
    seen[m.Guid] = true
    lu.assertNil(m["ExchangeGuid@odata.type"])          -- annotations stripped
  end
  lu.assertEquals(#assert(ex.cmd["Get-Mailbox"] { ResultSize = 10 }), 10)
end

function TestExoE2E.test_validation_local_and_remote_and_errors()
  local ex = client("contoso")
  local r, err = ex:invoke("Get-Mailbox", { Nope = 1 })
  lu.assertNil(r)
  lu.assertTrue(err["local"])
  -- remote: the service's own binding (prefix enum accepted there, strict here)
  r, err = ex:invoke("Get-Recipient", { RecipientTypeDetails = "MailUniversalSec" }, { unchecked = true })
  lu.assertNotNil(r, tostring(err))
  r, err = ex:invoke("Get-Recipient", { RecipientTypeDetails = "Bogus" }, { unchecked = true })
  lu.assertNil(r)
  lu.assertEquals(err.status, 400)
  lu.assertEquals(err.code, "ParameterBindingException")
  r, err = ex:invoke("Get-Mailbox", { Identity = "nobody@contoso.com" })
  lu.assertNil(r)
  lu.assertEquals(err.status, 404)
  lu.assertEquals(err.code, "ManagementObjectNotFoundException")
  lu.assertStrContains(err.exception, "Microsoft.Exchange.Configuration.Tasks.")
  lu.assertStrContains(err.message, "couldn't be found")
end

function TestExoE2E.test_nul_403_without_directory_role()
  local ex = client("contoso", { wids = {} })
  local r, err = ex:invoke("Get-OrganizationConfig", {})
  lu.assertNil(r)
  lu.assertEquals(err.code, "Forbidden")
  lu.assertStrContains(err.message, "directory role")
end

function TestExoE2E.test_401_refreshes_once()
  local ex, calls = client("contoso", { roles = { "User.Read.All" } })
  local r, err = ex:invoke("Get-OrganizationConfig", {})
  lu.assertNil(r)
  lu.assertEquals(err.status, 401)
  lu.assertEquals(calls(), 2)
end

function TestExoE2E.test_create_then_reread_under_lag()
  local s = sim()
  assert(s:control("POST", "/_sim/faults", { faults = "lag=1s" }))
  local ex = client("fabrikam")
  local ok, err = ex:invoke("New-MailUser", { Name = "e2e-lag", ExternalEmailAddress = "e2e@contoso.com",
                                              PrimarySmtpAddress = "e2e-lag@fabrikam.com" })
  assert(s:control("POST", "/_sim/faults", { faults = "" }))
  lu.assertNotNil(ok, tostring(err))
  assert(s:control("POST", "/_sim/faults", { faults = "lag=1s" }))
  local list = ex:invoke("Get-MailUser", { Identity = "e2e-lag" }, { wait_visible = 10 })
  assert(s:control("POST", "/_sim/faults", { faults = "" }))
  lu.assertNotNil(list)
  lu.assertEquals(list[1].PrimarySmtpAddress, "e2e-lag@fabrikam.com")
end

function TestExoE2E.test_zz_stop()
  if S then S:stop(); S = nil end
end
