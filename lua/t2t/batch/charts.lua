-- t2t.batch.charts: the HTML report's charts as SVG generated from the data (no library, no
-- script, no network): progress over time per batch, users by state, throughput over time, and
-- failures by cause.  Every series is a <g class="series" data-series="..."> and every chart
-- says how many series it holds (data-series-count), so the report's own check and the
-- headless-browser test can tell a chart that drew from one that did not; each mark carries a
-- <title> (the browser shows it on hover).
local M = {}
local fmt = string.format

M.PALETTE = { "#2563eb", "#d97706", "#059669", "#7c3aed", "#dc2626", "#0891b2", "#65a30d", "#db2777" }
M.STATE_COLOR = { Completed = "#059669", Completing = "#34d399", Synced = "#2563eb", NeedsApproval = "#f59e0b",
                  Syncing = "#60a5fa", Stalled = "#a855f7", Queued = "#9ca3af", Stopped = "#6b7280", Failed = "#dc2626" }

function M.esc(s)
  return (tostring(s == nil and "" or s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                                             ['"'] = "&quot;", ["'"] = "&#39;" }))
end
local esc = M.esc

local function num(x) return fmt("%.1f", x) end

-- open(id, title, w, h, n) -> the chart's opening tags.
local function open(id, title, w, h, n)
  return fmt('<figure class="chart"><figcaption>%s</figcaption><svg id="%s" class="chart-svg" ' ..
    'viewBox="0 0 %d %d" width="100%%" role="img" aria-label="%s" data-series-count="%d">',
    esc(title), id, w, h, esc(title), n)
end

local function close(legend)
  return "</svg>" .. (legend or "") .. "</figure>"
end

