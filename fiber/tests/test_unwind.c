/*
 * test_unwind.c - a backtrace taken inside a fiber ends cleanly at the fiber's entry in
 * the assembly, by each unwinder a profiler or a crash handler uses:
 *   - the DWARF CFI (_Unwind_Backtrace, and glibc's backtrace(), which is built on it):
 *     every frame is the fiber's own, the last real one is the entry (the join's run path,
 *     or the scheduler switch's fresh entry), the unwinder then reports the end of the
 *     stack (the entry marks its return address undefined) - no garbage frame after it,
 *     no frame that repeats, no error;
 *   - the frame-pointer chain (perf's default call graph): each record lies on the
 *     fiber's stack, and the chain ends in a zero frame pointer whose record returns
 *     into the entry (the entry zeroes rbp / x29 before it calls into C).
 * Both entries: the run path (fiber_join of a fiber fresh at the head of the run queue,
 * from the main context) and the scheduler's switch (a fresh fiber entered by the join
 * of another one, through fiber__sched_entry).
 *
 * The fiber is named, with a name of 24 characters: on aarch64 a run path without its
 * `.cfi_undefined x30` takes the return address from the record's name (f + 168), which
 * an unnamed record leaves zero - and a zero return address ends the unwind as the real
 * one does. Built with frame pointers (the host's release flags; the aarch64 cross build
 * passes -fno-omit-frame-pointer for the runtime too), run on x86-64 and, cross-built,
 * under qemu-aarch64 (fiber_unwind_aarch64_qemu), with a small cmocka of its own there
 * (a64/cmocka.h).
 */
#define _GNU_SOURCE
#include <execinfo.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unwind.h>
#include <cmocka.h>

#include "internal.h"

#define MAX_FRAMES 64

/* Where the entries' return addresses lie: the scheduler's switches (which enter a
 * fresh fiber through fiber__sched_entry) from the first of them to the first run path,
 * the run paths (which call the fiber's function) from there to the trampoline that
 * follows them in the same section. */
#if defined(__x86_64__)
#define SWITCH_LO ((uintptr_t)fiber__sched_switch_strict_always)
#define JOIN_LO ((uintptr_t)fiber__sched_join_strict_always)
#else
#define SWITCH_LO ((uintptr_t)fiber__sched_switch_strict)
#define JOIN_LO ((uintptr_t)fiber__sched_join_strict)
#endif
#define ENTRY_HI ((uintptr_t)fiber_context_trampoline)

enum entry { BY_SWITCH, BY_RUN_PATH };

static int in_entry(uintptr_t ip, enum entry e)
{
    return e == BY_SWITCH ? ip > SWITCH_LO && ip < JOIN_LO : ip > JOIN_LO && ip < ENTRY_HI;
}

struct probe {
    /* _Unwind_Backtrace */
    uintptr_t ip[MAX_FRAMES], cfa[MAX_FRAMES];
    int       n, code;
    /* backtrace() */
    void     *bt[MAX_FRAMES];
    int       bt_n;
    /* the frame-pointer chain: each record's return address, and the frame pointer it
     * ended with (0, or the first one that left the fiber's stack) */
    uintptr_t fp_ret[MAX_FRAMES], fp_end;
    int       fp_n;
    /* the fiber's stack: its lowest byte and its record (the stack's top) */
    uintptr_t lo, top;
    int       ran;
};

static _Unwind_Reason_Code on_frame(struct _Unwind_Context *c, void *arg)
{
    struct probe *p = arg;
    if (p->n == MAX_FRAMES)
        return _URC_NORMAL_STOP; /* a loop: _Unwind_Backtrace then reports an error */
    p->ip[p->n] = (uintptr_t)_Unwind_GetIP(c);
    p->cfa[p->n] = (uintptr_t)_Unwind_GetCFA(c);
    p->n++;
    return _URC_NO_REASON;
}

