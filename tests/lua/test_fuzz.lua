-- Robustness against hostile or broken input: seeded random mutations of valid samples fed to
-- every parser of outside input.  Parsers must answer nil, err (or an error object), never
-- raise; the simulator's services must answer 4xx, never 500 (a 500 is a Lua error in them).
--   T2T_FUZZ_N (default 300 per target) and T2T_FUZZ_SEED (default 1) widen or vary a run.
local lu = require "luaunit"
local cjson = require "cjson"

local N = tonumber(os.getenv("T2T_FUZZ_N")) or 300
local SEED = tonumber(os.getenv("T2T_FUZZ_SEED")) or 1

local TOKENS = { '"', "{", "}", "[", "]", ",", ":", "\0", "\\u0000", "\\", "1e999", "-0",
                 "null", "true", "99999999999999999999", "\255\254", "'", "=", "\n", "%", "%00",
                 "return", "function", "end", "(", ")", "..", "--[[", "]]" }

-- mutate(s, rnd) -> s with 1..4 random edits (byte flips, cuts, duplications, tokens).
local function mutate(s, rnd)
  for _ = 1, rnd(1, 4) do
    local n = #s
    local op = rnd(1, 6)
    local i = rnd(1, math.max(n, 1))
    if op == 1 and n > 0 then
      s = s:sub(1, i - 1) .. string.char(rnd(0, 255)) .. s:sub(i + 1)
    elseif op == 2 and n > 0 then
      s = s:sub(1, i - 1) .. s:sub(i + rnd(1, 16))
    elseif op == 3 and n > 0 then
      local j = math.min(n, i + rnd(0, 32))
      s = s:sub(1, j) .. s:sub(i, j) .. s:sub(j + 1)
    elseif op == 4 then
      s = s:sub(1, i - 1) .. TOKENS[rnd(1, #TOKENS)] .. s:sub(i)
    elseif op == 5 then
      s = s:sub(1, rnd(0, n))
    else
      s = s .. TOKENS[rnd(1, #TOKENS)]
    end
  end
  return s
end

local function fuzz(name, samples, check)
  local r = setmetatable({}, { __index = math })
  math.randomseed(SEED, #name)
  local rnd = math.random
  for k = 1, N do
    local input = mutate(samples[(k - 1) % #samples + 1], rnd)
    local ok, err = pcall(check, input)
    if not ok then
      lu.fail(string.format("%s: input %q raised: %s", name, input, tostring(err)))
    end
  end
  return r
end

TestFuzz = {}

function TestFuzz.test_config_parser()
  local config = require "t2t.config"
  fuzz("config", {
    'return { profiles = { contoso = { tenant = "contoso.onmicrosoft.com", client_id = "x", secret = "env:S" } } }',
    'return { default = "a", profiles = { a = { tenant_id = "1", cloud = "usgov", device_code = true, connect_to = { "a:443:127.0.0.1:1" } } } }',
  }, function(src)
    local ok, err = config.parse(src, "=fuzz")
    assert(ok ~= nil or type(err) == "string", "no message")
  end)
end

function TestFuzz.test_jwt_decode()
  local jwt = require "t2t.jwt"
  fuzz("jwt", {
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0aWQiOiJhIiwiZXhwIjoxNzAwMDAwMDAwLCJyb2xlcyI6WyJhIl19.c2ln",
  }, function(tok)
    local t, err = jwt.decode(tok)
    assert(t ~= nil or err ~= nil)
  end)
end

function TestFuzz.test_retry_after()
  local http = require "t2t.http"
  fuzz("retry-after", { "120", "0.5", "Wed, 21 Oct 2015 07:28:00 GMT" }, function(v)
    local s = http.parse_retry_after(v, "Wed, 21 Oct 2015 07:27:00 GMT")
    assert(s == nil or (type(s) == "number" and s == s), "not a number")
  end)
end

local EXO_ERR = cjson.encode { error = { code = "InternalServerError", message = "Error executing cmdlet",
  details = { { code = "Client", target = "", message =
    "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be performed" } },
  innererror = { message = "m", type = "t", internalexception = { message = "inner", type = "x" } } } }
local GRAPH_ERR = cjson.encode { error = { code = "Authorization_RequestDenied", message = "Insufficient privileges",
  innerError = { date = "2025-02-13T10:17:06", ["request-id"] = "r", ["client-request-id"] = "c" } } }

function TestFuzz.test_service_error_parsers()
  local exo, graph, azure = require "t2t.exo", require "t2t.graph", require "t2t.azure"
  fuzz("exo error", { EXO_ERR, "\0\0\0\0", "You have reached the maximum number of concurrent requests" },
    function(body)
      local e = exo.parse_error({ status = 404, headers = { ["content-type"] = "application/json" }, body = body }, "Get-Mailbox")
      assert(type(e) == "table" and type(tostring(e)) == "string")
    end)
  fuzz("graph error", { GRAPH_ERR }, function(body)
    local e = graph.parse_error({ status = 403, headers = {}, body = body }, nil, "GET", "/users")
    assert(type(e) == "table" and type(tostring(e)) == "string")
  end)
  fuzz("azure error", { '{"error":{"code":"SecretNotFound","message":"x","innererror":{"code":"AccessDenied"}}}' },
    function(body)
      local e = azure.parse_error("keyvault", { status = 404, headers = {}, body = body }, nil, "GET", "/secrets/x")
      assert(type(e) == "table" and type(tostring(e)) == "string")
    end)
end

-- A private instance of a module (its own upvalues), so this file's simulator does not replace
-- the one other test files hold through require.
local function fresh(name)
  local loader = package.preload[name]
  if loader then return loader(name) end
  return assert(loadfile(assert(package.searchpath(name, package.path))))(name)
end

-- The simulator's services, called in-process with a valid token and broken bodies.
function TestFuzz.test_simulator_services_never_500()
  local handler = fresh "t2t.sim.handler"
  handler.init { users = 5, seed = 2 }
  local sim = handler.sim
  local function tenant(name)
    for _, t in pairs(sim.state.tenants) do if t.name == name then return t end end
  end
  local t = tenant("fabrikam")
  local function token(aud, roles)
    return (sim.tokens:issue { tid = t.id, aud = aud, appid = "fuzz", oid = "fuzz", roles = roles,
                               wids = { "62e90394-69f5-4237-9190-012177145e10" } })
  end
  local exo_tok = token("https://outlook.office365.com", { "Exchange.ManageAsApp" })
  local graph_tok = token("https://graph.microsoft.com", { "Directory.ReadWrite.All", "Application.ReadWrite.All",
    "Group.ReadWrite.All", "User.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "RoleManagement.ReadWrite.Directory" })
  local function call(host, method, path, tok, body)
    local res = handler.handle { method = method, path = path, query = "", args = {}, peer = "127.0.0.1",
      headers = { host = host, authorization = "Bearer " .. tok, ["content-type"] = "application/json" },
      body = body }
    assert(res.status ~= 500, "500: " .. tostring(res.body):sub(1, 300))
  end
  local exo_path = "/adminapi/beta/" .. t.id .. "/InvokeCommand"
  fuzz("sim exo", {
    '{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":{"ResultSize":"Unlimited"}}}',
    '{"CmdletInput":{"CmdletName":"New-OrganizationRelationship","Parameters":{"Name":"x","DomainNames":["a"],"MailboxMoveCapability":["Inbound"],"Enabled":true}}}',
    '{"CmdletInput":{"CmdletName":"Set-MailUser","Parameters":{"Identity":"x","EmailAddresses":{"add":["x500:/o=a"]}}}}',
    '{"CmdletInput":{"CmdletName":"New-MigrationEndpoint","Parameters":{"Name":"e","ExchangeRemoteMove":true,"RemoteServer":"outlook.office.com","Credentials":{"UserName":"a","Password":"b"}}}}',
    -- shapes a careless client sends: wrong types where objects, lists and strings belong
    '{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":[]}}',
    '{"CmdletInput":{"CmdletName":"Get-Mailbox","Parameters":{"Identity":{"a":[1,2]},"ResultSize":-5}}}',
    '{"CmdletInput":{"CmdletName":42,"Parameters":null}}',
    '{"CmdletInput":{"CmdletName":"Set-OrganizationRelationship","Parameters":{"Identity":["x"],"MailboxMoveCapability":{"add":7}}}}',
    '{"CmdletInput":{"CmdletName":"New-MigrationBatch","Parameters":{"Name":"b","CSVData":{"Data":17},"TargetDeliveryDomain":[]}}}',
    '{"CmdletInput":{"CmdletName":"Add-DistributionGroupMember","Parameters":{"Identity":null,"Member":true}}}',
  }, function(body) call("outlook.office365.com", "POST", exo_path, exo_tok, body) end)
  fuzz("sim graph", {
    '{"displayName":"g","mailEnabled":false,"mailNickname":"g","securityEnabled":true,"groupTypes":[]}',
    '{"requests":[{"id":"1","method":"GET","url":"/users?$top=2"},{"id":"2","dependsOn":["1"],"method":"POST","url":"/groups","headers":{"Content-Type":"application/json"},"body":{"displayName":"x"}}]}',
    '{"requests":[{"id":1,"method":null,"url":7},{"id":"2","dependsOn":"1","url":"/groups/x/members/$ref","body":[]}]}',
    '{"displayName":["g"],"groupTypes":"Unified","keyCredentials":[{"key":5,"type":null}],"passwordCredentials":{}}',
    '[]',
  }, function(body)
    call("graph.microsoft.com", "POST", "/v1.0/groups", graph_tok, body)
    call("graph.microsoft.com", "POST", "/v1.0/$batch", graph_tok, body)
    call("graph.microsoft.com", "PATCH", "/v1.0/applications/x", graph_tok, body)
  end)
  fuzz("sim login", {
    "grant_type=client_credentials&client_id=a&client_secret=b&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
  }, function(body)
    local res = handler.handle { method = "POST", path = "/" .. t.id .. "/oauth2/v2.0/token", query = "", args = {},
      peer = "127.0.0.1", headers = { host = "login.microsoftonline.com",
      ["content-type"] = "application/x-www-form-urlencoded" }, body = body }
    assert(res.status ~= 500, "500: " .. tostring(res.body):sub(1, 300))
  end)
end
