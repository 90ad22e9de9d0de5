/* http.c — HTTP(S) requests on the scheduler's curl multi handle (module "t2t.core.http").
 *
 *   local req = http.start{method, url, headers, body, timeout, connect_timeout, ca_file,
 *                          ca_pem, connect_to, proxy, no_proxy, follow, max_body,
 *                          resend = false, fresh = true}
 *   req:done()  req:result() -> response | nil, err   req:close()
 *
 * start() only adds the transfer to the loop; waiting is the Lua wrapper's job (it yields
 * sched.YIELD, "io", req inside a task, or calls sched.run(req) outside one).  The curl
 * callbacks only append bytes to C buffers; Lua values are built by result(), after the
 * transfer.  TLS verification is always on; an extra CA (file or PEM) is added to the system
 * store, never replaces verification.  Policy — retries, throttling, ids — is lua/t2t/http.lua.
 *
 * resend = false: libcurl re-sends a request by itself when a reused connection dies before
 * any byte of the answer arrives ("Connection died, retrying a fresh connect") — a POST
 * included, although the server may have processed it.  With resend = false the pre-request
 * callback, which runs before every send, refuses any send past the first (and past one per
 * followed redirect): the transfer ends as a "reset" with resend_refused = true, and the
 * caller, who knows how to look before retrying, decides.  Connections are still reused.
 * fresh = true: a new connection, closed after the transfer (the cost this avoids). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sched.h"

#define ERR_MT "t2t.http.Error"
#define MAX_HEADER_BYTES (1u << 20)      /* a response's header block; more is an attack */

struct buf { char *p; size_t n, cap; };

struct req {
    struct sched_io io;                  /* first: the scheduler sees the userdata as this */
    struct sched *loop;                  /* owner of the easy handle (counts it) */
    int closed;
    struct curl_slist *headers, *connect_to;
    struct buf body, hdr;
    size_t max_body;
    int overflow, oom;
    int no_resend, sends, refused;       /* resend = false: sends seen, a re-send refused */
    long status, version;
    double elapsed;
    char *url;                           /* effective URL, copied when the transfer ends */
    char errbuf[CURL_ERROR_SIZE];
};

/* Append; 0 on allocation failure (the callbacks then make curl stop). */
static int buf_add(struct buf *b, const char *p, size_t n) {
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap - b->n < n) {
            if (cap > ((size_t)-1) / 2) return 0;
            cap *= 2;
        }
        char *q = realloc(b->p, cap);
        if (!q) return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 1;
}

static void buf_free(struct buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* curl callbacks: bytes only, no Lua. */
static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    struct req *r = ud;
    size_t n = size * nmemb;
    if (r->max_body && r->body.n + n > r->max_body) { r->overflow = 1; return 0; }
    if (!buf_add(&r->body, p, n)) { r->oom = 1; return 0; }
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
    struct req *r = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) r->hdr.n = 0;   /* a new response (redirect, 1xx) */
    if (r->hdr.n + n > MAX_HEADER_BYTES) { r->overflow = 1; return 0; }
    if (!buf_add(&r->hdr, p, n)) { r->oom = 1; return 0; }
    return n;
}

#if LIBCURL_VERSION_NUM >= 0x075000
/* Before every send of this transfer (libcurl >= 7.80): a send past the first — one more per
 * followed redirect — is libcurl's silent re-send; refuse it when the request forbids that. */
