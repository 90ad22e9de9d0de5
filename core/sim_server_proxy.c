/* sim_server_proxy.c — an HTTP CONNECT proxy that tunnels to one upstream address.
 * Module "t2t.core.proxy" (in the server plugin beside sim_server.c).
 *
 * Any HTTPS client that honours HTTPS_PROXY (Node's libraries, curl, Python requests) asks it
 * "CONNECT host:443"; if the host is on the allow list the proxy opens a TCP connection to the
 * upstream (the simulator's loopback port), answers "200 Connection Established" and then only
 * copies bytes both ways: TLS stays end to end between the client and the upstream, so the
 * client sees the upstream's certificate for the real host name.  Hosts that are not listed get
 * 403, other methods 405: a client is never tunnelled somewhere it did not mean to go.
 *
 * Why C and not Lua over the existing server: libmicrohttpd cannot hand a CONNECT socket over to
 * a tunnel, and no Lua primitive here owns raw sockets.  The proxy knows nothing about the hosts
 * it allows (Lua passes them); it is one thread with a poll() loop over at most PX_MAX tunnels,
 * stopped through a self-pipe, never calling Lua.
 *
 * No client can starve the others: a request head must arrive within PX_HEAD_SECONDS, and when
 * every slot is taken a new client takes the slot of the connection idle the longest (one still
 * sending its head first), so a local user holding PX_MAX idle sockets cannot lock others out. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "host.h"

#define PX_MT "t2t.proxy.Proxy"
#define PX_MAX 256                   /* open tunnels at once; more wait in the listen backlog */
#define PX_BUF 65536                 /* bytes buffered per direction */
#define PX_HEAD 8192                 /* longest CONNECT request head */
#define PX_HEAD_SECONDS 10.0         /* a head that takes longer is dropped */

enum { C_HEAD, C_TUNNEL };

struct px_dir { char buf[PX_BUF]; size_t off, len; int eof, shut; };

struct px_conn {
    int cfd, ufd;                    /* client, upstream (-1 until connected) */
    int state;
    double since, last;              /* accepted, last bytes moved (monotonic seconds) */
    char head[PX_HEAD + 1];
    size_t hlen;
    struct px_dir up, down;          /* client -> upstream, upstream -> client */
};

struct px {
    int lfd, wake[2];
    pthread_t thread;
    int running;
    unsigned port;
    struct sockaddr_in upstream;
    char **hosts;                    /* "name" or "*.suffix", lower case */
    size_t nhosts;
    lua_Integer allow_port;
    struct px_conn *conns[PX_MAX];
    pthread_mutex_t mu;
    unsigned long long tunnels, refused;
};

typedef struct { struct px *p; } px_box;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void conn_free(struct px_conn *c) {
    if (!c) return;
    if (c->cfd >= 0) close(c->cfd);
    if (c->ufd >= 0) close(c->ufd);
    free(c);
}

/* Is host (lower-cased in place) on the allow list? */
static int host_allowed(const struct px *p, char *host) {
    for (char *h = host; *h; h++) if (*h >= 'A' && *h <= 'Z') *h = (char)(*h + 32);
    size_t n = strlen(host);
    for (size_t i = 0; i < p->nhosts; i++) {
        const char *a = p->hosts[i];
        if (a[0] == '*' && a[1] == '.') {
            size_t m = strlen(a + 1);        /* ".suffix": at least one label before it */
            if (n > m && strcmp(host + n - m, a + 1) == 0 && !strchr(host, '/')) return 1;
        } else if (strcmp(a, host) == 0) return 1;
    }
    return 0;
}

/* Queue a short HTTP answer to the client and mark the tunnel finished after it. */
static void answer(struct px_conn *c, const char *status, const char *extra) {
    int n = snprintf(c->down.buf, PX_BUF, "HTTP/1.1 %s\r\n%sContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n", status, extra);
    c->down.off = 0;
    c->down.len = n > 0 ? (size_t)n : 0;
    c->down.eof = 1;                 /* nothing more comes from the upstream side */
    c->up.eof = c->up.shut = 1;
    c->state = C_TUNNEL;
}

