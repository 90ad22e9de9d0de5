-- The host pieces issue 15 added: global options, errors for people, parameter ranges, runbook
-- files run by name, masked secrets in printed values, Graph Explorer paths.
local lu = require "luaunit"

TestNewcomer = {}

function TestNewcomer.test_global_options()
  local options = require "t2t.options"
  local o = {}
  lu.assertEquals(options.take(o, { "--log-level", "debug" }, 1), 3)
  lu.assertEquals(o.log_level, "debug")
  lu.assertEquals(options.take(o, { "--sim=st.json" }, 1), 2)
  lu.assertEquals(o.sim, "st.json")
  lu.assertEquals(options.take(o, { "--sim", "st.json" }, 1), 2)   -- the file is not taken
  lu.assertTrue(o.sim)
  lu.assertNil(options.take(o, { "--name" }, 1))
  local nxt, err = options.take(o, { "--output", "xml" }, 1)
  lu.assertFalse(nxt)
  lu.assertStrContains(err, "'xml' is not one of json, text")
  options.set(o)
  lu.assertIs(options.current(), o)
  options.set({})
end

function TestNewcomer.test_errors_for_people()
  local errors = require "t2t.errors"
  local e = errors.new("no such group", { usage = true })
  lu.assertEquals(tostring(e), "no such group")
  lu.assertTrue(errors.is_user(e) and e.usage)
  local raw = "t2t/x.lua:3: attempt to index a nil value\nstack traceback:\n\t[C]: in ?"
  lu.assertEquals(errors.format(raw, false), "t2t/x.lua:3: attempt to index a nil value " ..
    "(this is a bug in t2t: --log-level debug shows where)")
  lu.assertStrContains(errors.format(raw, true), "stack traceback")
  lu.assertEquals(errors.format("stdin:1: x\nstack traceback:\n\t...", false), "stdin:1: x")
end

function TestNewcomer.test_parameter_ranges()
  local runbook = require "t2t.runbook"
  local d = runbook.declare({ name = "t", description = "d", run = print,
    params = { { name = "users", type = "integer", min = 1 }, { name = "n", type = "number", min = 0, max = 1 } } }, "t")
  local p, err = runbook.parse_args(d, { "--users", "-5" }, {})
  lu.assertNil(p)
  lu.assertStrContains(err, "--users must be at least 1, got -5")
  _, err = runbook.parse_args(d, { "--n", "1.5" }, {})
  lu.assertStrContains(err, "--n must be from 0 to 1, got 1.5")
  lu.assertEquals(runbook.parse_args(d, { "--users", "3" }, {}).users, 3)
  lu.assertErrorMsgContains("min and max are for integer and number params", runbook.declare,
    { name = "t", description = "d", run = print, params = { { name = "s", min = 1 } } }, "t")
end

function TestNewcomer.test_runbook_files()
  local runbook = require "t2t.runbook"
  lu.assertTrue(runbook.declares("-- x\nreturn runbook {\n name = 'x' }"))
  lu.assertTrue(runbook.declares("return runbook{}"))
  lu.assertFalse(runbook.declares("print(1)\nlocal runbook = 1"))
  local d = runbook { name = "r", description = "d", run = print }   -- callable in the REPL
  lu.assertEquals(d.name, "r")
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write('return runbook { name = "named", description = "d", run = function() end }\n')
  f:close()
  local decl = assert(runbook.load(path))
  lu.assertStrContains(runbook.help_text(decl), "t2t run " .. path .. " [parameters]")
  os.remove(path)
end

function TestNewcomer.test_pretty_masks_secrets()
  local pretty = require "t2t.pretty"
  local s = pretty.format { client_secret = "abc~8Q~defghijklmnop", secret = "env:X", password = "pw12345",
                            refresh_token = "rt-xyz", name = "n" }
  lu.assertNotStrContains(s, "abc~8Q~")
  lu.assertNotStrContains(s, "pw12345")
  lu.assertNotStrContains(s, "rt-xyz")
  lu.assertStrContains(s, 'secret = "env:X"')              -- a reference is not a secret
  lu.assertStrContains(s, 'name = "n"')
end

function TestNewcomer.test_graph_explorer_paths()
  local graph = require "t2t.graph"
  lu.assertEquals(graph.encode_path("/users?$filter=startswith(displayName, 'A')"),
                  "/users?$filter=startswith(displayName,%20'A')")
  lu.assertEquals(graph.encode_path("/users?$filter=startswith(displayName,%27A%27)&$top=5"),
                  "/users?$filter=startswith(displayName,%27A%27)&$top=5")      -- encoded stays
  lu.assertEquals(graph.encode_path('/users?$search="displayName:Ad Ele"'), "/users?$search=%22displayName:Ad%20Ele%22")
  lu.assertEquals(graph.encode_path("/users/a b"), "/users/a%20b")
end
