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
  local intent, e = cjson.decode(text:match("^[^\n]*")), cjson.decode(text:match("\n([^\n]*)\n$"))
  lu.assertEquals(intent.phase, "intent")
  lu.assertEquals(intent.target, "app 'A'")
  lu.assertEquals(e.phase, "outcome")
  lu.assertEquals(e.seq, intent.seq)
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
  f:read("l")
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

local function lines_of(path)
  local out = {}
  local f = io.open(path)
  if not f then return out end
  for l in f:lines() do out[#out + 1] = cjson.decode(l) end
  f:close()
  return out
end

-- Write-ahead: the intent line is on disk before the change is made.
function TestPlan.test_audit_intent_is_written_before_the_change()
  local path = os.tmpname()
  local p = plan.new { audit = path, out = function() end }
  local seen
  p:change { kind = "add", target = "client secret 'x'", apply = function() seen = lines_of(path) return true end }
  lu.assertEquals(#seen, 1)
  lu.assertEquals(seen[1].phase, "intent")
  lu.assertEquals(seen[1].target, "client secret 'x'")
  lu.assertEquals(#lines_of(path), 2)
  os.remove(path)
end

-- An audit file that cannot be written stops the run before the change (issue 9: --audit
-- /dev/full applied 4 changes, wrote nothing and exited 0).
function TestPlan.test_unwritable_audit_stops_before_any_change()
  local p = plan.new { audit = "/dev/full", out = function() end }
  local applied = false
  local ok, err = pcall(p.change, p, { kind = "create", target = "t", apply = function() applied = true return true end })
  lu.assertFalse(ok)
  lu.assertTrue(err.write_failure)
  lu.assertStrContains(tostring(err), "/dev/full")
  lu.assertFalse(applied)
  lu.assertEquals(p.applied, 0)
end

-- A failed write of the outcome line (disk full after the change) ends the run with an error.
function TestPlan.test_outcome_write_failure_raises_after_the_change()
  local path = os.tmpname()
  local p = plan.new { audit = path, out = function() end }
  local n = 0
  local ok, err = pcall(p.change, p, { kind = "create", target = "t", apply = function()
    p.audit_file = { write = function() n = n + 1 return nil, "No space left on device" end, close = function() end }
    return true
  end })
  lu.assertFalse(ok)
  lu.assertTrue(err.write_failure)
  lu.assertStrContains(tostring(err), "No space left on device")
  lu.assertEquals(p.applied, 1, "the change was made; the run must say its record is missing")
  lu.assertEquals(n, 1)
  os.remove(path)
end

function TestPlan.test_preflight_failure_changes_nothing()
  local p = plan.new { preflight = function() return nil, "state.json cannot be written" end, out = function() end }
  local applied = false
  local ok, err = pcall(p.change, p, { kind = "create", target = "t", apply = function() applied = true return true end })
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "state.json cannot be written")
  lu.assertFalse(applied)
end

-- A change retried to success, or found after a lost response, counts once as applied.
function TestPlan.test_each_change_counts_once_by_its_final_outcome()
  local p = plan.new { out = function() end }
  local c1 = { kind = "add", target = "member a", tenant = "t", apply = function() return nil, "HTTP 500" end }
  p:change(c1)
  lu.assertEquals(p.failed, 1)
  p:change { kind = "add", target = "member a", tenant = "t", apply = function() return true end }
  lu.assertEquals(p.applied, 1)
  lu.assertEquals(p.failed, 0)
  local c2 = { kind = "create", target = "app", tenant = "t", apply = function() return nil, "reset" end }
  p:change(c2)
  lu.assertEquals(p.failed, 1)
  p:resolved(c2, "found by re-reading")
  lu.assertEquals(p.applied, 2)
  lu.assertEquals(p.failed, 0)
end
