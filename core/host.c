/* host.c — state set-up, protected calls with tracebacks, embedded Lua loading, Ctrl-C.
 *
 * The SIGINT handling follows lua.c: the handler only sets a hook, and the hook raises the
 * error inside Lua where it is safe.  Signals are per process, so the interrupted state is
 * the one process-wide static here (as in lua.c); everything else lives in the lua_State. */
#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "host.h"
#include <lua-cjson.h>             /* needs lua.h first */

volatile sig_atomic_t host_sigint;
static lua_State *volatile sig_L;            /* the state a host_pcall is running, for the hook */
static void (*volatile sig_wake)(void *);
static void *volatile sig_wake_ud;

void host_on_sigint(void (*fn)(void *), void *ud) {
    sig_wake = NULL;
    sig_wake_ud = ud;
    sig_wake = fn;
}

/* Set by the signal, cleared when the interruption reaches a host_pcall (its reporter).  Until
 * then the main state's pcall and xpcall (host_guard_pcall) pass every error on: Lua code that
 * catches errors -- a decoder's pcall, a retry loop -- cannot swallow the interruption and carry
 * on as if nothing happened.  Cleanup code (__close, code after a pcall) still runs. */
static volatile sig_atomic_t stopping;

static void stop_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    lua_pushliteral(L, "interrupted!");     /* no position: where it stopped is no bug */
    lua_error(L);
}

static void on_sigint(int sig) {
    int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
    signal(sig, SIG_DFL);                    /* a second Ctrl-C kills the process */
    host_sigint++;
    if (sig_L) {
        stopping = 1;
        lua_sethook(sig_L, stop_hook, flag, 1);
    }
    if (sig_wake) sig_wake(sig_wake_ud);
}

/* Message handler: add a traceback; cope with non-string errors (tables with __tostring). */
static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;                        /* error objects keep their own message */
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int host_pcall(lua_State *L, int nargs, int nresults) {
    int base = lua_gettop(L) - nargs;
    lua_State *prev = sig_L;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    sig_L = L;
    void (*old)(int) = signal(SIGINT, on_sigint);
    int status = lua_pcall(L, nargs, nresults, base);
    if (status != LUA_OK) stopping = 0;     /* the interruption reached its reporter */
    signal(SIGINT, old == SIG_ERR ? SIG_DFL : old);
    sig_L = prev;
    lua_remove(L, base);
    return status;
}

int host_report(lua_State *L, int status) {
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg == NULL) msg = "(error object is not a string)";
        fprintf(stderr, "t2t: %s\n", msg);
        fflush(stderr);
        lua_pop(L, 1);
    }
    return status;
}

static const struct host_embedded *find_embedded(const char *name, int runbook) {
    int lo = 0, hi = host_embedded_count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const struct host_embedded *e = &host_embedded[mid];
        int c = e->runbook != runbook ? e->runbook - runbook : strcmp(e->name, name);
        if (c == 0) return e;
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

/* package.preload loader for an embedded module: upvalue 1 is its index. */
static int load_embedded(lua_State *L) {
    const struct host_embedded *e = &host_embedded[lua_tointeger(L, lua_upvalueindex(1))];
    if (luaL_loadbufferx(L, e->src, e->len, e->chunk, "t") != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, e->name);
    lua_pushstring(L, e->chunk + 1);
    lua_call(L, 2, 1);
    return 1;
}

/* The directory plugins are loaded from: $T2T_LIB_DIR, else <exe dir>/lib/t2t (build tree),
 * else <exe dir>/../lib/t2t (installed).  Pushes the path of NAME.so that exists, or the
 * first candidate when none does (so the error message names a real place). */
static void push_plugin_path(lua_State *L, const char *so) {
    const char *env = getenv("T2T_LIB_DIR");
    if (env && *env) {
        lua_pushfstring(L, "%s/%s.so", env, so);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        lua_pushfstring(L, "lib/t2t/%s.so", so);
        return;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    lua_pushfstring(L, "%s/lib/t2t/%s.so", exe, so);
    if (access(lua_tostring(L, -1), R_OK) == 0) return;
    lua_pushfstring(L, "%s/../lib/t2t/%s.so", exe, so);
    if (access(lua_tostring(L, -1), R_OK) == 0) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 1);
}

/* package.preload loader for a plugin module: upvalue 1 is its index in host_cmodules.
 * The object is opened RTLD_NODELETE and never closed: libraries such as libcurl keep global
 * state that must outlive every lua_State (and sanitizers can then still name its frames). */
static int load_plugin(lua_State *L) {
    const struct host_cmodule *m = &host_cmodules[lua_tointeger(L, lua_upvalueindex(1))];
    push_plugin_path(L, m->plugin);
    const char *path = lua_tostring(L, -1);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!lib)
        return luaL_error(L, "cannot load module '%s': %s (set T2T_LIB_DIR to the directory "
                          "holding %s.so)", m->name, dlerror(), m->plugin);
    const char *sym = lua_pushfstring(L, "luaopen_t2t_%s", m->name + sizeof "t2t.core." - 1);
    lua_CFunction open = (lua_CFunction)(uintptr_t)dlsym(lib, sym);
    if (!open) return luaL_error(L, "cannot load module '%s': %s has no %s", m->name, path, sym);
    lua_pushcfunction(L, open);
    lua_pushstring(L, m->name);
    lua_call(L, 1, 1);
    return 1;
}

