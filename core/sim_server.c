/* sim_server.c — the embedded HTTP(S) server the simulator runs on.  Module "t2t.core.server".
 *
 * libmicrohttpd (GnuTLS inside) accepts and parses; every request is answered by a Lua handler
 * that lives in the server's OWN lua_State, so the caller's state and the server share nothing
 * but loopback sockets.  Only one thread at a time touches that state: MHD's single internal
 * polling thread (threads = 1), or the pool threads serialised by lua_mu (threads > 1).
 *
 * Delayed responses (latency injection) suspend the connection and put it in a min-heap that a
 * small timer thread drains, calling MHD_resume_connection when a deadline passes.  Why a timer
 * thread and not MHD's external-select mode: the internal polling thread keeps MHD's own tuned
 * epoll loop (TLS records buffered inside GnuTLS, edge-triggered readiness) that an external
 * loop would have to reproduce; MHD_resume_connection is documented thread-safe and wakes the
 * daemon through its ITC.  The timer thread never touches Lua; holding N delayed responses
 * costs one heap entry each (O(log N) push/pop), so thousands fit in one thread.
 *
 * No Lua API call happens inside an MHD callback except through lua_pcall of srv_call, and all
 * C memory a Lua error could strand hangs off the request, which MHD's completion callback frees. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <microhttpd.h>

#include "host.h"
#include "sim_server_lua.h"

#define SRV_MT "t2t.server.Server"
#define SRV_MID_FILL 1024           /* body sent by abort = "mid" when the handler gave none */
/* GnuTLS priorities: TLS 1.2 and 1.3 only, ephemeral (EC)DH key exchange only (forward secret:
 * no static RSA key transport), AEAD ciphers only (no CBC, no SHA-1 MACs).  What Microsoft's
 * front ends and any current client negotiate; nothing older is offered. */
#define SRV_TLS_PRIORITIES "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-KX-ALL:+ECDHE-ECDSA:" \
    "+ECDHE-RSA:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:-MAC-ALL:+AEAD"

enum { REQ_NEW, REQ_READING, REQ_DELAYED };
enum { HAVE_MU = 1, HAVE_LUA_MU = 2, HAVE_CV = 4, HAVE_TIMER = 8 };

struct srv_req {                     /* one request; freed by srv_completed */
    char *uri;                       /* raw request target, copied before MHD unescapes it */
    char *body;
    size_t len, cap;
    int state, too_big;
    struct srv_kv *kv;               /* request headers, pointers into MHD's pool */
    size_t nkv, capkv;
    struct srv_resp resp;
};

struct srv_timer { double at; struct MHD_Connection *c; };

struct srv {
    struct MHD_Daemon *d;
    lua_State *L;                    /* the server's own state */
    int handler_ref;
    int have, multi, log_errors;
    atomic_int stopping;             /* set under mu: no suspension after it */
    pthread_mutex_t mu, lua_mu;      /* mu guards the heap */
    pthread_cond_t cv;
    pthread_t timer;
    struct srv_timer *heap;
    size_t n, cap;
    size_t max_body;
    char *cert, *key;
    unsigned port;
    char err[256];                   /* MHD's last log line during start */
    atomic_ullong requests, errors, delayed, aborted;
    atomic_int started;              /* set once MHD runs: the logger stops recording */
};

typedef struct { struct srv *s; } srv_box;

static double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- timer heap (all under s->mu) ---- */

static int heap_push(struct srv *s, double at, struct MHD_Connection *c) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct srv_timer *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return 0;
        s->heap = h;
        s->cap = cap;
    }
    size_t i = s->n++;
    while (i > 0 && s->heap[(i - 1) / 2].at > at) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = (struct srv_timer){at, c};
    return 1;
}

static struct MHD_Connection *heap_pop(struct srv *s) {
    struct MHD_Connection *top = s->heap[0].c;
    struct srv_timer last = s->heap[--s->n];
    size_t i = 0;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= s->n) break;
        if (k + 1 < s->n && s->heap[k + 1].at < s->heap[k].at) k++;
        if (s->heap[k].at >= last.at) break;
        s->heap[i] = s->heap[k];
        i = k;
    }
    if (s->n) s->heap[i] = last;
    return top;
}