/* The head is complete: parse "CONNECT host:port HTTP/1.x", connect, answer. */
static void start_tunnel(struct px *p, struct px_conn *c, size_t head_end) {
    char method[16], target[512];
    if (sscanf(c->head, "%15s %511s HTTP/1.%*c", method, target) != 2) {
        answer(c, "400 Bad Request", "");
    } else if (strcmp(method, "CONNECT") != 0) {
        answer(c, "405 Method Not Allowed", "Allow: CONNECT\r\n");
    } else {
        char *colon = strrchr(target, ':');
        long port = colon ? strtol(colon + 1, NULL, 10) : 0;
        if (colon) *colon = 0;
        int fd = -1;
        if (!colon || port != p->allow_port || !host_allowed(p, target)) {
            answer(c, "403 Forbidden", "");
        } else if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
                   connect(fd, (const struct sockaddr *)&p->upstream, sizeof p->upstream) < 0 ||
                   nonblock(fd) < 0) {
            if (fd >= 0) close(fd);
            answer(c, "502 Bad Gateway", "");
        } else {
            c->ufd = fd;
            static const char ok[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
            memcpy(c->down.buf, ok, sizeof ok - 1);
            c->down.off = 0;
            c->down.len = sizeof ok - 1;
            c->up.len = c->hlen - head_end;  /* bytes the client sent after the head */
            memcpy(c->up.buf, c->head + head_end, c->up.len);
            c->state = C_TUNNEL;
            pthread_mutex_lock(&p->mu);
            p->tunnels++;
            pthread_mutex_unlock(&p->mu);
            return;
        }
    }
    pthread_mutex_lock(&p->mu);
    p->refused++;
    pthread_mutex_unlock(&p->mu);
}

/* Read the request head; 0 when the connection must be dropped. */
static int read_head(struct px *p, struct px_conn *c) {
    ssize_t r = read(c->cfd, c->head + c->hlen, PX_HEAD - c->hlen);
    if (r <= 0) return r < 0 && (errno == EAGAIN || errno == EINTR);
    c->hlen += (size_t)r;
    c->head[c->hlen] = 0;
    char *end = strstr(c->head, "\r\n\r\n");
    if (end) start_tunnel(p, c, (size_t)(end + 4 - c->head));
    else if (c->hlen == PX_HEAD) answer(c, "431 Request Header Fields Too Large", "");
    return 1;
}

/* Move bytes from src to dst through d; 0 on a hard error. */
static int pump_in(int src, struct px_dir *d) {
    if (d->eof || d->len) return 1;
    ssize_t r = read(src, d->buf, PX_BUF);
    if (r > 0) { d->off = 0; d->len = (size_t)r; return 1; }
    if (r == 0) { d->eof = 1; return 1; }
    return errno == EAGAIN || errno == EINTR;
}

static int pump_out(int dst, struct px_dir *d) {
    if (d->len) {
        ssize_t w = send(dst, d->buf + d->off, d->len, MSG_NOSIGNAL);
        if (w < 0) return errno == EAGAIN || errno == EINTR;
        d->off += (size_t)w;
        d->len -= (size_t)w;
    }
    if (!d->len && d->eof && !d->shut && dst >= 0) {   /* pass the half-close on */
        shutdown(dst, SHUT_WR);
        d->shut = 1;
    }
    return 1;
}

/* One step of a connection after poll; 0 when it is finished. */
static int step(struct px *p, struct px_conn *c, short cre, short ure) {
    if (cre || ure) c->last = mono();
    if (c->state == C_HEAD) {
        if ((cre & (POLLIN | POLLHUP | POLLERR)) && !read_head(p, c)) return 0;
        if (c->state == C_HEAD) return 1;
    }
    if (cre & (POLLIN | POLLHUP | POLLERR)) if (!pump_in(c->cfd, &c->up)) return 0;
    if (c->ufd >= 0 && (ure & (POLLIN | POLLHUP | POLLERR)))
        if (!pump_in(c->ufd, &c->down)) return 0;
    if (c->ufd >= 0 && !pump_out(c->ufd, &c->up)) return 0;
    if (!pump_out(c->cfd, &c->down)) return 0;
    if (c->ufd < 0 && !c->down.len) return 0;          /* a refusal, delivered */
    return !(c->up.shut && c->down.shut);
}

/* The slot to give up when all are taken: the connection idle the longest, one still waiting
 * for its head before any tunnel. */
static size_t victim(const struct px *p) {
    size_t best = 0;
    for (size_t i = 1; i < PX_MAX; i++) {
        const struct px_conn *a = p->conns[i], *b = p->conns[best];
        int ah = a->state == C_HEAD, bh = b->state == C_HEAD;
        if (ah > bh || (ah == bh && a->last < b->last)) best = i;
    }
    return best;
}

