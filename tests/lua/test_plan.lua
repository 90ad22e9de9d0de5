local lu = require "luaunit"
local plan = require "t2t.plan"
local cjson = require "cjson"

local function capture()
  local lines = {}
  return lines, function(l) lines[#lines + 1] = l end
end

TestPlan = {}

function TestPlan.test_dry_run_applies_nothing()
  local lines, out = capture()
  local p = plan.new { dry_run = true, out = out }
  local applied = false
  local r, why = p:change { kind = "create", target = "application 'A'", after = { displayName = "A" },
                            apply = function() applied = true return {} end }
  lu.assertNil(r)
  lu.assertEquals(why, "planned")
  lu.assertFalse(applied)
  lu.assertEquals(p.planned, 1)
  lu.assertStrContains(lines[1], "would + create application 'A'")
  lu.assertStrContains(lines[1], 'displayName: "A"')
end

function TestPlan.test_unchanged_update_is_not_a_change()
  local p = plan.new { out = function() error("must not print") end }
  local r, why = p:change { kind = "update", target = "x", before = { a = 1, b = { 1 } },
                            after = { a = 1, b = { 1 } }, apply = function() error("no") end }
  lu.assertNil(r)
  lu.assertEquals(why, "unchanged")
  lu.assertEquals(#p.changes, 0)
end

function TestPlan.test_apply_and_audit_without_secrets()
  local path = os.tmpname()
  local lines, out = capture()
  local p = plan.new { audit = path, out = out, now = function() return 0 end }
  local r = p:change { kind = "update", target = "app 'A'", tenant = "fabrikam", operation = "add_secret",
                       before = { clientSecret = nil, name = "a" },
                       after = { clientSecret = "s3cr3t-value", name = "b" },
                       apply = function() return { ok = true }, "req-1" end }
  lu.assertEquals(r, { ok = true })
  lu.assertStrContains(lines[1], "clientSecret: (none) -> (secret)")
  lu.assertStrContains(lines[1], 'name: "a" -> "b"')
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  os.remove(path)
  lu.assertNotStrContains(text, "s3cr3t")
  local e = cjson.decode(text)
  lu.assertEquals(e.result, "ok")
  lu.assertEquals(e.request_id, "req-1")
  lu.assertEquals(e.tenant, "fabrikam")
  lu.assertEquals(e.operation, "add_secret")
  lu.assertEquals(e.time, "1970-01-01T00:00:00Z")
  lu.assertEquals(e.fields, { "clientSecret", "name" })
end

function TestPlan.test_failed_apply_is_audited_and_returned()
  local path = os.tmpname()
  local p = plan.new { audit = path, out = function() end }
  local r, err = p:change { kind = "delete", target = "x", apply = function() return nil, "gone wrong" end }
  lu.assertNil(r)
  lu.assertEquals(err, "gone wrong")
  lu.assertEquals(p.failed, 1)
  local f = assert(io.open(path))
  local e = cjson.decode(f:read("l"))
  f:close()
  os.remove(path)
  lu.assertEquals(e.result, "failed")
  lu.assertEquals(e.error, "gone wrong")
end

function TestPlan.test_diff()
  local d = plan.diff({ a = 1, b = 2 }, { a = 1, b = 3, c = 4 })
  lu.assertEquals(#d, 2)
  lu.assertEquals(d[1].field, "b")
  lu.assertEquals(d[2].field, "c")
end
