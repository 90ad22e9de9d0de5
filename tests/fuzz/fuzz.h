/* fuzz.h — shared set-up of the libFuzzer targets in tests/fuzz (built by `make fuzz`, run
 * briefly by `make test`): one Lua state with every t2t module (C modules linked in: the fuzz
 * build has no plugins), and coverage of Lua code for libFuzzer.
 *
 * Lua coverage: libFuzzer sees the edges of the instrumented C only, and most of the simulator
 * is Lua.  A line hook maps each (chunk, previous line, line) step to a byte of an
 * "extra counters" array libFuzzer reads as coverage, so an input that reaches new Lua lines of
 * a service is kept and mutated further, as an input reaching new C edges is. */
#ifndef T2T_FUZZ_H
#define T2T_FUZZ_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "host.h"

/* libFuzzer's entry points (each target defines them). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_LUA_COUNTERS (1 << 16)
__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t fuzz_lua_cov[FUZZ_LUA_COUNTERS];

static uintptr_t fuzz_prev;

static void fuzz_line_hook(lua_State *L, lua_Debug *ar) {
    if (!lua_getinfo(L, "S", ar)) return;
    uintptr_t here = ((uintptr_t)ar->source * 31u) ^ ((uintptr_t)ar->currentline * 2654435761u);
    uintptr_t i = (here ^ (fuzz_prev >> 1)) & (FUZZ_LUA_COUNTERS - 1);
    fuzz_prev = here;
    if (fuzz_lua_cov[i] < 255) fuzz_lua_cov[i]++;
}

/* Line coverage of Lua code on L from now on (each coroutine needs its own hook: Lua hooks are
 * per thread; the simulator's handlers run on the main one). */
static inline void fuzz_cover_lua(lua_State *L) {
    lua_sethook(L, fuzz_line_hook, LUA_MASKLINE, 0);
}

/* A state with every t2t module; aborts (a harness bug, not a finding) if that fails. */
static inline lua_State *fuzz_state(void) {
    lua_State *L = luaL_newstate();
    if (!L) abort();
    host_openlibs(L);
    /* the helper modules of tests/ (tests.lua.handlers.*) are found from the source tree */
    lua_getglobal(L, "package");
    lua_pushstring(L, "./?.lua;");
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    return L;
}

/* Run `code` (setting up a target); aborts with its message on error. */
static inline void fuzz_do(lua_State *L, const char *code) {
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "fuzz set-up failed: %s\n", lua_tostring(L, -1));
        abort();
    }
}

/* Run `code`, which starts a server and sets global `fuzz_port`; its port. */
static inline int fuzz_start(lua_State *L, const char *code) {
    fuzz_do(L, code);
    lua_getglobal(L, "fuzz_port");
    int port = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return port;
}

/* The Lua function stored in global `name`, called with the input as a string in a protected
 * call.  An error is a finding only when it is not a string or a table with a message: the
 * services answer errors, they must not raise nonsense; a harness may be stricter. */
static inline int fuzz_call(lua_State *L, const char *name, const uint8_t *data, size_t size) {
    int top = lua_gettop(L);
    lua_getglobal(L, name);
    lua_pushlstring(L, (const char *)data, size);
    int st = lua_pcall(L, 1, 0, 0);
    if (st != LUA_OK) {
        fprintf(stderr, "%s raised: %s\n", name, lua_tostring(L, -1) ? lua_tostring(L, -1) : "(non-string)");
        abort();
    }
    lua_settop(L, top);
    return 0;
}

/* A TCP connection to 127.0.0.1:port (1.5 s send/receive timeouts) | -1. */
static inline int fuzz_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {1, 500000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Does the server on port still answer `probe`?  (An input that got no answer may have been
 * garbage the server rightly dropped, or may have wedged it: this tells them apart.) */
static inline int fuzz_alive(int port, const char *probe) {
    int fd = fuzz_connect(port);
    if (fd < 0) return 0;
    char buf[512];
    size_t n = strlen(probe);
    int ok = send(fd, probe, n, MSG_NOSIGNAL) == (ssize_t)n && recv(fd, buf, sizeof buf, 0) > 0;
    close(fd);
    return ok;
}

/* One connection carrying the input to a server in this process: send it all (the server may
 * close early), half-close, read what comes.  The server closes after an error; after a good
 * answer it keeps the connection, and with a request still incomplete it waits for the rest:
 * both end after a short silence.  No answer at all is a finding only if the server then fails
 * to answer `probe` either. */
static inline void fuzz_tcp_exchange(int port, const uint8_t *data, size_t size, const char *probe) {
    int fd = fuzz_connect(port);
    if (fd < 0) {
        fprintf(stderr, "fuzz: cannot connect to port %d: %s\n", port, strerror(errno));
        abort();
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    char buf[16384];
    int answered = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, answered ? 5 : 30) <= 0) break;
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        answered = 1;                        /* bytes, or the server closing: an answer */
        if (r <= 0) break;
    }
    close(fd);
    if (answered || fuzz_alive(port, probe)) return;
    /* Full for now?  The proxy holds 256 connections, each tunnel until the upstream's 1 s idle
     * timeout: give them time to drain before calling it a wedge. */
    usleep(2500 * 1000);
    if (!fuzz_alive(port, probe)) {
        fprintf(stderr, "fuzz: the server on port %d stopped answering\n", port);
        abort();
    }
}

#endif
