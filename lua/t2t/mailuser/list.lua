-- t2t.mailuser.list: the list of users to work on, as admins write it (ms-setup-and-prep.md
-- §6.2): CSS-val's `SourceUser,TargetUser` or SourceObject.ps1's `EmailAddress` (the SOURCE
-- mailbox's address), any header case, extra columns ignored (`Batch` kept: validate-users
-- reports delegates split across batches).  Read with t2t.csv, so BOMs, quotes, CRLF, blank
-- lines and `;` are fine; a bad row names its line and the reason and the others go on.
local csv = require "t2t.csv"
local C = require "t2t.mailuser.common"

local M = {}
local lower, fmt = string.lower, string.format

local SPEC = { columns = {
  { name = "SourceUser", aliases = { "Source", "SourceIdentity", "EmailAddress", "PrimarySmtpAddress",
                                     "SourceEmailAddress", "Identity" } },
  { name = "TargetUser", aliases = { "Target", "TargetIdentity", "TargetEmailAddress", "TargetAddress" } },
  { name = "Batch", aliases = { "BatchName", "Wave" } },
} }

local is_address = C.is_address

-- Does a header name the source (SourceUser or one of its aliases, any case)?
local function has_source(header)
  local have = {}
  for _, h in ipairs(header) do have[lower((h:gsub("[%s_%-]", "")))] = true end
  for _, a in ipairs { SPEC.columns[1].name, table.unpack(SPEC.columns[1].aliases) } do
    if have[lower(a)] then return true end
  end
  return false
end

-- parse(text, name) -> entries, report.  entries: {line, source, target?, batch?} in file order,
-- one per user; report: {errors = {{line, reason}}, duplicates = {{line, first}},
-- extra_columns = {...}, rows = n}.  A header without a source column is an error for line 1.
function M.parse(text, name)
  local doc = csv.parse(text)
  local recs, problems = csv.records(doc, SPEC)
  local report = { errors = {}, duplicates = {}, extra_columns = problems.extra, rows = #recs }
  local errors = report.errors
  for _, e in ipairs(doc.errors) do errors[#errors + 1] = e end
  local entries = {}
  if not doc.header then return entries, report end
  if not has_source(doc.header) then
    errors[#errors + 1] = { line = doc.header_line or 1, reason = fmt("%s: the header (%s) has no SourceUser " ..
      "or EmailAddress column; write `SourceUser,TargetUser` (as CSS-val) or `EmailAddress`",
      name or "the list", table.concat(doc.header, ", ")) }
    return entries, report
  end
  local seen = {}
  for _, r in ipairs(recs) do
    local src, tgt = r.SourceUser, r.TargetUser
    if not src then
      errors[#errors + 1] = { line = r.line, reason = "the source user is empty" }
    elseif tgt and not is_address(tgt) then
      errors[#errors + 1] = { line = r.line, reason = fmt("TargetUser '%s' is not an e-mail address", tgt) }
    else
      local key = lower(src)
      local first = seen[key]
      if first and lower(first.target or "") == lower(tgt or "") then
        report.duplicates[#report.duplicates + 1] = { line = r.line, first = first.line }
      elseif first then
        errors[#errors + 1] = { line = r.line, reason = fmt("%s is on line %d too, with TargetUser %s there " ..
          "and %s here: keep one", src, first.line, tostring(first.target or "(none)"), tostring(tgt or "(none)")) }
        first.conflict = true
      else
        local e = { line = r.line, source = src, target = tgt, batch = r.Batch }
        seen[key] = e
        entries[#entries + 1] = e
      end
    end
  end
  -- a user whose lines disagree is not worked on at all: which line is right is the admin's call
  local keep = {}
  for _, e in ipairs(entries) do
    if e.conflict then
      errors[#errors + 1] = { line = e.line, reason = fmt("%s: conflicting lines (see below); not processed", e.source) }
    else
      keep[#keep + 1] = e
    end
  end
  table.sort(errors, function(a, b) return a.line < b.line end)
  return keep, report
end

-- read(path) -> entries, report | nil, err
function M.read(path)
  local text, err = require("t2t.files").read(path, "data")
  if not text then return nil, err end
  if text:find("\0", 1, true) then
    return nil, path .. ": not a text CSV file (UTF-16? save it as \"CSV UTF-8\" in Excel)"
  end
  return M.parse(text, path)
end

-- The lines of a report, for people: "line 7: reason".
function M.describe(report)
  local out = {}
  for _, e in ipairs(report.errors) do out[#out + 1] = fmt("line %d: %s", e.line, e.reason) end
  for _, d in ipairs(report.duplicates) do
    out[#out + 1] = fmt("line %d: duplicate of line %d (skipped)", d.line, d.first)
  end
  return out
end

return M
