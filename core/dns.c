/* dns.c — a DNS stub resolver over c-ares, driven by the scheduler (module "t2t.core.dns").
 *
 * Why c-ares (docs/dkim.md, "Choices"): it is a stub resolver made to live inside someone
 * else's event loop — ares_getsock/ares_timeout say what to poll, ares_process_fd does the work —
 * so its sockets join curl's in the scheduler's one curl_multi_poll and nothing ever blocks the
 * loop.  It retries over TCP when an answer is truncated, takes servers with ports, and hands
 * back the raw answer, which this file parses itself so TTLs, CNAME chains, the rcode and the
 * AD bit survive.  It does not validate DNSSEC: the AD bit is the upstream resolver's word.
 *
 *   r = dns.resolver{servers = "127.0.0.1:5353", timeout = ms, tries = n, edns = size}
 *   q = r:query(name, type [, {ad = true, rd = true}])    a query in flight (or r:send(packet))
 *   coroutine.yield(sched.YIELD, "wait", q)               inside a task, until it is over
 *   q:result() -> {status, message, timeouts, response = dns.parse(answer), raw}
 *   dns.parse(packet) -> the message as Lua tables | nil, err
 *
 * The loop is in another plugin (loaded RTLD_LOCAL), so its functions come from the constant
 * table sched.c leaves in the registry (sched.h: struct sched_api).  c-ares callbacks run inside
 * ares_process_fd, called by the loop: they copy the answer and mark the query done in C only;
 * Lua values are built later, when q:result() is called. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include "sched.h"

#define RES_MT "t2t.dns.Resolver"
#define Q_MT   "t2t.dns.Query"
#define HDR    12

struct query;

struct resolver {
    ares_channel ch;                     /* NULL once closed */
    const struct sched_api *api;
    struct sched_source src;             /* registered while queries are in flight */
    int inflight;
    struct query *finished;              /* done in a callback, still pinned */
};

struct query {
    struct sched_wait w;                 /* first: the loop reads it (__t2t_wait) */
    struct resolver *r;                  /* NULL when not in flight */
    int ref;                             /* pins the userdata while in flight */
    int started, status, timeouts, len;
    int gone;                            /* finalized: the answer is not kept */
    unsigned char *buf;                  /* a copy of the answer (malloc) */
    struct query *next_fin;
};

/* ---- c-ares callbacks and the loop's source ------------------------------------------------ */

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen) {
    struct query *q = arg;
    struct resolver *r = q->r;
    q->status = status;
    q->timeouts = timeouts;
    if (abuf && alen > 0 && !q->gone && (q->buf = malloc((size_t)alen)) != NULL) {
        memcpy(q->buf, abuf, (size_t)alen);
        q->len = alen;
    }
    if (r) {
        r->inflight--;
        q->next_fin = r->finished;       /* unpinned after ares_process_fd returns */
        r->finished = q;
        r->api->wait_done(&q->w);
    }
}

#define SRC_RES(s) ((struct resolver *)(void *)((char *)(s) - offsetof(struct resolver, src)))

static int src_fds(struct sched_source *src, struct curl_waitfd *fds, int max, long *timeout_ms) {
    struct resolver *r = SRC_RES(src);
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(r->ch, socks, ARES_GETSOCK_MAXNUM), n = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM && n < max; i++) {
        short ev = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) ev |= CURL_WAIT_POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= CURL_WAIT_POLLOUT;
        if (!ev) break;
        fds[n].fd = socks[i];
        fds[n].events = ev;
        fds[n].revents = 0;
        n++;
    }
    struct timeval maxtv = {*timeout_ms / 1000, (*timeout_ms % 1000) * 1000}, tv;
    struct timeval *t = ares_timeout(r->ch, &maxtv, &tv);
    long ms = (long)t->tv_sec * 1000 + ((long)t->tv_usec + 999) / 1000;
    if (ms < *timeout_ms) *timeout_ms = ms;
    return n;
}

/* Unpin the queries that finished during the last ares call. */
static void unpin_finished(lua_State *L, struct resolver *r) {
    while (r->finished) {
        struct query *q = r->finished;
        r->finished = q->next_fin;
        q->next_fin = NULL;
        q->r = NULL;
        if (q->ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, q->ref);
        q->ref = LUA_NOREF;
    }
}

