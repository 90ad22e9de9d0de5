-- t2t.csv: CSV as admins produce it (Excel, PowerShell Export-Csv, hand edits) — a UTF-8 BOM,
-- CRLF / LF / CR line ends, quoted fields (delimiters, quotes and line breaks inside), spaces
-- around fields, blank lines, duplicate rows, extra columns, any header case, and `;` or tab
-- instead of `,` (detected from the header line).  A bad row names its line and the reason and
-- never stops the others.  And the writer for the reports t2t produces.
--
--   local doc = csv.parse(text)               -- or csv.read(path)
--   doc.header   {"SourceUser", "TargetUser"}  (as written, trimmed)
--   doc.rows     { {line = 2, fields = {"a@x", "b@y"}}, ... }   (data rows, in order)
--   doc.errors   { {line = 7, reason = "..."} }                  (rows left out)
--   doc.delimiter ","
--   local recs, problems = csv.records(doc, {columns = {...}})   header names -> fields
--   csv.encode(header, rows) / csv.write(path, header, rows)
local M = {}

local find, sub, byte, gsub, match, lower = string.find, string.sub, string.byte, string.gsub,
                                             string.match, string.lower
local concat = table.concat

local BOM = "\239\187\191"
M.BOM = BOM

-- The delimiter of a header line: the one of , ; TAB that occurs most outside quotes.
local function sniff(line)
  local plain = gsub(line, '"[^"]*"', "")
  local best, n = ",", 0
  for _, d in ipairs { ",", ";", "\t" } do
    local c = select(2, gsub(plain, d, d))
    if c > n then best, n = d, c end
  end
  return best
end
M.sniff = sniff

-- Surrounding white space off (the common case, none, without a pattern match).
local function trim(s)
  local a, b = byte(s, 1), byte(s, -1)
  if a and a > 32 and b > 32 then return s end
  return (match(s, "^%s*(.-)%s*$"))
end

