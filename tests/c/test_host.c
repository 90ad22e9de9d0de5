/* Unit tests of the host: embedded sources, preloading, protected calls, error reporting. */
#include "check.h"
#include "host.h"

static lua_State *fresh(void) {
    lua_State *L = luaL_newstate();
    host_openlibs(L);
    return L;
}

static void embedded_sorted_and_complete(void) {
    CHECK(host_embedded_count > 0);
    for (int i = 1; i < host_embedded_count; i++) {
        const struct host_embedded *a = &host_embedded[i - 1], *b = &host_embedded[i];
        CHECK(a->runbook < b->runbook || (a->runbook == b->runbook && strcmp(a->name, b->name) < 0));
    }
    for (int i = 0; i < host_embedded_count; i++) {
        CHECK(host_embedded[i].len == strlen(host_embedded[i].src));
        CHECK(host_embedded[i].chunk[0] == '@');
    }
}

static void cli_module_is_preloaded(void) {
    lua_State *L = fresh();
    CHECK(luaL_dostring(L, "return require('t2t.cli').EXIT.usage") == LUA_OK);
    CHECK(lua_tointeger(L, -1) == 2);
    lua_close(L);
}

static void chunk_names_point_at_sources(void) {
    lua_State *L = fresh();
    CHECK(luaL_dostring(L, "return debug.getinfo(require('t2t.pretty').format, 'S').source") == LUA_OK);
    CHECK_STR(lua_tostring(L, -1), "@t2t/pretty.lua");
    lua_close(L);
}

static void pcall_adds_traceback(void) {
    lua_State *L = fresh();
    CHECK(luaL_loadstring(L, "local function f() error('boom') end f()") == LUA_OK);
    CHECK(host_pcall(L, 0, 0) == LUA_ERRRUN);
    const char *msg = lua_tostring(L, -1);
    CHECK(msg && strstr(msg, "boom") && strstr(msg, "stack traceback"));
    lua_close(L);
}

static void pcall_error_objects_use_tostring(void) {
    lua_State *L = fresh();
    CHECK(luaL_loadstring(L, "error(setmetatable({}, {__tostring = function() return 'E!' end}))") == LUA_OK);
    CHECK(host_pcall(L, 0, 0) == LUA_ERRRUN);
    CHECK_STR(lua_tostring(L, -1), "E!");
    lua_close(L);
}

static void cmodules_registered(void) {
    lua_State *L = fresh();
    CHECK(luaL_dostring(L, "return type(require('t2t.core.term').isatty)") == LUA_OK);
    CHECK_STR(lua_tostring(L, -1), "function");
    lua_close(L);
}

int main(void) {
    RUN(embedded_sorted_and_complete);
    RUN(cli_module_is_preloaded);
    RUN(chunk_names_point_at_sources);
    RUN(pcall_adds_traceback);
    RUN(pcall_error_objects_use_tostring);
    RUN(cmodules_registered);
    return CHECK_DONE();
}
