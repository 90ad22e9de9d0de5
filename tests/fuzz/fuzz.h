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

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#endif