static void src_process(struct sched_source *src, lua_State *L, struct curl_waitfd *fds, int n) {
    struct resolver *r = SRC_RES(src);
    for (int i = 0; i < n; i++) {
        ares_socket_t rd = (fds[i].revents & (CURL_WAIT_POLLIN | CURL_WAIT_POLLPRI)) ? fds[i].fd : ARES_SOCKET_BAD;
        ares_socket_t wr = (fds[i].revents & CURL_WAIT_POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
        if (rd != ARES_SOCKET_BAD || wr != ARES_SOCKET_BAD) ares_process_fd(r->ch, rd, wr);
    }
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);   /* timeouts */
    unpin_finished(L, r);
    if (r->inflight == 0) r->api->source_remove(&r->src);
}

/* ---- the resolver --------------------------------------------------------------------------- */

static int res_close(lua_State *L) {
    struct resolver *r = luaL_checkudata(L, 1, RES_MT);
    if (r->ch) {
        if (r->api) r->api->source_remove(&r->src);
        ares_destroy(r->ch);             /* pending queries end with ARES_EDESTRUCTION */
        r->ch = NULL;
        unpin_finished(L, r);
        ares_library_cleanup();
    }
    return 0;
}

static struct resolver *check_res(lua_State *L, int idx) {
    struct resolver *r = luaL_checkudata(L, idx, RES_MT);
    if (!r->ch) luaL_argerror(L, idx, "resolver is closed");
    return r;
}

static const struct sched_api *get_api(lua_State *L) {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "t2t.core.sched");
    lua_call(L, 1, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, SCHED_API_KEY);
    const struct sched_api *api = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!api) luaL_error(L, "t2t.core.sched did not register its loop");
    return api;
}

/* dns.resolver{servers = "h[:p],...", timeout = ms, tries = n, edns = size, rotate = bool}
 * -> Resolver.  Without servers: /etc/resolv.conf. */
static int l_resolver(lua_State *L) {
    lua_settop(L, 1);
    if (lua_isnil(L, 1)) {
        lua_newtable(L);
        lua_replace(L, 1);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "servers");
    const char *servers = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 1, "timeout");
    lua_Integer timeout = luaL_optinteger(L, -1, 2000);
    lua_getfield(L, 1, "tries");
    lua_Integer tries = luaL_optinteger(L, -1, 2);
    lua_getfield(L, 1, "edns");
    lua_Integer edns = luaL_optinteger(L, -1, 0);
    lua_getfield(L, 1, "rotate");
    int rotate = lua_toboolean(L, -1);
    luaL_argcheck(L, timeout > 0 && timeout <= 60000, 1, "timeout must be 1..60000 ms");
    luaL_argcheck(L, tries > 0 && tries <= 10, 1, "tries must be 1..10");
    luaL_argcheck(L, edns == 0 || (edns >= 512 && edns <= 4096), 1, "edns must be 0 or 512..4096");
    const struct sched_api *api = get_api(L);
    struct resolver *r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, RES_MT);
    r->api = api;
    r->src.fds = src_fds;
    r->src.process = src_process;
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) return luaL_error(L, "ares_library_init failed");
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.timeout = (int)timeout;
    o.tries = (int)tries;
    /* NOCHECKRESP: a SERVFAIL or REFUSED answer comes back as it is (c-ares 1.18 would report
     * it as "connection refused" once the servers are exhausted), so the rcode is kept */
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_NOCHECKRESP | (edns ? ARES_FLAG_EDNS : 0);
    o.ednspsz = (int)edns;
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS | (edns ? ARES_OPT_EDNSPSZ : 0)
             | (rotate ? ARES_OPT_ROTATE : ARES_OPT_NOROTATE);
    int st = ares_init_options(&r->ch, &o, mask);
    if (st != ARES_SUCCESS) {
        r->ch = NULL;
        ares_library_cleanup();
        return luaL_error(L, "dns resolver: %s", ares_strerror(st));
    }
    if (servers && (st = ares_set_servers_ports_csv(r->ch, servers)) != ARES_SUCCESS) {
        lua_pushnil(L);
        lua_pushfstring(L, "bad DNS server list '%s' (%s): give host[:port],... e.g. 127.0.0.1:5353",
                        servers, ares_strerror(st));
        return 2;                        /* the userdata's __gc destroys the channel */
    }
    return 1;
}