static int on_prereq(void *ud, char *ip, char *lip, int port, int lport) {
    struct req *r = ud;
    long redirects = 0;
    (void)ip; (void)lip; (void)port; (void)lport;
    r->sends++;
    if (!r->no_resend) return CURL_PREREQFUNC_OK;
    curl_easy_getinfo(r->io.easy, CURLINFO_REDIRECT_COUNT, &redirects);
    if (r->sends > 1 + redirects) {
        r->refused = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}
#endif

/* resend = false / fresh = true (see the header comment). */
static void set_resend(struct req *r, int resend, int fresh) {
    CURL *e = r->io.easy;
    r->no_resend = !resend;
#if LIBCURL_VERSION_NUM >= 0x075000
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, (void *)r);
#else
    if (!resend) fresh = 1;              /* no callback to refuse with: never reuse instead */
#endif
    if (fresh) {
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
}

/* Called by the loop at CURLMSG_DONE, before the handle leaves the multi. */
static void on_finish(struct sched_io *io) {
    struct req *r = (struct req *)io;
    char *url = NULL;
    curl_off_t us = 0;
    curl_easy_getinfo(io->easy, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(io->easy, CURLINFO_HTTP_VERSION, &r->version);
    curl_easy_getinfo(io->easy, CURLINFO_TOTAL_TIME_T, &us);
    r->elapsed = (double)us / 1e6;
    if (curl_easy_getinfo(io->easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url) {
        free(r->url);
        r->url = strdup(url);
    }
}

static struct req *check_req(lua_State *L) {
    struct req *r = luaL_checkudata(L, 1, SCHED_IO_MT);
    if (r->closed) luaL_error(L, "attempt to use a closed request");
    return r;
}

/* __gc, __close and req:close(): idempotent, never raises. */
static int req_close(lua_State *L) {
    struct req *r = luaL_checkudata(L, 1, SCHED_IO_MT);
    if (r->closed) return 0;
    r->closed = 1;
    sched_io_stop(L, &r->io);
    if (r->io.easy) sched_easy_free(r->loop, r->io.easy);
    r->io.easy = NULL;
    curl_slist_free_all(r->headers);
    curl_slist_free_all(r->connect_to);
    r->headers = r->connect_to = NULL;
    buf_free(&r->body);
    buf_free(&r->hdr);
    free(r->url);
    r->url = NULL;
    return 0;
}

/* ---- building the request ------------------------------------------------------------- */

/* Option k of the table at 1 (or def).  Its value is left on the stack: the table alone does
 * not keep the string alive, since user code (metamethods reached by later reads) may change it
 * before the string is used. */
static const char *opt_string(lua_State *L, const char *k, const char *def, size_t *len) {
    const char *s = def;
    if (len) *len = def ? strlen(def) : 0;
    lua_pushstring(L, k);
    if (lua_rawget(L, 1) != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "http request: '%s' must be a string", k);
        s = lua_tolstring(L, -1, len);
    }
    return s;
}

static double opt_seconds(lua_State *L, const char *k) {
    double d = 0;
    if (lua_getfield(L, 1, k) != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "http request: '%s' must be a number of seconds", k);
        d = lua_tonumber(L, -1);
        if (!(d >= 0 && d <= 86400 * 7)) luaL_error(L, "http request: '%s' out of range", k);
    }
    lua_pop(L, 1);
    return d;
}

static int valid_token(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s))) return 0;
    return 1;
}

static int valid_value(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 0;
    return 1;
}

static void slist_add(lua_State *L, struct curl_slist **list, const char *line) {
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l) luaL_error(L, "not enough memory");
    *list = l;                           /* stored at once: close() frees it on any error */
}

/* One header line; value false removes a default header (curl's "Name:" form). */
static void add_header(lua_State *L, struct req *r, const char *name, int vidx) {
    if (!valid_token(name)) luaL_error(L, "http request: bad header name '%s'", name);
    if (lua_type(L, vidx) == LUA_TBOOLEAN && !lua_toboolean(L, vidx)) {
        slist_add(L, &r->headers, lua_pushfstring(L, "%s:", name));
        lua_pop(L, 1);
        return;
    }
    size_t n;
    const char *v = lua_tolstring(L, vidx, &n);
    if (!v || !valid_value(v, n))
        luaL_error(L, "http request: header '%s' needs a string without CR/LF", name);
    slist_add(L, &r->headers, lua_pushfstring(L, n ? "%s: %s" : "%s;", name, v));
    lua_pop(L, 1);
}

/* headers = {name = value | {value, ...} | false}. Returns whether Content-Type was given. */
static int set_headers(lua_State *L, struct req *r) {
    int has_ct = 0;
    if (lua_getfield(L, 1, "headers") == LUA_TNIL) { lua_pop(L, 1); return 0; }
    luaL_checktype(L, -1, LUA_TTABLE);
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "http request: header names are strings");
        const char *name = lua_tostring(L, -2);
        if (strcasecmp(name, "content-type") == 0) has_ct = 1;
        if (lua_istable(L, -1)) {
            lua_Integer n = luaL_len(L, -1);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, -1, i);
                add_header(L, r, name, lua_gettop(L));
                lua_pop(L, 1);
            }
        } else {
            add_header(L, r, name, lua_gettop(L));
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return has_ct;
}

static void set_connect_to(lua_State *L, struct req *r) {
    if (lua_getfield(L, 1, "connect_to") == LUA_TNIL) { lua_pop(L, 1); return; }
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        size_t len;
        lua_geti(L, -1, i);
        const char *s = lua_tolstring(L, -1, &len);
        if (lua_type(L, -1) != LUA_TSTRING || !valid_value(s, len))
            luaL_error(L, "http request: connect_to entries are \"HOST:PORT:CONNECT-HOST:CONNECT-PORT\"");
        slist_add(L, &r->connect_to, s);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    curl_easy_setopt(r->io.easy, CURLOPT_CONNECT_TO, r->connect_to);
}

