/* sched.h — the per-lua_State event loop shared by sched.c (tasks, timers, the curl multi
 * handle) and http.c (requests).  Internal to the core: Lua sees t2t.core.sched/t2t.core.http.
 *
 * Exception to "only luaopen_* is non-static": the sched_* functions below are shared by the
 * two modules, because one curl multi handle must serve both the scheduler and the requests. */
#ifndef T2T_SCHED_H
#define T2T_SCHED_H

#include <curl/curl.h>
#include "host.h"

/* Metatable name of http.c's request userdata; the scheduler can wait on one. */
#define SCHED_IO_MT "t2t.http.Request"

struct sched;
struct sched_task;

/* An in-flight transfer.  http.c puts this first in its request userdata, so a pointer to the
 * userdata is a pointer to this.  The loop owns nothing here: it only links and unlinks. */
struct sched_io {
    CURL *easy;                        /* owned by http.c */
    struct sched *loop;                /* non-NULL while the easy handle is in the multi */
    struct sched_task *waiter;         /* the task parked on it, if any */
    int ref;                           /* registry ref pinning the userdata while in flight */
    int done;                          /* CURLMSG_DONE seen: result and finish() copied */
    CURLcode result;
    void (*finish)(struct sched_io *); /* copy what the easy handle knows, before removal */
    struct sched_io *prev, *next;      /* the loop's in-flight list */
};

/* Something a task can wait on that is not a curl transfer (a DNS query).  A userdata whose
 * metatable has the field __t2t_wait starts with this struct; a task yields
 * (YIELD, "wait", that userdata) and the loop resumes it once the owner calls wait_done. */
struct sched_wait {
    struct sched *loop;                /* set by wait_begin; NULL once done */
    struct sched_task *waiter;         /* the task parked on it, if any */
    int done;
};

/* Sockets and timeouts of another library (c-ares) that the loop polls beside curl's.  fds()
 * fills at most max entries and may lower *timeout_ms; process() gets the same entries back
 * with revents set (it runs in C: no Lua calls but luaL_unref on L). */
struct sched_source {
    int (*fds)(struct sched_source *src, struct curl_waitfd *fds, int max, long *timeout_ms);
    void (*process)(struct sched_source *src, lua_State *L, struct curl_waitfd *fds, int n);
    struct sched *loop;                /* non-NULL while registered */
    struct sched_source *prev, *next;
};

/* What a module in another plugin (loaded RTLD_LOCAL, so it cannot link these symbols) uses:
 * a constant table of functions, found in the registry under SCHED_API_KEY once
 * t2t.core.sched is loaded. */
#define SCHED_API_KEY "t2t.sched.api"
struct sched_api {
    struct sched *(*get)(lua_State *L);
    void (*source_add)(struct sched *s, struct sched_source *src);
    void (*source_remove)(struct sched_source *src);
    void (*wait_begin)(struct sched *s, struct sched_wait *w);
    void (*wait_done)(struct sched_wait *w);
};

/* The loop of L's state, created on first use (raises on failure). */
struct sched *sched_get(lua_State *L);

/* Easy handles are counted so curl_global_cleanup waits for the last one, whichever of the loop
 * and the requests is finalized last when the state closes. */
CURL *sched_easy_new(struct sched *s);
void sched_easy_free(struct sched *s, CURL *easy);

/* Add io (the userdata at idx, which it pins) to the loop.  Returns NULL or an error message. */
const char *sched_io_start(lua_State *L, struct sched *s, struct sched_io *io, int idx);

/* Take io out of the loop if it is still in flight and unpin it.  Never raises. */
void sched_io_stop(lua_State *L, struct sched_io *io);

#endif
