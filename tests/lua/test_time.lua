-- t2t.time: UTC calendar arithmetic, checked against dates whose epoch is known (date -u -d).
local lu = require "luaunit"
local time = require "t2t.time"

TestTime = {}

function TestTime.test_epoch_of_known_dates()
  lu.assertEquals(time.epoch(1970, 1, 1), 0)
  lu.assertEquals(time.epoch(1969, 12, 31, 23, 59, 59), -1)
  lu.assertEquals(time.epoch(2000, 2, 29), 951782400)            -- a leap day of a century year
  lu.assertEquals(time.epoch(2000, 3, 1), 951868800)
  lu.assertEquals(time.epoch(2100, 3, 1), 4107542400)            -- 2100 has no Feb 29
  lu.assertEquals(time.epoch(2100, 2, 28, 12, 0, 0) + 12 * 3600, 4107542400)
  lu.assertEquals(time.epoch(1600, 1, 1), -11676096000)
end

function TestTime.test_iso_round_trip()
  for _, t in ipairs { 0, 951782400, 1796587200, 4107542399 } do
    lu.assertEquals(time.parse_iso(time.iso(t)), t)
  end
  lu.assertEquals(time.iso(1796587200.9), "2026-12-06T20:00:00Z")
end

function TestTime.test_parse_iso_forms()
  lu.assertEquals(time.parse_iso("2026-12-06T20:00:00Z"), 1796587200)
  lu.assertEquals(time.parse_iso("2026-12-06T20:00:00.1234567Z"), 1796587200)
  lu.assertEquals(time.parse_iso("2026-12-06T20:00:00+00:00"), 1796587200)
  lu.assertNil(time.parse_iso("06/12/2026 20:00"))
  lu.assertNil(time.parse_iso("2026-12-06"))
  lu.assertNil(time.parse_iso(1796587200))
end

-- the local time zone plays no part (os.time{} would read it): the same answers in UTC+14
function TestTime.test_no_local_time_zone()
  local t2t = os.getenv("T2T") or "build/t2t"
  local p = assert(io.popen("TZ=Pacific/Kiritimati " .. t2t ..
    " -e 'local t = require(\"t2t.time\") print(t.epoch(2026, 7, 1), t.iso(1782864000))'"))
  local out = p:read("a")
  p:close()
  lu.assertEquals(out, "1782864000\t2026-07-01T00:00:00Z\n")
end
