/* fuzz_server — the embedded HTTP server (core/sim_server.c over libmicrohttpd) as a client on
 * loopback meets it: the input is the raw bytes of one connection (request line, headers,
 * body, pipelined requests, garbage).  The server runs in this process (plain HTTP: TLS is
 * GnuTLS's to parse), so sanitizers and coverage see its request assembly, header collection,
 * body limits, the request table built for Lua, and the response copied back from Lua
 * (tests/fuzz/handler_server.lua lets the query choose statuses, headers, aborts, sizes).
 * Findings: a crash or sanitizer report in either thread, or a server that stops answering. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "fuzz.h"

static lua_State *L;
static int port;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    L = fuzz_state();
    fuzz_do(L, "fuzz_srv = assert(require('t2t.core.server').start { port = 0, timeout = 1,\n"
               "  max_body = 65536, handler_module = 'tests.fuzz.handler_server', log_errors = false })\n"
               "fuzz_port = fuzz_srv:port()");
    lua_getglobal(L, "fuzz_port");
    port = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return 0;
}

static int connect_server(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {1, 500000};          /* the server's idle timeout is 1 s */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Does the server still answer a plain request?  (An input that got no answer may have been
 * garbage the server rightly dropped, or may have wedged it: this tells them apart.) */
static int alive(void) {
    static const char probe[] = "GET /alive HTTP/1.0\r\n\r\n";
    int fd = connect_server();
    if (fd < 0) return 0;
    char buf[512];
    int ok = send(fd, probe, sizeof probe - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof probe - 1) &&
             recv(fd, buf, sizeof buf, 0) > 0;
    close(fd);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 128 * 1024) return 0;
    int fd = connect_server();
    if (fd < 0) {
        fprintf(stderr, "fuzz_server: cannot connect: %s\n", strerror(errno));
        abort();
    }
    size_t off = 0;
    while (off < size) {                     /* the server may close early: that is fine */
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    /* Read what comes.  The server closes after an error; after a good answer it keeps the
     * connection for the next request, and with a request still incomplete it waits for the
     * rest: both end here after a short silence (the connection is then simply closed). */
    char buf[16384];
    int answered = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, answered ? 5 : 30) <= 0) break;
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0) { answered = 1; break; }     /* closed by the server: an answer too */
        answered = 1;
    }
    close(fd);
    if (!answered && !alive()) {
        fprintf(stderr, "fuzz_server: the server stopped answering\n");
        abort();
    }
    return 0;
}
