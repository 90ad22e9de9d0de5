-- Runbook declarations, parameter parsing and strict environments.
local lu = require "luaunit"
local runbook = require "t2t.runbook"

local function decl(params)
  return runbook.declare({ name = "t", description = "d", params = params, run = function() end }, "t")
end

TestRunbook = {}

function TestRunbook.test_declaration_requires_fields()
  lu.assertErrorMsgContains("field 'name'", runbook.declare, { description = "d", run = print }, "x")
  lu.assertErrorMsgContains("field 'run'", runbook.declare, { name = "n", description = "d" }, "x")
  lu.assertErrorMsgContains("unknown type 'bool'", decl, { { name = "a", type = "bool" } })
  lu.assertErrorMsgContains("declared twice", decl, { { name = "a-b" }, { name = "a_b" } })
end

function TestRunbook.test_parse_all_types()
  local d = decl {
    { name = "name", required = true },
    { name = "count", type = "integer", default = 5 },
    { name = "ratio", type = "number" },
    { name = "force", type = "boolean", default = true },
    { name = "domains", type = "list" },
    { name = "resource_group", type = "string" },
  }
  local p = assert(runbook.parse_args(d, { "--name", "x", "--ratio=0.5", "--no-force",
    "--domains", "a.com, b.com", "--domains=c.com", "--resource-group", "rg" }, {}))
  lu.assertEquals(p.name, "x")
  lu.assertEquals(p.count, 5)
  lu.assertEquals(p.ratio, 0.5)
  lu.assertEquals(p.force, false)
  lu.assertEquals(p.domains, { "a.com", "b.com", "c.com" })
  lu.assertEquals(p.resource_group, "rg")
end

function TestRunbook.test_errors_name_the_parameter()
  local d = decl { { name = "count", type = "integer" }, { name = "need", required = true } }
  local p, err = runbook.parse_args(d, { "--count", "x", "--need", "1" }, {})
  lu.assertNil(p)
  lu.assertStrContains(err, "--count expects an integer")
  p, err = runbook.parse_args(d, { "--bogus", "1" }, {})
  lu.assertStrContains(err, "unknown parameter --bogus")
  p, err = runbook.parse_args(d, {}, {})
  lu.assertStrContains(err, "missing required parameter --need")
  p, err = runbook.parse_args(d, { "--need" }, {})
  lu.assertStrContains(err, "--need needs a value")
end

function TestRunbook.test_secrets_are_references()
  local d = decl { { name = "key", type = "secret" } }
  local p, err = runbook.parse_args(d, { "--key", "hunter2hunter2" }, {})
  lu.assertNil(p)
  lu.assertStrContains(err, "takes a reference")
  lu.assertNotStrContains(err, "hunter2")
  p = assert(runbook.parse_args(d, { "--key", "env:HOME" }, {}))
  lu.assertEquals(p.key, os.getenv("HOME"))
end

function TestRunbook.test_global_options_mixed_in()
  local d = decl { { name = "a" } }
  local opts = {}
  local p = assert(runbook.parse_args(d, { "--yes", "--a", "1", "--output", "json" }, opts))
  lu.assertEquals(p.a, "1")
  lu.assertTrue(opts.yes)
  lu.assertEquals(opts.output, "json")
  local _, err = runbook.parse_args(d, { "--output", "xml" }, {})
  lu.assertStrContains(err, "'xml' is not one of json, text")
end

function TestRunbook.test_strict_env()
  local env = runbook.strict_env()
  lu.assertEquals(env.string, string)
  lu.assertErrorMsgContains("undefined global 'nope'", function() return env.nope end)
  lu.assertErrorMsgContains("undeclared global 'x'", function() env.x = 1 end)
end

function TestRunbook.test_bundled_runbooks_load()
  for _, name in ipairs(runbook.names()) do
    local d, err = runbook.load(name)
    lu.assertNotNil(d, err)
    lu.assertEquals(d.name, name)
  end
end
