/* sched.c — the event loop under t2t's tasks (module "t2t.core.sched").
 *
 * A task is a coroutine that this C loop resumes; the loop drives one curl multi handle (shared
 * with http.c through sched.h), a timer heap and a ready queue, as cqueues and luv do.  C never
 * yields by itself: the Lua wrappers (lua/t2t/init.lua, lua/t2t/http.lua) yield the sentinel
 * sched.YIELD with a reason, and the loop resumes the task when the reason is over:
 *     coroutine.yield(YIELD, "sleep", seconds)   a timer
 *     coroutine.yield(YIELD, "io", request)      an http.c request has finished
 *     coroutine.yield(YIELD, "park")             until sched.wake(task, ...), which passes values
 *     coroutine.yield(YIELD, "wait", w)          a sched_wait userdata (a DNS query) is done
 * Any other yield only lets the others run.  Outside a task, sched.run(x) drives the loop until
 * x — a request, a task, a number of seconds, or nil (everything) — is over.
 *
 * State lives in one userdata in the registry (one loop per lua_State, no C statics); tasks and
 * in-flight requests are pinned with luaL_ref until they end.  Ctrl-C: while the loop runs it is
 * the host's SIGINT wake-up (curl_multi_wakeup); the loop then closes every task that is not on
 * the C stack (their <close> variables run) and raises "interrupted!". */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched.h"

#define LOOP_KEY "t2t.sched.loop"
#define LOOP_MT  "t2t.sched.Loop"
#define TASK_MT  "t2t.sched.Task"
#define POLL_MAX_MS 1000                 /* re-check the world at least this often */

enum { T_READY, T_RUNNING, T_SLEEP, T_IO, T_PARKED, T_DEAD, T_WAIT };
static const char *const state_names[] = {"ready", "running", "sleeping", "io", "parked", "dead",
                                          "waiting"};
#define POLL_FDS_MAX 64                  /* extra sockets of the sources, per poll */

static const char yield_key;             /* its address is the sentinel; a constant, not state */

struct sched_task {
    lua_State *co;
    struct sched *loop;
    int ref;                             /* pins the handle (and the thread) while alive */
    int state;
    int nargs;                           /* values on co's stack for the next resume */
    sig_atomic_t sig;                    /* host_sigint when it was spawned */
    double deadline;
    size_t heap_i;
    unsigned long long seq;              /* FIFO among equal deadlines */
    unsigned long long rseq;             /* when it joined the ready list */
    struct sched_io *io;
    struct sched_wait *wait;
    struct sched_task *rprev, *rnext;    /* ready list */
    struct sched_task *aprev, *anext;    /* every live task */
};

struct sched {
    CURLM *multi;                        /* NULL once closed */
    struct sched_task *rhead, *rtail;
    struct sched_task *all;
    struct sched_task **heap;
    size_t nheap, capheap, ntasks, nios, neasy;
    struct sched_io *ios;
    struct sched_source *sources;        /* other libraries' sockets (sched.h) */
    size_t nwaits;                       /* sched_waits begun and not done */
    unsigned long long seq, rseq;
    struct sched_task *current;          /* the task being resumed, NULL at top level */
    lua_State *volatile running_co;      /* read by the SIGINT wake-up */
    volatile sig_atomic_t sig_seen;
    int interrupted;                     /* tasks were cancelled by Ctrl-C: every run raises */
    int curl_global;                     /* curl_global_init done, cleanup owed */
};

static double sched_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- ready list, timer heap ------------------------------------------------------------- */

static void ready_push(struct sched *s, struct sched_task *t) {
    t->state = T_READY;
    t->rseq = s->rseq++;
    t->rnext = NULL;
    t->rprev = s->rtail;
    if (s->rtail) s->rtail->rnext = t; else s->rhead = t;
    s->rtail = t;
}

static void ready_remove(struct sched *s, struct sched_task *t) {
    if (t->rprev) t->rprev->rnext = t->rnext; else s->rhead = t->rnext;
    if (t->rnext) t->rnext->rprev = t->rprev; else s->rtail = t->rprev;
    t->rprev = t->rnext = NULL;
}