local function legend(items)
  local out = { '<div class="legend">' }
  for _, it in ipairs(items) do
    out[#out + 1] = fmt('<span><i style="background:%s%s"></i>%s</span>', it.color,
                        it.dashed and ";opacity:.55" or "", esc(it.label))
  end
  out[#out + 1] = "</div>"
  return table.concat(out)
end

local function clock(t, span)
  if span > 2 * 86400 then return os.date("!%m-%d", math.floor(t)) end
  if span < 600 then return os.date("!%H:%M:%S", math.floor(t)) end
  return os.date("!%H:%M", math.floor(t))
end

-- axes(x0, y0, w, h, ylabels, xticks) -> grid lines and labels.
local function axes(L, x0, y0, w, h, yl, xl)
  L[#L + 1] = fmt('<g class="axes" stroke="#d1d5db" stroke-width="1" fill="#4b5563" font-size="11">')
  for _, y in ipairs(yl) do
    local py = y0 + h - y.f * h
    L[#L + 1] = fmt('<line x1="%s" y1="%s" x2="%s" y2="%s"/><text x="%s" y="%s" text-anchor="end" stroke="none">%s</text>',
      num(x0), num(py), num(x0 + w), num(py), num(x0 - 6), num(py + 4), esc(y.label))
  end
  for _, x in ipairs(xl) do
    local px = x0 + x.f * w
    L[#L + 1] = fmt('<text x="%s" y="%s" text-anchor="middle" stroke="none">%s</text>', num(px), num(y0 + h + 16), esc(x.label))
  end
  L[#L + 1] = "</g>"
end

-- The report's time span: from the first start to the last event (or now).
local function span(d)
  local t0, t1 = math.huge, 0
  for _, b in ipairs(d.batches) do
    for _, u in ipairs(b.users) do
      for _, t in ipairs { u.start, u.synced, u.completed, u.failed } do
        if t then t0, t1 = math.min(t0, t), math.max(t1, t) end
      end
    end
    if b.started then t0 = math.min(t0, b.started) end
  end
  if t0 == math.huge then t0, t1 = d.now - 60, d.now end
  if t1 <= t0 then t1 = t0 + 60 end
  return t0, t1
end

local function xticks(t0, t1, n)
  local out = {}
  for i = 0, n do out[#out + 1] = { f = i / n, label = clock(t0 + (t1 - t0) * i / n, t1 - t0) } end
  return out
end

-- progress(d): % of each batch's users synced (solid) and completed (dashed) over time.
function M.progress(d)
  local W, H, x0, y0, w, h = 760, 300, 48, 16, 690, 240
  local t0, t1 = span(d)
  local L = { open("chart-progress", "Progress over time: users synced (solid) and completed (dashed), per batch",
                   W, H, #d.batches * 2) }
  axes(L, x0, y0, w, h, { { f = 0, label = "0%" }, { f = .5, label = "50%" }, { f = 1, label = "100%" } }, xticks(t0, t1, 6))
  local items = {}
  for i, b in ipairs(d.batches) do
    local color = M.PALETTE[(i - 1) % #M.PALETTE + 1]
    for _, kind in ipairs { "synced", "completed" } do
      local times = {}
      for _, u in ipairs(b.users) do
        local t = kind == "synced" and (u.synced or u.completed) or u.completed
        if t then times[#times + 1] = t end
      end
      table.sort(times)
      local pts = { fmt("%s,%s", num(x0), num(y0 + h)) }
      local total = math.max(1, b.total)
      for k, t in ipairs(times) do
        local px = x0 + (t - t0) / (t1 - t0) * w
        pts[#pts + 1] = fmt("%s,%s %s,%s", num(px), num(y0 + h - (k - 1) / total * h), num(px), num(y0 + h - k / total * h))
      end
      pts[#pts + 1] = fmt("%s,%s", num(x0 + w), num(y0 + h - #times / total * h))
      L[#L + 1] = fmt('<g class="series" data-series="%s-%s" data-points="%d"><title>%s: %d of %d users %s</title>' ..
        '<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/></g>', kind, esc(b.name), #times,
        esc(b.name), #times, b.total, kind, color, kind == "completed" and ' stroke-dasharray="6 4"' or "",
        table.concat(pts, " "))
    end
    items[#items + 1] = { color = color, label = b.name }
  end
  return table.concat(L) .. close(legend(items))
end

local STATES = { "Completed", "Completing", "Synced", "NeedsApproval", "Syncing", "Stalled", "Queued", "Stopped", "Failed" }

-- states(d): one stacked bar per batch, a segment per state.
function M.states(d)
  local W, rowh = 760, 34
  local H = 24 + #d.batches * rowh
  local x0, w = 130, 600
  local L = { open("chart-states", "Users by state, per batch", W, H, #d.batches) }
  for i, b in ipairs(d.batches) do
    local y = 8 + (i - 1) * rowh
    L[#L + 1] = fmt('<g class="series" data-series="states-%s"><text x="%d" y="%d" text-anchor="end" font-size="12" ' ..
      'fill="#111827">%s</text>', esc(b.name), x0 - 8, y + 17, esc(b.name))
    local x = x0
    for _, st in ipairs(STATES) do
      local n = b.counts[st] or 0
      if n > 0 then
        local bw = n / math.max(1, b.total) * w
        L[#L + 1] = fmt('<rect x="%s" y="%d" width="%s" height="22" fill="%s"><title>%s: %d %s</title></rect>',
          num(x), y, num(bw), M.STATE_COLOR[st], esc(b.name), n, st)
        if bw > 24 then
          L[#L + 1] = fmt('<text x="%s" y="%d" font-size="11" fill="#fff" text-anchor="middle">%d</text>', num(x + bw / 2), y + 15, n)
        end
        x = x + bw
      end
    end
    L[#L + 1] = "</g>"
  end
  local items = {}
  for _, st in ipairs(STATES) do items[#items + 1] = { color = M.STATE_COLOR[st], label = st } end
  return table.concat(L) .. close(legend(items))
end

-- throughput(d): data moved per interval (each user's mailbox spread over its initial sync),
-- stacked per batch.
function M.throughput(d)
  local W, H, x0, y0, w, h = 760, 300, 64, 16, 674, 240
  local t0, t1 = span(d)
  local n = 24
  local step = (t1 - t0) / n
  local per = {}
  local top = 0
  for i, b in ipairs(d.batches) do
    per[i] = {}
    for k = 1, n do per[i][k] = 0 end
    for _, u in ipairs(b.users) do
      local s, e = u.start, u.synced or (u.state ~= "Failed" and u.state ~= "Queued" and d.now) or nil
      if s and e and e > s and u.size > 0 then
        for k = 1, n do
          local a, c = t0 + (k - 1) * step, t0 + k * step
          local overlap = math.max(0, math.min(c, e) - math.max(a, s))
          per[i][k] = per[i][k] + u.size * overlap / (e - s)
        end
      end
    end
  end
  for k = 1, n do
    local sum = 0
    for i = 1, #d.batches do sum = sum + per[i][k] end
    top = math.max(top, sum)
  end
  top = math.max(top, 1)
  local human = require("t2t.batch.status").human
  local L = { open("chart-throughput", fmt("Throughput: data moved per %s, per batch",
    require("t2t.batch.status").duration(step)), W, H, #d.batches) }
  axes(L, x0, y0, w, h, { { f = 0, label = "0" }, { f = .5, label = human(top / 2) }, { f = 1, label = human(top) } },
       xticks(t0, t1, 6))
  local base = {}
  for k = 1, n do base[k] = 0 end
  local items = {}
  for i, b in ipairs(d.batches) do
    local color = M.PALETTE[(i - 1) % #M.PALETTE + 1]
    L[#L + 1] = fmt('<g class="series" data-series="throughput-%s" fill="%s">', esc(b.name), color)
    for k = 1, n do
      local v = per[i][k]
      if v > 0 then
        local bh = v / top * h
        L[#L + 1] = fmt('<rect x="%s" y="%s" width="%s" height="%s"><title>%s, %s: %s</title></rect>',
          num(x0 + (k - 1) * w / n + 1), num(y0 + h - base[k] - bh), num(w / n - 2), num(bh), esc(b.name),
          clock(t0 + (k - 1) * step, t1 - t0), human(v))
        base[k] = base[k] + bh
      end
    end
    L[#L + 1] = "</g>"
    items[#items + 1] = { color = color, label = b.name }
  end
  return table.concat(L) .. close(legend(items))
end

-- failures(d): failures by cause -- fixed by batch-fix, left out of their batches, still open.
function M.failures(d)
  local W, rowh = 760, 30
  local H = 24 + math.max(1, #d.failures) * rowh
  local x0, w = 380, 340
  local top = 1
  for _, f in ipairs(d.failures) do top = math.max(top, f.open + f.fixed + (f.left or 0)) end
  local L = { open("chart-failures", "Failures by cause: fixed (green), left out (grey), still open (red)", W, H, #d.failures > 0 and 1 or 0) }
  if #d.failures == 0 then
    L[#L + 1] = '<text x="380" y="30" text-anchor="middle" font-size="13" fill="#059669">No failure.</text>'
    return table.concat(L) .. close()
  end
  L[#L + 1] = '<g class="series" data-series="failures">'
  for i, f in ipairs(d.failures) do
    local y = 8 + (i - 1) * rowh
    local label = #f.exception > 52 and (f.exception:gsub("PermanentException$", ""):gsub("Exception$", "")) or f.exception
    if #label > 52 then label = label:sub(1, 50) .. "..." end
    L[#L + 1] = fmt('<text x="%d" y="%d" text-anchor="end" font-size="11" fill="#111827"><title>%s</title>%s</text>',
                    x0 - 8, y + 15, esc(f.exception), esc(label))
    local left = f.left or 0
    local fw, lw, ow = f.fixed / top * w, left / top * w, f.open / top * w
    if fw > 0 then
      L[#L + 1] = fmt('<rect x="%d" y="%d" width="%s" height="20" fill="#059669"><title>%s: %d fixed</title></rect>',
                      x0, y, num(fw), esc(f.exception), f.fixed)
    end
    if lw > 0 then
      L[#L + 1] = fmt('<rect x="%s" y="%d" width="%s" height="20" fill="#9ca3af"><title>%s: %d left out</title></rect>',
                      num(x0 + fw), y, num(lw), esc(f.exception), left)
    end
    if ow > 0 then
      L[#L + 1] = fmt('<rect x="%s" y="%d" width="%s" height="20" fill="#dc2626"><title>%s: %d open</title></rect>',
                      num(x0 + fw + lw), y, num(ow), esc(f.exception), f.open)
    end
    L[#L + 1] = fmt('<text x="%s" y="%d" font-size="11" fill="#374151">%d</text>', num(x0 + fw + lw + ow + 6), y + 15,
                    f.open + f.fixed + left)
  end
  L[#L + 1] = "</g>"
  return table.concat(L) .. close()
end

return M
