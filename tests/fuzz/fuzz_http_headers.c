/* fuzz_http_headers — the HTTP client's response-header handling (core/http.c): the bytes
 * libcurl hands to the header callback, line by line (a new status line starts a new block, a
 * block is capped), then the parse of the last block into {name = value} and the ordered
 * list, then the Lua policy that reads them (Retry-After, HTTP-dates).  core/http.c is
 * included so its static parser can be called; its module entry point is renamed out of the
 * way of the linked-in copy. */
#define luaopen_t2t_http fuzz_unused_luaopen_t2t_http
#include "../../core/http.c"
#undef luaopen_t2t_http
#include "fuzz.h"

int fuzz_unused_luaopen_t2t_http(lua_State *L);

static lua_State *L;

/* Protected: push_headers on the block collected in r->hdr, then the Lua checks. */
static int parse(lua_State *S) {
    struct req *r = lua_touserdata(S, 1);
    lua_getglobal(S, "fuzz_check");
    push_headers(S, r->hdr.p ? r->hdr.p : "", r->hdr.n);   /* map, list */
    lua_call(S, 2, 0);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    L = fuzz_state();
    fuzz_do(L,
        "local http = require 't2t.http'\n"
        "function fuzz_check(map, list)\n"
        "  for _, kv in ipairs(list) do\n"
        "    assert(type(kv[1]) == 'string' and type(kv[2]) == 'string', 'list entries are {name, value}')\n"
        "    assert(map[kv[1]:lower()] ~= nil, 'every listed header is in the map')\n"
        "  end\n"
        "  local ra = http.parse_retry_after(map['retry-after'], map['date'], 0)\n"
        "  assert(ra == nil or ra >= 0 or ra ~= ra, 'Retry-After is never negative')\n"
        "  http.parse_http_date(map['date'])\n"
        "  http.redact_url(map['location'] or '')\n"
        "end\n");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct req r;
    memset(&r, 0, sizeof r);
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {                        /* libcurl calls back once per header line */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        if (on_header((char *)p, 1, n, &r) != n) break;
        p += n;
    }
    lua_pushcfunction(L, parse);
    lua_pushlightuserdata(L, &r);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        fprintf(stderr, "header handling raised: %s\n", lua_tostring(L, -1));
        abort();
    }
    buf_free(&r.hdr);
    return 0;
}