static int heap_less(const struct sched_task *a, const struct sched_task *b) {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(struct sched *s, size_t i, struct sched_task *t) {
    s->heap[i] = t;
    t->heap_i = i;
}

static void heap_up(struct sched *s, size_t i) {
    struct sched_task *t = s->heap[i];
    while (i > 0 && heap_less(t, s->heap[(i - 1) / 2])) {
        heap_set(s, i, s->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(s, i, t);
}

static void heap_down(struct sched *s, size_t i) {
    struct sched_task *t = s->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->nheap) break;
        if (c + 1 < s->nheap && heap_less(s->heap[c + 1], s->heap[c])) c++;
        if (!heap_less(s->heap[c], t)) break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, t);
}

/* Capacity is reserved at spawn (one slot per live task), so pushing never allocates. */
static void heap_push(struct sched *s, struct sched_task *t) {
    heap_set(s, s->nheap++, t);
    heap_up(s, s->nheap - 1);
}

static void heap_remove(struct sched *s, struct sched_task *t) {
    size_t i = t->heap_i;
    struct sched_task *last = s->heap[--s->nheap];
    if (i == s->nheap) return;
    heap_set(s, i, last);
    heap_up(s, i);
    heap_down(s, last->heap_i);
}

/* ---- tasks ------------------------------------------------------------------------------- */

/* Take t out of whatever it waits on; it is then in no queue. */
static void task_detach(struct sched *s, struct sched_task *t) {
    switch (t->state) {
    case T_READY: ready_remove(s, t); break;
    case T_SLEEP: heap_remove(s, t); break;
    case T_IO:
        if (t->io) t->io->waiter = NULL;
        t->io = NULL;
        break;
    case T_WAIT:
        if (t->wait) t->wait->waiter = NULL;
        t->wait = NULL;
        break;
    default: break;
    }
}

/* Forget a task that has ended: unlink and unpin it. */
static void task_release(lua_State *L, struct sched *s, struct sched_task *t) {
    t->state = T_DEAD;
    if (t->aprev) t->aprev->anext = t->anext; else if (s->all == t) s->all = t->anext;
    if (t->anext) t->anext->aprev = t->aprev;
    t->aprev = t->anext = NULL;
    if (t->ref != LUA_NOREF) {
        s->ntasks--;
        luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
        t->ref = LUA_NOREF;
    }
}

/* Close a suspended or failed coroutine so its pending <close> variables run. */
static void close_thread(lua_State *L, lua_State *co) {
#if LUA_VERSION_RELEASE_NUM >= 50406
    lua_closethread(co, L);
#else
    (void)L;
    lua_resetthread(co);
#endif
}

/* Cancel a task that is not on the C stack: its <close> variables run, then it is dead. */
static void task_cancel(lua_State *L, struct sched *s, struct sched_task *t) {
    if (t->state == T_DEAD || t->state == T_RUNNING) return;
    task_detach(s, t);
    t->state = T_DEAD;                   /* wake/cancel ignore it while it closes */
    close_thread(L, t->co);
    task_release(L, s, t);
}

/* Cancel every task that can be (not those resuming this very call); with older, only those
 * spawned before Ctrl-C number sig. */
static void cancel_tasks(lua_State *L, struct sched *s, int older, sig_atomic_t sig) {
    for (;;) {
        struct sched_task *t = s->all;
        while (t && (t->state == T_RUNNING || t->state == T_DEAD || (older && t->sig == sig)))
            t = t->anext;
        if (!t) break;
        task_cancel(L, s, t);            /* may change the list: start over */
    }
}

static void cancel_all(lua_State *L, struct sched *s) {
    cancel_tasks(L, s, 0, 0);
}

/* Put a yielded task where its reason says. */
static void task_yielded(struct sched *s, struct sched_task *t, int nres) {
    lua_State *co = t->co;
    int base = lua_gettop(co) - nres + 1;
    const char *why = NULL;
    if (nres >= 2 && lua_type(co, base) == LUA_TLIGHTUSERDATA
        && lua_touserdata(co, base) == (void *)&yield_key && lua_checkstack(co, 4))
        why = lua_tostring(co, base + 1);
    if (why && strcmp(why, "sleep") == 0) {
        double d = lua_tonumber(co, base + 2);
        if (!(d > 0)) d = 0;             /* also NaN */
        if (d > 1e9) d = 1e9;
        t->deadline = sched_now() + d;
        t->seq = s->seq++;
        t->state = T_SLEEP;
        heap_push(s, t);
    } else if (why && strcmp(why, "io") == 0) {
        struct sched_io *io = luaL_testudata(co, base + 2, SCHED_IO_MT);
        if (io && !io->done && io->loop == s && io->waiter == NULL) {
            io->waiter = t;
            t->io = io;
            t->state = T_IO;
        } else {
            ready_push(s, t);
        }
    } else if (why && strcmp(why, "wait") == 0) {
        struct sched_wait *w = NULL;
        if (lua_type(co, base + 2) == LUA_TUSERDATA && luaL_getmetafield(co, base + 2, "__t2t_wait")) {
            lua_pop(co, 1);
            w = lua_touserdata(co, base + 2);
        }
        if (w && !w->done && w->loop == s && w->waiter == NULL) {
            w->waiter = t;
            t->wait = w;
            t->state = T_WAIT;
        } else {
            ready_push(s, t);
        }
    } else if (why && strcmp(why, "park") == 0) {
        t->state = T_PARKED;
    } else {
        ready_push(s, t);
    }
    lua_settop(co, base - 1);
}

/* Resume t.  LUA_OK, or an error status with the message (and traceback) pushed on L. */
static int task_resume(lua_State *L, struct sched *s, struct sched_task *t) {
    lua_State *co = t->co;
    int nargs = t->nargs, nres = 0;
    struct sched_task *prev = s->current;
    t->nargs = 0;
    t->state = T_RUNNING;
    s->current = t;
    s->running_co = co;
    int st = lua_resume(co, L, nargs, &nres);
    s->current = prev;
    s->running_co = prev ? prev->co : NULL;
    if (st == LUA_YIELD) {
        task_yielded(s, t, nres);
        return LUA_OK;
    }
    if (st == LUA_OK) {
        lua_settop(co, 0);
        task_release(L, s, t);
        return LUA_OK;
    }
    /* an error nobody caught inside the task: it escapes to whoever drives the loop */
    luaL_checkstack(L, 3, NULL);
    const char *msg = lua_tostring(co, -1);
    if (msg) luaL_traceback(L, co, msg, 0);
    else lua_xmove(co, L, 1);
    close_thread(L, co);
    task_release(L, s, t);
    return st;
}

/* Resume the tasks ready now (not those made ready meanwhile: I/O gets its turn first).
 * The bound is a count, not the last task: that one may be cancelled before its turn. */
static int run_ready(lua_State *L, struct sched *s) {
    unsigned long long end = s->rseq;
    while (s->rhead && s->rhead->rseq < end) {
        struct sched_task *t = s->rhead;
        ready_remove(s, t);
        int st = task_resume(L, s, t);
        if (st != LUA_OK) return st;
    }
    return LUA_OK;
}

static void expire_timers(struct sched *s) {
    double now = sched_now();
    while (s->nheap && s->heap[0]->deadline <= now) {
        struct sched_task *t = s->heap[0];
        heap_remove(s, t);
        ready_push(s, t);
    }
}

/* ---- curl ------------------------------------------------------------------------------- */

static void io_unlink(struct sched *s, struct sched_io *io) {
    curl_multi_remove_handle(s->multi, io->easy);
    if (io->prev) io->prev->next = io->next; else s->ios = io->next;
    if (io->next) io->next->prev = io->prev;
    io->prev = io->next = NULL;
    io->loop = NULL;
    s->nios--;
}

/* Collect finished transfers: results copied before removal, waiters made ready. */
static void drain_curl(lua_State *L, struct sched *s) {
    int running, left;
    CURLMsg *m;
    curl_multi_perform(s->multi, &running);
    while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) continue;
        CURLcode rc = m->data.result;    /* m is invalid once the handle is removed */
        CURL *e = m->easy_handle;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        struct sched_io *io = (struct sched_io *)(void *)priv;
        if (!io || io->loop != s) {
            curl_multi_remove_handle(s->multi, e);
            continue;
        }
        io->result = rc;
        if (io->finish) io->finish(io);
        io->done = 1;
        sched_io_stop(L, io);            /* unlink, wake the waiter, drop the pin */
    }
}

