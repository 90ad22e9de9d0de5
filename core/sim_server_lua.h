/* sim_server_lua.h — the Lua side of core/sim_server.c: the request table handed to the
 * handler, the handler's answer copied into C, and values copied between two lua_States.
 * Private to sim_server.c (static inline, as docs/hacking.md asks of shared helpers).  The
 * functions that take a lua_State run inside a lua_pcall of the server's state and may raise;
 * the C memory they fill hangs off the request, so a raise strands nothing. */
#ifndef T2T_SIM_SERVER_LUA_H
#define T2T_SIM_SERVER_LUA_H

#include <stdlib.h>
#include <string.h>
#include "host.h"

enum { ABORT_NONE, ABORT_BEFORE, ABORT_MID };

struct srv_hdr { char *name, *value; };

struct srv_resp {                    /* the handler's answer, copied out of Lua */
    int status;
    struct srv_hdr *hdrs;
    size_t nhdrs, caphdrs;
    char *body;
    size_t len;
    double delay;
    int abort;
};

struct srv_kv { const char *k, *v; size_t vlen; };

static inline void resp_clear(struct srv_resp *r) {
    for (size_t i = 0; i < r->nhdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    free(r->hdrs);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static inline int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Push the form-decoded s[0..n) ('+' is a space, %XX a byte; malformed escapes kept). */
static inline void push_decoded(lua_State *L, const char *s, size_t n) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '+') luaL_addchar(&b, ' ');
        else if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
                 (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            luaL_addchar(&b, (char)(hi * 16 + lo));
            i += 2;
        } else luaL_addchar(&b, s[i]);
    }
    luaL_pushresult(&b);
}

/* Push the decoded query as a table; a key given twice maps to the list of its values. */
static inline void push_args(lua_State *L, const char *q) {
    lua_newtable(L);
    while (q && *q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t kn = eq ? (size_t)(eq - q) : n;
        if (n > 0) {
            push_decoded(L, q, kn);
            if (eq) push_decoded(L, eq + 1, n - kn - 1);
            else lua_pushliteral(L, "");
            lua_pushvalue(L, -2);
            int t = lua_rawget(L, -4);
            if (t == LUA_TNIL) {
                lua_pop(L, 1);
                lua_rawset(L, -3);
            } else {                         /* stack: args key value old */
                if (t != LUA_TTABLE) {
                    lua_createtable(L, 2, 0);
                    lua_insert(L, -2);
                    lua_rawseti(L, -2, 1);
                    lua_pushvalue(L, -3);
                    lua_pushvalue(L, -2);
                    lua_rawset(L, -6);
                }
                lua_insert(L, -2);
                lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
                lua_pop(L, 2);
            }
        }
        q += n;
        if (*q == '&') q++;
    }
}

/* Push the request headers, names lower-cased; a repeated header is joined with ", ". */
static inline void push_headers(lua_State *L, const struct srv_kv *kv, size_t nkv) {
    lua_createtable(L, 0, (int)nkv);
    for (size_t i = 0; i < nkv; i++) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (const char *k = kv[i].k; *k; k++)
            luaL_addchar(&b, (*k >= 'A' && *k <= 'Z') ? (char)(*k + 32) : *k);
        luaL_pushresult(&b);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, kv[i].v, kv[i].vlen);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, kv[i].v, kv[i].vlen);
        }
        lua_rawset(L, -3);
    }
}

/* Push the request table the handler receives: method, path and query (split at the first
 * '?' of the raw target), args (the query decoded), headers, body, peer, version. */
static inline void push_request(lua_State *L, const char *method, const char *target,
                                const struct srv_kv *kv, size_t nkv, const char *body,
                                size_t len, const char *peer, const char *version) {
    lua_createtable(L, 0, 9);
    lua_pushstring(L, method);
    lua_setfield(L, -2, "method");
    const char *q = strchr(target, '?');
    lua_pushlstring(L, target, q ? (size_t)(q - target) : strlen(target));
    lua_setfield(L, -2, "path");
    lua_pushstring(L, q ? q + 1 : "");
    lua_setfield(L, -2, "query");
    push_args(L, q ? q + 1 : NULL);
    lua_setfield(L, -2, "args");
    push_headers(L, kv, nkv);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, body ? body : "", len);
    lua_setfield(L, -2, "body");
    lua_pushstring(L, peer);
    lua_setfield(L, -2, "peer");
    lua_pushstring(L, version);
    lua_setfield(L, -2, "version");
}

static inline char *dup_lstring(lua_State *L, int idx, size_t *len) {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    char *d = malloc(n + 1);
    if (!d) luaL_error(L, "not enough memory");
    memcpy(d, s, n + 1);
    if (len) *len = n;
    return d;
}