/* r:servers() -> "h:p,h:p" as c-ares will use them. */
static int res_servers(lua_State *L) {
    struct resolver *r = check_res(L, 1);
    struct ares_addr_port_node *list = NULL;
    if (ares_get_servers_ports(r->ch, &list) != ARES_SUCCESS) return 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char addr[INET6_ADDRSTRLEN];
    for (struct ares_addr_port_node *n = list; n; n = n->next) {
        if (!inet_ntop(n->family, &n->addr, addr, sizeof addr)) continue;
        if (luaL_bufflen(&b)) luaL_addchar(&b, ',');
        if (n->family == AF_INET6) lua_pushfstring(L, "[%s]:%d", addr, n->udp_port ? n->udp_port : 53);
        else lua_pushfstring(L, "%s:%d", addr, n->udp_port ? n->udp_port : 53);
        luaL_addvalue(&b);
    }
    ares_free_data(list);
    luaL_pushresult(&b);
    return 1;
}

/* Start q (the userdata at idx) with packet buf: pinned, counted, the source registered. */
static void start(lua_State *L, struct sched *loop, struct resolver *r, struct query *q, int idx,
                  const unsigned char *buf, int len) {
    lua_pushvalue(L, idx);
    q->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    q->r = r;
    q->started = 1;
    r->inflight++;
    r->api->wait_begin(loop, &q->w);
    r->api->source_add(loop, &r->src);
    ares_send(r->ch, buf, len, on_answer, q);  /* may call on_answer at once (bad server list) */
    unpin_finished(L, r);
}

static struct query *new_query(lua_State *L) {
    struct query *q = lua_newuserdatauv(L, sizeof *q, 1);
    memset(q, 0, sizeof *q);
    q->ref = LUA_NOREF;
    luaL_setmetatable(L, Q_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);         /* the query keeps its resolver alive */
    return q;
}

static const struct { const char *name; int code; } types[] = {
    {"A", 1}, {"NS", 2}, {"CNAME", 5}, {"SOA", 6}, {"PTR", 12}, {"MX", 15}, {"TXT", 16},
    {"AAAA", 28}, {"SRV", 33}, {"DNAME", 39}, {"OPT", 41}, {"DS", 43}, {"RRSIG", 46},
    {"DNSKEY", 48}, {"SPF", 99}, {"TKEY", 249}, {"TSIG", 250}, {"ANY", 255}, {NULL, 0}};

static int type_code(lua_State *L, int idx) {
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Integer n = luaL_checkinteger(L, idx);
        luaL_argcheck(L, n > 0 && n < 65536, idx, "type out of range");
        return (int)n;
    }
    const char *s = luaL_checkstring(L, idx);
    for (int i = 0; types[i].name; i++)
        if (strcasecmp(s, types[i].name) == 0) return types[i].code;
    return luaL_argerror(L, idx, lua_pushfstring(L, "unknown DNS type '%s'", s));
}

static void push_type(lua_State *L, int code) {
    for (int i = 0; types[i].name; i++)
        if (types[i].code == code) { lua_pushstring(L, types[i].name); return; }
    lua_pushfstring(L, "TYPE%d", code);
}

/* r:query(name, type [, {ad = bool, rd = bool}]) -> Query | nil, err.  AD set in the query
 * asks a validating resolver to report the AD bit (RFC 6840 §5.7). */
static int res_query(lua_State *L) {
    struct resolver *r = check_res(L, 1);
    const char *name = luaL_checkstring(L, 2);
    int type = type_code(L, 3);
    int ad = 0, rd = 1;
    if (lua_istable(L, 4)) {
        lua_getfield(L, 4, "ad");
        ad = lua_toboolean(L, -1);
        lua_getfield(L, 4, "rd");
        rd = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
        lua_pop(L, 2);
    }
    if (strlen(name) > 253 + 1) {
        lua_pushnil(L);
        lua_pushfstring(L, "DNS name too long: %s", name);
        return 2;
    }
    struct sched *loop = r->api->get(L);
    struct query *q = new_query(L);
    unsigned char *abuf = NULL, pkt[512];
    int len = 0;
    int st = ares_create_query(name, 1 /* IN */, type, 0, rd, &abuf, &len, 0);
    if (st == ARES_SUCCESS && (len < HDR || len > (int)sizeof pkt)) st = ARES_EBADNAME;
    if (st == ARES_SUCCESS) memcpy(pkt, abuf, (size_t)len);
    if (abuf) ares_free_string(abuf);    /* freed before anything below can raise */
    if (st != ARES_SUCCESS) {
        lua_pushnil(L);
        lua_pushfstring(L, "bad DNS name '%s' (%s)", name, ares_strerror(st));
        return 2;
    }
    if (ad) pkt[3] |= 0x20;
    start(L, loop, r, q, -1, pkt, len);
    return 1;
}

