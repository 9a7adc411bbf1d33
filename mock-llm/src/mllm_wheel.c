/*
 * mllm_wheel.c - a one-level timer wheel for stream deadlines (mllm_wheel.h).
 *
 * Slots are 2^14 ns (16.4 us) wide and there are 2^15 of them (a 537 ms horizon). A
 * slot holds a singly linked list of timers (each lives in its owner's memory: a
 * sleeper's on its fiber's stack, a stream's in its state) and the earliest deadline in
 * it; a bitmap of non-empty slots lets the ticker
 * find the next one without walking empty slots. The cursor is the slot number (not
 * index) the ticker has processed up to, at most one past the slot of "now". A due
 * timer's function runs in the ticker; a sleeper's (mllm_wheel_sleep_from) wakes it
 * from its own wait queue, where it parks with no deadline (no heap entry).
 *
 * The invariant the slot numbers rest on: every timer on the wheel is filed under a slot
 * number in [cursor, cursor + NSLOTS), so the walk from the cursor meets the slots in
 * deadline order and a slot's timers all belong to one revolution. wheel_add refuses a
 * slot behind the cursor (the caller waits on the runtime's heap instead, never a
 * revolution) or NSLOTS - 1 or more ahead of it. The cursor then moves only forward
 * over empty slots (the ticker), up to the earliest deadline's slot (wheel_add while
 * the ticker sleeps), anywhere while the wheel is empty - and back by at most one, from
 * one past now's slot to it, which the refusal's one slot of slack absorbs. A timer
 * whose function runs still counts, so the wheel is not empty then: see run_slot.
 */
#define _GNU_SOURCE
#include "mllm_wheel.h"
#include "mllm_metrics.h"

#include <fiber.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHIFT 14
#ifndef MLLM_WHEEL_SLOT_BITS /* a -D for measurement builds only (bench/cg_per_event.py) */
#define MLLM_WHEEL_SLOT_BITS 15
#endif
/* next_slot() walks the bitmap in 64-bit words: at least one whole word of slots. */
_Static_assert(MLLM_WHEEL_SLOT_BITS >= 6, "MLLM_WHEEL_SLOT_BITS must be >= 6");
#define NSLOTS (1u << MLLM_WHEEL_SLOT_BITS)
#define MASK (NSLOTS - 1)
#define HORIZON_NS ((uint64_t)NSLOTS << SHIFT)

typedef struct slot {
    mllm_wheel_timer_t *head;
    uint64_t            min;
} slot_t;

static slot_t   slots[NSLOTS];
static uint64_t bits[NSLOTS / 64];
#define FIRE_ROUND MLLM_WHEEL_FIRE_ROUND

static uint64_t cursor;         /* slot number processed up to */
static uint64_t count;          /* timers on the wheel */
static uint64_t ticker_at = UINT64_MAX; /* when the ticker wakes next */
static fiber_waitq_t ticker_q = FIBER_WAITQ_INIT;
static int      ticker_state;   /* 0 none, 1 running, -1 could not start */
static int      ticker_asleep;  /* parked until ticker_at: no timer is due before it */

/* The rule that a timer's function must not park or yield (mllm_wheel.h), checked in
 * debug builds: the ASan+UBSan core (mllm_core_asan) is built with MLLM_DEBUG_CHECKS.
 * Not in the others: Release here keeps assert() on (no NDEBUG), and the measured
 * build's ticker runs this per event. While a function runs, `firing` names its timer;
 * a park then shows either in the function itself (mllm_wheel_sleep_from, a transport's
 * wait) or in another fiber that runs meanwhile and touches the wheel or waits on a
 * connection - which only happens if the ticker switched away. */
#ifdef MLLM_DEBUG_CHECKS
static const mllm_wheel_timer_t *firing;
static fiber_t                  *ticker_fiber;

static void firing_violation(const char *what)
{
    fprintf(stderr, "mock-llm: %s while timer %p's function (%p) runs in the ticker: a timer "
            "function must not park or yield (mllm_wheel.h) (%s:%d)\n", what,
            (const void *)firing, (void *)(uintptr_t)firing->fire, __FILE__, __LINE__);
    fflush(stderr);
    abort();
}

void mllm_wheel_debug_may_park(const char *what)
{
    if (firing)
        firing_violation(what);
}
#define FIRING_SET(t) (firing = (t))
#define FIRING_CHECK_OTHER(what) \
    do { \
        if (firing && fiber_self() != ticker_fiber) \
            firing_violation(what); \
    } while (0)
#else
#define FIRING_SET(t) ((void)0)
#define FIRING_CHECK_OTHER(what) ((void)0)
#endif

uint64_t mllm_wheel_count(void)
{
    return count;
}

