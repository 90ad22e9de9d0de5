/* fuzz_proxy — the simulator's CONNECT proxy (core/sim_server_proxy.c): the input is the raw
 * bytes a client sends it — a request head (CONNECT host:port, other methods, garbage, heads
 * too long or never finished) and whatever follows into the tunnel.  The proxy runs in this
 * process in front of the embedded server (tests/fuzz/handler_server.lua, plain HTTP), allowing
 * the simulated hosts as t2t sim does.  Findings: a crash or sanitizer report in the proxy's
 * thread, or a proxy that stops answering. */
#include "fuzz.h"

static lua_State *L;
static int port;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    L = fuzz_state();
    port = fuzz_start(L, "local srv = assert(require('t2t.core.server').start { port = 0, timeout = 1,\n"
                         "  handler_module = 'tests.fuzz.handler_server', log_errors = false })\n"
                         "fuzz_srv = srv\n"
                         "fuzz_proxy = assert(require('t2t.core.proxy').start { port = 0, upstream_port = srv:port(),\n"
                         "  hosts = { 'login.microsoftonline.com', 'graph.microsoft.com', '*.vault.azure.net' } })\n"
                         "fuzz_port = fuzz_proxy:port()");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 128 * 1024) return 0;
    fuzz_tcp_exchange(port, data, size, "CONNECT evil.example:443 HTTP/1.1\r\n\r\n");
    return 0;
}
