/* units.c - bookkeeping every model shares: live units, their peak, failures. */
#define _GNU_SOURCE
#include "internal.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

void wl__units_enter(wl_units_t *u)
{
    size_t now = atomic_fetch_add(&u->live, 1) + 1;
    atomic_fetch_add(&u->started, 1);
    size_t p = atomic_load(&u->peak);
    while (now > p && !atomic_compare_exchange_weak(&u->peak, &p, now)) {}
}

void wl__units_leave(wl_units_t *u)
{
    atomic_fetch_sub(&u->live, 1);
}

void wl__units_fail(wl_units_t *u, int err)
{
    if (atomic_fetch_add(&u->failed, 1) == 0)
        atomic_store(&u->first_errno, err);
}

void wl__units_accept_fail(wl_units_t *u, int err)
{
    if (atomic_fetch_add(&u->accept_failed, 1) == 0)
        atomic_store(&u->accept_errno, err);
}

void wl__units_to_stats(wl_units_t *u, wl_run_stats_t *st)
{
    st->started = atomic_load(&u->started);
    st->spawn_failed = atomic_load(&u->failed);
    st->spawn_errno = atomic_load(&u->first_errno);
    st->peak_live = atomic_load(&u->peak);
    st->accept_failed = atomic_load(&u->accept_failed);
    st->accept_errno = atomic_load(&u->accept_errno);
}

void wl__tune_conn(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

const wl_model_t *const wl_models[] = {
    &wl_model_thread, &wl_model_pool, &wl_model_fiber, &wl_model_fiber_mt, NULL,
};

const wl_model_t *wl_model_find(const char *name)
{
    for (size_t i = 0; wl_models[i]; i++)
        if (strcmp(wl_models[i]->name, name) == 0)
            return wl_models[i];
    return NULL;
}
