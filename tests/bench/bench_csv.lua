-- bench: t2t.csv on a 100,000-row user list as admins export it (BOM, CRLF, a quoted display
-- name with a comma in one row of ten, an extra column): rows parsed into records per second.
local csv = require "t2t.csv"
local N = tonumber(os.getenv("T2T_BENCH_CSV_ROWS")) or 100000
local parts = { csv.BOM .. "SourceUser,TargetUser,DisplayName,Batch\r\n" }
for i = 1, N do
  local name = i % 10 == 0 and string.format('"Núñez, Zoë %d"', i) or ("User " .. i)
  parts[#parts + 1] = string.format("user%d@contoso.com , user%d@fabrikam.com,%s,wave%d\r\n",
                                    i, i, name, i % 7)
end
local text = table.concat(parts)
parts = nil
local t2t = require "t2t"
local best = math.huge
for _ = 1, 3 do
  collectgarbage()
  local t0 = t2t.now()
  local doc = csv.parse(text)
  local recs = csv.records(doc, { columns = { { name = "SourceUser", required = true },
                                              { name = "TargetUser" }, { name = "Batch" } } })
  local dt = t2t.now() - t0
  assert(#recs == N and #doc.errors == 0, "csv bench: wrong parse")
  best = math.min(best, dt)
end
io.write(string.format("bench: csv_rows_per_s = %.0f\n", N / best))
io.write(string.format("bench: csv_100k_mb = %.1f\n", #text / 1048576))
