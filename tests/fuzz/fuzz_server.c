/* fuzz_server — the embedded HTTP server (core/sim_server.c over libmicrohttpd) as a client on
 * loopback meets it: the input is the raw bytes of one connection (request line, headers,
 * body, pipelined requests, garbage).  The server runs in this process (plain HTTP: TLS is
 * GnuTLS's to parse), so sanitizers and coverage see its request assembly, header collection,
 * body limits, the request table built for Lua, and the response copied back from Lua
 * (tests/fuzz/handler_server.lua lets the query choose statuses, headers, aborts, sizes).
 * Findings: a crash or sanitizer report in either thread, or a server that stops answering. */
#include "fuzz.h"

static lua_State *L;
static int port;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    L = fuzz_state();
    port = fuzz_start(L, "fuzz_srv = assert(require('t2t.core.server').start { port = 0, timeout = 1,\n"
                         "  max_body = 65536, handler_module = 'tests.fuzz.handler_server', log_errors = false })\n"
                         "fuzz_port = fuzz_srv:port()");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 128 * 1024) return 0;
    fuzz_tcp_exchange(port, data, size, "GET /alive HTTP/1.0\r\n\r\n");
    return 0;
}
