/*
 * wl.h - the concurrency-model interface of fiberbench's workloads. This header is the
 * manual.
 *
 * One question, asked once per model: "run this handler for each connection (server) or
 * for each job (client)". A model is one file in workloads/src/model_*.c that fills a
 * wl_model_t; adding a model is adding that file and one line in models.c.
 *
 *   thread     a thread per connection or job (pthread_create, default attributes)
 *   pool       a fixed pool of workers (25 by default, like Sidekiq or SolidQueue);
 *              connections and jobs wait in a FIFO for a free worker
 *   fiber      one fiber per connection or job on one scheduler (one thread)
 *   fiber-mt   one scheduler per thread (one per core by default); the server opens one
 *              SO_REUSEPORT listener per scheduler; jobs are dealt round-robin.
 *              Fibers never cross threads.
 *
 * The same handler code runs on every model: it does I/O through wl_read/wl_write/
 * wl_connect, which park the fiber on a fiber and block the thread on a thread.
 *
 * Errors: calls return -1 with errno like the system calls they wrap. A limit hit while
 * starting a unit (EAGAIN from pthread_create, ENOMEM from fiber_spawn) is not an error
 * of the run: it is counted in wl_run_stats_t with its cause, and the run goes on.
 */
#ifndef WL_H
#define WL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WL_FOREVER UINT64_MAX

/* Misuse and "cannot happen": print where and what, then abort. */
#define WL_PANIC(...) wl__panic(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void wl__panic(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t wl_now_ns(void);

/* ---- I/O that works on every model ---------------------------------------------------
 * On a fiber these are fiber_read/fiber_write/... (the fd must be nonblocking); on a plain
 * thread they block the thread, honouring the absolute deadline with poll(2). Deadlines
 * are absolute on CLOCK_MONOTONIC; WL_FOREVER means none. */

/* Like read(2): 1..n bytes, 0 at end of file, -1 with errno (ETIMEDOUT at the deadline). */
ssize_t wl_read(int fd, void *buf, size_t n, uint64_t deadline_ns);

/* Writes all n bytes. Returns n or -1 with errno (EPIPE, ETIMEDOUT, ...). */
ssize_t wl_write(int fd, const void *buf, size_t n, uint64_t deadline_ns);

/* Opens a TCP socket to addr (nonblocking on a fiber, blocking on a thread), sets
 * TCP_NODELAY and connects. Returns the fd or -1 with errno (EMFILE, ECONNREFUSED, ...). */
int wl_dial(const struct sockaddr *addr, socklen_t len, uint64_t deadline_ns);

/* Closes fd, first telling the fiber poller to forget it when on a fiber. */
int wl_close(int fd);

/* Sleeps until the absolute deadline (parks a fiber, sleeps a thread). */
void wl_sleep_until(uint64_t deadline_ns);

/* Parses "HOST:PORT" (IPv4 dotted quad) into *sa. The benchmarks are loopback-only by
 * design, so any address outside 127.0.0.0/8 is refused. Returns 0, or -1 with errno
 * EINVAL (malformed) or EADDRNOTAVAIL (not loopback). */
int wl_parse_addr(const char *s, struct sockaddr_in *sa);

/* Sleeps the calling thread or fiber for ns nanoseconds. */
void wl_sleep_ns(uint64_t ns);

/* ---- Stopping a server ----------------------------------------------------------------
 * A stop request that wakes whoever waits for it, with no polling: a flag and an eventfd
 * that becomes readable, and stays readable, once stop is requested. Threads poll(2) it
 * beside their listener; fibers wait for it in their scheduler's poller (fiber_wait_fd),
 * every scheduler at once since nobody reads it. */
typedef struct wl_stop {
    atomic_int requested;
    int        fd;
} wl_stop_t;

/* Returns 0, or -1 with errno (EMFILE, ENFILE, ENOMEM from eventfd(2)). */
int wl_stop_init(wl_stop_t *s);

