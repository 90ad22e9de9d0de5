/* main.c — t2t entry point: a protected main in the style of lua.c.  All policy (argument
 * parsing, commands, the REPL loop) is Lua in t2t.cli; C only sets up the state and reports. */
#include <stdio.h>
#include <stdlib.h>

#include "host.h"

static int pmain(lua_State *L) {
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    luaL_checkversion(L);
    host_openlibs(L);
    host_guard_pcall(L);
    lua_createtable(L, argc, 1);             /* arg, as lua.c builds it */
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_pushvalue(L, -1);
    lua_setglobal(L, "arg");
    lua_getglobal(L, "require");
    lua_pushliteral(L, "t2t.cli");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "main");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 1);                        /* errors reach main's handler with a traceback */
    lua_Integer code = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    lua_pushinteger(L, code);
    return 1;
}

int main(int argc, char **argv) {
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "t2t: cannot create Lua state: not enough memory\n");
        return EXIT_FAILURE;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = host_pcall(L, 2, 1);
    int code = 1;
    if (status == LUA_OK) code = (int)lua_tointeger(L, -1);
    else host_report(L, status);
    lua_close(L);
    return code;
}