/* Timer thread: resume every suspended connection whose deadline has passed. */
static void *srv_timer_main(void *ud) {
    struct srv *s = ud;
    struct MHD_Connection *due[64];
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        if (s->n == 0) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        double now = srv_now(), at = s->heap[0].at;
        if (at > now) {
            struct timespec ts;
            ts.tv_sec = (time_t)at;
            ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
            if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            continue;
        }
        size_t k = 0;
        while (k < 64 && s->n && s->heap[0].at <= now) due[k++] = heap_pop(s);
        pthread_mutex_unlock(&s->mu);       /* MHD takes its own locks in resume */
        for (size_t i = 0; i < k; i++) MHD_resume_connection(due[i]);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- requests ---- */

static void req_free(struct srv_req *r) {
    if (!r) return;
    resp_clear(&r->resp);
    free(r->uri);
    free(r->body);
    free(r->kv);
    free(r);
}

static struct srv_req *req_new(const char *uri) {
    struct srv_req *r = calloc(1, sizeof *r);
    if (r && !(r->uri = strdup(uri ? uri : "/"))) {
        free(r);
        r = NULL;
    }
    return r;
}

/* MHD_OPTION_URI_LOG_CALLBACK: the raw target (path + query) before MHD unescapes it. */
static void *srv_uri_log(void *cls, const char *uri, struct MHD_Connection *c) {
    (void)cls; (void)c;
    return req_new(uri);
}

static void srv_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe) {
    (void)cls; (void)c; (void)toe;
    req_free(*con_cls);
    *con_cls = NULL;
}

static enum MHD_Result srv_collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                          size_t key_size, const char *value, size_t value_size) {
    struct srv_req *r = cls;
    (void)kind; (void)key_size;
    if (r->nkv == r->capkv) {
        size_t cap = r->capkv ? r->capkv * 2 : 16;
        struct srv_kv *kv = realloc(r->kv, cap * sizeof *kv);
        if (!kv) return MHD_NO;
        r->kv = kv;
        r->capkv = cap;
    }
    r->kv[r->nkv++] = (struct srv_kv){key, value ? value : "", value ? value_size : 0};
    return MHD_YES;
}

struct srv_call_args {
    struct srv *s;
    struct srv_req *r;
    const char *method, *version, *peer;
};

/* Protected: build the request table, call the handler, copy its answer into r->resp. */
static int srv_call(lua_State *L) {
    struct srv_call_args *a = lua_touserdata(L, 1);
    struct srv_req *r = a->r;
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->s->handler_ref);
    push_request(L, a->method, r->uri, r->kv, r->nkv, r->body, r->len, a->peer, a->version);
    lua_call(L, 1, 1);
    resp_from_lua(L, lua_gettop(L), &r->resp);
    return 0;
}

/* Message handler: traceback; copes with non-string errors (as host.c's, but without its
 * process-wide SIGINT hook, which must stay with the main thread). */
static int srv_msgh(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void format_peer(struct MHD_Connection *c, char *buf, size_t size) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ci->client_addr;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
        snprintf(buf, size, "%s:%u", ip, port);
    } else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)(const void *)ci->client_addr;
        inet_ntop(AF_INET6, &in->sin6_addr, ip, sizeof ip);
        port = ntohs(in->sin6_port);
        snprintf(buf, size, "[%s]:%u", ip, port);
    } else snprintf(buf, size, "?");
}

/* Run the Lua handler for r; on any error r->resp becomes a 500 carrying the message. */
static void srv_handle(struct srv *s, struct MHD_Connection *c, struct srv_req *r,
                       const char *method, const char *version) {
    char peer[INET6_ADDRSTRLEN + 16];
    format_peer(c, peer, sizeof peer);
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, srv_collect_header, r);
    struct srv_call_args a = {s, r, method, version, peer};
    if (s->multi) pthread_mutex_lock(&s->lua_mu);
    lua_State *L = s->L;
    lua_settop(L, 0);
    lua_pushcfunction(L, srv_msgh);
    lua_pushcfunction(L, srv_call);
    lua_pushlightuserdata(L, &a);
    int st = lua_pcall(L, 1, 0, 1);
    if (st != LUA_OK) {
        size_t n = 7;
        const char *msg = "(error)";
        if (lua_type(L, -1) == LUA_TSTRING) msg = lua_tolstring(L, -1, &n);
        resp_clear(&r->resp);
        r->resp.status = 500;
        r->resp.body = malloc(n + 1);
        r->resp.hdrs = malloc(sizeof *r->resp.hdrs);
        if (r->resp.body) {
            memcpy(r->resp.body, msg, n + 1);
            r->resp.len = n;
        }
        if (r->resp.hdrs) {
            r->resp.caphdrs = r->resp.nhdrs = 1;
            r->resp.hdrs[0].name = strdup("Content-Type");
            r->resp.hdrs[0].value = strdup("text/plain; charset=utf-8");
        }
        if (s->log_errors) fprintf(stderr, "t2t server: %s %s: %s\n", method, r->uri, msg);
        atomic_fetch_add(&s->errors, 1);
    }
    lua_settop(L, 0);
    if (s->multi) pthread_mutex_unlock(&s->lua_mu);
}