static void stop_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

/* SIGINT wake-up (async-signal-safe): break the poll, stop a task stuck computing. */
static void on_sigint(void *ud) {
    struct sched *s = ud;
    lua_State *co = s->running_co;
    if (s->multi) curl_multi_wakeup(s->multi);
    if (co) lua_sethook(co, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

/* ---- other sources of events (sched.h) ---------------------------------------------------- */

static void source_add(struct sched *s, struct sched_source *src) {
    if (src->loop) return;
    src->loop = s;
    src->prev = NULL;
    src->next = s->sources;
    if (s->sources) s->sources->prev = src;
    s->sources = src;
}

static void source_remove(struct sched_source *src) {
    struct sched *s = src->loop;
    if (!s) return;
    if (src->prev) src->prev->next = src->next; else s->sources = src->next;
    if (src->next) src->next->prev = src->prev;
    src->prev = src->next = NULL;
    src->loop = NULL;
}

static void wait_begin(struct sched *s, struct sched_wait *w) {
    w->loop = s;
    w->waiter = NULL;
    w->done = 0;
    s->nwaits++;
}

/* The thing waited on is over: its waiter (if any) becomes ready.  Pure C: safe in callbacks. */
static void wait_done(struct sched_wait *w) {
    struct sched *s = w->loop;
    if (w->done) return;
    w->done = 1;
    w->loop = NULL;
    if (!s) return;
    s->nwaits--;
    if (w->waiter) {
        struct sched_task *t = w->waiter;
        w->waiter = NULL;
        t->wait = NULL;
        ready_push(s, t);
    }
}

static const struct sched_api api = {sched_get, source_add, source_remove, wait_begin, wait_done};

/* Poll curl and every source's sockets at once, then let the sources process theirs. */
static void poll_all(lua_State *L, struct sched *s, long timeout) {
    struct curl_waitfd fds[POLL_FDS_MAX];
    int counts[POLL_FDS_MAX], nsrc = 0, n = 0;
    for (struct sched_source *src = s->sources; src && nsrc < POLL_FDS_MAX; src = src->next) {
        int k = src->fds(src, fds + n, POLL_FDS_MAX - n, &timeout);
        counts[nsrc++] = k;
        n += k;
    }
    if (timeout < 0) timeout = 0;
    curl_multi_poll(s->multi, n ? fds : NULL, (unsigned)n, (int)timeout, NULL);
    n = 0;
    struct sched_source *src = s->sources;
    for (int i = 0; i < nsrc && src; i++) {
        struct sched_source *next = src->next;     /* process may unregister src */
        src->process(src, L, fds + n, counts[i]);
        n += counts[i];
        src = next;
    }
}

/* ---- the loop ------------------------------------------------------------------------- */

static int loop_gc(lua_State *L) {
    struct sched *s = luaL_checkudata(L, 1, LOOP_MT);
    if (s->multi) {
        host_on_sigint(NULL, NULL);
        cancel_all(L, s);
        while (s->ios) {
            struct sched_io *io = s->ios;
            io_unlink(s, io);
            if (io->ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, io->ref);
            io->ref = LUA_NOREF;
        }
        while (s->sources) source_remove(s->sources);
        curl_multi_cleanup(s->multi);
        s->multi = NULL;
    }
    free(s->heap);
    s->heap = NULL;
    s->capheap = s->nheap = 0;
    if (s->curl_global && s->neasy == 0) {   /* else the last sched_easy_free does it */
        curl_global_cleanup();
        s->curl_global = 0;
    }
    return 0;
}

struct sched *sched_get(lua_State *L) {
    struct sched *s;
    if (lua_getfield(L, LUA_REGISTRYINDEX, LOOP_KEY) == LUA_TUSERDATA) {
        s = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (!s->multi) luaL_error(L, "the t2t scheduler is closed");
        return s;
    }
    lua_pop(L, 1);
    s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    if (luaL_newmetatable(L, LOOP_MT)) {
        lua_pushcfunction(L, loop_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, LOOP_KEY);   /* stored: its __gc now owns what follows */
    s->sig_seen = host_sigint;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        luaL_error(L, "curl_global_init failed");
    s->curl_global = 1;
    if ((s->multi = curl_multi_init()) == NULL) luaL_error(L, "curl_multi_init failed");
    return s;
}

CURL *sched_easy_new(struct sched *s) {
    CURL *e = curl_easy_init();
    if (e) s->neasy++;
    return e;
}

void sched_easy_free(struct sched *s, CURL *e) {
    curl_easy_cleanup(e);
    if (--s->neasy == 0 && s->curl_global && !s->multi) {
        curl_global_cleanup();
        s->curl_global = 0;
    }
}

const char *sched_io_start(lua_State *L, struct sched *s, struct sched_io *io, int idx) {
    idx = lua_absindex(L, idx);
    if (io->loop || io->done) return "request already started";
    lua_pushvalue(L, idx);
    io->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    curl_easy_setopt(io->easy, CURLOPT_PRIVATE, (char *)(void *)io);
    CURLMcode mc = curl_multi_add_handle(s->multi, io->easy);
    if (mc != CURLM_OK) {
        luaL_unref(L, LUA_REGISTRYINDEX, io->ref);
        io->ref = LUA_NOREF;
        return curl_multi_strerror(mc);
    }
    io->loop = s;
    io->prev = NULL;
    io->next = s->ios;
    if (s->ios) s->ios->prev = io;
    s->ios = io;
    s->nios++;
    return NULL;
}

void sched_io_stop(lua_State *L, struct sched_io *io) {
    struct sched *s = io->loop;
    if (s) {
        io_unlink(s, io);
        if (io->waiter) {                /* done, or closed under a waiting task: wake it */
            struct sched_task *t = io->waiter;
            io->waiter = NULL;
            t->io = NULL;
            ready_push(s, t);
        }
    }
    if (io->ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, io->ref);
        io->ref = LUA_NOREF;
    }
}

enum { U_ALL, U_IO, U_TASK, U_TIME };
struct until { int kind; struct sched_io *io; struct sched_task *task; double deadline; };

static int until_met(const struct until *u) {
    switch (u->kind) {
    case U_IO: return u->io->done || u->io->loop == NULL;
    case U_TASK: return u->task->state == T_DEAD;
    case U_TIME: return sched_now() >= u->deadline;
    default: return 0;
    }
}

/* Milliseconds the loop may sleep now. */
static long poll_timeout(struct sched *s, const struct until *u) {
    if (s->rhead) return 0;
    double now = sched_now(), until = now + POLL_MAX_MS / 1000.0;
    if (s->nheap && s->heap[0]->deadline < until) until = s->heap[0]->deadline;
    if (u->kind == U_TIME && u->deadline < until) until = u->deadline;
    double ms = ceil((until - now) * 1000.0);
    return ms < 0 ? 0 : (long)ms;
}

/* Leave run(): unregister the Ctrl-C wake-up at top level, then raise what is on the stack. */
static int run_fail(lua_State *L, struct sched *s, int top) {
    if (top) host_on_sigint(NULL, NULL);
    (void)s;
    return lua_error(L);
}

/* sched.run([request | task | seconds]) — drive the loop until that is over (nil: until no
 * work is left).  Raises what an uncaught task error raised, "interrupted!" on Ctrl-C, and
 * "deadlock" when the wait can never end. */
static int l_run(lua_State *L) {
    struct sched *s = sched_get(L);
    struct until u = {U_ALL, NULL, NULL, 0};
    if (!lua_isnoneornil(L, 1)) {
        if ((u.io = luaL_testudata(L, 1, SCHED_IO_MT)) != NULL) u.kind = U_IO;
        else if ((u.task = luaL_testudata(L, 1, TASK_MT)) != NULL) u.kind = U_TASK;
        else if (lua_type(L, 1) == LUA_TNUMBER) {
            double d = lua_tonumber(L, 1);
            u.kind = U_TIME;
            u.deadline = sched_now() + (d > 0 ? (d < 1e9 ? d : 1e9) : 0);
        } else return luaL_typeerror(L, 1, "request, task or number");
    }
    int top = (s->current == NULL);
    if (top) {                           /* a Ctrl-C from before belongs to earlier work */
        if (s->sig_seen != host_sigint) {  /* not to tasks spawned since (this run's own) */
            sig_atomic_t sig = host_sigint;
            s->sig_seen = sig;
            cancel_tasks(L, s, 1, sig);
        }
        s->interrupted = 0;
        host_on_sigint(on_sigint, s);
    }
    for (;;) {
        if (run_ready(L, s) != LUA_OK) return run_fail(L, s, top);
        if (s->sig_seen != host_sigint || s->interrupted) {
            s->sig_seen = host_sigint;
            s->interrupted = 1;
            cancel_all(L, s);
            lua_pushliteral(L, "interrupted!");
            return run_fail(L, s, top);
        }
        if (until_met(&u)) break;
        if (!s->rhead && !s->nheap && !s->nios && !s->nwaits) {
            if (u.kind == U_ALL) break;
            if (u.kind != U_TIME) {
                lua_pushliteral(L, "deadlock: waiting for something no task or request can finish");
                return run_fail(L, s, top);
            }
        }
        poll_all(L, s, poll_timeout(s, &u));
        drain_curl(L, s);
        expire_timers(s);
    }
    if (top) host_on_sigint(NULL, NULL);
    return 0;
}

/* ---- Lua functions ------------------------------------------------------------------------ */

static struct sched_task *check_task(lua_State *L, int idx) {
    return luaL_checkudata(L, idx, TASK_MT);
}

/* sched.spawn(fn, ...) -> task: a new task, ready to run with the arguments. */
static int l_spawn(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    struct sched *s = sched_get(L);
    if (s->capheap < s->ntasks + 1) {    /* reserve the timer slot now: heap_push never fails */
        size_t cap = s->capheap ? s->capheap * 2 : 64;
        struct sched_task **h = realloc(s->heap, cap * sizeof *h);
        if (!h) return luaL_error(L, "not enough memory");
        s->heap = h;
        s->capheap = cap;
    }
    struct sched_task *t = lua_newuserdatauv(L, sizeof *t, 1);
    memset(t, 0, sizeof *t);
    t->ref = LUA_NOREF;
    t->state = T_DEAD;
    t->loop = s;
    t->sig = host_sigint;
    luaL_setmetatable(L, TASK_MT);
    lua_State *co = lua_newthread(L);
    if (!lua_checkstack(co, n)) return luaL_error(L, "too many arguments");
    for (int i = 1; i <= n; i++) lua_pushvalue(L, i);
    lua_xmove(L, co, n);
    lua_setiuservalue(L, -2, 1);         /* the handle keeps the thread */
    t->co = co;
    t->nargs = n - 1;
    lua_pushvalue(L, -1);
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->ntasks++;
    t->anext = s->all;
    if (s->all) s->all->aprev = t;
    s->all = t;
    ready_push(s, t);
    return 1;
}

/* sched.current() -> the task running this code, or nil outside any task (or inside a
 * coroutine of the task's own, which cannot yield to the loop). */
static int l_current(lua_State *L) {
    struct sched *s = sched_get(L);
    if (s->current && s->current->co == L && s->current->ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->current->ref);
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

/* sched.wake(task, ...) -> true if the task was parked (the values are what its park returns). */
static int l_wake(lua_State *L) {
    struct sched_task *t = check_task(L, 1);
    int n = lua_gettop(L) - 1;
    if (t->state != T_PARKED) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (!lua_checkstack(t->co, n + 1)) return luaL_error(L, "too many values");
    lua_xmove(L, t->co, n);
    t->nargs = n;
    ready_push(t->loop, t);
    lua_pushboolean(L, 1);
    return 1;
}

/* sched.cancel(task) -> true if it was alive: it is closed (its <close> variables run). */
static int l_cancel(lua_State *L) {
    struct sched_task *t = check_task(L, 1);
    if (t->state == T_RUNNING) return luaL_error(L, "cannot cancel a running task");
    int alive = t->state != T_DEAD;
    task_cancel(L, t->loop, t);
    lua_pushboolean(L, alive);
    return 1;
}

static int l_status(lua_State *L) {
    lua_pushstring(L, state_names[check_task(L, 1)->state]);
    return 1;
}

static int l_now(lua_State *L) {
    lua_pushnumber(L, sched_now());
    return 1;
}

/* sched.stats() -> {tasks, ready, timers, requests, easy, waits}: for tests and leak checks. */
static int l_stats(lua_State *L) {
    struct sched *s = sched_get(L);
    lua_Integer ready = 0;
    for (struct sched_task *t = s->rhead; t; t = t->rnext) ready++;
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, (lua_Integer)s->nwaits);
    lua_setfield(L, -2, "waits");
    lua_pushinteger(L, (lua_Integer)s->ntasks);
    lua_setfield(L, -2, "tasks");
    lua_pushinteger(L, ready);
    lua_setfield(L, -2, "ready");
    lua_pushinteger(L, (lua_Integer)s->nheap);
    lua_setfield(L, -2, "timers");
    lua_pushinteger(L, (lua_Integer)s->nios);
    lua_setfield(L, -2, "requests");
    lua_pushinteger(L, (lua_Integer)s->neasy);
    lua_setfield(L, -2, "easy");
    return 1;
}

static int task_tostring(lua_State *L) {
    struct sched_task *t = check_task(L, 1);
    lua_pushfstring(L, "t2t.sched.Task (%s) %p", state_names[t->state], (void *)t);
    return 1;
}

int luaopen_t2t_sched(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"spawn", l_spawn}, {"current", l_current}, {"wake", l_wake}, {"cancel", l_cancel},
        {"status", l_status}, {"run", l_run}, {"now", l_now}, {"stats", l_stats},
        {NULL, NULL}};
    if (luaL_newmetatable(L, TASK_MT)) {
        lua_pushcfunction(L, task_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, (void *)&api);   /* constant functions, no state */
    lua_setfield(L, LUA_REGISTRYINDEX, SCHED_API_KEY);
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, (void *)&yield_key);
    lua_setfield(L, -2, "YIELD");
    return 1;
}
