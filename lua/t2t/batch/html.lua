-- t2t.batch.html: the migration report as ONE self-contained HTML file -- styles, charts (inline
-- SVG, t2t.batch.charts) and a few lines of script inline, no request to anywhere (the page's
-- Content-Security-Policy forbids any), so it opens from a mail attachment or a share.  What an
-- admin reads at a glance: totals, progress over time per batch, states, throughput, failures by
-- cause with their fixes, then every user in a table that sorts and filters.
local charts = require "t2t.batch.charts"
local status = require "t2t.batch.status"
local fixes = require "t2t.batch.fixes"

local M = {}
local fmt = string.format
local esc = charts.esc

local CSS = [[
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#111827;background:#f3f4f6}
header{background:#1e3a8a;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}header p{margin:4px 0 0;opacity:.85}
main{padding:20px 28px;max-width:1200px}section{background:#fff;border-radius:8px;padding:16px 20px;margin:0 0 18px;
box-shadow:0 1px 2px rgba(0,0,0,.06)}h2{font-size:16px;margin:0 0 10px}.cards{display:flex;gap:14px;flex-wrap:wrap}
.card{flex:1;min-width:150px;background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.card b{display:block;font-size:24px}.card span{color:#6b7280}.grid{display:grid;grid-template-columns:1fr 1fr;gap:18px}
@media(max-width:1000px){.grid{grid-template-columns:1fr}}figure.chart{margin:0}figcaption{font-weight:600;margin:0 0 6px}
.legend{display:flex;flex-wrap:wrap;gap:12px;font-size:12px;color:#374151;margin-top:4px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e5e7eb;
vertical-align:top}#users td:first-child,#users td:nth-child(5),#users td:nth-child(6),#users td:nth-child(7),#users td:nth-child(9),#users td:nth-child(10){white-space:nowrap}
th{background:#f9fafb;cursor:pointer;user-select:none;white-space:nowrap}td.n{text-align:right}
.st{display:inline-block;padding:1px 7px;border-radius:10px;color:#fff;font-size:12px}input{padding:6px 8px;width:320px;
border:1px solid #d1d5db;border-radius:6px;margin-bottom:8px}.muted{color:#6b7280}code{font-size:12px}.scroll{overflow-x:auto}
]]

-- The page's script: sort a table by a column, filter the users, and check that every chart
-- drew the series it announces (a chart that did not is a console error the tests look for).
local JS = [[
(function(){
  'use strict';
  function sortBy(table, col, th){
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute('data-dir') !== 'asc';
    rows.sort(function(a, b){
      var x = a.cells[col].getAttribute('data-v') || a.cells[col].textContent;
      var y = b.cells[col].getAttribute('data-v') || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? r : -r;
    });
    th.setAttribute('data-dir', asc ? 'asc' : 'desc');
    rows.forEach(function(r){ body.appendChild(r); });
  }
  document.querySelectorAll('table.sortable').forEach(function(t){
    Array.prototype.forEach.call(t.tHead.rows[0].cells, function(th, i){
      th.addEventListener('click', function(){ sortBy(t, i, th); });
    });
  });
  var f = document.getElementById('filter');
  if (f) f.addEventListener('input', function(){
    var q = f.value.toLowerCase();
    document.querySelectorAll('#users tbody tr').forEach(function(r){
      r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
    });
  });
  var bad = 0;
  document.querySelectorAll('svg.chart-svg').forEach(function(svg){
    var want = parseInt(svg.getAttribute('data-series-count'), 10);
    var got = svg.querySelectorAll('g.series').length;
    if (got !== want) { bad++; console.error('chart ' + svg.id + ': ' + got + ' series drawn, ' + want + ' expected'); }
  });
  document.body.setAttribute('data-charts-ok', bad === 0 ? 'yes' : 'no');
})();
]]

local function state_badge(st)
  return fmt('<span class="st" style="background:%s">%s</span>', charts.STATE_COLOR[st] or "#6b7280", esc(st))
end

local function cards(d)
  local t = d.totals
  local function card(v, label) return fmt('<div class="card"><b>%s</b><span>%s</span></div>', esc(v), esc(label)) end
  return '<div class="cards">' .. card(t.users, "users") .. card(t.completed, "completed") ..
    card(t.failed, "failed now") .. (t.left and t.left > 0 and card(t.left, "left out") or "") .. card(#d.batches, "batches") .. card(status.human(t.bytes), "data moved") .. "</div>"
end

local function batch_table(d)
  local L = { '<table class="sortable"><thead><tr><th>batch</th><th>status</th><th>users</th><th>completed</th>' ..
              '<th>synced</th><th>moving</th><th>failed</th><th>data moved</th><th>throughput</th></tr></thead><tbody>' }
  for _, b in ipairs(d.batches) do
    local c = b.counts
    local moving = c.Queued + c.Syncing + c.Stalled + c.Completing
    L[#L + 1] = fmt('<tr><td>%s</td><td>%s</td><td class="n">%d</td><td class="n">%d</td><td class="n">%d</td>' ..
      '<td class="n">%d</td><td class="n">%d</td><td class="n" data-v="%d">%s</td><td class="n" data-v="%d">%s</td></tr>',
      esc(b.name), esc(b.status), b.total, c.Completed, c.Synced + c.NeedsApproval, moving, c.Failed,
      math.floor(b.bytes or 0), status.human(b.bytes), math.floor(b.throughput or 0),
      b.throughput and (status.human(b.throughput * 60) .. "/min") or "-")
  end
  L[#L + 1] = "</tbody></table>"
  return table.concat(L)
end

local function failure_table(d)
  if #d.failures == 0 then return '<p class="muted">No user has failed.</p>' end
  local L = { '<table><thead><tr><th>exception</th><th>open</th><th>fixed</th><th>left out</th><th>cause</th><th>fix</th></tr></thead><tbody>' }
  for _, f in ipairs(d.failures) do
    local info = fixes.info(f.exception)
    L[#L + 1] = fmt('<tr><td><code>%s</code></td><td class="n">%d</td><td class="n">%d</td><td class="n">%d</td><td>%s</td><td>%s</td></tr>',
                    esc(f.exception), f.open, f.fixed, f.left or 0, esc(info.cause), esc(info.fix))
  end
  L[#L + 1] = "</tbody></table>"
  return table.concat(L)
end

-- "2025-03-01T18:09:13Z" -> "03-01 18:09" (the CSV keeps the full time)
local function short(iso)
  if not iso then return "" end
  local mo, d, hm = tostring(iso):match("^%d+%-(%d+)%-(%d+)T(%d+:%d+)")
  return mo and fmt('<span title="%s">%s-%s %s</span>', esc(iso), mo, d, hm) or esc(iso)
end

local function user_table(rows)
  local L = { '<input id="filter" type="search" placeholder="filter users (address, state, exception)">',
    '<table id="users" class="sortable"><thead><tr><th>batch</th><th>user</th><th>source</th><th>state</th>' ..
    '<th>%</th><th>moved</th><th>size</th><th>skipped</th><th>synced</th><th>completed</th><th>problem</th></tr></thead><tbody>' }
  for _, r in ipairs(rows) do
    L[#L + 1] = fmt('<tr><td>%s</td><td>%s</td><td>%s</td><td data-v="%s">%s</td><td class="n">%s</td>' ..
      '<td class="n" data-v="%d">%s</td><td class="n" data-v="%d">%s</td><td class="n">%s</td><td>%s</td><td>%s</td><td>%s</td></tr>',
      esc(r.Batch), esc(r.TargetUser), esc(r.SourceUser or ""), esc(r.State), state_badge(r.State), esc(r.Percent or "-"),
      r.BytesTransferred or 0, status.human(r.BytesTransferred), r.MailboxSize or 0, status.human(r.MailboxSize),
      esc(r.SkippedItems or 0), short(r.Synced), short(r.Completed),
      r.Exception and ("<code>" .. esc(r.Exception) .. "</code> " .. esc(r.Fix or "")) or "")
  end
  L[#L + 1] = "</tbody></table>"
  return table.concat(L)
end

-- page(d, rows, o) -> the HTML text.  d: t2t.batch.report.data; rows: report rows; o: title,
-- target, source.
function M.page(d, rows, o)
  o = o or {}
  local gen = os.date("!%Y-%m-%d %H:%M UTC", math.floor(d.now))
  return table.concat {
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; ',
    'script-src \'unsafe-inline\'; img-src data:">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>', esc(o.title or "Cross-tenant mailbox migration"), '</title><style>', CSS, '</style></head><body>',
    '<header><h1>', esc(o.title or "Cross-tenant mailbox migration"), '</h1><p>',
    esc(o.source or "source"), ' &#8594; ', esc(o.target or "target"), ' &#183; ', #d.batches, ' batches &#183; generated ',
    esc(gen), ' by t2t batch-report</p></header><main>',
    cards(d),
    '<section><h2>Charts</h2><div class="grid">', charts.progress(d), charts.states(d), charts.throughput(d),
    charts.failures(d), '</div></section>',
    '<section><h2>Batches</h2>', batch_table(d), '</section>',
    '<section><h2>Failures and their fixes</h2>', failure_table(d),
    '<p class="muted">t2t run batch-fix applies the automatable fixes; t2t run batch-status shows the users of each.</p></section>',
    '<section><h2>Users</h2><div class="scroll">', user_table(rows), '</div></section>',
    '</main><script>', JS, '</script></body></html>\n',
  }
end

return M