struct srv_mid { size_t len, cut; char data[]; };

static ssize_t srv_mid_read(void *cls, uint64_t pos, char *buf, size_t max) {
    struct srv_mid *m = cls;
    if (pos >= m->cut) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = m->cut - (size_t)pos;
    if (n > max) n = max;
    memcpy(buf, m->data + pos, n);
    return (ssize_t)n;
}

/* A response that sends its headers and half its body, then breaks the connection. */
static struct MHD_Response *mid_response(struct srv_resp *rp) {
    size_t len = rp->len ? rp->len : SRV_MID_FILL;
    struct srv_mid *m = malloc(sizeof *m + len);
    if (!m) return NULL;
    m->len = len;
    m->cut = len / 2 ? len / 2 : 1;
    if (rp->len) memcpy(m->data, rp->body, len);
    else memset(m->data, 'x', len);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(len, 4096, srv_mid_read, m, free);
    if (!resp) free(m);
    return resp;
}

/* Queue the prepared response of r (or drop the connection for abort = "before"). */
static enum MHD_Result srv_respond(struct srv *s, struct MHD_Connection *c, struct srv_req *r) {
    struct srv_resp *rp = &r->resp;
    struct MHD_Response *resp;
    if (rp->abort == ABORT_BEFORE) {
        atomic_fetch_add(&s->aborted, 1);
        return MHD_NO;
    }
    if (rp->abort == ABORT_MID) {
        atomic_fetch_add(&s->aborted, 1);
        resp = mid_response(rp);
    } else if (rp->len) {
        resp = MHD_create_response_from_buffer(rp->len, rp->body, MHD_RESPMEM_MUST_FREE);
        if (resp) rp->body = NULL;           /* MHD frees it now */
    } else resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    for (size_t i = 0; i < rp->nhdrs; i++)   /* MHD refuses a few it owns (Content-Length) */
        if (rp->hdrs[i].name && rp->hdrs[i].value)
            (void)MHD_add_response_header(resp, rp->hdrs[i].name, rp->hdrs[i].value);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)rp->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

