local lu = require "luaunit"
local csv = require "t2t.csv"

TestCsv = {}

local SPEC = { columns = { { name = "SourceUser", required = true }, { name = "TargetUser" } } }

local function recs(text, spec)
  local doc = csv.parse(text)
  local r, problems = csv.records(doc, spec or SPEC)
  return r, doc, problems
end

function TestCsv.test_plain_comma()
  local doc = csv.parse("a,b\n1,2\n3,4\n")
  lu.assertEquals(doc.header, { "a", "b" })
  lu.assertEquals(#doc.rows, 2)
  lu.assertEquals(doc.rows[2].fields, { "3", "4" })
  lu.assertEquals(doc.rows[2].line, 3)
  lu.assertEquals(doc.delimiter, ",")
end

function TestCsv.test_bom_crlf_header_case_and_spaces()
  local r, doc = recs(csv.BOM .. "sourceuser , TARGETUSER\r\n  ada@contoso.com ,  ada@fabrikam.com  \r\n")
  lu.assertEquals(doc.header, { "sourceuser", "TARGETUSER" })
  lu.assertEquals(r[1].SourceUser, "ada@contoso.com")
  lu.assertEquals(r[1].TargetUser, "ada@fabrikam.com")
  lu.assertEquals(r[1].line, 2)
end

function TestCsv.test_bare_cr_line_ends()
  local doc = csv.parse("a,b\r1,2\r3,4")
  lu.assertEquals(#doc.rows, 2)
  lu.assertEquals(doc.rows[2].fields, { "3", "4" })
  lu.assertEquals(doc.rows[2].line, 3)
end

function TestCsv.test_blank_lines_keep_line_numbers()
  local doc = csv.parse("a\n\n1\n   \n\r\n2\n\n")
  lu.assertEquals(#doc.rows, 2)
  lu.assertEquals(doc.rows[1].line, 3)
  lu.assertEquals(doc.rows[2].line, 6)
  lu.assertEquals(#doc.errors, 0)
end

function TestCsv.test_quoted_fields()
  local doc = csv.parse('name,note\n"O\'Brien, Lara","said ""hi"""\n"multi\nline",x\nlast,"  kept  "\n')
  lu.assertEquals(doc.rows[1].fields, { "O'Brien, Lara", 'said "hi"' })
  lu.assertEquals(doc.rows[2].fields, { "multi\nline", "x" })
  lu.assertEquals(doc.rows[2].line, 3)
  lu.assertEquals(doc.rows[3].line, 5)           -- the quoted line break counts
  lu.assertEquals(doc.rows[3].fields, { "last", "  kept  " })
end

function TestCsv.test_spaces_around_quoted_field()
  local doc = csv.parse('a,b\n  "x" , "y"  \n')
  lu.assertEquals(doc.rows[1].fields, { "x", "y" })
end

function TestCsv.test_semicolon_and_tab_are_detected()
  local doc = csv.parse("SourceUser;TargetUser\r\na@x.com;b@y.com\r\n")
  lu.assertEquals(doc.delimiter, ";")
  lu.assertEquals(doc.rows[1].fields, { "a@x.com", "b@y.com" })
  doc = csv.parse("SourceUser\tTargetUser\na@x.com\tb@y.com\n")
  lu.assertEquals(doc.delimiter, "\t")
  lu.assertEquals(doc.rows[1].fields, { "a@x.com", "b@y.com" })
  -- a comma inside a quoted header cell does not fool the sniffer
  doc = csv.parse('"Name, full";Mail\n"a, b";c\n')
  lu.assertEquals(doc.delimiter, ";")
  lu.assertEquals(doc.rows[1].fields, { "a, b", "c" })
end

function TestCsv.test_unclosed_quote_names_the_line_and_stops_only_at_eof()
  local doc = csv.parse('a,b\n1,2\n"open,3\n4,5\n')
  lu.assertEquals(#doc.rows, 1)
  lu.assertEquals(doc.errors[1].line, 3)
  lu.assertStrContains(doc.errors[1].reason, "not closed")
end

function TestCsv.test_text_after_closing_quote_skips_that_row_only()
  local doc = csv.parse('a,b\n"x"y,1\n2,3\n')
  lu.assertEquals(doc.errors[1].line, 2)
  lu.assertStrContains(doc.errors[1].reason, "after a closing quote")
  lu.assertEquals(#doc.rows, 1)
  lu.assertEquals(doc.rows[1].line, 3)
  lu.assertEquals(doc.rows[1].fields, { "2", "3" })
end

function TestCsv.test_records_extra_columns_missing_fields_and_too_many()
  local r, doc, problems = recs("SourceUser,Department,TargetUser\nada@x,Sales,ada@y\nbob@x\ncy@x,IT,cy@y,oops\ncy2@x,IT,cy@y,,\n")
  lu.assertEquals(problems.extra, { "Department" })
  lu.assertEquals(#problems.missing, 0)
  lu.assertEquals(r[1]._extra, { Department = "Sales" })
  lu.assertEquals(r[2].SourceUser, "bob@x")
  lu.assertNil(r[2].TargetUser)                  -- fewer fields: padded with empties
  lu.assertEquals(#r, 3)                          -- the row with an extra value is refused...
  lu.assertEquals(doc.errors[1].line, 4)
  lu.assertStrContains(doc.errors[1].reason, "4 fields where the header has 3")
  lu.assertEquals(r[3].SourceUser, "cy2@x")      -- ...trailing empty fields (Excel) are not
end

function TestCsv.test_records_missing_required_and_aliases()
  local _, _, problems = recs("TargetUser\nx\n")
  lu.assertEquals(problems.missing, { "SourceUser" })
  local r = recs("Source User,Target_User\na,b\n",
    { columns = { { name = "SourceUser" }, { name = "TargetUser" } } })
  lu.assertEquals(r[1].SourceUser, "a")
  lu.assertEquals(r[1].TargetUser, "b")
  local r2, _, p2 = recs("EmailAddress,emailaddress\nx,y\n", { columns = { { name = "EmailAddress" } } })
  lu.assertEquals(p2.duplicate_columns, { "emailaddress" })
  lu.assertEquals(r2[1].EmailAddress, "x")
end

function TestCsv.test_empty_and_headerless()
  local doc = csv.parse("")
  lu.assertNil(doc.header)
  lu.assertStrContains(doc.errors[1].reason, "no header")
  doc = csv.parse("\n\n  \n")
  lu.assertNil(doc.header)
end

function TestCsv.test_encode_round_trip()
  local header = { "Name", "Note", "Count" }
  local rows = { { "Zoë O'Brien", 'a "quoted", value', 3 }, { " padded ", "two\nlines", nil },
                 { Name = "by name", Count = 7 } }
  local text = csv.encode(header, rows)
  lu.assertEquals(text:sub(1, 3), csv.BOM)
  lu.assertStrContains(text, "\r\n")
  local doc = csv.parse(text)
  lu.assertEquals(doc.header, header)
  lu.assertEquals(doc.rows[1].fields, { "Zoë O'Brien", 'a "quoted", value', "3" })
  lu.assertEquals(doc.rows[2].fields, { " padded ", "two\nlines", "" })
  lu.assertEquals(doc.rows[3].fields, { "by name", "", "7" })
  lu.assertEquals(csv.encode({ "a" }, {}, { bom = false }), "a\r\n")
end

function TestCsv.test_write_and_read_file()
  local path = os.tmpname()
  assert(csv.write(path, { "a", "b" }, { { "1", "x,y" } }))
  lu.assertEquals(require("t2t.core.fs").mode(path), tonumber("600", 8))
  local doc = assert(csv.read(path))
  lu.assertEquals(doc.rows[1].fields, { "1", "x,y" })
  local f = assert(io.open(path, "wb"))
  f:write("\255\254S\0o\0u\0")
  f:close()
  local d, err = csv.read(path)
  lu.assertNil(d)
  lu.assertStrContains(err, "UTF-16")
  os.remove(path)
  local d2, err2 = csv.read("/nonexistent/x.csv")
  lu.assertNil(d2)
  lu.assertStrContains(err2, "/nonexistent/x.csv")
end
