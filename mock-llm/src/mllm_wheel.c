/*
 * mllm_wheel.c - a one-level timer wheel for stream deadlines (mllm_wheel.h).
 *
 * Slots are 2^14 ns (16.4 us) wide and there are 2^15 of them (a 537 ms horizon). A
 * slot holds a singly linked list of sleepers (each node lives on its sleeping fiber's
 * stack) and the earliest deadline in it; a bitmap of non-empty slots lets the ticker
 * find the next one without walking empty slots. The cursor is the slot number (not
 * index) the ticker has processed up to; it never passes the slot of "now", so a
 * deadline inserted later always lands at or after it. A sleeper parks on its own wait
 * queue with no deadline (no heap entry); the ticker wakes it with wake_one.
 */
#define _GNU_SOURCE
#include "mllm_wheel.h"

#include <fiber.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHIFT 14
#define NSLOTS (1u << 15)
#define MASK (NSLOTS - 1)
#define HORIZON_NS ((uint64_t)NSLOTS << SHIFT)

typedef struct node {
    struct node  *next;
    uint64_t      deadline;
    fiber_waitq_t q;
} node_t;

typedef struct slot {
    node_t  *head;
    uint64_t min;
} slot_t;

static slot_t   slots[NSLOTS];
static uint64_t bits[NSLOTS / 64];
static uint64_t cursor;         /* slot number processed up to */
static uint64_t count;          /* sleepers on the wheel */
static uint64_t ticker_at = UINT64_MAX; /* when the ticker wakes next */
static fiber_waitq_t ticker_q = FIBER_WAITQ_INIT;
static int      ticker_state;   /* 0 none, 1 running, -1 could not start */

uint64_t mllm_wheel_count(void)
{
    return count;
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

/* Wakes the due sleepers of slot number sn; keeps the rest. */
static void run_slot(uint64_t sn, uint64_t now)
{
    slot_t *s = &slots[sn & MASK];
    node_t **pp = &s->head;
    uint64_t min = UINT64_MAX;
    while (*pp) {
        node_t *n = *pp;
        if (n->deadline <= now) {
            *pp = n->next;
            count--;
            fiber_waitq_wake_one(&n->q);
        } else {
            if (n->deadline < min)
                min = n->deadline;
            pp = &n->next;
        }
    }
    s->min = min;
    if (!s->head)
        clear_bit(sn & MASK);
}

static void ticker_main(void *arg)
{
    (void)arg;
    for (;;) {
        uint64_t now = fiber_now_ns();
        uint64_t now_slot = now >> SHIFT;
        /* Every slot up to the slot of now: all of an earlier slot is due; the slot of
         * now may keep sleepers whose deadline is still ahead. */
        while (count) {
            uint64_t sn = next_slot(cursor);
            if (sn > now_slot) {
                cursor = now_slot; /* the slots in between are empty */
                break;
            }
            run_slot(sn, now);
            if (slots[sn & MASK].head) {
                cursor = sn;
                break;
            }
            cursor = sn + 1;
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
        fiber_waitq_wait(&ticker_q, at);
    }
}

static int ticker_start(void)
{
    fiber_attr_t a = { .stack_size = 16 * 1024, .name = "wheel", .detached = 1 };
    cursor = fiber_now_ns() >> SHIFT;
    if (!fiber_spawn_ex(ticker_main, NULL, &a)) {
        fprintf(stderr, "mock-llm warn: no timer wheel (%s); streams use the runtime's "
                        "timers\n", strerror(errno));
        return -1;
    }
    return 1;
}

void mllm_wheel_sleep_until(uint64_t deadline)
{
    mllm_wheel_sleep_from(deadline, fiber_now_ns());
}

void mllm_wheel_sleep_from(uint64_t deadline, uint64_t now)
{
    for (;; now = fiber_now_ns()) {
        if (deadline <= now)
            return;
        if (!ticker_state)
            ticker_state = ticker_start();
        if (!count)
            cursor = now >> SHIFT; /* an empty wheel starts at now */
        uint64_t sn = deadline >> SHIFT;
        if (ticker_state < 0 || sn < cursor) {
            fiber_sleep_until(deadline);
            continue;
        }
        if (sn - cursor >= NSLOTS - 1) {
            /* Beyond the horizon from the cursor: the heap takes the first part of a
             * long wait, then the wheel the rest. When the deadline is near but the
             * cursor lags (the ticker sleeps towards a deadline almost a horizon
             * away), the heap takes all of it: a partial sleep could pass it. */
            uint64_t part = deadline - HORIZON_NS / 2;
            fiber_sleep_until(deadline - now > HORIZON_NS / 2 ? part : deadline);
            continue;
        }
        node_t n = { .next = NULL, .deadline = deadline, .q = FIBER_WAITQ_INIT };
        slot_t *s = &slots[sn & MASK];
        if (!s->head) {
            s->min = deadline;
            set_bit(sn & MASK);
        } else if (deadline < s->min) {
            s->min = deadline;
        }
        n.next = s->head;
        s->head = &n;
        count++;
        if (deadline < ticker_at) {
            ticker_at = deadline;
            fiber_waitq_wake_one(&ticker_q);
        }
        fiber_waitq_wait(&n.q, FIBER_FOREVER);
    }
}