/* Suspend c until now + delay; 0 when stopping (the caller answers at once). */
static int srv_delay(struct srv *s, struct MHD_Connection *c, double delay) {
    int ok = 0;
    pthread_mutex_lock(&s->mu);
    if (!s->stopping) {
        MHD_suspend_connection(c);
        ok = heap_push(s, srv_now() + delay, c);
        if (!ok) MHD_resume_connection(c);
        else pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static enum MHD_Result srv_access(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls) {
    struct srv *s = cls;
    struct srv_req *r = *con_cls;
    if (!r && !(r = *con_cls = req_new(url))) return MHD_NO;
    if (r->state == REQ_DELAYED)             /* resumed; when stopping, drop it instead */
        return atomic_load(&s->stopping) ? MHD_NO : srv_respond(s, c, r);
    if (r->state == REQ_NEW) {               /* headers only; the body (if any) follows */
        r->state = REQ_READING;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_big || r->len + n > s->max_body) {
            r->too_big = 1;
            return MHD_YES;
        }
        if (r->len + n > r->cap) {
            size_t cap = r->cap ? r->cap : 1024;
            while (cap < r->len + n) cap *= 2;
            char *b = realloc(r->body, cap);
            if (!b) return MHD_NO;
            r->body = b;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        return MHD_YES;
    }
    atomic_fetch_add(&s->requests, 1);
    if (r->too_big) {
        r->resp.status = 413;
        return srv_respond(s, c, r);
    }
    srv_handle(s, c, r, method, version);
    if (r->resp.delay > 0) {
        r->state = REQ_DELAYED;
        if (srv_delay(s, c, r->resp.delay)) {
            atomic_fetch_add(&s->delayed, 1);
            return MHD_YES;
        }
    }
    return srv_respond(s, c, r);
}

__attribute__((format(printf, 2, 0)))
static void srv_logger(void *cls, const char *fmt, va_list ap) {
    struct srv *s = cls;
    if (atomic_load(&s->started)) return;    /* only start-up failures are reported */
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    size_t n = strlen(s->err);
    while (n && (s->err[n - 1] == '\n' || s->err[n - 1] == '.')) s->err[--n] = '\0';
}

/* ---- life cycle ---- */

/* Stop everything s owns, in order: timer, suspended connections, daemon, Lua.  Never raises;
 * copes with a half-built s. */
static void srv_close(struct srv *s) {
    if (s->have & HAVE_MU) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;                     /* from here no connection gets suspended */
        if (s->have & HAVE_CV) pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    if (s->have & HAVE_TIMER) pthread_join(s->timer, NULL);
    if (s->have & HAVE_MU) {                 /* MHD forbids stopping with suspended connections */
        pthread_mutex_lock(&s->mu);
        while (s->n) MHD_resume_connection(heap_pop(s));
        pthread_mutex_unlock(&s->mu);
    }
    if (s->d) MHD_stop_daemon(s->d);
    if (s->L) lua_close(s->L);
    if (s->have & HAVE_CV) pthread_cond_destroy(&s->cv);
    if (s->have & HAVE_MU) pthread_mutex_destroy(&s->mu);
    if (s->have & HAVE_LUA_MU) pthread_mutex_destroy(&s->lua_mu);
    free(s->heap);
    free(s->cert);
    if (s->key) explicit_bzero(s->key, strlen(s->key));   /* the private key, as PEM */
    free(s->key);
    free(s);
}

static int srv_gc(lua_State *L) {
    srv_box *b = luaL_checkudata(L, 1, SRV_MT);
    if (b->s) {
        struct srv *s = b->s;
        b->s = NULL;
        srv_close(s);
    }
    return 0;
}

static struct srv *check_srv(lua_State *L) {
    srv_box *b = luaL_checkudata(L, 1, SRV_MT);
    if (!b->s) luaL_error(L, "attempt to use a stopped server");
    return b->s;
}

struct srv_setup_args { struct srv *s; lua_State *from; const char *module; };

/* Protected, in the server's state: libraries, the caller's package.path and cpath, require
 * the handler module, init(handler_arg).  The caller's stack ends with path, cpath, arg. */
static int srv_setup(lua_State *L) {
    struct srv_setup_args *a = lua_touserdata(L, 1);
    lua_State *from = a->from;
    host_openlibs(L);
    lua_getglobal(L, "package");
    for (int i = 0; i < 2; i++)
        if (lua_type(from, i - 3) == LUA_TSTRING) {
            xcopy(from, i - 3, L, 0);
            lua_setfield(L, -2, i ? "cpath" : "path");
        }
    lua_getglobal(L, "require");
    lua_pushstring(L, a->module);
    lua_call(L, 1, 1);
    int mod = lua_gettop(L);
    if (lua_istable(L, mod)) {
        if (lua_getfield(L, mod, "init") != LUA_TNIL) {
            xcopy(from, -1, L, 0);
            lua_call(L, 1, 0);
        } else lua_pop(L, 1);
        lua_getfield(L, mod, "handle");
    } else lua_pushvalue(L, mod);
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "handler module '%s' must return a function or a table with "
                          "a function 'handle'", a->module);
    a->s->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

struct srv_opts {
    lua_Integer port, threads, max_body, timeout, limit;
    const char *module, *cert, *key, *bind;
    int log_errors, v6;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

static lua_Integer opt_int(lua_State *L, const char *k, lua_Integer def, lua_Integer lo,
                           lua_Integer hi) {
    int isint = 1;
    lua_getfield(L, 1, k);
    lua_Integer v = lua_isnil(L, -1) ? def : lua_tointegerx(L, -1, &isint);
    if (!isint || v < lo || v > hi)
        luaL_error(L, "bad option '%s' (integer %I..%I expected)", k, lo, hi);
    lua_pop(L, 1);
    return v;
}

static const char *opt_str(lua_State *L, const char *k, const char *def) {
    lua_getfield(L, 1, k);               /* left on the stack so the string stays alive */
    if (lua_isnil(L, -1)) return def;
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "bad option '%s' (string expected)", k);
    return lua_tostring(L, -1);
}

/* Check every option of server.start (raising on misuse) before anything is acquired. */
static void read_opts(lua_State *L, struct srv_opts *o) {
    luaL_checktype(L, 1, LUA_TTABLE);
    memset(o, 0, sizeof *o);
    o->port = opt_int(L, "port", 0, 0, 65535);
    o->threads = opt_int(L, "threads", 1, 1, 64);
    o->max_body = opt_int(L, "max_body", 64 << 20, 0, INT_MAX);
    o->timeout = opt_int(L, "timeout", 60, 0, 86400);
    o->limit = opt_int(L, "connection_limit", 4096, 1, 1 << 20);
    o->module = opt_str(L, "handler_module", NULL);
    o->cert = opt_str(L, "cert_pem", NULL);
    o->key = opt_str(L, "key_pem", NULL);
    o->bind = opt_str(L, "bind", "127.0.0.1");
    lua_getfield(L, 1, "log_errors");
    o->log_errors = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!o->module) luaL_error(L, "option 'handler_module' is required");
    if (!o->cert != !o->key) luaL_error(L, "options 'cert_pem' and 'key_pem' go together");
    o->v6 = strchr(o->bind, ':') != NULL;
    o->in4.sin_family = AF_INET;
    o->in4.sin_port = htons((uint16_t)o->port);
    o->in6.sin6_family = AF_INET6;
    o->in6.sin6_port = o->in4.sin_port;
    if (inet_pton(o->v6 ? AF_INET6 : AF_INET, o->bind,
                  o->v6 ? (void *)&o->in6.sin6_addr : (void *)&o->in4.sin_addr) != 1)
        luaL_error(L, "bad option 'bind' (IP address expected, got '%s')", o->bind);
}

/* Push nil, "server: <msg>" and close s (the start failed for an outside reason). */
static int start_fail(lua_State *L, srv_box *b, const char *msg) {
    lua_pushnil(L);
    lua_pushfstring(L, "server: %s", msg);
    struct srv *s = b->s;
    b->s = NULL;
    srv_close(s);
    return 2;
}

/* Build the server's state and run srv_setup; 0 and an error string pushed on L on failure. */
static int start_lua(lua_State *L, struct srv *s, const char *module) {
    if (!(s->L = luaL_newstate())) {
        lua_pushliteral(L, "cannot create Lua state");
        return 0;
    }
    lua_State *S = s->L;
    int top = lua_gettop(L);
    lua_getglobal(L, "package");             /* srv_setup reads these three, never raising */
    for (int i = 0; i < 2; i++)
        if (lua_istable(L, top + 1)) lua_getfield(L, top + 1, i ? "cpath" : "path");
        else lua_pushnil(L);
    lua_remove(L, top + 1);
    lua_getfield(L, 1, "handler_arg");
    struct srv_setup_args a = {s, L, module};
    lua_pushcfunction(S, srv_msgh);          /* light C functions: these pushes cannot fail */
    lua_pushcfunction(S, srv_setup);
    lua_pushlightuserdata(S, &a);
    int st = lua_pcall(S, 1, 0, 1);
    lua_settop(L, top);
    if (st != LUA_OK) {
        const char *m = lua_type(S, -1) == LUA_TSTRING ? lua_tostring(S, -1) : NULL;
        lua_pushstring(L, m ? m : "handler set-up failed");
        lua_settop(S, 0);
        return 0;
    }
    lua_settop(S, 0);
    lua_gc(S, LUA_GCGEN, 0, 0);              /* per-request garbage dies young */
    return 1;
}

/* Start the timer thread and the daemon (both inherit SIGPIPE blocked: a peer that hangs up
 * must not kill the process).  NULL on failure, with the reason. */
static const char *start_daemon(struct srv *s, const struct srv_opts *o) {
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &mask, &old);
    if (pthread_create(&s->timer, NULL, srv_timer_main, s) == 0) s->have |= HAVE_TIMER;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (o->cert) flags |= MHD_USE_TLS;
    if (o->v6) flags |= MHD_USE_IPv6;
    snprintf(s->err, sizeof s->err, "cannot start on %s port %d", o->bind, (int)o->port);
    if (s->have & HAVE_TIMER)                /* without a cert the list ends before the TLS pair */
        s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, srv_access, s,
            MHD_OPTION_SOCK_ADDR, o->v6 ? (const void *)&o->in6 : (const void *)&o->in4,
            MHD_OPTION_EXTERNAL_LOGGER, srv_logger, s,
            MHD_OPTION_URI_LOG_CALLBACK, srv_uri_log, s,
            MHD_OPTION_NOTIFY_COMPLETED, srv_completed, s,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->limit,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads,
            s->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->cert,
            MHD_OPTION_HTTPS_MEM_KEY, s->key,
            MHD_OPTION_HTTPS_PRIORITIES, SRV_TLS_PRIORITIES,
            MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!(s->have & HAVE_TIMER)) return "cannot create the timer thread";
    if (!s->d) return s->err;
    atomic_store(&s->started, 1);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : (unsigned)o->port;
    return NULL;
}

