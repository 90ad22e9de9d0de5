-- batch-report: every user of every batch as CSV and JSON, and a self-contained HTML report with
-- charts (progress over time, states, throughput, failures by cause).
local S = require "t2t.batch.session"
local report = require "t2t.batch.report"
local html = require "t2t.batch.html"

return runbook {
  name = "batch-report",
  description = "Write the migration report: CSV and JSON with one row per user, and an HTML page with charts.\n\n" ..
    "Each user's state, progress, data moved, skipped items, times (queued, started, synced, completed) and, for a\n" ..
    "failure, its exception and the documented fix. The HTML file is self-contained (styles, SVG charts and a few\n" ..
    "lines of script inline; it loads nothing) so it can be mailed or shared: progress over time per batch, users\n" ..
    "by state, throughput over time, failures by cause (open, fixed by batch-fix, left out), a sortable user table (the users left out too).\n" ..
    "Files are written with mode 0600 (they hold names and addresses).",
  needs = {
    target = { exchange = { "Migration", "Move Mailboxes" }, when = { ["backend=graph"] = { graph = { "CrossTenantContentMigration.Read.All" } } } },
  },
  params = S.params({
    { name = "html", type = "string", default = "batch-report.html", help = "the HTML report (\"\" for none)" },
    { name = "csv", type = "string", default = "batch-report.csv", help = "one row per user, UTF-8 with BOM for Excel (\"\" for none)" },
    { name = "json", type = "string", default = "batch-report.json", help = "the same rows and the chart data as JSON (\"\" for none)" },
    { name = "title", type = "string", help = "the HTML report's title" },
  }),
  run = function(ctx, p)
    for _, k in ipairs { "html", "csv", "json" } do
      if p[k] ~= "" then ctx:output(p[k], "the report (--" .. k .. ")") end
    end
    local run = S.open(ctx, p, { no_source = true })
    local names = S.names(ctx, p, run)
    local snaps = S.snapshots(ctx, run, names, { all = true })
    local J = run.journal
    local rows = report.rows(snaps, J)
    local data = report.data(snaps, J, os.time())
    local fs = require "t2t.core.fs"
    if p.csv ~= "" then
      local wok, werr = report.write_csv(p.csv, rows)
      if not wok then ctx:fail("--csv %s: %s", p.csv, tostring(werr)) end
      ctx:summary("csv", p.csv)
    end
    if p.json ~= "" then
      local wok, werr = report.write_json(p.json, { generated = os.date("!%Y-%m-%dT%H:%M:%SZ"), users = rows, charts = data })
      if not wok then ctx:fail("--json %s: %s", p.json, tostring(werr)) end
      ctx:summary("json", p.json)
    end
    if p.html ~= "" then
      local d = J and J.doc or {}
      local page = html.page(data, rows, { title = p.title, target = (d.target and d.target.name) or run.target.name,
                                           source = d.source and d.source.name or "source" })
      local wok, werr = fs.write_private(p.html, page)
      if not wok then ctx:fail("--html %s: %s", p.html, tostring(werr)) end
      ctx:summary("html", p.html)
    end
    local fixed, left = 0, 0
    for _, f in ipairs(data.failures) do fixed, left = fixed + f.fixed, left + f.left end
    ctx:say("%d users in %d batch%s: %d completed, %d failed now; %d failures fixed by batch-fix, %d users left out.",
            data.totals.users, #names, #names == 1 and "" or "es", data.totals.completed, data.totals.failed, fixed, left)
    ctx:summary("users", #rows)
    return { users = #rows, batches = #names, completed = data.totals.completed, failed = data.totals.failed }
  end,
}
