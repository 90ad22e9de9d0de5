/* fuzz_dkim — the DKIM and mail-authentication parsers (core/dkim.c, core/dkim_sign.c and the
 * Lua SPF/DMARC record parsers): the first byte picks the parser, the rest is its input.
 *   0 tag-list   1 tag-list (lenient)   2 key record (selector TXT)   3 SPF record
 *   4 DMARC record   5 a message: its signatures, headers, body, each signature verified
 *   6 a message signed, then verified: whatever sign() accepts must verify as pass
 *   7 canonicalization of a body and of a header field, both modes
 * Findings: a crash or sanitizer report; a parser that raises instead of answering nil, err;
 * a message t2t signs that its own verifier does not pass. */
#include "fuzz.h"

static lua_State *L;

static const char *SETUP =
    "local dkim, sign = require 't2t.core.dkim', require 't2t.core.dkim_sign'\n"
    "local spf, dmarc = require 't2t.dkim.spf', require 't2t.dkim.dmarc'\n"
    "local pem, p = sign.generate_key('ed25519')\n"
    "local key = assert(dkim.key('v=DKIM1; k=ed25519; p=' .. p))\n"
    "local NOW = 1700000000\n"
    "local function quiet(f, ...)\n"       /* a parser that answers nil, err must not raise */
    "  local ok, v, err = pcall(f, ...)\n"
    "  if not ok then error('raised: ' .. tostring(v), 0) end\n"
    "  if v == nil and type(err) ~= 'string' then error('nil without a message', 0) end\n"
    "  return v, err\n"
    "end\n"
    "local function message(raw)\n"
    "  local m = quiet(dkim.message, raw)\n"
    "  if not m then return end\n"
    "  m:headers(); m:body()\n"
    "  for i = 1, #m:signatures() do m:verify(i, key, { now = NOW }) end\n"
    "end\n"
    "local parsers = {\n"
    "  function(s) quiet(dkim.taglist, s) end,\n"
    "  function(s) quiet(dkim.taglist, s, true) end,\n"
    "  function(s) local k = quiet(dkim.key, s) if k then k:info() end end,\n"
    "  function(s) quiet(spf.parse, s) end,\n"
    "  function(s) quiet(dmarc.parse, s) end,\n"
    "  message,\n"
    "  function(raw)\n"
    "    local canon = ({ 'relaxed/relaxed', 'simple/simple', 'relaxed/simple', 'simple/relaxed' })[#raw % 4 + 1]\n"
    "    local ok, field = pcall(sign.sign, raw, { domain = 'contoso.com', selector = 'selector1', key = pem,\n"
    "                                              canon = canon, time = NOW })\n"
    "    if not ok or type(field) ~= 'string' then return end\n"
    "    local m = assert(dkim.message(field .. raw), 'a message t2t signed does not parse')\n"
    "    local r = m:verify(1, key, { now = NOW })\n"
    "    if r.result ~= 'pass' then error('t2t signed a message it does not verify: ' .. tostring(r.reason), 0) end\n"
    "  end,\n"
    "  function(s)\n"
    "    for _, mode in ipairs { 'simple', 'relaxed' } do\n"
    "      pcall(sign.canon_body, s, mode); pcall(sign.canon_header, s, mode)\n"
    "    end\n"
    "  end,\n"
    "}\n"
    "function fuzz_one(input)\n"
    "  if #input < 1 then return end\n"
    "  parsers[input:byte(1) % #parsers + 1](input:sub(2))\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    L = fuzz_state();
    fuzz_do(L, SETUP);
    fuzz_cover_lua(L);                       /* the SPF and DMARC parsers are Lua */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 256 * 1024) return 0;
    fuzz_call(L, "fuzz_one", data, size);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