/* Requests the stop. Async-signal-safe (an atomic store and a write(2)): call it from a
 * signal handler or any thread, any number of times. */
void wl_stop_request(wl_stop_t *s);

/* Nonzero once the stop was requested. */
int wl_stop_requested(wl_stop_t *s);

void wl_stop_destroy(wl_stop_t *s);

/* ---- Shared resource: K "database connections" ----------------------------------------
 * A counting resource that a job may have to hold (resource multiplication). Waiting
 * parks a fiber or blocks a thread, FIFO. A model creates the right kind for its units;
 * fiber-mt gives each scheduler its own share (k / schedulers, at least 1), because a
 * fiber may only be woken by its own thread. */
typedef struct wl_res wl_res_t;

/* Takes one unit, waiting as needed. Returns 0, or -1 with errno ETIMEDOUT. */
int wl_res_acquire(wl_res_t *r, uint64_t deadline_ns);

/* Gives one unit back. */
void wl_res_release(wl_res_t *r);

/* Most units held at once, and total nanoseconds spent waiting for one. */
void wl_res_stats(const wl_res_t *r, long *peak_held, uint64_t *wait_ns);

/* ---- The interface --------------------------------------------------------------------*/

/* Serves one accepted connection: returns when the peer is done (or on error). The model
 * closes fd after the handler returns; the handler must not. On a fiber model fd is
 * nonblocking; on a thread model it is blocking. Both have TCP_NODELAY set. */
typedef void (*wl_conn_fn)(int fd, void *arg);

/* Runs job number index (0..n-1). res is the resource share of this unit's scheduler or
 * the shared one (NULL when the run has none). */
typedef void (*wl_job_fn)(size_t index, wl_res_t *res, void *arg);

typedef struct wl_serve_cfg {
    struct sockaddr_in addr;     /* where to listen; port 0 picks one (see on_ready) */
    int                backlog;  /* listen(2) backlog; 0 = 4096 */
    int                workers;  /* pool: worker threads (0 = 25); fiber-mt: schedulers
                                    (0 = online cores) */
    size_t             stack_size; /* per thread or fiber; 0 = the model's default */
    wl_conn_fn         handler;
    void              *arg;
    wl_stop_t         *stop;     /* serve returns soon after wl_stop_request(stop) */
    /* Called once, from the serving thread, when every listener is bound and listening,
     * with the bound port. May be NULL. */
    void             (*on_ready)(uint16_t port, void *arg);
} wl_serve_cfg_t;

/* What a run saw of its units. Counters are filled by the model. */
typedef struct wl_run_stats {
    size_t   started;        /* units (threads, fibers) started, or jobs taken by a worker */
    size_t   spawn_failed;   /* units that could not be started */
    int      spawn_errno;    /* the errno of the first failure */
    size_t   peak_live;      /* most units alive at once (threads or fibers incl. pool) */
    size_t   accept_failed;  /* server: accept errors (EMFILE, ...) */
    int      accept_errno;
    long     res_peak;       /* jobs: most resource units held at once (summed over shares) */
    uint64_t res_wait_ns;    /* jobs: total time units spent waiting for the resource */
} wl_run_stats_t;

typedef struct wl_jobs_cfg {
    size_t     n;            /* jobs to run */
    uint64_t   t0_ns;        /* arrival of job 0 (0 = now) */
    uint64_t   gap_ns;       /* job i arrives at t0 + i*gap (0 = all at once) */
    int        workers;      /* pool: workers (0 = 25); fiber-mt: schedulers (0 = cores) */
    size_t     stack_size;   /* per thread or fiber; 0 = the model's default */
    long       res_k;        /* shared resource units; 0 = no resource */
    wl_job_fn  job;
    void      *arg;
} wl_jobs_cfg_t;

