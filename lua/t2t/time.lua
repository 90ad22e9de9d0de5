-- t2t.time: UTC calendar arithmetic without the local time zone (os.time{} reads it).
--   time.epoch(2026, 12, 6, 20, 0, 0) -> 1796587200
--   time.iso(1796587200)              -> "2026-12-06T20:00:00Z"
--   time.parse_iso("2026-12-06T20:00:00.1234567Z") -> 1796587200 (fraction and offset ignored)
local M = {}

-- epoch(y, mo, d [, h, mi, s]) -> seconds since 1970-01-01T00:00:00Z of a proleptic Gregorian
-- UTC date (days from civil, Howard Hinnant's algorithm).
function M.epoch(y, mo, d, h, mi, s)
  y = mo <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return (era * 146097 + doe - 719468) * 86400 + (h or 0) * 3600 + (mi or 0) * 60 + (s or 0)
end

-- iso(epoch) -> "YYYY-MM-DDTHH:MM:SSZ" (whole seconds).
function M.iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) end

-- parse_iso("YYYY-MM-DDTHH:MM:SS...") -> epoch seconds, the date read as UTC (what follows the
-- seconds -- a fraction, "Z", an offset -- is not read) | nil when s is not such a string.
function M.parse_iso(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, se = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)")
  if not y then return nil end
  return M.epoch(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(se))
end

return M