/* server.start{port, cert_pem, key_pem, handler_module, handler_arg, bind, threads, ...}
 *   -> server | nil, err.  Bad options raise; bind/TLS/handler failures return nil, err. */
static int l_start(lua_State *L) {
    struct srv_opts o;
    read_opts(L, &o);
    srv_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->s = NULL;                             /* closed until fully built */
    luaL_setmetatable(L, SRV_MT);
    struct srv *s = calloc(1, sizeof *s);
    if (!s) return luaL_error(L, "not enough memory");
    b->s = s;                                /* from here __gc cleans up whatever exists */
    s->max_body = (size_t)o.max_body;
    s->log_errors = o.log_errors;
    s->multi = o.threads > 1;
    s->handler_ref = LUA_NOREF;
    if (pthread_mutex_init(&s->mu, NULL) == 0) s->have |= HAVE_MU;
    if (pthread_mutex_init(&s->lua_mu, NULL) == 0) s->have |= HAVE_LUA_MU;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) == 0) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        if (pthread_cond_init(&s->cv, &ca) == 0) s->have |= HAVE_CV;
        pthread_condattr_destroy(&ca);
    }
    if (s->have != (HAVE_MU | HAVE_LUA_MU | HAVE_CV)) return start_fail(L, b, "pthread init failed");
    if (o.cert && (!(s->cert = strdup(o.cert)) || !(s->key = strdup(o.key))))
        return start_fail(L, b, "not enough memory");
    if (!start_lua(L, s, o.module)) return start_fail(L, b, lua_tostring(L, -1));
    const char *err = start_daemon(s, &o);
    if (err) return start_fail(L, b, err);
    return 1;
}