int mllm_wheel_behind(uint64_t now)
{
    /* Asleep, the ticker is due once its wake-up time has come; not asleep (parked for
     * a nanosecond after 64 writes, or not yet run) it has due timers left. */
    return count && (!ticker_asleep || ticker_at <= now);
}

static void set_bit(uint64_t i)
{
    bits[i >> 6] |= 1ull << (i & 63);
}

static void clear_bit(uint64_t i)
{
    bits[i >> 6] &= ~(1ull << (i & 63));
}

/* The first non-empty slot number at or after `from` (count > 0). */
static uint64_t next_slot(uint64_t from)
{
    uint64_t idx = from & MASK;
    uint64_t w = idx >> 6;
    uint64_t word = bits[w] & (~0ull << (idx & 63));
    for (uint64_t k = 0; k <= NSLOTS / 64; k++) {
        if (word) {
            uint64_t found = (w << 6) | (uint64_t)__builtin_ctzll(word);
            return from + ((found - idx) & MASK);
        }
        w = (w + 1) & (NSLOTS / 64 - 1);
        word = bits[w];
    }
    return from; /* cannot happen while count > 0 */
}

/* Fires the due timers of slot number sn until their work reaches budget (see fire in
 * the header); keeps the rest. The list is taken off the slot first: a timer that fires
 * may file itself again, in this very slot. Returns the work done. */
static unsigned run_slot(uint64_t sn, uint64_t now, unsigned budget)
{
    slot_t *s = &slots[sn & MASK];
    mllm_wheel_timer_t *t = s->head, *keep = NULL, **tail = &keep;
    uint64_t min = UINT64_MAX;
    unsigned fired = 0;
    s->head = NULL;
    clear_bit(sn & MASK);
    while (t) {
        mllm_wheel_timer_t *n = t->next;
        if (t->deadline <= now && fired < budget) {
            t->next = NULL;
            FIRING_SET(t);
            fired += (unsigned)t->fire(t, now);
            FIRING_SET(NULL);
            /* Counted until its function has returned: a timer that emptied the wheel
             * and filed itself again from there reset the cursor to its own clock
             * reading, ahead of this slot, and the ticker then set it back to this slot
             * (+1), more than a revolution behind a deadline filed nearly a horizon
             * ahead; that timer's slot then came first in the walk and every nearer one
             * filed meanwhile waited for it (test_wheel: t_cursor_not_back). */
            count--;
        } else {
            if (t->deadline < min)
                min = t->deadline;
            *tail = t;
            tail = &t->next;
        }
        t = n;
    }
    if (keep) {
        /* Back in front of what the fired timers filed here meanwhile, in their order.
         * s->min stays exact, never only a bound: the list was taken off with s->head
         * NULL, so the first timer filed here meanwhile set s->min afresh (wheel_add)
         * and later ones lowered it; min is exact over the kept ones (due ones the
         * budget stopped included), and the two lists' minimum is the slot's. The
         * ticker sleeps to s->min of the first non-empty slot: too high would leave a
         * due timer until then, too low would wake it for nothing. (No cancel: a
         * timer leaves a slot only here; with nothing kept and nothing filed, the
         * stale s->min is never read: the bit is clear, and the next wheel_add here
         * sets it afresh.) */
        *tail = s->head;
        if (!s->head || min < s->min)
            s->min = min;
        s->head = keep;
        set_bit(sn & MASK);
    }
    return fired;
}

static void ticker_main(void *arg)
{
    (void)arg;
#ifdef MLLM_DEBUG_CHECKS
    ticker_fiber = fiber_self();
#endif
    unsigned fired = 0; /* since the ticker last let the other fibers run */
    for (;;) {
        uint64_t now = fiber_now_ns();
        uint64_t now_slot = now >> SHIFT;
        /* Every slot up to the slot of now: all of an earlier slot is due; the slot of
         * now may keep timers whose deadline is still ahead. */
        while (count) {
            uint64_t sn = next_slot(cursor);
            if (sn > now_slot) {
                cursor = now_slot; /* the slots in between are empty */
                break;
            }
            fired += run_slot(sn, now, FIRE_ROUND - fired);
            if (slots[sn & MASK].head) {
                cursor = sn;
                break;
            }
            cursor = sn + 1;
            if (fired >= FIRE_ROUND)
                break;
        }
        if (fired >= FIRE_ROUND) {
            /* A park for a nanosecond, not a yield: a yield comes straight back here
             * within the scheduler's round, with no poll of the sockets in between, so
             * a ticker that is behind would starve accepts and /metrics (a 19,000-stream
             * run on the loaded machine ended with the load client unable to read
             * /metrics; the park makes the scheduler poll before the next 64). */
            mllm_metrics.ticker_parks++;
            fiber_waitq_wait(&ticker_q, fiber_now_ns() + 1);
            fired = 0;
            continue;
        }
        if (!count) {
            /* Nobody sleeps: the ticker ends (a fiber parked forever would keep
             * fiber_run() from ever returning) and the next sleeper starts another. */
            ticker_at = UINT64_MAX;
            ticker_state = 0;
            return;
        }
        uint64_t at = slots[next_slot(cursor) & MASK].min;
        if (at <= now)
            continue;
        ticker_at = at;
        ticker_asleep = 1;
        fiber_waitq_wait(&ticker_q, at);
        ticker_asleep = 0;
        fired = 0;
    }
}

