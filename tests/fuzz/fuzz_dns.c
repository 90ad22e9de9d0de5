/* fuzz_dns — the DNS message parser (core/dns.c's dns.parse): answers come from the network,
 * so every byte is hostile.  Names with compression loops and pointers out of range, counts
 * larger than the message, truncated records, every record type t2t reads (A, AAAA, CNAME, MX,
 * TXT, SOA, TSIG, OPT).  Findings: a crash or sanitizer report, a raise instead of nil, err, or
 * a parsed record that claims bytes beyond the message. */
#include "fuzz.h"

static lua_State *L;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    L = fuzz_state();
    fuzz_do(L,
        "local dns = require 't2t.core.dns'\n"
        "function fuzz_one(packet)\n"
        "  local ok, m, err = pcall(dns.parse, packet)\n"
        "  if not ok then error('dns.parse raised: ' .. tostring(m), 0) end\n"
        "  if not m then assert(type(err) == 'string', 'nil without a message') return end\n"
        "  for _, sec in ipairs { 'question', 'answers', 'authority', 'additional' } do\n"
        "    for _, rr in ipairs(m[sec] or {}) do\n"
        "      assert(type(rr.name) == 'string', 'a record without a name')\n"
        "      if rr.offset then assert(rr.offset >= 0 and rr.offset <= #packet, 'a record beyond the message') end\n"
        "      if rr.type_code then dns.type_name(rr.type_code) end\n"
        "    end\n"
        "  end\n"
        "end\n");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_call(L, "fuzz_one", data, size);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