-- Parse the record starting at pos (quotes involved; line ends are "\n" by now): fields into
-- out; returns the number of fields, the position after the record's line end and the number
-- of line breaks inside quotes, or nil, reason, the position of the end of the bad line.
local function parse_quoted(text, pos, d, out)
  local n, len, breaks = 0, #text, 0
  local dq = byte(d)
  local ws = d == "\t" and "[^ ]" or "[^ \t]"
  local stop = "[" .. d .. "\n]"
  while true do
    local s = find(text, ws, pos) or len + 1             -- spaces before a field
    local value, after
    if byte(text, s) == 34 then                          -- '"': a quoted field
      local parts, p = {}, s + 1
      while true do
        local q = find(text, '"', p, true)
        if not q then return nil, "a quoted field is not closed (missing '\"')", len + 1 end
        parts[#parts + 1] = sub(text, p, q - 1)
        if byte(text, q + 1) == 34 then                  -- "" is one quote
          parts[#parts + 1] = '"'
          p = q + 2
        else
          p = q + 1
          break
        end
      end
      value = concat(parts)
      breaks = breaks + select(2, gsub(value, "\n", "\n"))
      after = find(text, ws, p) or len + 1               -- then a delimiter or the line end
      local ac = byte(text, after)
      if ac and ac ~= dq and ac ~= 10 then
        return nil, "text after a closing quote (quote the whole field, and double the quotes " ..
                    "in it)", find(text, "\n", after, true) or len + 1
      end
    else                                                 -- unquoted: up to d or the line end
      local e = find(text, stop, s) or len + 1
      value = trim(sub(text, s, e - 1))
      after = e
    end
    n = n + 1
    out[n] = value
    if byte(text, after) == dq then pos = after + 1
    else return n, after + 1, breaks end
  end
end

-- parse(text [, {delimiter}]) -> doc.  Never fails: problems are in doc.errors; a file with no
-- header has doc.header = nil and one error for line 1.
function M.parse(text, opts)
  opts = opts or {}
  if sub(text, 1, 3) == BOM then text = sub(text, 4) end
  if find(text, "\r", 1, true) then text = gsub(text, "\r\n?", "\n") end   -- CRLF, CR -> LF
  local doc = { rows = {}, errors = {} }
  local rows, errors = doc.rows, doc.errors
  local pos, len, line = 1, #text, 1
  local d = opts.delimiter
  local nrows = 0
  -- Next quote and next delimiter at or after pos, found once and reused: searching from every
  -- line anew would rescan the rest of the file for a file without them.
  local nq, nd = 0, 0
  while pos <= len do
    local e = find(text, "\n", pos, true) or len + 1
    local c = find(text, "%S", pos)
    if not c or c >= e then                              -- blank line
      pos, line = e + 1, line + 1
      goto continue
    end
    if not d then
      d = sniff(sub(text, pos, e - 1))
    end
    if nq and nq < pos then nq = find(text, '"', pos, true) end
    do
      local fields, n, breaks = {}, 0, 0
      if not nq or nq > e then                           -- no quote on this line
        local p = pos
        while true do
          if nd and nd < p then nd = find(text, d, p, true) end
          n = n + 1
          if not nd or nd > e then fields[n] = trim(sub(text, p, e - 1)) break end
          fields[n] = trim(sub(text, p, nd - 1))
          p = nd + 1
        end
        pos = e + 1
      else
        local np
        n, np, breaks = parse_quoted(text, pos, d, fields)
        if not n then
          errors[#errors + 1] = { line = line, reason = np }
          line = line + select(2, gsub(sub(text, pos, breaks - 1), "\n", "\n")) + 1
          pos = breaks + 1
          goto continue
        end
        pos = np
      end
      if not doc.header then
        doc.header, doc.header_line = fields, line
      else
        nrows = nrows + 1
        rows[nrows] = { line = line, fields = fields, n = n }
      end
      line = line + 1 + breaks
    end
    ::continue::
  end
  doc.delimiter = d or ","
  if not doc.header then errors[#errors + 1] = { line = 1, reason = "the file has no header line" } end
  return doc
end

-- read(path [, opts]) -> doc | nil, err.  A regular file within t2t.files' cap for data (a FIFO
-- or device is refused rather than read forever).
function M.read(path, opts)
  local text, err = require("t2t.files").read(path, "data")
  if not text then return nil, err end
  if find(text, "\0", 1, true) then
    local hint = (sub(text, 1, 2) == "\255\254" or sub(text, 1, 2) == "\254\255")
                 and " (it is UTF-16: save it as \"CSV UTF-8\" in Excel)" or ""
    return nil, path .. ": not a text CSV file" .. hint
  end
  return M.parse(text, opts)
end

---------------------------------------------------------------------------------------------
-- Records: fields by column name.

-- records(doc, spec) -> records, problems.
-- spec.columns = { {name = "SourceUser", aliases = {"Source"}, required = true}, ... }: header
-- cells match a name or alias case-insensitively (spaces and '_' ignored).  A record is
-- {line = n, [Name] = value (nil when empty), _extra = {header = value}} for every row.
-- problems = {missing = {names of required columns absent}, extra = {header names not in
-- spec}, duplicate_columns = {names}}.  Rows with more fields than the header are in
-- doc.errors (an unquoted delimiter in a value, most likely); fewer are padded with empties.
function M.records(doc, spec)
  local problems = { missing = {}, extra = {}, duplicate_columns = {} }
  local recs = {}
  if not doc.header then return recs, problems end
  local function key(s) return lower(gsub(s, "[%s_%-]", "")) end
  local want = {}
  for _, c in ipairs(spec.columns or {}) do
    want[key(c.name)] = c.name
    for _, a in ipairs(c.aliases or {}) do want[key(a)] = c.name end
  end
  local idx, seen = {}, {}
  for i, h in ipairs(doc.header) do
    local name = want[key(h)]
    if name then
      if seen[name] then problems.duplicate_columns[#problems.duplicate_columns + 1] = h
      else seen[name] = true; idx[i] = name end
    elseif h ~= "" then
      problems.extra[#problems.extra + 1] = h
      idx[i] = false
    end
  end
  for _, c in ipairs(spec.columns or {}) do
    if c.required and not seen[c.name] then problems.missing[#problems.missing + 1] = c.name end
  end
  local width = #doc.header
  local errors = doc.errors
  for _, r in ipairs(doc.rows) do
    local f = r.fields
    local extra_nonempty = false
    for i = width + 1, r.n or #f do if f[i] ~= "" then extra_nonempty = true break end end
    if extra_nonempty then
      errors[#errors + 1] = { line = r.line, reason = string.format(
        "%d fields where the header has %d (a value with a '%s' in it must be in double quotes)",
        r.n or #f, width, doc.delimiter) }
    else
      local rec = { line = r.line }
      for i = 1, width do
        local name = idx[i]
        local v = f[i]
        if v == "" then v = nil end
        if name then rec[name] = v
        elseif name == false and v then
          rec._extra = rec._extra or {}
          rec._extra[doc.header[i]] = v
        end
      end
      recs[#recs + 1] = rec
    end
  end
  table.sort(errors, function(a, b) return a.line < b.line end)
  return recs, problems
end

---------------------------------------------------------------------------------------------
-- Writing.

-- One field, quoted when it must be (delimiter, quote, line break, surrounding spaces).
function M.field(v, d)
  if v == nil then return "" end
  v = tostring(v)
  d = d or ","
  if find(v, '["\r\n]') or find(v, d, 1, true) or find(v, "^%s") or find(v, "%s$") then
    return '"' .. gsub(v, '"', '""') .. '"'
  end
  return v
end

function M.row(fields, d, n)
  d = d or ","
  local out = {}
  for i = 1, n or #fields do out[i] = M.field(fields[i], d) end
  return concat(out, d)
end

-- encode(header, rows [, {bom = true, delimiter = ","}]) -> text with CRLF line ends (what
-- Excel writes and reads best); rows are lists, or tables keyed by header name.  A BOM by
-- default, so Excel reads non-ASCII names as UTF-8.
function M.encode(header, rows, opts)
  opts = opts or {}
  local d = opts.delimiter or ","
  local out = { (opts.bom == false and "" or BOM) .. M.row(header, d) }
  local n = #header
  for _, r in ipairs(rows) do
    if r[1] == nil and next(r) ~= nil then
      local l = {}
      for i, h in ipairs(header) do l[i] = r[h] end
      r = l
    end
    out[#out + 1] = M.row(r, d, n)
  end
  return concat(out, "\r\n") .. "\r\n"
end

-- write(path, header, rows [, opts]) -> true | nil, err: replaced atomically, mode 0600 (the
-- rows are people's names and addresses).
function M.write(path, header, rows, opts)
  return require("t2t.core.fs").write_private(path, M.encode(header, rows, opts))
end

return M