static void set_method(lua_State *L, struct req *r, const char *method, const char *body,
                       size_t len, int has_ct) {
    CURL *e = r->io.easy;
    int sends = body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0
                || strcmp(method, "PATCH") == 0;
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (sends) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");   /* body pinned by the userdata */
        if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (!has_ct) slist_add(L, &r->headers, "Content-Type:");      /* no invented form type */
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
}

static void set_common(struct req *r, double timeout, double connect_timeout) {
    CURL *e = r->io.easy;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "t2t/" T2T_VERSION);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)r);
    if (timeout > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(timeout * 1000));
    if (connect_timeout > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ceil(connect_timeout * 1000));
}

/* http.start(opts) -> request, already running on the loop. */
static int l_start(lua_State *L) {
    size_t len = 0, pemlen = 0;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkstack(L, 24, NULL);        /* the option strings stay on the stack */
    /* 1. arguments */
    const char *url = opt_string(L, "url", NULL, NULL);
    const char *method = opt_string(L, "method", "GET", NULL);
    const char *body = opt_string(L, "body", NULL, &len);
    int body_idx = lua_gettop(L);
    const char *ca_file = opt_string(L, "ca_file", NULL, NULL);
    const char *ca_pem = opt_string(L, "ca_pem", NULL, &pemlen);
    const char *proxy = opt_string(L, "proxy", NULL, NULL);
    const char *no_proxy = opt_string(L, "no_proxy", NULL, NULL);
    double timeout = opt_seconds(L, "timeout"), connect_timeout = opt_seconds(L, "connect_timeout");
    lua_getfield(L, 1, "follow");
    int follow = lua_toboolean(L, -1);
    lua_getfield(L, 1, "resend");
    int resend = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_getfield(L, 1, "fresh");
    int fresh = lua_toboolean(L, -1);
    lua_pop(L, 2);
    lua_getfield(L, 1, "max_body");
    lua_Integer max_body = 0;
    if (!lua_isnil(L, -1) && !lua_isinteger(L, -1))
        return luaL_error(L, "http request: 'max_body' must be an integer");
    max_body = lua_tointeger(L, -1);
    lua_pop(L, 2);
    if (!url) return luaL_error(L, "http request: 'url' is required");
    if (!valid_value(url, strlen(url))) return luaL_error(L, "http request: bad url");
    if (!valid_token(method)) return luaL_error(L, "http request: bad method '%s'", method);
    if (max_body < 0) return luaL_error(L, "http request: 'max_body' must be >= 0");
    /* 2. GC-owned memory, in the closed state until the easy handle is stored */
    struct req *r = lua_newuserdatauv(L, sizeof *r, 1);
    int ud = lua_gettop(L);
    memset(r, 0, sizeof *r);
    r->closed = 1;
    r->io.ref = LUA_NOREF;
    r->max_body = (size_t)max_body;
    luaL_setmetatable(L, SCHED_IO_MT);
    lua_pushvalue(L, body_idx);          /* the body string lives as long as the request */
    lua_setiuservalue(L, ud, 1);
    struct sched *s = sched_get(L);
    /* 3. resources, each stored at once */
    r->loop = s;
    if ((r->io.easy = sched_easy_new(s)) == NULL) return luaL_error(L, "curl_easy_init failed");
    r->closed = 0;
    r->io.finish = on_finish;
    set_common(r, timeout, connect_timeout);
    set_resend(r, resend, fresh);
    curl_easy_setopt(r->io.easy, CURLOPT_URL, url);
    if (follow) {
        curl_easy_setopt(r->io.easy, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(r->io.easy, CURLOPT_MAXREDIRS, 10L);
    }
    if (ca_file) curl_easy_setopt(r->io.easy, CURLOPT_CAINFO, ca_file);   /* CAPATH stays */
    if (ca_pem) {
        struct curl_blob blob = {(void *)ca_pem, pemlen, CURL_BLOB_COPY};
        curl_easy_setopt(r->io.easy, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (proxy) curl_easy_setopt(r->io.easy, CURLOPT_PROXY, proxy);         /* "" = none */
    if (no_proxy) curl_easy_setopt(r->io.easy, CURLOPT_NOPROXY, no_proxy); /* else env */
    int has_ct = set_headers(L, r);
    set_connect_to(L, r);
    set_method(L, r, method, body, len, has_ct);
    slist_add(L, &r->headers, "Expect:");
    curl_easy_setopt(r->io.easy, CURLOPT_HTTPHEADER, r->headers);
    const char *err = sched_io_start(L, s, &r->io, ud);
    if (err) return luaL_error(L, "http request: %s", err);
    lua_settop(L, ud);
    return 1;
}

/* ---- results ------------------------------------------------------------------------------ */

/* The error code t2t uses for a curl failure, and whether a retry may help. */
static const char *error_code(const struct req *r, CURLcode c, const char *msg, int *retry) {
    *retry = 0;
    if (c == CURLE_WRITE_ERROR && r->overflow) return "too_large";
    if (c == CURLE_WRITE_ERROR && r->oom) return "nomem";
    if (c == CURLE_ABORTED_BY_CALLBACK && r->refused) { *retry = 1; return "reset"; }  /* answer lost */
    switch (c) {
    case CURLE_OPERATION_TIMEDOUT: *retry = 1; return "timeout";
    case CURLE_COULDNT_CONNECT: *retry = 1; return "connect";
    case CURLE_COULDNT_RESOLVE_HOST: return "dns";
    case CURLE_COULDNT_RESOLVE_PROXY: return "proxy";
    case CURLE_SSL_CONNECT_ERROR:        /* also a peer that hangs up mid-handshake */
        if (strstr(msg, "reset") || strstr(msg, "SSL_ERROR_SYSCALL") || strstr(msg, "unexpected eof")) {
            *retry = 1;
            return "reset";
        }
        return "tls";
    case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_ISSUER_ERROR: case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: case CURLE_SSL_CRL_BADFILE: case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED: case CURLE_SSL_ENGINE_NOTFOUND: case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
        return "tls";
    case CURLE_RECV_ERROR: case CURLE_SEND_ERROR: case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
        *retry = 1;
        return "reset";
    case CURLE_URL_MALFORMAT: case CURLE_UNSUPPORTED_PROTOCOL: return "url";
    case CURLE_WEIRD_SERVER_REPLY: return "protocol";
    case CURLE_TOO_MANY_REDIRECTS: return "redirect";
    case CURLE_BAD_CONTENT_ENCODING: return "decode";
    case CURLE_OUT_OF_MEMORY: return "nomem";
    case CURLE_FILESIZE_EXCEEDED: return "too_large";
    case CURLE_ABORTED_BY_CALLBACK: return "cancelled";
    default: return "curl";
    }
}

static void push_error(lua_State *L, struct req *r) {
    CURLcode c = r->io.result;
    const char *msg = r->errbuf[0] ? r->errbuf : curl_easy_strerror(c);
    if (r->overflow) msg = "response larger than allowed";
    if (r->refused)
        msg = "the connection closed before any answer; the request was sent and is not sent "
              "again (it may have been processed)";
    int retry;
    const char *code = error_code(r, c, msg, &retry);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    if (r->url) {
        lua_pushstring(L, r->url);
        lua_setfield(L, -2, "url");
    }
    lua_pushboolean(L, retry);
    lua_setfield(L, -2, "retryable");
    lua_pushinteger(L, (lua_Integer)c);
    lua_setfield(L, -2, "curl_code");
    if (r->refused) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "resend_refused");
    }
    lua_pushinteger(L, r->sends);
    lua_setfield(L, -2, "sends");
    luaL_setmetatable(L, ERR_MT);
}

/* err:__tostring -> "timeout: Operation timed out after ... (https://...)" */
static int err_tostring(lua_State *L) {
    lua_getfield(L, 1, "code");
    lua_getfield(L, 1, "message");
    lua_getfield(L, 1, "url");
    if (lua_isstring(L, -1))
        lua_pushfstring(L, "%s: %s (%s)", luaL_optstring(L, -3, "error"),
                        luaL_optstring(L, -2, ""), lua_tostring(L, -1));
    else
        lua_pushfstring(L, "%s: %s", luaL_optstring(L, -3, "error"), luaL_optstring(L, -2, ""));
    return 1;
}

/* Store one header in headers (lower-cased name) and in the ordered list. */
static void put_header(lua_State *L, int map, int list, const char *name, size_t nlen,
                       const char *v, size_t vlen) {
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, nlen);
    for (size_t i = 0; i < nlen; i++) p[i] = (char)tolower((unsigned char)name[i]);
    luaL_pushresultsize(&b, nlen);
    int k = lua_gettop(L);
    lua_createtable(L, 2, 0);            /* list entry {name, value} */
    lua_pushvalue(L, k);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, v, vlen);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
    int old = lua_getfield(L, map, lua_tostring(L, k));
    if (strcmp(lua_tostring(L, k), "set-cookie") == 0) {   /* cannot be joined with commas */
        if (old == LUA_TNIL) { lua_pop(L, 1); lua_newtable(L); lua_pushvalue(L, -1); lua_setfield(L, map, "set-cookie"); }
        lua_pushlstring(L, v, vlen);
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    } else if (old == LUA_TSTRING) {     /* RFC 9110 5.3: repeated fields join with ", " */
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, vlen);
        lua_concat(L, 3);
        lua_setfield(L, map, lua_tostring(L, k));
        lua_pushnil(L);
    } else {
        lua_pushlstring(L, v, vlen);
        lua_setfield(L, map, lua_tostring(L, k));
    }
    lua_settop(L, k - 1);
}