/* host.embedded(kind) -> sorted list of embedded names ("module" or "runbook"). */
static int l_embedded(lua_State *L) {
    int runbook = luaL_checkoption(L, 1, "runbook", (const char *const[]){"module", "runbook", NULL});
    lua_newtable(L);
    for (int i = 0, n = 0; i < host_embedded_count; i++)
        if (host_embedded[i].runbook == runbook) {
            lua_pushstring(L, host_embedded[i].name);
            lua_rawseti(L, -2, ++n);
        }
    return 1;
}

/* host.source(name, kind) -> source, chunkname  | nil when not embedded. */
static int l_source(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    int runbook = luaL_checkoption(L, 2, "runbook", (const char *const[]){"module", "runbook", NULL});
    const struct host_embedded *e = find_embedded(name, runbook);
    if (!e) return 0;
    lua_pushlstring(L, e->src, e->len);
    lua_pushstring(L, e->chunk);
    return 2;
}

/* host.interrupted() -> number of Ctrl-C seen so far (for loops that cancel work cleanly). */
static int l_interrupted(lua_State *L) {
    lua_pushinteger(L, host_sigint);
    return 1;
}

/* host.stop_on_term(): SIGTERM and SIGHUP (a service manager, kill, a closed terminal) stop the
 * process's work as Ctrl-C does: a long-running server such as `t2t sim` saves its state, a
 * runbook removes its temporary files, and both exit; a second signal kills. */
static int l_stop_on_term(lua_State *L) {
    (void)L;
    signal(SIGTERM, on_sigint);
    signal(SIGHUP, on_sigint);
    return 0;
}

/* host.pcall(f, ...) -> true, ... | false, err: a protected call with a traceback that a
 * Ctrl-C interrupts (used for runbooks and REPL lines). */