/* r:send(packet) -> Query: any message (an RFC 2136 UPDATE), its answer parsed alike. */
static int res_send(lua_State *L) {
    struct resolver *r = check_res(L, 1);
    size_t len;
    const char *pkt = luaL_checklstring(L, 2, &len);
    luaL_argcheck(L, len >= HDR && len <= 65535, 2, "not a DNS message");
    struct sched *loop = r->api->get(L);
    struct query *q = new_query(L);
    start(L, loop, r, q, -1, (const unsigned char *)pkt, (int)len);
    return 1;
}

static int res_tostring(lua_State *L) {
    struct resolver *r = luaL_checkudata(L, 1, RES_MT);
    lua_pushfstring(L, "t2t.dns.Resolver (%s) %p", r->ch ? "open" : "closed", (void *)r);
    return 1;
}

/* ---- queries -------------------------------------------------------------------------------- */

static int q_gc(lua_State *L) {
    struct query *q = luaL_checkudata(L, 1, Q_MT);
    free(q->buf);
    q->buf = NULL;
    q->len = 0;
    q->gone = 1;
    return 0;
}

static const char *status_name(int st) {
    switch (st) {
    case ARES_SUCCESS: return "ok";
    case ARES_ETIMEOUT: return "timeout";
    case ARES_ESERVFAIL: return "servfail";
    case ARES_EREFUSED: return "refused";
    case ARES_ENOTIMP: return "notimp";
    case ARES_ECONNREFUSED: return "connrefused";
    case ARES_EBADNAME: return "badname";
    case ARES_EBADRESP: return "badresp";
    case ARES_EDESTRUCTION: return "closed";
    case ARES_ENOMEM: return "nomem";
    default: return "error";
    }
}

static int l_parse(lua_State *L);

/* q:done() -> boolean */
static int q_done(lua_State *L) {
    struct query *q = luaL_checkudata(L, 1, Q_MT);
    lua_pushboolean(L, q->started && q->w.done);
    return 1;
}

/* q:result() -> {status, message, timeouts, raw, response} | nil, "pending". */
static int q_result(lua_State *L) {
    struct query *q = luaL_checkudata(L, 1, Q_MT);
    if (!q->started || !q->w.done) {
        lua_pushnil(L);
        lua_pushliteral(L, "pending");
        return 2;
    }
    lua_createtable(L, 0, 5);
    lua_pushstring(L, status_name(q->status));
    lua_setfield(L, -2, "status");
    lua_pushstring(L, ares_strerror(q->status));
    lua_setfield(L, -2, "message");
    lua_pushinteger(L, q->timeouts);
    lua_setfield(L, -2, "timeouts");
    if (q->buf) {
        lua_pushlstring(L, (const char *)q->buf, (size_t)q->len);
        lua_setfield(L, -2, "raw");
        lua_pushcfunction(L, l_parse);
        lua_pushlstring(L, (const char *)q->buf, (size_t)q->len);
        lua_call(L, 1, 2);
        if (lua_istable(L, -2)) {
            lua_pop(L, 1);
            lua_setfield(L, -2, "response");
        } else {
            lua_setfield(L, -3, "parse_error");
            lua_pop(L, 1);
        }
    }
    return 1;
}

/* ---- parsing a DNS message -------------------------------------------------------------------- */

struct msg { const unsigned char *p; int len; };

static unsigned u16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }
static unsigned long u32(const unsigned char *p) { return (unsigned long)u16(p) << 16 | u16(p + 2); }

