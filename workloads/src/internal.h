/* internal.h - shared by the models; not part of the interface. */
#ifndef WL_INTERNAL_H
#define WL_INTERNAL_H

#include "wl.h"

/* Counts live units across every thread of a run, and its peak. */
typedef struct wl_units {
    atomic_size_t live, peak, started, failed;
    atomic_int    first_errno;
    atomic_size_t accept_failed;
    atomic_int    accept_errno;
} wl_units_t;

void wl__units_enter(wl_units_t *u);
void wl__units_leave(wl_units_t *u);
void wl__units_fail(wl_units_t *u, int err);
void wl__units_accept_fail(wl_units_t *u, int err);
void wl__units_to_stats(wl_units_t *u, wl_run_stats_t *st);

/* Waits with poll(2) until fd is ready for ev (POLLIN, POLLOUT) or the absolute deadline
 * passes: a thread's wait, for wl_read/wl_write and TLS alike. Returns 0, or -1 with errno
 * ETIMEDOUT (or poll's). */
int wl__poll_ready(int fd, short ev, uint64_t deadline_ns);

/* Prepares an accepted socket the same way on every model. */
void wl__tune_conn(int fd);

/* The fiber server loop of one scheduler: accepts on the nonblocking listener lfd until
 * cfg->stop is requested, a detached fiber per connection; then closes lfd, shuts the connections of
 * live down and runs the scheduler until they are gone. Runs on the calling thread. */
void wl__fiber_serve_on(int lfd, const wl_serve_cfg_t *cfg, wl_live_t *live, wl_units_t *u);

/* Runs jobs first, first+stride, ... (< cfg->n) as fibers on the calling thread's
 * scheduler, with a resource of res_k units (none when 0). Returns when all are done. */
void wl__fiber_jobs_slice(const wl_jobs_cfg_t *cfg, size_t first, size_t stride, long res_k,
                          wl_units_t *u, long *res_peak, uint64_t *res_wait_ns);

#endif
