/*
 * mllm_wheel.h - the schedule's timer: streams sleep to their next event's deadline on
 * a timer wheel instead of the runtime's timer heap.
 *
 * Why: the runtime keeps one binary heap for every deadline, ordered through each
 * fiber's own struct, so parking and waking a stream walks log2(streams) levels of
 * other streams' memory: at 10,000 streams about 25 cache misses per event (callgrind),
 * more than the rest of the stream's own work. A wheel files a sleeper under its
 * deadline's 16 us slot in O(1); one ticker fiber sleeps (on the runtime's heap, as one
 * entry) until the earliest deadline and wakes every stream that is due, slot by slot
 * (within a slot, in no particular order: they are due within 16 us of each other).
 * Sleepers are woken at or after their exact deadline, never
 * before: lateness is still measured from the deadline the schedule set.
 *
 * One wheel per process, used from the one scheduler thread that serves connections.
 */
#ifndef MLLM_WHEEL_H
#define MLLM_WHEEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A timer that runs a function instead of waking a fiber: the stream loop's events are
 * emitted by the ticker itself (mllm_route.c), so an event touches the stream's own
 * state and not its fiber's record, stack frames and context switch. The timer lives
 * in its owner's memory; the wheel only links it.
 */
typedef struct mllm_wheel_timer mllm_wheel_timer_t;
struct mllm_wheel_timer {
    mllm_wheel_timer_t *next;     /* the slot's list (the wheel's) */
    uint64_t            deadline; /* set by the owner before mllm_wheel_add() */
    /* Called by the ticker fiber at or after deadline, with the timer off the wheel;
     * now is the ticker's clock reading. It must not park (it runs inside the ticker,
     * before the other due timers); it may file the timer again with mllm_wheel_add().
     * Returns 1 when it did a piece of work that counts towards the ticker's round
     * (MLLM_WHEEL_FIRE_ROUND), 0 when it only handed something on (a wake-up) or did
     * work that must not wait for the next round (a stream's late write). */
    int (*fire)(mllm_wheel_timer_t *t, uint64_t now);
};

/* Debug builds (MLLM_DEBUG_CHECKS, the ASan+UBSan core): aborts with a message naming
 * `what` when called while a timer's function runs - from the function itself (it is
 * about to park) or from another fiber (the ticker has switched away). Every place that
 * parks on a stream's behalf calls it (mllm_wheel_sleep_from, the transports' waits).
 * Nothing in other builds. */
#ifdef MLLM_DEBUG_CHECKS
void mllm_wheel_debug_may_park(const char *what);
#define MLLM_WHEEL_MAY_PARK(what) mllm_wheel_debug_may_park(what)
#else
#define MLLM_WHEEL_MAY_PARK(what) ((void)0)
#endif

/* How many timers whose firing did work (fire returned 1) the ticker fires in one go
 * (over as many passes as it takes while it is behind) before it lets the other fibers
 * and the poller run. Streams' events are written from inside the ticker, and a burst
 * of due streams must not hold up new connections and /metrics for its whole length.
 * Wake-ups do not count, nor do a stream's writes more than 1 ms late (mllm_route.c):
 * a ticker behind serves every late stream once per pass, as every woken fiber takes
 * one turn per scheduler round, and then parks until its next deadline (past: the
 * scheduler polls and runs the other fibers first). */
#define MLLM_WHEEL_FIRE_ROUND 64

/* Files t under t->deadline; now is fiber_now_ns() as the caller read it. Returns 0, or
 * -1 when the wheel cannot take it: the deadline is not after now, lies beyond the
 * horizon or in a slot the ticker has passed, or no ticker fiber could start. Then the
 * caller waits another way (mllm_wheel_sleep_from() does). A filed timer stays on the
 * wheel until it fires: there is no cancel. From the wheel's thread only. */
int mllm_wheel_add(mllm_wheel_timer_t *t, uint64_t now);

/* Parks the calling fiber until fiber_now_ns() >= deadline_ns, like fiber_sleep_until()
 * (a past deadline returns at once, without yielding). Deadlines beyond the wheel's
 * horizon (~0.5 s) first sleep on the runtime's heap. Aborts outside a fiber. */
void mllm_wheel_sleep_until(uint64_t deadline_ns);

/* The same, for a caller that has just read the clock: now_ns is fiber_now_ns() as the
 * caller read it (one clock read less per event on the stream path). */
void mllm_wheel_sleep_from(uint64_t deadline_ns, uint64_t now_ns);

/* 1 when a timer on the wheel is due at now and the ticker has not fired it yet (it is
 * behind, or about to run), else 0. */
int mllm_wheel_behind(uint64_t now);

/* Sleepers and timers on the wheel now (for tests). */
uint64_t mllm_wheel_count(void);

#ifdef __cplusplus
}
#endif

#endif /* MLLM_WHEEL_H */