/* Push the name at *off (compression followed by c-ares); advance *off.  0 on a bad name. */
static int push_name(lua_State *L, const struct msg *m, int *off) {
    char *s = NULL;
    long enclen = 0;
    if (*off >= m->len || ares_expand_name(m->p + *off, m->p, m->len, &s, &enclen) != ARES_SUCCESS)
        return 0;
    lua_pushstring(L, s);
    ares_free_string(s);
    *off += (int)enclen;
    return 1;
}

#define SETI(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, k))

/* Fill the RR table on top of the stack with the fields of rdata [off, end). 0 if malformed. */
static int rdata(lua_State *L, const struct msg *m, int type, int off, int end) {
    char addr[INET6_ADDRSTRLEN];
    int o = off;
    switch (type) {
    case 1: case 28: {
        int n = type == 1 ? 4 : 16;
        if (end - off != n || !inet_ntop(type == 1 ? AF_INET : AF_INET6, m->p + off, addr, sizeof addr)) return 0;
        lua_pushstring(L, addr);
        lua_setfield(L, -2, "address");
        return 1;
    }
    case 2: case 5: case 12: case 39:
        if (!push_name(L, m, &o) || o != end) return 0;
        lua_setfield(L, -2, "target");
        return 1;
    case 15:
        if (end - off < 3) return 0;
        SETI("preference", u16(m->p + off));
        o += 2;
        if (!push_name(L, m, &o) || o != end) return 0;
        lua_setfield(L, -2, "exchange");
        return 1;
    case 16: case 99: {                  /* strings, and joined with nothing (RFC 7208 §3.3) */
        luaL_Buffer b;
        int i = 0, rr = lua_absindex(L, -1);
        lua_newtable(L);
        int t = lua_absindex(L, -1);
        while (o < end) {
            int n = m->p[o++];
            if (o + n > end) return 0;
            lua_pushlstring(L, (const char *)m->p + o, (size_t)n);
            lua_rawseti(L, t, ++i);
            o += n;
        }
        luaL_buffinit(L, &b);
        for (int k = 1; k <= i; k++) {
            lua_rawgeti(L, t, k);
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        lua_setfield(L, rr, "text");
        lua_setfield(L, rr, "strings");
        return 1;
    }
    case 6:
        if (!push_name(L, m, &o)) return 0;
        lua_setfield(L, -2, "mname");
        if (!push_name(L, m, &o)) return 0;
        lua_setfield(L, -2, "rname");
        if (end - o != 20) return 0;
        SETI("serial", u32(m->p + o));
        SETI("refresh", u32(m->p + o + 4));
        SETI("retry", u32(m->p + o + 8));
        SETI("expire", u32(m->p + o + 12));
        SETI("minimum", u32(m->p + o + 16));
        return 1;
    case 250: {                          /* TSIG (RFC 8945 §4.2) */
        if (!push_name(L, m, &o)) return 0;
        lua_setfield(L, -2, "algorithm");
        if (end - o < 10) return 0;
        SETI("time_signed", (lua_Integer)u16(m->p + o) << 32 | (lua_Integer)u32(m->p + o + 2));
        SETI("fudge", u16(m->p + o + 6));
        int maclen = (int)u16(m->p + o + 8);
        o += 10;
        if (end - o < maclen + 6) return 0;
        lua_pushlstring(L, (const char *)m->p + o, (size_t)maclen);
        lua_setfield(L, -2, "mac");
        o += maclen;
        SETI("original_id", u16(m->p + o));
        SETI("error", u16(m->p + o + 2));
        int olen = (int)u16(m->p + o + 4);
        o += 6;
        if (end - o != olen) return 0;
        lua_pushlstring(L, (const char *)m->p + o, (size_t)olen);
        lua_setfield(L, -2, "other");
        return 1;
    }
    default:
        return 1;
    }
}

/* Push one section of n records as an array; *off advances.  0 if malformed. */
static int section(lua_State *L, const struct msg *m, int *off, unsigned n, int question) {
    luaL_checkstack(L, 8, NULL);
    lua_createtable(L, (int)n, 0);
    for (unsigned i = 1; i <= n; i++) {
        lua_createtable(L, 0, 8);
        SETI("offset", *off);
        if (!push_name(L, m, off)) return 0;
        lua_setfield(L, -2, "name");
        if (*off + (question ? 4 : 10) > m->len) return 0;
        int type = (int)u16(m->p + *off);
        push_type(L, type);
        lua_setfield(L, -2, "type");
        SETI("type_code", type);
        SETI("class", u16(m->p + *off + 2));
        if (question) {
            *off += 4;
        } else {
            SETI("ttl", u32(m->p + *off + 4));
            int rdlen = (int)u16(m->p + *off + 8);
            *off += 10;
            if (*off + rdlen > m->len) return 0;
            lua_pushlstring(L, (const char *)m->p + *off, (size_t)rdlen);
            lua_setfield(L, -2, "rdata");
            if (!rdata(L, m, type, *off, *off + rdlen)) return 0;
            *off += rdlen;
        }
        lua_rawseti(L, -2, (lua_Integer)i);
    }
    return 1;
}

static const char *const rcodes[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
    "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"};

/* dns.parse(packet) -> {id, qr, opcode, aa, tc, rd, ra, ad, cd, rcode, rcode_name, question,
 * answers, authority, additional} | nil, err.  Records: {name, type, type_code, class, ttl,
 * rdata, offset, ...type fields: address | target | preference+exchange | strings+text | SOA
 * fields | TSIG fields}. */
static int l_parse(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct msg m = {(const unsigned char *)s, (int)(len > 65535 ? 65535 : len)};
    if (m.len < HDR) {
        lua_pushnil(L);
        lua_pushliteral(L, "DNS message shorter than its header");
        return 2;
    }
    const unsigned char *h = m.p;
    lua_settop(L, 1);
    lua_createtable(L, 0, 16);
    SETI("id", u16(h));
    lua_pushboolean(L, h[2] & 0x80); lua_setfield(L, -2, "qr");
    SETI("opcode", (h[2] >> 3) & 0xF);
    lua_pushboolean(L, h[2] & 0x04); lua_setfield(L, -2, "aa");
    lua_pushboolean(L, h[2] & 0x02); lua_setfield(L, -2, "tc");
    lua_pushboolean(L, h[2] & 0x01); lua_setfield(L, -2, "rd");
    lua_pushboolean(L, h[3] & 0x80); lua_setfield(L, -2, "ra");
    lua_pushboolean(L, h[3] & 0x20); lua_setfield(L, -2, "ad");
    lua_pushboolean(L, h[3] & 0x10); lua_setfield(L, -2, "cd");
    int rc = h[3] & 0xF;
    SETI("rcode", rc);
    if (rc < (int)(sizeof rcodes / sizeof *rcodes)) lua_pushstring(L, rcodes[rc]);
    else lua_pushfstring(L, "RCODE%d", rc);
    lua_setfield(L, -2, "rcode_name");
    static const char *const names[] = {"question", "answers", "authority", "additional"};
    int off = HDR;
    for (int i = 0; i < 4; i++) {
        if (!section(L, &m, &off, u16(h + 4 + 2 * i), i == 0)) {
            lua_pushnil(L);
            lua_pushfstring(L, "malformed DNS message (%s section, offset %d)", names[i], off);
            return 2;
        }
        lua_setfield(L, 2, names[i]);
    }
    SETI("length", m.len);
    return 1;
}

/* dns.type_code(name) -> number; dns.type_name(code) -> string. */
static int l_type_code(lua_State *L) {
    lua_pushinteger(L, type_code(L, 1));
    return 1;
}

static int l_type_name(lua_State *L) {
    push_type(L, (int)luaL_checkinteger(L, 1));
    return 1;
}

static int l_version(lua_State *L) {
    lua_pushstring(L, ares_version(NULL));
    return 1;
}

int luaopen_t2t_dns(lua_State *L) {
    static const luaL_Reg res_methods[] = {
        {"query", res_query}, {"send", res_send}, {"servers", res_servers}, {"close", res_close},
        {NULL, NULL}};
    static const luaL_Reg q_methods[] = {{"result", q_result}, {"done", q_done}, {NULL, NULL}};
    static const luaL_Reg fns[] = {
        {"resolver", l_resolver}, {"parse", l_parse}, {"type_code", l_type_code},
        {"type_name", l_type_name}, {"version", l_version}, {NULL, NULL}};
    if (luaL_newmetatable(L, RES_MT)) {
        luaL_newlib(L, res_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, res_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, res_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, res_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, Q_MT)) {
        luaL_newlib(L, q_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, q_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "__t2t_wait");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
