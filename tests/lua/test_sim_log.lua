-- `t2t sim --log FILE --log-bodies`: request bodies in the log with every secret masked
-- (t2t.sim.handler.logged_body), and the end-to-end log of a running simulator.
local lu = require "luaunit"
local cjson = require "cjson"
local handler = require "t2t.sim.handler"

local function req(body, ct)
  local r = { body = body, headers = { ["content-type"] = ct or "application/json" } }
  if (ct or "application/json"):find("json", 1, true) then r.json = cjson.decode(body) end
  return r
end

TestSimLogBodies = {}

function TestSimLogBodies.test_graph_password_profile_and_keys_are_masked()
  local b = handler.logged_body("graph", req(cjson.encode {
    displayName = "Ada", mailNickname = "ada",
    passwordProfile = { password = "Pa55word!x", forceChangePasswordNextSignIn = true },
    keyCredentials = { { type = "AsymmetricX509Cert", key = "MIIBkey" } } }))
  lu.assertEquals(b.displayName, "Ada")
  lu.assertEquals(b.passwordProfile, "***")
  lu.assertEquals(b.keyCredentials[1].key, "***")
  lu.assertEquals(b.keyCredentials[1].type, "AsymmetricX509Cert")
  lu.assertNotStrContains(cjson.encode(b), "Pa55word")
end

function TestSimLogBodies.test_exo_secure_string_and_credential_parameters_are_masked()
  local b = handler.logged_body("exo", req(cjson.encode { CmdletInput = { CmdletName = "New-MailUser",
    Parameters = { Name = "u1", Password = "c2VhbGVk", MicrosoftOnlineServicesID = "u1@x.com" } } }))
  lu.assertEquals(b.CmdletInput.Parameters.Name, "u1")
  lu.assertEquals(b.CmdletInput.Parameters.Password, "***")
  local e = handler.logged_body("exo", req(cjson.encode { CmdletInput = {
    CmdletName = "New-MigrationEndpoint", Parameters = { Name = "ep",
      Credentials = { UserName = "app", Password = "s3cr3t-value" }, OAuthCode = "abc123" } } }))
  lu.assertEquals(e.CmdletInput.Parameters.Credentials, "***")
  lu.assertEquals(e.CmdletInput.Parameters.OAuthCode, "***")
  lu.assertEquals(e.CmdletInput.Parameters.Name, "ep")
end

function TestSimLogBodies.test_token_form_secrets_are_masked()
  local b = handler.logged_body("login", req("client_id=abc&client_secret=S3cr%2Bet&scope="
    .. "https%3A%2F%2Fgraph.microsoft.com%2F.default&grant_type=client_credentials"
    .. "&client_assertion=eyJhbGc.x.y", "application/x-www-form-urlencoded"))
  lu.assertEquals(b.client_id, "abc")
  lu.assertEquals(b.scope, "https://graph.microsoft.com/.default")
  lu.assertEquals(b.client_secret, "***")
  lu.assertEquals(b.client_assertion, "***")
end

function TestSimLogBodies.test_key_vault_secret_value_is_masked_graph_value_is_not()
  lu.assertEquals(handler.logged_body("keyvault", req('{"value":"hunter22","contentType":"t"}')).value, "***")
  lu.assertEquals(handler.logged_body("graph", req('{"value":"x"}')).value, "x")
  lu.assertStrContains(handler.logged_body("graph", { body = "abc", headers = {} }), "3 bytes")
  lu.assertNil(handler.logged_body("graph", { body = "", headers = {} }))
end