static int ticker_start(void)
{
    /* A connection's stack: timers' functions run on it (a stream's event formatting
     * and write, TLS included). */
    fiber_attr_t a = { .stack_size = 64 * 1024, .name = "wheel", .detached = 1 };
    cursor = fiber_now_ns() >> SHIFT;
    if (!fiber_spawn_ex(ticker_main, NULL, &a)) {
        fprintf(stderr, "mock-llm warn: no timer wheel (%s); streams use the runtime's "
                        "timers\n", strerror(errno));
        return -1;
    }
    return 1;
}

/* Files t; 0, or -1 when the wheel cannot take it (see the header). */
static int wheel_add(mllm_wheel_timer_t *t, uint64_t now)
{
    uint64_t deadline = t->deadline;
    if (deadline <= now)
        return -1;
    if (!ticker_state)
        ticker_state = ticker_start();
    if (!count) {
        cursor = now >> SHIFT; /* an empty wheel starts at now */
    } else if (ticker_asleep) {
        /* While the ticker sleeps towards ticker_at every slot before that deadline's is
         * empty (an earlier timer would have woken it), so the cursor moves up to it, or
         * to now: it lagged by the whole sleep before, and a deadline a horizon past
         * that stale cursor was refused - every stream then fell back to the runtime's
         * heap until the ticker next woke (seen under callgrind: 340 ms). */
        uint64_t to = ticker_at >> SHIFT, now_slot = now >> SHIFT;
        if (to > now_slot)
            to = now_slot;
        if (to > cursor)
            cursor = to;
    }
    uint64_t sn = deadline >> SHIFT;
    if (ticker_state < 0 || sn < cursor || sn - cursor >= NSLOTS - 1)
        return -1;
    slot_t *s = &slots[sn & MASK];
    if (!s->head) {
        s->min = deadline;
        set_bit(sn & MASK);
    } else if (deadline < s->min) {
        s->min = deadline;
    }
    t->next = s->head;
    s->head = t;
    count++;
    if (deadline < ticker_at) {
        ticker_at = deadline;
        fiber_waitq_wake_one(&ticker_q);
    }
    return 0;
}

int mllm_wheel_add(mllm_wheel_timer_t *t, uint64_t now)
{
    FIRING_CHECK_OTHER("mllm_wheel_add from another fiber"); /* the function may refile */
    return wheel_add(t, now);
}

typedef struct sleeper {
    mllm_wheel_timer_t t; /* first: the timer is the sleeper */
    fiber_waitq_t      q;
} sleeper_t;

static int sleeper_fire(mllm_wheel_timer_t *t, uint64_t now)
{
    (void)now;
    fiber_waitq_wake_one(&((sleeper_t *)t)->q);
    return 0;
}

void mllm_wheel_sleep_until(uint64_t deadline)
{
    mllm_wheel_sleep_from(deadline, fiber_now_ns());
}

void mllm_wheel_sleep_from(uint64_t deadline, uint64_t now)
{
    MLLM_WHEEL_MAY_PARK("mllm_wheel_sleep_from");
    for (;; now = fiber_now_ns()) {
        if (deadline <= now)
            return;
        sleeper_t n = { .t = { .deadline = deadline, .fire = sleeper_fire },
                        .q = FIBER_WAITQ_INIT };
        if (wheel_add(&n.t, now) == 0) {
            fiber_waitq_wait(&n.q, FIBER_FOREVER);
            continue;
        }
        uint64_t sn = deadline >> SHIFT;
        if (ticker_state < 0 || sn < cursor) {
            fiber_sleep_until(deadline);
            continue;
        }
        /* Beyond the horizon from the cursor: the heap takes the first part of a long
         * wait, then the wheel the rest. When the deadline is near but the cursor lags
         * (the ticker sleeps towards a deadline almost a horizon away), the heap takes
         * all of it: a partial sleep could pass it. */
        uint64_t part = deadline - HORIZON_NS / 2;
        fiber_sleep_until(deadline - now > HORIZON_NS / 2 ? part : deadline);
    }
}
