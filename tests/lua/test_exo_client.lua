-- The exo client against a fake http object: local binding, encoding, paging, errors, retries.
local lu = require "luaunit"
local cjson = require "cjson"
local exo = require "t2t.exo"

local TID = "11111111-2222-3333-4444-555555555555"

-- A fake http client: answers from a queue of responses (or functions of the request).
local function fake_http(responses)
  local h = { requests = {} }
  function h:request(req)
    self.requests[#self.requests + 1] = req
    local r = table.remove(responses, 1)
    if type(r) == "function" then return r(req) end
    if r == nil then error("fake http: no response queued for " .. req.url) end
    if r.transport then return nil, r.transport end
    return r
  end
  return h
end

local function json(status, doc, headers)
  return { status = status, headers = headers or {}, body = cjson.encode(doc) }
end

local function client(responses, extra)
  local sleeps, tokens = {}, {}
  local o = {
    tenant = TID, http = fake_http(responses),
    token = function(force) tokens[#tokens + 1] = force; return force and "tok2" or "tok1" end,
    sleep = function(s) sleeps[#sleeps + 1] = s end,
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  local ex = exo.new(o)
  return ex, o.http, sleeps, tokens
end

local function not_found(text)
  return json(404, { error = { code = "NotFound", message = "Error executing cmdlet",
    details = { { code = "Client", target = "",
      message = "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|" ..
                text } } } })
end

TestExoBind = {}

function TestExoBind.test_unknown_parameter_is_local()
  local ex, http = client({})
  local r, err = ex:invoke("Get-Mailbox", { Identity = "a", Bogus = 1 })
  lu.assertNil(r)
  lu.assertEquals(err.code, "AmbiguousParameterSetException")
  lu.assertEquals(err.cmdlet, "Get-Mailbox")
  lu.assertEquals(err.parameter, "Bogus")
  lu.assertTrue(err["local"])
  lu.assertStrContains(err.message, "'Bogus'")
  lu.assertStrContains(err.message, "AnrSet, Identity, MailboxPlanSet")
  lu.assertEquals(#http.requests, 0)
end

function TestExoBind.test_missing_required_names_sets()
  local _, err = exo.bind("New-MailUser", { Name = "x" })
  lu.assertEquals(err.code, "ParameterBindingException")
  lu.assertStrContains(err.message, "New-MailUser")
  lu.assertStrContains(err.message, "DisabledUser needs -ExternalEmailAddress")
  lu.assertStrContains(err.message, "MicrosoftOnlineServicesID needs")
  lu.assertTrue(#err.sets >= 3)
  local b = assert(exo.bind("New-MailUser", { Name = "x", ExternalEmailAddress = "a@b.c" }))
  lu.assertEquals(b.set, "DisabledUser")
end

function TestExoBind.test_no_set_takes_all()
  local _, err = exo.bind("Get-Mailbox", { Identity = "a", Anr = "b" })
  lu.assertEquals(err.code, "AmbiguousParameterSetException")
  lu.assertStrContains(err.message, "parameter set cannot be resolved")
end

function TestExoBind.test_case_aliases_and_canonical_names()
  local b = assert(exo.bind("remove-mailuser", { identity = "x", cf = false }))
  lu.assertEquals(b.cmdlet, "Remove-MailUser")
  lu.assertEquals(b.params, { Identity = "x", Confirm = false })
  lu.assertEquals(assert(exo.bind("Get-MoveRequest", { MoveStatus = "inprogress" })).params,
                  { Status = "InProgress" })
end

function TestExoBind.test_enums_strict_locally_prefix_on_service()
  local _, err = exo.bind("Get-Recipient", { RecipientTypeDetails = { "User" } })
  lu.assertEquals(err.parameter, "RecipientTypeDetails")
  lu.assertStrContains(err.message, "Valid values: ")
  lu.assertStrContains(err.message, "UserMailbox")
  local b = assert(exo.bind("Get-Recipient", { RecipientTypeDetails = { "usermail" } },
                            { prefix_enums = true }))
  lu.assertEquals(b.params.RecipientTypeDetails, { "UserMailbox" })
end

function TestExoBind.test_value_types()
  lu.assertNil((exo.bind("Set-MailUser", { Identity = "x", ExchangeGuid = "nope" })))
  lu.assertNil((exo.bind("Get-Mailbox", { ResultSize = 0 })))
  lu.assertNil((exo.bind("New-OrganizationRelationship",
    { Name = "n", DomainNames = { "d" }, Enabled = "yes" })))
  lu.assertEquals(assert(exo.bind("Get-Mailbox", { ResultSize = "unlimited" })).params.ResultSize,
                  "Unlimited")
  -- the documented deviations (generator overrides)
  assert(exo.bind("Test-MigrationServerAvailability", { Endpoint = "e", TestMailbox = "m" }))
  assert(exo.bind("Set-OrganizationRelationship", { Identity = "o", MailboxMoveCapability = "None" }))
end

function TestExoBind.test_unknown_cmdlet()
  local _, err = exo.bind("Get-Nothing", {})
  lu.assertEquals(err.code, "CommandNotFoundException")
end

TestExoEncode = {}

function TestExoEncode.test_body_shapes()
  local b = assert(exo.bind("Set-MailUser", {
    Identity = "u", EmailAddresses = { add = { "x500:/o=ExchangeLabs/cn=a" } },
    EnableLitigationHoldForMigration = true }))
  local doc = cjson.decode(exo.encode_body(b))
  lu.assertEquals(doc.CmdletInput.CmdletName, "Set-MailUser")
  local p = doc.CmdletInput.Parameters
  lu.assertEquals(p.EmailAddresses["@odata.type"], "#Exchange.GenericHashTable")
  lu.assertEquals(p.EmailAddresses.add, { "x500:/o=ExchangeLabs/cn=a" })
  lu.assertIsTrue(p.EnableLitigationHoldForMigration)
end

function TestExoEncode.test_empty_array_datetime_bytes()
  local b = assert(exo.bind("New-MigrationBatch", { Name = "b", CSVData = "EmailAddress\na@b\n",
    NotificationEmails = {}, CompleteAfter = 0 }))
  local s = exo.encode_body(b)
  lu.assertStrContains(s, '"NotificationEmails":[]')
  lu.assertStrContains(s, '"CompleteAfter":"1970-01-01T00:00:00.0000000Z"')
  local p = cjson.decode(s).CmdletInput.Parameters
  lu.assertEquals(p.CSVData["@odata.type"], "#Exchange.ByteArrayType")
  lu.assertEquals(exo.base64_decode(p.CSVData.Data), "EmailAddress\na@b\n")
  lu.assertStrContains(exo.encode_body(assert(exo.bind("Get-OrganizationConfig", {}))),
                       '"Parameters":{}')
end

function TestExoEncode.test_hashtable_array_sibling_type()
  local b = { cmdlet = "Set-MailUser", params = { EmailAddresses = { { add = "a" }, { remove = "b" } } } }
  local p = cjson.decode(exo.encode_body(b)).CmdletInput.Parameters
  lu.assertEquals(p["EmailAddresses@odata.type"], "#Collection(Exchange.GenericHashTable)")
  lu.assertEquals(p.EmailAddresses[2]["@odata.type"], "#Exchange.GenericHashTable")
end

TestExoInvoke = {}

function TestExoInvoke.test_paging_headers_and_strip()
  local next_url = "https://outlook.office365.com/adminapi/beta/" .. TID ..
                   "/InvokeCommand?$skiptoken=2"
  local ex, http = client({
    json(200, { ["@adminapi.warnings"] = { "w1" }, value = {
      { Name = "a", ["ExchangeGuid@odata.type"] = "#Guid", ExchangeGuid = "g" }, { Name = "b" } },
      ["@odata.nextLink"] = next_url }),
    json(200, { value = { { Name = "c" } } }),
  })
  local list, warnings = assert(ex:invoke("Get-Mailbox", { ResultSize = "Unlimited" }))
  lu.assertEquals(list, { { Name = "a", ExchangeGuid = "g" }, { Name = "b" }, { Name = "c" } })
  lu.assertEquals(warnings, { "w1" })
  local r1, r2 = http.requests[1], http.requests[2]
  lu.assertEquals(r1.url, "https://outlook.office365.com/adminapi/beta/" .. TID .. "/InvokeCommand")
  lu.assertEquals(r2.url, next_url)
  lu.assertEquals(r1.body, r2.body)
  lu.assertEquals(r1.method, "POST")
  lu.assertEquals(r1.headers["X-AnchorMailbox"],
    "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@" .. TID)
  lu.assertEquals(r1.headers.Prefer, "odata.maxpagesize=1000")
  lu.assertEquals(r1.headers.Authorization, "Bearer tok1")
  lu.assertEquals(r1.headers["client-request-id"], r2.headers["client-request-id"])
end

function TestExoInvoke.test_result_size_caps_pages()
  local ex, http = client({
    json(200, { value = { { Name = "a" }, { Name = "b" } }, ["@odata.nextLink"] = "https://outlook.office365.com/n" }),
    json(200, { value = { { Name = "c" }, { Name = "d" } }, ["@odata.nextLink"] = "https://outlook.office365.com/n2" }),
  }, { page_size = 2 })
  local list = assert(ex.cmd["Get-Mailbox"] { ResultSize = 3 })
  lu.assertEquals(#list, 3)
  lu.assertEquals(http.requests[1].headers.Prefer, "odata.maxpagesize=2")
  lu.assertEquals(http.requests[2].headers.Prefer, "odata.maxpagesize=1")
end

function TestExoInvoke.test_domain_tenant_anchor_and_cloud()
  local ex, http = client({ json(200, { value = {} }) },
                          { tenant = "contoso.onmicrosoft.com", cloud = "usgovhigh" })
  assert(ex:invoke("Get-OrganizationConfig"))
  lu.assertEquals(http.requests[1].url,
    "https://outlook.office365.us/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand")
  lu.assertEquals(http.requests[1].headers["X-AnchorMailbox"],
    "UPN:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@contoso.onmicrosoft.com")
end

TestExoErrors = {}

function TestExoErrors.test_not_found_details()
  local ex = client({ not_found("The operation couldn't be performed because object 'x' couldn't be found on 'A.PROD.OUTLOOK.COM'.") })
  local r, err = ex:invoke("Get-Mailbox", { Identity = "x" })
  lu.assertNil(r)
  lu.assertEquals(err.code, "ManagementObjectNotFoundException")
  lu.assertEquals(err.exception,
    "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException")
  lu.assertEquals(err.error_id, "Ex6F9304")
  lu.assertEquals(err.status, 404)
  lu.assertEquals(err.service, "exo")
  lu.assertEquals(err.cmdlet, "Get-Mailbox")
  lu.assertFalse(err.retryable)
  lu.assertStrContains(err.message, "object 'x' couldn't be found")
  lu.assertStrContains(tostring(err), "couldn't be found")
end

function TestExoErrors.test_resolution_order_and_case()
  local e = exo.parse_error(json(500, { Error = { Code = "InternalServerError", Message = "Invalid Operation",
    Details = { { Message = "ExAA|Microsoft.Exchange.Data.StorageTransientException|detail text" } },
    InnerError = { InternalException = { Message = "inner text", Type = "X" } } } }), "Get-User")
  lu.assertEquals(e.message, "inner text")
  lu.assertEquals(e.code, "StorageTransientException")
  lu.assertTrue(e.retryable)
  local e2 = exo.parse_error(json(400, { error = { message = "Invalid Operation" } }), "Get-User")
  lu.assertEquals(e2.message, "Invalid Operation")
end

function TestExoErrors.test_nul_403_not_retried()
  local ex, http = client({ { status = 403, headers = { ["Content-Encoding"] = "gzip" },
                              body = string.rep("\0", 32) } })
  local r, err = ex:invoke("Get-Mailbox", {})
  lu.assertNil(r)
  lu.assertEquals(err.code, "Forbidden")
  lu.assertEquals(err.status, 403)
  lu.assertStrContains(err.message, "directory role")
  lu.assertStrContains(err.message, "not permitted")
  lu.assertEquals(#http.requests, 1)
end

TestExoRetry = {}

function TestExoRetry.test_503_then_ok_backoff()
  local ex, http, sleeps = client({ json(503, { error = { message = "busy" } }),
                                    json(504, {}), json(200, { value = { { A = 1 } } }) })
  local list = assert(ex:invoke("Get-OrganizationConfig"))
  lu.assertEquals(list, { { A = 1 } })
  lu.assertEquals(sleeps, { 2, 4 })
  lu.assertEquals(#http.requests, 3)
end

function TestExoRetry.test_429_retry_after_and_concurrency_text()
  local ex, _, sleeps = client({
    json(429, {}, { ["Retry-After"] = "0.5" }),
    { status = 429, headers = {}, body = "You have reached the maximum number of concurrent " ..
      "requests per tenant. Please wait and try again" },
    json(200, { value = {} }) })
  assert(ex:invoke("Get-OrganizationConfig"))
  lu.assertEquals(sleeps, { 0.5, 4 })
end

function TestExoRetry.test_transient_exception_names()
  local ex = client({
    json(500, { error = { details = { { message = "Ex1|Microsoft.Exchange.Data.Directory.DCOverloadedException|dc" } } } }),
    json(200, { value = {} }) })
  assert(ex:invoke("Get-OrganizationConfig"))
end

function TestExoRetry.test_401_once_with_fresh_token()
  local ex, http, sleeps, tokens = client({ { status = 401, headers = {}, body = "" },
                                            json(200, { value = {} }) })
  assert(ex:invoke("Get-OrganizationConfig"))
  lu.assertEquals(tokens, { false, true })
  lu.assertEquals(http.requests[2].headers.Authorization, "Bearer tok2")
  lu.assertEquals(sleeps, {})
  local ex2, http2 = client({ { status = 401, headers = {}, body = "" },
                              { status = 401, headers = {}, body = "" } })
  local r, err = ex2:invoke("Get-OrganizationConfig")
  lu.assertNil(r)
  lu.assertEquals(err.status, 401)
  lu.assertStrContains(err.message, "Exchange.ManageAsApp")
  lu.assertEquals(#http2.requests, 2)
end

function TestExoRetry.test_gives_up_after_max_retries()
  local q = {}
  for i = 1, 10 do q[i] = json(503, {}) end
  local ex, http = client(q, { max_retries = 2 })
  local _, err = ex:invoke("Get-OrganizationConfig")
  lu.assertEquals(err.status, 503)
  lu.assertEquals(err.attempts, 3)
  lu.assertEquals(#http.requests, 3)
end

function TestExoRetry.test_transport_error_retried_same_request_id()
  local ex, http = client({ { transport = { code = "reset", message = "connection reset" } },
                            json(200, { value = {} }) })
  assert(ex:invoke("Get-OrganizationConfig"))
  lu.assertEquals(http.requests[1].headers["client-request-id"],
                  http.requests[2].headers["client-request-id"])
end

function TestExoRetry.test_wait_visible_rereads()
  local t = 0
  local ex, http = client({ not_found("gone"), not_found("gone"), json(200, { value = { { N = 1 } } }) },
                          { now = function() return t end, poll = 5 })
  ex.sleep = function(s) t = t + s end
  local list = assert(ex:invoke("Get-MailUser", { Identity = "new" }, { wait_visible = 60 }))
  lu.assertEquals(list, { { N = 1 } })
  lu.assertEquals(#http.requests, 3)
  lu.assertEquals(t, 10)
  -- bounded: gives up with the 404 once the time is over
  t = 0
  local q = {}
  for i = 1, 20 do q[i] = not_found("gone") end
  local ex2 = client(q, { now = function() return t end, poll = 5 })
  ex2.sleep = function(s) t = t + s end
  local _, err = ex2:invoke("Get-MailUser", { Identity = "new" }, { wait_visible = 12 })
  lu.assertEquals(err.code, "ManagementObjectNotFoundException")
  lu.assertEquals(t, 12)
end

-- SecureString values travel RSA-encrypted (PKCS#1 v1.5, base64) with the module's public key
-- (wire.md §2.4): without a key the call fails locally, before any request; never in clear.
function TestExoEncode.test_securestring_sealed_or_refused()
  local crypto = require "t2t.crypto"
  local ok200 = function() return json(200, { value = {} }) end
  local ex, http = client({ ok200 })
  local list, err = ex:invoke("Set-MailUser", { Identity = "u1", Password = "Pa55word!" })
  lu.assertNil(list)
  lu.assertEquals(err.code, "SecureStringKey")
  lu.assertStrContains(err.message, "Set-MailUser -Password")
  lu.assertNotStrContains(err.message, "Pa55word!")
  lu.assertEquals(#http.requests, 0)
  -- with the key (here as RSAKeyValue XML, the form the module publishes): sealed
  local key = assert(crypto.generate_key("rsa", 2048))
  local jwk = key:jwk()
  local function b64(u) return crypto.base64_encode(crypto.base64url_decode(u)) end
  local xml = "<RSAKeyValue><Modulus>" .. b64(jwk.n) .. "</Modulus><Exponent>" .. b64(jwk.e)
    .. "</Exponent></RSAKeyValue>"
  ex, http = client({ ok200 }, { secure_string_key = xml })
  assert(ex:invoke("Set-MailUser", { Identity = "u1", Password = "Pa55word!" }))
  lu.assertNotStrContains(http.requests[1].body, "Pa55word!")
  local sent = cjson.decode(http.requests[1].body).CmdletInput.Parameters.Password
  lu.assertEquals(key:decrypt(crypto.base64_decode(sent)), "Pa55word!")
  lu.assertEquals(cjson.decode(http.requests[1].body).CmdletInput.Parameters.Identity, "u1")
  -- a PEM file path works too; a bad one says why
  local path = os.tmpname()
  local f = assert(io.open(path, "w")); f:write(key:public_pem()); f:close()
  ex, http = client({ ok200 }, { secure_string_key = path })
  assert(ex:invoke("Set-MailUser", { Identity = "u1", Password = "x" }))
  lu.assertEquals(key:decrypt(crypto.base64_decode(cjson.decode(http.requests[1].body).CmdletInput.Parameters.Password)), "x")
  os.remove(path)
  ex = client({}, { secure_string_key = path })
  _, err = ex:invoke("Set-MailUser", { Identity = "u1", Password = "x" })
  lu.assertEquals(err.code, "SecureStringKey")
  lu.assertStrContains(err.message, path)
  lu.assertNil(crypto.rsa_from_xml("<RSAKeyValue><Modulus>AQAB</Modulus></RSAKeyValue>"))
end

-- A cmdlet that changes something is never sent again blindly after an unknown outcome (HTTP
-- 500/502/504, a lost answer): the caller looks first.  A Get- cmdlet is retried, and may be
-- re-sent by the transport (idempotent = true).  Issue 9, defect 5.
TestExoUnknownOutcome = {}

function TestExoUnknownOutcome.test_changing_cmdlet_500_is_returned_as_unknown()
  for _, status in ipairs { 500, 502, 504 } do
    local ex, http = client({ json(status, { error = { code = "InternalServerError", message = "boom" } }) })
    local r, err = ex:invoke("Add-DistributionGroupMember", { Identity = "g", Member = "a@x" })
    lu.assertNil(r)
    lu.assertTrue(err.unknown_outcome, tostring(status))
    lu.assertEquals(#http.requests, 1)
    lu.assertFalse(http.requests[1].idempotent)
  end
  local ex, http = client({ { transport = { code = "reset", message = "lost", retryable = true } } })
  local _, err = ex:invoke("Set-Mailbox", { Identity = "a", HiddenFromAddressListsEnabled = true })
  lu.assertTrue(err.unknown_outcome)
  lu.assertEquals(#http.requests, 1)
end

function TestExoUnknownOutcome.test_reading_cmdlet_is_retried()
  local ex, http, sleeps = client({
    json(500, { error = { code = "InternalServerError", message = "boom" } }),
    { transport = { code = "reset", message = "lost", retryable = true } },
    json(200, { value = { { Name = "g" } } }) })
  local r = assert(ex:invoke("Get-DistributionGroup", { Identity = "g" }))
  lu.assertEquals(r[1].Name, "g")
  lu.assertEquals(#http.requests, 3)
  lu.assertEquals(#sleeps, 2)
  lu.assertTrue(http.requests[1].idempotent)
end
