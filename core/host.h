/* host.h — the embedding host: state set-up, protected calls, embedded Lua, interrupts. */
#ifndef T2T_HOST_H
#define T2T_HOST_H

#include <signal.h>
#include <stddef.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* C modules: generated table (tools/modules.sh), preloaded as "t2t.core.NAME".  A module with
 * `plugin` set lives in lib/t2t/<plugin>.so and is loaded on first require (open is NULL). */
struct host_cmodule { const char *name; lua_CFunction open; const char *plugin; };
extern const struct host_cmodule host_cmodules[];
#include "modules.h"                        /* generated: every luaopen_t2t_NAME prototype */

/* Embedded Lua sources (tools/embed.c): modules first, then runbooks, each sorted by name. */
struct host_embedded {
    const char *name;   /* "t2t.graph" or runbook "setup-target" */
    const char *chunk;  /* "@t2t/graph.lua" */
    int runbook;
    const char *src;
    size_t len;
};
extern const struct host_embedded host_embedded[];
extern const int host_embedded_count;

/* Open the standard libraries, cjson, and preload every C module and embedded Lua module.
 * With T2T_LUA_DIR set, Lua modules come from that source tree instead. */
void host_openlibs(lua_State *L);
/* Replace pcall and xpcall in L's globals by ones that, while an interruption (Ctrl-C, SIGTERM)
 * is on its way to its host_pcall, pass every error they catch on as "interrupted!" (the main
 * state only: a simulator's server state serves on). */
void host_guard_pcall(lua_State *L);

/* lua_pcall with a traceback message handler; SIGINT during the call raises "interrupted!". */
int host_pcall(lua_State *L, int nargs, int nresults);

/* Print the error on top of the stack (if any) to stderr, prefixed with "t2t: ". */
int host_report(lua_State *L, int status);

/* Count of SIGINTs seen while a host_pcall was running: event loops poll it to stop waiting. */
extern volatile sig_atomic_t host_sigint;

/* An async-signal-safe hook the SIGINT handler calls (the scheduler uses it to wake its poll). */
void host_on_sigint(void (*fn)(void *), void *ud);

#endif