static void accept_one(struct px *p) {
    int fd = accept(p->lfd, NULL, NULL);
    if (fd < 0) return;
    size_t i = 0;
    while (i < PX_MAX && p->conns[i]) i++;
    if (i == PX_MAX) {
        i = victim(p);
        conn_free(p->conns[i]);
        p->conns[i] = NULL;
    }
    struct px_conn *c = calloc(1, sizeof *c);
    if (!c || nonblock(fd) < 0) { close(fd); free(c); return; }
    c->cfd = fd;
    c->ufd = -1;
    c->since = c->last = mono();
    p->conns[i] = c;
}

/* Drop the connections whose head is overdue; -> the poll timeout (ms) until the next is due. */
static int expire_heads(struct px *p) {
    double now = mono(), next = -1;
    for (size_t i = 0; i < PX_MAX; i++) {
        struct px_conn *c = p->conns[i];
        if (!c || c->state != C_HEAD) continue;
        double left = c->since + PX_HEAD_SECONDS - now;
        if (left <= 0) {
            conn_free(c);
            p->conns[i] = NULL;
        } else if (next < 0 || left < next) next = left;
    }
    return next < 0 ? -1 : (int)(next * 1000) + 1;
}

static void *px_main(void *arg) {
    struct px *p = arg;
    struct pollfd fds[2 + 2 * PX_MAX];
    size_t slot[PX_MAX];                 /* the connection behind each pair of pollfds */
    for (;;) {
        int wait_ms = expire_heads(p);
        nfds_t n = 2, m = 0;
        fds[0] = (struct pollfd){p->wake[0], POLLIN, 0};
        fds[1] = (struct pollfd){p->lfd, POLLIN, 0};
        for (size_t i = 0; i < PX_MAX; i++) {
            struct px_conn *c = p->conns[i];
            if (!c) continue;
            short cev = (c->state == C_HEAD || (!c->up.len && !c->up.eof)) ? POLLIN : 0;
            if (c->down.len) cev |= POLLOUT;
            short uev = (!c->down.len && !c->down.eof) ? POLLIN : 0;
            if (c->up.len) uev |= POLLOUT;
            fds[n++] = (struct pollfd){c->cfd, cev, 0};
            fds[n++] = (struct pollfd){c->ufd, uev, 0};   /* -1 is ignored by poll */
            slot[m++] = i;
        }
        if (poll(fds, n, wait_ms) < 0 && errno != EINTR) break;
        if (fds[0].revents) break;                      /* stop() */
        for (size_t j = 0; j < m; j++) {
            struct px_conn *c = p->conns[slot[j]];
            if (!step(p, c, fds[2 + 2 * j].revents, fds[3 + 2 * j].revents)) {
                conn_free(c);
                p->conns[slot[j]] = NULL;
            }
        }
        if (fds[1].revents & POLLIN) accept_one(p);
    }
    return NULL;
}

static void px_close(struct px *p) {
    if (p->running) {
        ssize_t w = write(p->wake[1], "x", 1);
        (void)w;
        pthread_join(p->thread, NULL);
    }
    for (size_t i = 0; i < PX_MAX; i++) conn_free(p->conns[i]);
    if (p->lfd >= 0) close(p->lfd);
    if (p->wake[0] >= 0) close(p->wake[0]);
    if (p->wake[1] >= 0) close(p->wake[1]);
    for (size_t i = 0; i < p->nhosts; i++) free(p->hosts[i]);
    free(p->hosts);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static int px_gc(lua_State *L) {
    px_box *b = luaL_checkudata(L, 1, PX_MT);
    if (b->p) {
        struct px *p = b->p;
        b->p = NULL;
        px_close(p);
    }
    return 0;
}

static struct px *check_px(lua_State *L) {
    px_box *b = luaL_checkudata(L, 1, PX_MT);
    if (!b->p) luaL_error(L, "attempt to use a stopped proxy");
    return b->p;
}

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

/* Push nil, "proxy: <what>: <strerror>" and close p. */
static int start_fail(lua_State *L, px_box *b, const char *what) {
    int e = errno;
    struct px *p = b->p;
    b->p = NULL;
    px_close(p);
    lua_pushnil(L);
    lua_pushfstring(L, "proxy: %s: %s", what, strerror(e));
    return 2;
}

/* Copy opts.hosts (a list of strings) into p; raises on a non-string. */
static int copy_hosts(lua_State *L, struct px *p) {
    lua_getfield(L, 1, "hosts");
    luaL_argexpected(L, lua_istable(L, -1), 1, "table with a 'hosts' list");
    size_t n = (size_t)lua_rawlen(L, -1);
    for (size_t i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, (lua_Integer)i) != LUA_TSTRING)
            return luaL_error(L, "bad option 'hosts' (strings expected)");
        lua_pop(L, 1);
    }
    if (!(p->hosts = calloc(n ? n : 1, sizeof *p->hosts))) return 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i);
        char *h = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        if (!h) return 0;
        for (char *c = h; *c; c++) if (*c >= 'A' && *c <= 'Z') *c = (char)(*c + 32);
        p->hosts[p->nhosts++] = h;
    }
    lua_pop(L, 1);
    return 1;
}