/* Parse the last header block into {name = value} and {{name, value}, ...}. */
/* Is name[0..n) an RFC 9110 token?  (A name with a NUL, space or other byte would be stored
 * under a different key than the list shows: "retry-after\0x" must not pass for Retry-After.) */
static int token_n(const char *name, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)name[i]) || (name[i] && strchr("!#$%&'*+-.^_`|~", name[i]))))
            return 0;
    return n > 0;
}

static void push_headers(lua_State *L, const char *p, size_t n) {
    lua_newtable(L);
    int map = lua_gettop(L);
    lua_newtable(L);
    int list = map + 1;
    const char *end = p + n, *line = memchr(p, '\n', n);   /* skip the status line */
    line = line ? line + 1 : end;
    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        const char *next = eol ? eol + 1 : end;
        if (!eol) eol = end;
        if (eol > line && eol[-1] == '\r') eol--;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon && token_n(line, (size_t)(colon - line))) {
            const char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            put_header(L, map, list, line, (size_t)(colon - line), v, (size_t)(ve - v));
        }
        line = next;
    }
}

static const char *version_name(long v) {
    switch (v) {
    case CURL_HTTP_VERSION_1_0: return "1.0";
    case CURL_HTTP_VERSION_1_1: return "1.1";
    case CURL_HTTP_VERSION_2_0: return "2";
    case CURL_HTTP_VERSION_3: return "3";
    default: return "?";
    }
}