typedef struct wl_model {
    const char *name;   /* thread | pool | fiber | fiber-mt: the impl column of results */
    const char *kind;   /* thread | fiber: the model column of results */
    /* Accepts connections on cfg->addr and runs cfg->handler for each, until cfg->stop is requested.
     * On stop: stops accepting, shuts down every live connection so handlers see end of
     * file, waits for them, and returns 0. Returns -1 with errno when it cannot listen. */
    int (*serve)(const wl_serve_cfg_t *cfg, wl_run_stats_t *st);
    /* Runs cfg->job for every index 0..n-1, each no earlier than its arrival, and returns
     * when all have returned. Units that fail to start are counted, their jobs skipped
     * (the job function is not called for them). Returns 0. */
    int (*run_jobs)(const wl_jobs_cfg_t *cfg, wl_run_stats_t *st);
} wl_model_t;

/* Every model, NULL-terminated, and lookup by name (NULL when unknown). */
extern const wl_model_t *const wl_models[];
const wl_model_t *wl_model_find(const char *name);

/* The models. */
extern const wl_model_t wl_model_thread;
extern const wl_model_t wl_model_pool;
extern const wl_model_t wl_model_fiber;
extern const wl_model_t wl_model_fiber_mt;

/* Default pool size: the Sidekiq / SolidQueue default the post talks about. */
#define WL_POOL_DEFAULT 25

/* ---- Helpers shared by the models (model_common.c) ---------------------------------- */

/* Opens a listening TCP socket on addr (SO_REUSEADDR; SO_REUSEPORT when reuseport).
 * nonblock selects O_NONBLOCK. Returns the fd or -1 with errno. */
int wl_listen(const struct sockaddr_in *addr, int backlog, int reuseport, int nonblock);

/* The port a socket is bound to (host order), or 0. */
uint16_t wl_bound_port(int fd);

/* Live-connection registry: lets serve() shut every connection down at stop. */
typedef struct wl_live {
    pthread_mutex_t mu;
    int            *fds;   /* fds[i] = 1 when fd i is a live connection */
    size_t          cap;
    size_t          count, peak;
} wl_live_t;

void wl_live_init(wl_live_t *l);
void wl_live_add(wl_live_t *l, int fd);
void wl_live_del(wl_live_t *l, int fd);
/* shutdown(SHUT_RDWR) on every live fd, so blocked readers see end of file. */
void wl_live_shutdown_all(wl_live_t *l);
size_t wl_live_count(wl_live_t *l);
void wl_live_destroy(wl_live_t *l);

/* Resources, made by the models. */
wl_res_t *wl_res_new_thread(long k);  /* mutex + condition variable, FIFO tickets */
wl_res_t *wl_res_new_fiber(long k);   /* a fiber_sem of the calling thread's scheduler */
void      wl_res_free(wl_res_t *r);

/* Online CPUs (at least 1). */
int wl_cpus(void);

/* ---- For the command-line tools (cli.c) ---------------------------------------------- */

/* Parses all of s as a base-10 integer (wl_parse_long) or a floating-point number
 * (wl_parse_double, strtod's syntax) within [lo, hi] into *out. Returns 0, or -1 with
 * *out untouched when s is empty, has anything after the number, overflows, is NaN or is
 * out of range: the caller prints which flag was bad. */
int wl_parse_long(const char *s, long lo, long hi, long *out);
int wl_parse_double(const char *s, double lo, double hi, double *out);

/* wl_stop_init(s), then SIGTERM and SIGINT request s (from an async-signal-safe handler)
 * and SIGPIPE is ignored (a write to a gone peer fails with EPIPE instead). For one stop
 * per process: a second call moves the signals to the new s. Returns 0, or -1 with errno
 * from eventfd(2). */
int wl_stop_on_signals(wl_stop_t *s);

/* Blocks the calling thread until s is requested, CLOCK_MONOTONIC passes end_ns, or
 * extra_fd (ignored when < 0) is readable. Returns 1 when extra_fd is readable (the
 * caller reads it and may wait again), else 0. Does not request s itself. */
int wl_stop_wait(wl_stop_t *s, uint64_t end_ns, int extra_fd);

#ifdef __cplusplus
}
#endif

#endif /* WL_H */