/* proxy.start{upstream_port = N, hosts = {"a.example", "*.b.example"}, port = 0,
 *             connect_port = 443} -> proxy | nil, err.
 * Listens on 127.0.0.1:port; CONNECT host:connect_port for an allowed host is tunnelled to
 * 127.0.0.1:upstream_port.  Bad options raise; socket failures return nil, err. */
static int l_start(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer port = opt_int(L, "port", 0, 0, 65535);
    lua_Integer up = opt_int(L, "upstream_port", 0, 1, 65535);
    lua_Integer cport = opt_int(L, "connect_port", 443, 1, 65535);
    px_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->p = NULL;
    luaL_setmetatable(L, PX_MT);
    struct px *p = calloc(1, sizeof *p);
    if (!p) return luaL_error(L, "not enough memory");
    p->lfd = p->wake[0] = p->wake[1] = -1;
    pthread_mutex_init(&p->mu, NULL);
    b->p = p;
    if (!copy_hosts(L, p)) return luaL_error(L, "not enough memory");
    p->allow_port = cport;
    p->upstream.sin_family = AF_INET;
    p->upstream.sin_port = htons((uint16_t)up);
    p->upstream.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    socklen_t alen = sizeof a;
    if (pipe(p->wake) < 0) return start_fail(L, b, "pipe");
    if ((p->lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0) return start_fail(L, b, "socket");
    setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(p->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(p->lfd, 128) < 0 ||
        nonblock(p->lfd) < 0 || getsockname(p->lfd, (struct sockaddr *)&a, &alen) < 0)
        return start_fail(L, b, "cannot listen on 127.0.0.1");
    p->port = ntohs(a.sin_port);
    sigset_t mask, old;                      /* the thread inherits SIGPIPE blocked */
    sigemptyset(&mask);
    sigaddset(&mask, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &mask, &old);
    int rc = pthread_create(&p->thread, NULL, px_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) { errno = rc; return start_fail(L, b, "thread"); }
    p->running = 1;
    return 1;
}

/* p:port() -> the bound port. */
static int l_port(lua_State *L) {
    lua_pushinteger(L, check_px(L)->port);
    return 1;
}

/* p:stats() -> {tunnels, refused}: CONNECTs tunnelled and answered with an error. */
static int l_stats(lua_State *L) {
    struct px *p = check_px(L);
    pthread_mutex_lock(&p->mu);
    unsigned long long t = p->tunnels, r = p->refused;
    pthread_mutex_unlock(&p->mu);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)t);
    lua_setfield(L, -2, "tunnels");
    lua_pushinteger(L, (lua_Integer)r);
    lua_setfield(L, -2, "refused");
    return 1;
}

static int l_tostring(lua_State *L) {
    px_box *b = luaL_checkudata(L, 1, PX_MT);
    if (b->p) lua_pushfstring(L, "t2t.proxy (port %d)", (int)b->p->port);
    else lua_pushliteral(L, "t2t.proxy (stopped)");
    return 1;
}

int luaopen_t2t_proxy(lua_State *L) {
    static const luaL_Reg meth[] = {
        {"port", l_port}, {"stats", l_stats}, {"stop", px_gc}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", px_gc}, {"__close", px_gc}, {"__tostring", l_tostring}, {NULL, NULL}};
    static const luaL_Reg fns[] = {{"start", l_start}, {NULL, NULL}};
    if (luaL_newmetatable(L, PX_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, meth);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
