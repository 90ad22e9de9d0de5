local lu = require "luaunit"
local pretty = require "t2t.pretty"

TestPretty = {}

function TestPretty.test_sorted_nested()
  lu.assertEquals(pretty.format({ b = 1, a = { 1, 2 }, [3] = true }),
    '{\n  [3] = true,\n  a = {\n    1,\n    2,\n  },\n  b = 1,\n}')
end

function TestPretty.test_cycles_and_truncation()
  local t = {}
  t.self = t
  lu.assertStrContains(pretty.format(t), "self = <cycle>")
  local big = {}
  for i = 1, 1000 do big[i] = i end
  local s = pretty.format(big, { items = 10 })
  lu.assertStrContains(s, "-- 990 more")
  lu.assertStrContains(pretty.format(string.rep("x", 1000), { string = 10 }), "(1000 bytes)")
end

function TestPretty.test_scalars()
  lu.assertEquals(pretty.format("a\nb"), '"a\\nb"')
  lu.assertEquals(pretty.format(42), "42")
  lu.assertEquals(pretty.format({}), "{}")
end