static int l_pcall(lua_State *L) {
    luaL_checkany(L, 1);
    int status = host_pcall(L, lua_gettop(L) - 1, LUA_MULTRET);
    lua_pushboolean(L, status == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

static int l_xpcall(lua_State *L);

static int luaopen_host(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"embedded", l_embedded}, {"source", l_source}, {"interrupted", l_interrupted},
        {"pcall", l_pcall}, {"xpcall", l_xpcall}, {"stop_on_term", l_stop_on_term},
        {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushstring(L, T2T_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua_release");
    const char *dir = getenv("T2T_LUA_DIR");
    if (dir && *dir) {
        lua_pushstring(L, dir);
        lua_setfield(L, -2, "lua_dir");
    }
    return 1;
}

/* Is entry (len n) one of the ';'-separated templates of list? */
static int listed(const char *list, const char *entry, size_t n) {
    while (list && *list) {
        size_t m = strcspn(list, ";");
        if (m == n && memcmp(list, entry, n) == 0) return 1;
        list += m;
        if (*list == ';') list++;
    }
    return 0;
}

/* package[field] without the templates that search relative to the current directory, unless
 * the environment variable that set it names them itself.  Lua's defaults begin with "./?.lua"
 * and "./?.so": a ./t2t/dkim.lua planted in a shared directory would run as soon as the admin
 * typed `dkim` in the REPL.  What stays: t2t's own modules (preloaded, or T2T_LUA_DIR), the
 * system's Lua directories (absolute), and what LUA_PATH / LUA_CPATH name explicitly. */
static void drop_relative(lua_State *L, const char *field, const char *env54, const char *env) {
    const char *explicit = getenv(env54);
    if (!explicit) explicit = getenv(env);
    lua_getglobal(L, "package");
    const char *cur = (lua_getfield(L, -1, field), lua_tostring(L, -1));
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int first = 1;
    for (const char *p = cur ? cur : ""; *p;) {
        size_t n = strcspn(p, ";");
        if (n > 0 && (p[0] == '/' || listed(explicit, p, n))) {
            if (!first) luaL_addchar(&b, ';');
            luaL_addlstring(&b, p, n);
            first = 0;
        }
        p += n;
        if (*p == ';') p++;
    }
    luaL_pushresult(&b);
    lua_setfield(L, -3, field);
    lua_pop(L, 2);
}

/* pcall and xpcall as the base library's (luaB_pcall, luaB_xpcall: the same results, yields
 * across them included), except that while an interruption is on its way to its host_pcall any
 * error they catch goes on as "interrupted!".
 *
 * The end of a protected call, as the base library's finishpcall; `extra` is how many stack
 * slots below the results are not results. */
static int finish_call(lua_State *L, int status, lua_KContext extra) {
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

/* ... while an interruption is on its way to its reporter, an error caught goes on as it. */
static int finish_guarded(lua_State *L, int status, lua_KContext extra) {
    if (status != LUA_OK && status != LUA_YIELD && stopping) {
        lua_pushliteral(L, "interrupted!");
        return lua_error(L);
    }
    return finish_call(L, status, extra);
}

/* ... for a reporter (host.xpcall: t2t.cli's main): it catches an interruption too, which has
 * then reached its reporter. */
static int finish_reporting(lua_State *L, int status, lua_KContext extra) {
    if (status != LUA_OK && status != LUA_YIELD) stopping = 0;
    return finish_call(L, status, extra);
}

static int guarded_pcall(lua_State *L) {
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_guarded);
    return finish_guarded(L, status, 0);
}

/* xpcall(f, msgh, ...) as luaB_xpcall, ending in finish. */
static int xpcall_with(lua_State *L, lua_KFunction finish) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2);
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish);
    return finish(L, status, 2);
}

static int guarded_xpcall(lua_State *L) { return xpcall_with(L, finish_guarded); }
static int l_xpcall(lua_State *L) { return xpcall_with(L, finish_reporting); }

void host_guard_pcall(lua_State *L) {
    lua_pushcfunction(L, guarded_pcall);
    lua_setglobal(L, "pcall");
    lua_pushcfunction(L, guarded_xpcall);
    lua_setglobal(L, "xpcall");
}

void host_openlibs(lua_State *L) {
    luaL_openlibs(L);
    drop_relative(L, "path", "LUA_PATH_5_4", "LUA_PATH");
    drop_relative(L, "cpath", "LUA_CPATH_5_4", "LUA_CPATH");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_cjson);
    lua_setfield(L, -2, "cjson");
    lua_pushcfunction(L, luaopen_host);
    lua_setfield(L, -2, "t2t.core.host");
    for (int i = 0; host_cmodules[i].name; i++) {
        if (host_cmodules[i].open) {
            lua_pushcfunction(L, host_cmodules[i].open);
        } else {
            lua_pushinteger(L, i);
            lua_pushcclosure(L, load_plugin, 1);
        }
        lua_setfield(L, -2, host_cmodules[i].name);
    }
    const char *dir = getenv("T2T_LUA_DIR");
    if (dir && *dir) {                       /* development: the source tree wins */
        lua_getglobal(L, "package");
        lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;", dir, dir);
        lua_getfield(L, -2, "path");
        lua_concat(L, 2);
        lua_setfield(L, -2, "path");
        lua_pop(L, 1);
    } else {
        for (int i = 0; i < host_embedded_count && !host_embedded[i].runbook; i++) {
            lua_pushinteger(L, i);
            lua_pushcclosure(L, load_embedded, 1);
            lua_setfield(L, -2, host_embedded[i].name);
        }
    }
    lua_pop(L, 1);
}
