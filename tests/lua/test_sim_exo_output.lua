-- Exchange Online output fidelity (issue 14, item 13): Exchange has no client library here, so
-- each simulated cmdlet's output is held to the output types in t2t.sim.exo.output — every
-- property there, in Exchange's JSON form (wire.md §2.5: GUIDs annotated #Guid, collections
-- #Collection(String), dates System.DateTime, sizes as display strings, null when unset) — and
-- the properties the reference scripts read (ms-setup-and-prep.md §2–5) carry values.
local lu = require "luaunit"
local cjson = require "cjson"
local output = require "t2t.sim.exo.output"
local env = require "tests.lua.handlers.sim_exo_env"
local new_sim, call, ok = env.new_sim, env.call, env.ok

-- What the reference scripts read, per cmdlet: these must have a value, not null.
local READ = {
  ["Get-Mailbox"] = { "Name", "Alias", "ExchangeGuid", "ArchiveGuid", "LegacyExchangeDN",
    "EmailAddresses", "PrimarySmtpAddress", "MailboxLocations", "RecipientTypeDetails",
    "LitigationHoldEnabled", "DelayHoldApplied", "DelayReleaseHoldApplied",
    "ComplianceTagHoldApplied", "InPlaceHolds", "PersistedCapabilities", "UserPrincipalName",
    "DisplayName", "IsDirSynced", "RecoverableItemsQuota", "WhenMailboxCreated", "SamAccountName" },
  ["Get-MailUser"] = { "ExchangeGuid", "ArchiveGuid", "EmailAddresses", "ExternalEmailAddress",
    "PrimarySmtpAddress", "IsDirSynced", "RecoverableItemsQuota", "PersistedCapabilities" },
  ["Get-OrganizationRelationship"] = { "DomainNames", "Enabled", "MailboxMoveEnabled",
    "MailboxMoveCapability", "OAuthApplicationId", "MailboxMovePublishedScopes" },
  ["Get-MigrationEndpoint"] = { "RemoteServer", "EndpointType", "ApplicationId", "Identity" },
  ["Get-AcceptedDomain"] = { "DomainName", "DomainType", "Default" },
  ["Get-User"] = { "UserPrincipalName", "RecipientTypeDetails", "ExternalDirectoryObjectId" },
}

local KIND_CHECK = {
  s = function(v) return type(v) == "string" end,
  b = function(v) return type(v) == "boolean" end,
  i = function(v) return math.type(v) == "integer" or (type(v) == "number" and v % 1 == 0) end,
  g = function(v) return type(v) == "string" and v:match("^%x+%-%x+%-%x+%-%x+%-%x+$") ~= nil end,
  t = function(v) return type(v) == "string" and v:match("^%d%d%d%d%-%d%d%-%d%dT.*%+00:00$") ~= nil end,
  q = function(v) return type(v) == "string" and v:match("%(([%d,]+) bytes%)$") ~= nil end,
  l = function(v) return type(v) == "table" end,
}

-- Check one raw JSON object against the cmdlet's output type.
local function conforms(cmdlet, obj)
  local tname = output.CMDLET[cmdlet]
  for _, f in ipairs(output.fields(tname)) do
    local name, kind = f[1], f[2]
    local v = obj[name]
    lu.assertNotNil(v, cmdlet .. " lacks " .. name)
    if v ~= cjson.null then
      lu.assertTrue(KIND_CHECK[kind](v), cmdlet .. " " .. name .. " = " .. cjson.encode(v))
      if kind == "g" then lu.assertEquals(obj[name .. "@odata.type"], "#Guid", cmdlet .. " " .. name) end
      if kind == "t" then lu.assertEquals(obj[name .. "@data.type"], "System.DateTime", name) end
    end
    if kind == "l" then lu.assertEquals(obj[name .. "@odata.type"], "#Collection(String)", name) end
  end
  for _, name in ipairs(READ[cmdlet] or {}) do
    lu.assertTrue(obj[name] ~= nil and obj[name] ~= cjson.null, cmdlet .. " " .. name .. " has no value")
  end
  for _, gone in ipairs { "TotalItemSize", "ItemCount", "TotalDeletedItemSize" } do
    if tname == "Mailbox" or tname == "MailUser" or tname == "Recipient" then
      lu.assertNil(obj[gone], cmdlet .. " outputs " .. gone .. " (Get-MailboxStatistics has it)")
    end
  end
end

local function first(sim, t, cmdlet, params)
  local st, doc = call(sim, t, cmdlet, params or {})
  lu.assertEquals(st, 200, cmdlet .. " " .. cjson.encode(doc))
  lu.assertTrue(#doc.value > 0, cmdlet .. " returned nothing")
  return doc.value[1]
end

TestSimExoOutput = {}

function TestSimExoOutput.test_every_conformed_cmdlet_outputs_its_type()
  local sim = new_sim(40)
  env.setup_cross_tenant(sim)
  ok(sim, sim.tgt, "New-MailUser", { Name = "out1", ExternalEmailAddress = "out1@contoso.com" })
  ok(sim, sim.src, "New-DkimSigningConfig", { DomainName = "contoso.com", Enabled = false })
  local cases = {
    { sim.src, "Get-Mailbox", { RecipientTypeDetails = "UserMailbox" } },
    { sim.tgt, "Get-MailUser", { Identity = "out1" } },
    { sim.src, "Get-Recipient", { RecipientTypeDetails = "UserMailbox" } },
    { sim.src, "Get-User", { RecipientTypeDetails = "UserMailbox" } },
    { sim.src, "Get-DistributionGroup", { Identity = "MigScope" } },
    { sim.src, "Get-AcceptedDomain", {} },
    { sim.src, "Get-OrganizationRelationship", { Identity = "to-fab" } },
    { sim.tgt, "Get-MigrationEndpoint", { Identity = "ep" } },
    { sim.src, "Get-DkimSigningConfig", { Identity = "contoso.com" } },
  }
  for _, c in ipairs(cases) do conforms(c[2], first(sim, c[1], c[2], c[3])) end
  -- the New-* cmdlets answer with the same object type
  conforms("New-MailUser", ok(sim, sim.tgt, "New-MailUser", { Name = "out2",
    ExternalEmailAddress = "out2@contoso.com" })[1])
end

-- Every cmdlet with an output type in the table is one the simulator implements, and every
-- implemented Get-* cmdlet of the recipient, organization and migration-setup families has one.
function TestSimExoOutput.test_table_covers_the_setup_cmdlets()
  local implemented = {}
  for _, c in ipairs(require("t2t.sim.exo").cmdlets()) do implemented[c] = true end
  for c in pairs(output.CMDLET) do lu.assertTrue(implemented[c], c) end
  for _, c in ipairs { "Get-Mailbox", "Get-MailUser", "Get-Recipient", "Get-User",
                       "Get-OrganizationRelationship", "Get-MigrationEndpoint", "Get-AcceptedDomain",
                       "Get-DkimSigningConfig", "Get-DistributionGroup" } do
    lu.assertNotNil(output.CMDLET[c], c)
  end
end