static __attribute__((noinline)) void probe_leaf(struct probe *p)
{
    struct fiber *self = fiber__rec(fiber_self());
    p->top = (uintptr_t)self;
    p->lo = (uintptr_t)self->stack.lo;
    p->code = _Unwind_Backtrace(on_frame, p);
    p->bt_n = backtrace(p->bt, MAX_FRAMES);
    /* The frame records: [fp] the caller's frame pointer, [fp + 8] the return address,
     * on x86-64 and aarch64 alike. Followed while they stay on this stack, going up. */
    uintptr_t *fp = __builtin_frame_address(0);
    p->fp_n = 0;
    p->fp_end = 1;
    while (p->fp_n < MAX_FRAMES) {
        uintptr_t next = fp[0];
        p->fp_ret[p->fp_n++] = fp[1];
        if (next == 0 || next <= (uintptr_t)fp || next >= p->top) {
            p->fp_end = next;
            break;
        }
        fp = (uintptr_t *)next;
    }
    p->ran = 1;
    __asm__ volatile("" ::: "memory"); /* no tail call: every frame stays */
}

static __attribute__((noinline)) void probe_mid(struct probe *p)
{
    probe_leaf(p);
    __asm__ volatile("" ::: "memory");
}

static __attribute__((noinline)) void probe_entry(void *arg)
{
    probe_mid(arg);
    __asm__ volatile("" ::: "memory");
}

static void noop(void *arg)
{
    (void)arg;
}

static const fiber_attr_t named = {.name = "unwind-probe-fiber-named"};

static void check(const struct probe *p, enum entry e)
{
    assert_true(p->ran);
    /* CFI: leaf, mid, entry function, (fiber__sched_entry,) the assembly entry, and the
     * end of the stack: either nothing more or libgcc's last frame with no address. */
    assert_int_equal(p->code, _URC_END_OF_STACK);
    int k = -1;
    for (int i = 0; i < p->n && k < 0; i++)
        if (in_entry(p->ip[i], e))
            k = i;
    if (k < 0) {
        for (int i = 0; i < p->n; i++)
            print_error("  frame %d: ip %#jx cfa %#jx\n", i, (uintmax_t)p->ip[i], (uintmax_t)p->cfa[i]);
        fail_msg("no frame returns into the fiber's entry");
    }
    assert_true(k >= 3);
    for (int i = k + 1; i < p->n; i++)
        if (p->ip[i] != 0)
            fail_msg("frame %d after the entry (frame %d): ip %#jx cfa %#jx", i, k,
                     (uintmax_t)p->ip[i], (uintmax_t)p->cfa[i]);
    assert_true(p->n <= k + 2);
    /* up to the entry every frame is on the fiber's stack, each above the one it called
     * (_Unwind_GetCFA of a frame: its stack pointer at the call it made) */
    for (int i = 0; i <= k; i++) {
        assert_true(p->cfa[i] > p->lo && p->cfa[i] <= p->top);
        if (i > 0)
            assert_true(p->cfa[i] > p->cfa[i - 1]);
    }
    /* glibc's backtrace(): the same frames, the last one the entry */
    assert_true(p->bt_n >= 3 && p->bt_n < MAX_FRAMES);
    int last = p->bt_n - 1;
    if (last > 0 && p->bt[last] == NULL)
        last--;
    assert_true(in_entry((uintptr_t)p->bt[last], e));
    /* the frame-pointer chain ends in zero, in a record that returns into the entry */
    if (p->fp_end != 0)
        fail_msg("the frame-pointer chain leaves the fiber's stack at %#jx (after %d records)",
                 (uintmax_t)p->fp_end, p->fp_n);
    assert_true(p->fp_n >= 3);
    assert_true(in_entry(p->fp_ret[p->fp_n - 1], e));
}

static void test_unwind_from_the_run_path(void **state)
{
    (void)state;
    static struct probe p;
    memset(&p, 0, sizeof p);
    /* spawned and joined from main with nothing else ready: the join's run path */
    assert_int_equal(fiber_join(fiber_spawn_ex(probe_entry, &p, &named)), 0);
    check(&p, BY_RUN_PATH);
}

static void test_unwind_from_the_scheduler_switch(void **state)
{
    (void)state;
    static struct probe p;
    memset(&p, 0, sizeof p);
    /* the probe is not the fiber joined: the join runs it through the scheduler's switch
     * and fiber__sched_entry on the way to the other one */
    fiber_t *f = fiber_spawn_ex(probe_entry, &p, &named);
    fiber_t *g = fiber_spawn(noop, NULL);
    assert_int_equal(fiber_join(g), 0);
    assert_int_equal(fiber_join(f), 0);
    check(&p, BY_SWITCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unwind_from_the_run_path),
        cmocka_unit_test(test_unwind_from_the_scheduler_switch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