/* req:result() -> {status, headers, header_list, body, url, elapsed, http_version} | nil, err */
static int req_result(lua_State *L) {
    struct req *r = check_req(L);
    if (!r->io.done) return luaL_error(L, "request is still running");
    if (r->io.result != CURLE_OK) {
        lua_pushnil(L);
        push_error(L, r);
        return 2;
    }
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, r->sends);
    lua_setfield(L, -2, "sends");
    push_headers(L, r->hdr.p ? r->hdr.p : "", r->hdr.n);
    lua_setfield(L, -3, "header_list");
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, r->body.p ? r->body.p : "", r->body.n);
    lua_setfield(L, -2, "body");
    lua_pushstring(L, r->url ? r->url : "");
    lua_setfield(L, -2, "url");
    lua_pushnumber(L, r->elapsed);
    lua_setfield(L, -2, "elapsed");
    lua_pushstring(L, version_name(r->version));
    lua_setfield(L, -2, "http_version");
    return 1;
}

static int req_done(lua_State *L) {
    struct req *r = luaL_checkudata(L, 1, SCHED_IO_MT);
    lua_pushboolean(L, r->io.done);
    return 1;
}

static int req_tostring(lua_State *L) {
    struct req *r = luaL_checkudata(L, 1, SCHED_IO_MT);
    lua_pushfstring(L, "t2t.http.Request (%s) %p",
                    r->closed ? "closed" : r->io.done ? "done" : "running", (void *)r);
    return 1;
}

/* http.version() -> libcurl's version string (for diagnostics). */
static int l_version(lua_State *L) {
    lua_pushstring(L, curl_version());
    return 1;
}

int luaopen_t2t_http(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"done", req_done}, {"result", req_result}, {"close", req_close}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", req_close}, {"__close", req_close}, {"__tostring", req_tostring}, {NULL, NULL}};
    static const luaL_Reg fns[] = {{"start", l_start}, {"version", l_version}, {NULL, NULL}};
    luaL_newmetatable(L, SCHED_IO_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_newmetatable(L, ERR_MT);
    lua_pushcfunction(L, err_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