static inline void resp_add_header(lua_State *L, struct srv_resp *r, int kidx, int vidx) {
    if (lua_type(L, vidx) != LUA_TSTRING && lua_type(L, vidx) != LUA_TNUMBER)
        luaL_error(L, "handler: header '%s' must be a string, a number or a list of them",
                   lua_tostring(L, kidx));
    if (r->nhdrs == r->caphdrs) {
        size_t cap = r->caphdrs ? r->caphdrs * 2 : 8;
        struct srv_hdr *h = realloc(r->hdrs, cap * sizeof *h);
        if (!h) luaL_error(L, "not enough memory");
        r->hdrs = h;
        r->caphdrs = cap;
    }
    struct srv_hdr *h = &r->hdrs[r->nhdrs];
    h->value = NULL;
    h->name = dup_lstring(L, kidx, NULL);
    r->nhdrs++;                              /* owned by r from here, even if the next fails */
    lua_pushvalue(L, vidx);                  /* tolstring on a copy: never convert a key */
    h->value = dup_lstring(L, -1, NULL);
    lua_pop(L, 1);
}

/* Copy the handler's result table (at idx) into r; raises on a malformed result. */
static inline void resp_from_lua(lua_State *L, int idx, struct srv_resp *r) {
    static const char *const aborts[] = {"none", "before", "mid", NULL};
    if (!lua_istable(L, idx))
        luaL_error(L, "handler returned %s, expected a table {status, headers, body}",
                   luaL_typename(L, idx));
    lua_getfield(L, idx, "status");
    lua_Integer st = lua_isnil(L, -1) ? 200 : lua_tointeger(L, -1);
    if (st < 100 || st > 599) luaL_error(L, "handler: bad status %s", luaL_tolstring(L, -1, NULL));
    r->status = (int)st;
    lua_getfield(L, idx, "abort");
    r->abort = lua_isnil(L, -1) ? ABORT_NONE : luaL_checkoption(L, -1, NULL, aborts);
    lua_getfield(L, idx, "delay");
    lua_Number d = lua_isnil(L, -1) ? 0 : lua_tonumber(L, -1);
    if (!(d >= 0 && d <= 86400)) luaL_error(L, "handler: delay must be 0..86400 seconds");
    r->delay = d;
    lua_getfield(L, idx, "body");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "handler: body must be a string");
        r->body = dup_lstring(L, -1, &r->len);
    }
    lua_getfield(L, idx, "headers");
    if (!lua_isnil(L, -1)) {
        int h = lua_gettop(L);
        luaL_checktype(L, h, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, h)) {
            if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "handler: header names must be strings");
            if (lua_istable(L, -1)) {
                lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
                for (lua_Integer i = 1; i <= n; i++) {
                    lua_rawgeti(L, -1, i);
                    resp_add_header(L, r, -3, lua_gettop(L));
                    lua_pop(L, 1);
                }
            } else resp_add_header(L, r, -2, -1);
            lua_pop(L, 1);
        }
    }
}

/* Copy the value at from[idx] onto `to`: nil, booleans, numbers, strings and tables of them
 * (no cycles).  Runs protected in `to`; only non-raising calls touch `from`, so an error can
 * unwind `to` alone (the caller resets from's stack top afterwards). */
static inline void xcopy(lua_State *from, int idx, lua_State *to, int depth) {
    idx = lua_absindex(from, idx);
    switch (lua_type(from, idx)) {
    case LUA_TNIL: lua_pushnil(to); break;
    case LUA_TBOOLEAN: lua_pushboolean(to, lua_toboolean(from, idx)); break;
    case LUA_TNUMBER:
        if (lua_isinteger(from, idx)) lua_pushinteger(to, lua_tointeger(from, idx));
        else lua_pushnumber(to, lua_tonumber(from, idx));
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *p = lua_tolstring(from, idx, &n);   /* a string already: no conversion */
        lua_pushlstring(to, p, n);
        break;
    }
    case LUA_TTABLE:
        if (depth > 32 || !lua_checkstack(from, 3))
            luaL_error(to, "handler_arg: tables nested too deep (a cycle?)");
        luaL_checkstack(to, 4, "handler_arg");
        lua_newtable(to);
        lua_pushnil(from);
        while (lua_next(from, idx)) {
            if (lua_type(from, -2) == LUA_TTABLE) luaL_error(to, "handler_arg: table used as a key");
            xcopy(from, -2, to, depth + 1);
            xcopy(from, -1, to, depth + 1);
            lua_rawset(to, -3);
            lua_pop(from, 1);
        }
        break;
    default:
        luaL_error(to, "handler_arg: cannot pass a %s to the server's state",
                   lua_typename(from, lua_type(from, idx)));
    }
}

#endif