/* s:port() -> the bound port (the real one when started with port = 0). */
static int l_port(lua_State *L) {
    lua_pushinteger(L, check_srv(L)->port);
    return 1;
}

/* s:stats() -> {requests, errors, delayed, aborted, pending, connections}. */
static int l_stats(lua_State *L) {
    struct srv *s = check_srv(L);
    pthread_mutex_lock(&s->mu);
    size_t pending = s->n;
    pthread_mutex_unlock(&s->mu);
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    const struct { const char *k; unsigned long long v; } f[] = {
        {"requests", atomic_load(&s->requests)}, {"errors", atomic_load(&s->errors)},
        {"delayed", atomic_load(&s->delayed)}, {"aborted", atomic_load(&s->aborted)},
        {"pending", pending}, {"connections", di ? di->num_connections : 0}};
    lua_createtable(L, 0, 6);
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        lua_pushinteger(L, (lua_Integer)f[i].v);
        lua_setfield(L, -2, f[i].k);
    }
    return 1;
}

/* s:stop(): shut down and join everything; idempotent (so are __gc and __close). */
static int l_stop(lua_State *L) {
    return srv_gc(L);
}

static int l_tostring(lua_State *L) {
    srv_box *b = luaL_checkudata(L, 1, SRV_MT);
    if (b->s) lua_pushfstring(L, "t2t.server (port %d)", (int)b->s->port);
    else lua_pushliteral(L, "t2t.server (stopped)");
    return 1;
}

int luaopen_t2t_server(lua_State *L) {
    static const luaL_Reg meth[] = {
        {"port", l_port}, {"stats", l_stats}, {"stop", l_stop}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", srv_gc}, {"__close", srv_gc}, {"__tostring", l_tostring}, {NULL, NULL}};
    static const luaL_Reg fns[] = {{"start", l_start}, {NULL, NULL}};
    if (luaL_newmetatable(L, SRV_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, meth);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
