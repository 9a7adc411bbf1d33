/*
 * sched.c - the per-thread scheduler: fibers, the run queue, the timer heap, joining,
 * wait queues, semaphores and the stack pool.
 *
 * Switching. A fiber that yields or parks hands the CPU straight to the next runnable
 * fiber (one switch), not through the scheduler's own context (two switches). To keep
 * timers and I/O from starving, the direct handoffs are counted: after a round of
 * `batch` handoffs control goes back to the scheduler context, which checks timers and
 * polls epoll before starting the next round.
 *
 * Exit. A fiber cannot free the stack it is running on, so a detached fiber that returns
 * leaves itself in s->zombie and the context that runs next frees it (after_switch()).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#if FIBER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* Handoffs allowed per round at the least: polling epoll costs a system call (~0.1 us
 * here), so with few fibers we let them switch this many times between polls. Timer and
 * I/O latency is bounded by round length, which stays microseconds. */
#define MIN_ROUND 256

static __thread struct sched *tls_sched;
static uint64_t next_fiber_id; /* atomic: ids are per process */

uint64_t fiber_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- scheduler creation ---- */

static void sched_find_main_stack(struct sched *s)
{
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        void *addr;
        size_t size;
        if (pthread_attr_getstack(&a, &addr, &size) == 0) {
            s->main_stack_lo = addr;
            s->main_stack_size = size;
        }
        pthread_attr_destroy(&a);
    }
}

struct sched *fiber__sched_peek(void)
{
    return tls_sched;
}

static pthread_key_t sched_key;
static pthread_once_t sched_key_once = PTHREAD_ONCE_INIT;

/* At thread exit: give back what the scheduler holds. Fibers still alive then are
 * leaked on purpose (their stacks may hold anything); everything else is freed. */
static void sched_destroy(void *p)
{
    struct sched *s = p;
    fiber_pool_trim();
    fiber__remote_free(s);
    fiber__io_sched_free(s);
    free(s->heap);
    fiber__overflow_fini_thread();
    tls_sched = NULL;
    if (s->live == 0)
        free(s);
}

static void sched_key_init(void)
{
    pthread_key_create(&sched_key, sched_destroy);
    fiber__fork_init();
}

struct sched *fiber__sched(void)
{
    struct sched *s = tls_sched;
    if (s)
        return s;
    pthread_once(&sched_key_once, sched_key_init);
    fiber__page_size(); /* sets fiber__page_mask before the first spawn needs it */
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_setspecific(sched_key, s);
    /* The poller is made now, not at the first I/O wait: by then the process may be out
     * of descriptors (a server at its open-files limit), and every fiber I/O call would
     * fail. If it cannot be made now, the first wait tries again. */
    s->epfd = -1;
    fiber__io_init(s);
    sched_find_main_stack(s);
    fiber__overflow_init_thread();
    tls_sched = s;
    return s;
}

/* ---- run queue ---- */

/* runq_tail means something only while runq_head is set (internal.h): emptying the
 * queue leaves it as it was, one store fewer in each pop that empties it - the join's
 * run path among them. The tail's next is not cleared either: the queue ends at
 * runq_tail, not at a NULL link (a pop compares with the tail), one store fewer in
 * each push - spawn's among them. */
static inline void runq_push(struct sched *s, struct fiber *f)
{
    if (s->runq_head)
        s->runq_tail->next = f;
    else
        s->runq_head = f;
    s->runq_tail = f;
    s->runq_len++;
}

static inline struct fiber *runq_pop(struct sched *s)
{
    struct fiber *f = s->runq_head;
    if (f) {
        s->runq_head = f == s->runq_tail ? NULL : f->next; /* runq_tail stays: runq_push() */
        s->runq_len--;
    }
    return f;
}

/* The context to run after the current fiber stops: the next fiber of this round, or
 * NULL for the scheduler's own context. */
static inline struct fiber *pick_next(struct sched *s)
{
    if (s->runq_head && s->batch > 0) {
        s->batch--;
        return runq_pop(s);
    }
    return NULL;
}

/* ---- timer heap: a binary min-heap on deadline; each fiber knows its index ---- */

static inline void heap_set(struct sched *s, size_t i, struct fiber *f)
{
    s->heap[i] = f;
    f->heap_idx = i;
}

static void heap_up(struct sched *s, size_t i)
{
    struct fiber *f = s->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (s->heap[p]->deadline <= f->deadline)
            break;
        heap_set(s, i, s->heap[p]);
        i = p;
    }
    heap_set(s, i, f);
}

static void heap_down(struct sched *s, size_t i)
{
    struct fiber *f = s->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->heap_len)
            break;
        if (c + 1 < s->heap_len && s->heap[c + 1]->deadline < s->heap[c]->deadline)
            c++;
        if (f->deadline <= s->heap[c]->deadline)
            break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, f);
}

static int heap_push(struct sched *s, struct fiber *f)
{
    if (s->heap_len == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
        struct fiber **h = realloc(s->heap, cap * sizeof *h);
        if (!h)
            return -1;
        s->heap = h;
        s->heap_cap = cap;
    }
    heap_set(s, s->heap_len++, f);
    fiber__attn_add(s);
    heap_up(s, s->heap_len - 1);
    return 0;
}

static void heap_remove(struct sched *s, struct fiber *f)
{
    size_t i = f->heap_idx;
    f->heap_idx = NO_HEAP;
    s->heap_len--;
    fiber__attn_sub(s);
    if (i == s->heap_len)
        return;
    heap_set(s, i, s->heap[s->heap_len]);
    if (i > 0 && s->heap[(i - 1) / 2]->deadline > s->heap[i]->deadline)
        heap_up(s, i);
    else
        heap_down(s, i);
}

/* Wakes every parked fiber whose deadline has passed, with ETIMEDOUT (a sleep counts
 * its timeout as the normal way to wake). */
static void timers_expire(struct sched *s, uint64_t now)
{
    while (s->heap_len && s->heap[0]->deadline <= now) {
        struct fiber *f = s->heap[0];
        fiber__wake(s, f, f->wait_kind == WAIT_SLEEP ? 0 : ETIMEDOUT);
    }
}

/* ---- switching ---- */

/* The assembly enters a fresh fiber with its stack top at the context, i.e. the record. */
_Static_assert(offsetof(struct fiber, ctx) == 0, "the context opens the record");
_Static_assert(FIBER_RECORD_SIZE % 16 == 0, "records keep the stack top 16-byte aligned");
_Static_assert(offsetof(struct fiber, state) + 1 == offsetof(struct fiber, wait_kind) &&
               offsetof(struct fiber, wait_kind) + 1 == offsetof(struct fiber, detached) &&
               offsetof(struct fiber, detached) + 1 == offsetof(struct fiber, joined) &&
               offsetof(struct fiber, joined) + 1 == offsetof(struct fiber, named) &&
               offsetof(struct fiber, named) + 1 == offsetof(struct fiber, stayed) &&
               offsetof(struct fiber, state) == offsetof(struct fiber, status),
               "spawn_init writes state..stayed as one word, in this order");
_Static_assert(offsetof(struct fiber, stayed) < 64,
               "what spawn writes and join reads fits the record's first cache line");

#ifdef FIBER_LEAN_FP
#define SCHED_SWITCH_ASM fiber__sched_switch_lean
#elif defined(FIBER_MXCSR_FORCE_ALWAYS) /* tests: one MXCSR policy whatever the CPU */
#define SCHED_SWITCH_ASM fiber__sched_switch_strict_always
#elif defined(FIBER_MXCSR_FORCE_CMP)
#define SCHED_SWITCH_ASM fiber__sched_switch_strict_cmp
#else
#define SCHED_SWITCH_ASM fiber__sched_switch_strict /* the one for this CPU (context.c) */
#endif

#if (defined(__x86_64__) || defined(__aarch64__)) && !FIBER_ASAN
/* The join's run path (switch_<arch>.S: SCHED_JOIN on x86-64, fiber__sched_join_* on
 * aarch64), in the same FP variant. */
#define SCHED_JOIN 1
#ifdef FIBER_LEAN_FP
#define SCHED_JOIN_ASM fiber__sched_join_lean
#elif defined(FIBER_MXCSR_FORCE_ALWAYS)
#define SCHED_JOIN_ASM fiber__sched_join_strict_always
#elif defined(FIBER_MXCSR_FORCE_CMP)
#define SCHED_JOIN_ASM fiber__sched_join_strict_cmp
#else
#define SCHED_JOIN_ASM fiber__sched_join_strict
#endif
_Static_assert(offsetof(struct fiber, sched) == 8, "sched_offsets.inc: F_SCHED");
_Static_assert(offsetof(struct fiber, fn) == 24, "sched_offsets.inc: F_FN");
_Static_assert(offsetof(struct fiber, arg) == 32, "sched_offsets.inc: F_ARG");
_Static_assert(offsetof(struct fiber, state) == 56, "sched_offsets.inc: F_STATE");
_Static_assert(offsetof(struct fiber, stayed) == 61, "sched_offsets.inc: F_STAYED");
_Static_assert(offsetof(struct fiber, stack.lo) == 136, "sched_offsets.inc: F_STACK_LO");
_Static_assert(offsetof(struct fiber, stack.hi) == 144, "sched_offsets.inc: F_STACK_HI");
_Static_assert(offsetof(struct sched, current) == 0, "sched_offsets.inc: S_CURRENT");
_Static_assert(offsetof(struct sched, runq_head) == 8, "sched_offsets.inc: S_RUNQ_HEAD");
_Static_assert(offsetof(struct sched, live) == 56, "sched_offsets.inc: S_LIVE");
_Static_assert(offsetof(struct sched, pool[0].size) == 136, "sched_offsets.inc: S_POOL0_SIZE");
_Static_assert(offsetof(struct sched, pool[0].hot) == 144, "sched_offsets.inc: S_POOL0_HOT");
_Static_assert(offsetof(struct sched, main_ctx) == 40, "sched_offsets.inc: S_MAIN_CTX");
_Static_assert(FIBER_DONE == 2, "sched_offsets.inc: FIBER_DONE");
#else
#define SCHED_JOIN 0
#endif

static inline void after_switch(struct sched *s);

/* The one call site of the assembly switch (see switch_<arch>.S: one call site means the
 * switch's final `ret` always goes where the return-stack buffer says, so it is kept out
 * of line). Leaves `from` (NULL: the scheduler context) for `to` (NULL: the scheduler
 * context); a fresh `to` is entered through fiber__sched_entry(). */
static __attribute__((noinline)) void sched_switch(struct sched *s, struct fiber *from,
                                                   struct fiber *to)
{
    fiber_context_t *fc = &s->main_ctx;
    fiber_context_t *tc = to ? &to->ctx : &s->main_ctx;
    if (from) {
        fc = &from->ctx;
        from->stayed = 0; /* fiber__sched_entry: its entering context may have run since */
    }
    s->current = to;
#if FIBER_ASAN
    /* ASan must know which stack we are on (sanitizer/common_interface_defs.h). */
    void *fake = NULL;
    const void *lo = to ? to->stack.lo : s->main_stack_lo;
    size_t size = to ? (size_t)((char *)to - (char *)to->stack.lo) : s->main_stack_size;
    __sanitizer_start_switch_fiber(&fake, lo, size);
    SCHED_SWITCH_ASM(fc, tc);
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
    SCHED_SWITCH_ASM(fc, tc);
#endif
    after_switch(s);
}

/* ---- the stack pool ---- */

static struct pool_bucket *pool_bucket_find(struct sched *s, size_t size, int create)
{
    struct pool_bucket *free_b = NULL;
    for (int i = 0; i < POOL_BUCKETS; i++) {
        if (s->pool[i].size == size)
            return &s->pool[i];
        if (!free_b && !s->pool[i].hot && !s->pool[i].head && s->pool[i].nfresh == 0)
            free_b = &s->pool[i];
    }
    if (create && free_b) {
        free_b->size = size;
        return free_b;
    }
    return NULL;
}

/* The bucket for stacks of `size` bytes (create: claim a free one if none has it). Most
 * programs use one size, which then sits in the first bucket: checked inline. */
static inline struct pool_bucket *pool_bucket(struct sched *s, size_t size, int create)
{
    if (__builtin_expect(s->pool[0].size == size, 1))
        return &s->pool[0];
    return pool_bucket_find(s, size, create);
}

/*
 * A never-used stack of `size` bytes. Stacks come in batches: a cold start of 10,000
 * fibers would otherwise pay one mmap and one guard call per fiber (about 1.5 and 0.7 us
 * each on this kind of VM); batched, those costs are split 4..64 ways. The batch grows
 * with use, so a program with a handful of fibers maps a handful of stacks.
 */
static int stack_fresh(struct sched *s, size_t size, fiber_stack_t *out)
{
    struct pool_bucket *b = pool_bucket(s, size, 1);
    if (!b) /* every bucket holds another size: no batching for this one */
        return fiber_stack_alloc(out, size, 1);
    if (b->nfresh == 0) {
        size_t n = s->batch_stacks ? s->batch_stacks : 4;
        int got = fiber__stack_alloc_batch(b->fresh, n, size);
        if (got < 0)
            return -1;
        b->nfresh = (size_t)got;
        if (n < FRESH_MAX)
            s->batch_stacks = n * 2;
    }
    *out = b->fresh[--b->nfresh];
    return 0;
}

/* Where a fresh stack's record goes: at its top, lowered by a colour of 0-7 cache lines
 * on stacks of 32 KiB or more. Without it every record, and the top frames under it,
 * sit at the same offset in their page and so in one set of the L1 cache (8 ways): a
 * round of more than 8 fibers would evict its own records. The colour is paid in stack:
 * every byte it lowers the record by is one byte less in the top page, so a fiber whose
 * frames nearly fill that page touches one more. Measured (AMD EPYC, wl-llm fiber
 * client, 3,000 streams): 16 colours cost 1.8 KiB per fiber (6.9 vs 5.0 KiB), 8 colours
 * 0.05 KiB; fiber_yield in a round of 16-64 fibers 7-8 ns with either, 10-11 ns without. */
static struct fiber *record_place(struct sched *s, const fiber_stack_t *st)
{
    size_t colour = 0;
    if ((size_t)((char *)st->hi - (char *)st->lo) >= 32 * 1024)
        colour = (size_t)(s->colour++ & 7) * 64;
    return (struct fiber *)((char *)st->hi - FIBER_RECORD_SIZE - colour);
}

/* fiber_release() when the stack's size has no bucket: unmap it. */
static __attribute__((noinline)) void release_unpooled(struct fiber *f)
{
    fiber_stack_t st = f->stack; /* the record lives in the mapping: copy first */
    fiber_stack_free(&st);
}

/* Returns the stack of a finished fiber (and with it the record) to the pool. */
static inline void fiber_release(struct sched *s, struct fiber *f)
{
    size_t size = (size_t)((char *)f->stack.hi - (char *)f->stack.lo);
    struct pool_bucket *b = pool_bucket(s, size, 1);
    if (__builtin_expect(!b, 0))
        return release_unpooled(f);
    /* One slot before the list: a spawn right after a join then takes the record back
     * with one load and no pointer chase (the list's head and next links would chain
     * each spawn's loads to the previous join's stores). */
    struct fiber *h = b->hot;
    b->hot = f;
    if (h) {
        h->next = b->head;
        b->head = h;
        b->count++;
    }
}

size_t fiber__pool_has(struct sched *s, size_t size)
{
    struct pool_bucket *b = pool_bucket(s, size, 0);
    return b ? b->count + (b->hot != NULL) : 0;
}

static inline void after_switch(struct sched *s)
{
    if (s->zombie) {
        struct fiber *z = s->zombie;
        s->zombie = NULL;
        fiber_release(s, z);
    }
}

size_t fiber_pool_count(void)
{
    struct sched *s = tls_sched;
    size_t n = 0;
    if (s)
        for (int i = 0; i < POOL_BUCKETS; i++)
            n += s->pool[i].count + (s->pool[i].hot != NULL);
    return n;
}

void fiber_pool_trim(void)
{
    struct sched *s = tls_sched;
    if (!s)
        return;
    for (int i = 0; i < POOL_BUCKETS; i++) {
        struct pool_bucket *b = &s->pool[i];
        if (b->hot) {
            fiber_stack_t st = b->hot->stack;
            b->hot = NULL;
            fiber_stack_free(&st);
        }
        while (b->head) {
            struct fiber *f = b->head;
            b->head = f->next;
            fiber_stack_t st = f->stack;
            fiber_stack_free(&st);
        }
        b->count = 0;
        while (b->nfresh)
            fiber_stack_free(&b->fresh[--b->nfresh]);
        b->size = 0;
    }
}

/* ---- fibers ---- */

static inline __attribute__((always_inline)) fiber_context_t *sched_exit(struct sched *s,
                                                                          struct fiber *f);

/* A fresh fiber's first and last moments, called by the assembly switch on the fiber's
 * own stack (switch_<arch>.S). Returns the context to resume once the fiber is done. */
fiber_context_t *fiber__sched_entry(fiber_context_t *ctx)
{
    struct fiber *f = (struct fiber *)ctx;
    struct sched *s = f->sched;
#if FIBER_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    after_switch(s);
    f->fn(f->arg);
    return sched_exit(s, f);
}

/* The end of a fiber entered by the join's run path (switch_<arch>.S) when it cannot
 * end there: it switched away at some point, or left other fibers runnable. */
fiber_context_t *fiber__sched_exit(struct fiber *f)
{
    return sched_exit(f->sched, f);
}

/* A fiber's end, on its own stack: its joiner woken (or, detached, itself left to be
 * freed), and the context to resume picked. */
static inline __attribute__((always_inline)) fiber_context_t *sched_exit(struct sched *s,
                                                                          struct fiber *f)
{
    f->state = FIBER_DONE;
    s->live--;
    /* A fiber waiting in fiber_join, or detached: one test of the two adjacent flags. */
    if (__builtin_expect(f->dj & FIBER_DJ_ATTENTION, 0)) {
        if (f->joiner) {
            fiber__wake(s, f->joiner, 0);
            f->joiner = NULL; /* records rest with none: spawn does not write it */
        }
        if (f->detached)
            s->zombie = f;
    }
    struct fiber *to = pick_next(s);
    s->current = to;
#if FIBER_ASAN
    /* NULL: this fiber's fake stack dies with it. */
    const void *lo = to ? to->stack.lo : s->main_stack_lo;
    size_t size = to ? (size_t)((char *)to - (char *)to->stack.lo) : s->main_stack_size;
    __sanitizer_start_switch_fiber(NULL, lo, size);
#endif
    fiber_context_t *tc = to ? &to->ctx : &s->main_ctx;
#if defined(__x86_64__)
    /* Bit 0: this fiber never switched away, so the context that entered it has not run
     * since; if tc is that one, the assembly resumes it without reloading it. */
    return (fiber_context_t *)((uintptr_t)tc | f->stayed);
#else
    return tc;
#endif
}

/* A record on a never-used stack, with everything set that a recycled record keeps
 * between fibers. NULL with errno when no stack can be mapped. */
static struct fiber *record_fresh(struct sched *s, size_t size)
{
    fiber_stack_t st;
    if (stack_fresh(s, size, &st) != 0)
        return NULL;
    struct fiber *f = record_place(s, &st);
    fiber__record_init(f, &st);
    f->sched = s;
    return f;
}

void fiber__record_init(struct fiber *f, const fiber_stack_t *st)
{
    memset(f, 0, sizeof *f);
    f->stack = *st;
    f->heap_idx = NO_HEAP;
    f->wait_kind = WAIT_NONE;
    /* A random first tag: a record mapped where a trimmed one was must not take its
     * old handles (internal.h, "Tagged handles"). */
    f->handle = (uintptr_t)f | fiber__tag_random();
}

uintptr_t fiber__tag_random(void)
{
    static __thread uint64_t x; /* xorshift64, seeded per thread from its address and time */
    if (!x)
        x = ((uint64_t)(uintptr_t)&x ^ fiber_now_ns()) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (uintptr_t)x & FIBER__TAG_BITS;
}

/* Sets up a record taken from the pool or made fresh, and queues it. */
static inline __attribute__((always_inline)) fiber_t *
spawn_init(struct sched *s, struct fiber *f, void (*fn)(void *), void *arg, int detached,
           const char *name)
{
#if FIBER_ASAN
    /* Frames of the stack's last fiber may have left poisoned redzones behind. */
    ASAN_UNPOISON_MEMORY_REGION(f->stack.lo, (size_t)((char *)f->stack.hi - (char *)f->stack.lo));
#endif
    /* A recycled record: a fiber only finishes while running, so everything about
     * waiting (heap_idx, waitq, wait_kind, the I/O slots) is already at rest, and
     * f->sched is s (set when the record was made or given to this pool). */
    f->fn = fn;
    f->arg = arg;
    f->id = 0; /* given on first use: a locked add per spawn costs more than the rest */
    /* state, wait_kind (at rest: WAIT_NONE), detached, joined, named, stayed in one store */
    f->status = (uint64_t)FIBER_READY | (uint64_t)WAIT_NONE << 8 |
                (uint64_t)(unsigned char)detached << 16 | (uint64_t)0 << 24 |
                (uint64_t)(name != NULL) << 32 | (uint64_t)1 << 40;
    if (name) {
        strncpy(f->name, name, sizeof f->name - 1);
        f->name[sizeof f->name - 1] = '\0';
    }
    f->ctx.sp = NULL; /* fresh: entered with its stack top at f (one store, no address) */
    f->handle = fiber__tag_next(f->handle); /* the record's earlier handles go stale */
    runq_push(s, f);
    s->live++;
    return fiber__handle(f);
}

/* spawn() when the thread has no scheduler yet, the size is not the first bucket's, or
 * the bucket is empty. */
static __attribute__((noinline)) fiber_t *
spawn_slow(void (*fn)(void *), void *arg, size_t size, int detached, const char *name)
{
    struct sched *s = fiber__sched();
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    struct fiber *f = NULL;
    struct pool_bucket *b = pool_bucket(s, size, 0);
    if (b && (f = b->hot)) {
        b->hot = NULL;
    } else if (b && (f = b->head)) {
        b->head = f->next;
        b->count--;
    } else if (!(f = record_fresh(s, size))) {
        return NULL;
    }
    return spawn_init(s, f, fn, arg, detached, name);
}

/* Both spawn calls, inlined into each so that fiber_spawn's constant attributes fold.
 * The common case takes the bucket's hot record and calls nothing. */
static inline __attribute__((always_inline)) fiber_t *
spawn(void (*fn)(void *), void *arg, size_t size, int detached, const char *name)
{
    struct sched *s = tls_sched;
    struct fiber *f;
    if (__builtin_expect(s && s->pool[0].size == size, 1)) {
        struct pool_bucket *b = &s->pool[0];
        if (__builtin_expect((f = b->hot) != NULL, 1)) {
            b->hot = NULL;
            return spawn_init(s, f, fn, arg, detached, name);
        }
        if ((f = b->head) != NULL) {
            b->head = f->next;
            b->count--;
            return spawn_init(s, f, fn, arg, detached, name);
        }
    }
    return spawn_slow(fn, arg, size, detached, name);
}

/* fiber_spawn's size needs no rounding: whole pages of every page size (4, 16, 64 KiB). */
_Static_assert(FIBER_DEFAULT_STACK_SIZE % 65536 == 0, "default stack: whole 64 KiB pages");

fiber_t *fiber_spawn(void (*fn)(void *), void *arg)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    return spawn(fn, arg, FIBER_DEFAULT_STACK_SIZE, 0, NULL);
}

fiber_t *fiber_spawn_ex(void (*fn)(void *), void *arg, const fiber_attr_t *attr)
{
    size_t size = attr && attr->stack_size ? attr->stack_size : FIBER_DEFAULT_STACK_SIZE;
    if (!fn || size < 2 * FIBER_RECORD_SIZE + 1024 || size > ((size_t)1 << 36)) {
        errno = EINVAL;
        return NULL;
    }
    /* Whole pages of this system (4, 16 or 64 KiB), as the pool's buckets hold them. */
    size_t mask = __atomic_load_n(&fiber__page_mask, __ATOMIC_RELAXED);
    if (__builtin_expect(!mask, 0))
        mask = fiber__page_size() - 1;
    size = (size + mask) & ~mask;
    return spawn(fn, arg, size, attr && attr->detached, attr ? attr->name : NULL);
}

fiber_t *fiber__spawn_given(struct fiber *rec, void (*fn)(void *), void *arg, const char *name)
{
    struct sched *s = tls_sched;
    rec->sched = s; /* made on another thread (a spawn request's stack) */
    return spawn_init(s, rec, fn, arg, 1, name);
}

fiber_t *fiber_self(void)
{
    struct sched *s = tls_sched;
    return s && s->current ? fiber__handle(s->current) : NULL;
}

/* The record a handle names; aborts when the handle is stale (see internal.h). */
static struct fiber *handle_check(const fiber_t *h, const char *what)
{
    struct fiber *f = fiber__rec(h);
    if (__builtin_expect((uintptr_t)h != f->handle, 0))
        FIBER_PANIC("%s: stale fiber_t %p: the fiber it named was already joined (or, "
                    "detached, had returned) and its record now belongs to fiber %" PRIu64
                    " '%s' (handle %p)",
                    what, (const void *)h, fiber_id(f), fiber__name(f), (void *)f->handle);
    return f;
}

/* Name and id of the record itself: callers inside the runtime pass records, users pass
 * handles; neither is checked (a stale handle just reads the newer fiber's). */
const char *fiber_name(const fiber_t *f) { return fiber__name(fiber__rec(f)); }
uint64_t fiber_id(const fiber_t *f)
{
    struct fiber *m = fiber__rec(f);
    if (!m->id)
        m->id = __atomic_add_fetch(&next_fiber_id, 1, __ATOMIC_RELAXED);
    return m->id;
}

size_t fiber_live_count(void)
{
    struct sched *s = tls_sched;
    return s ? s->live : 0;
}

static struct fiber *current_or_panic(const char *what)
{
    struct sched *s = tls_sched;
    if (!s || !s->current)
        FIBER_PANIC("%s called outside a fiber", what);
    return s->current;
}

static void fiber_yield_slow(void);

/* No SLP vectorizing: GCC 12 otherwise pairs the stores of s->current and s->runq_head
 * through an xmm register (4 instructions for 2 stores). */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_SLP __attribute__((optimize("no-tree-slp-vectorize")))
#else
#define NO_SLP
#endif
NO_SLP void fiber_yield(void)
{
#if !FIBER_ASAN
    /* The fast path: exactly one other fiber is ready (head == tail) and the round has a
     * handoff left - every switch of a ping-pong. The result is what the general path
     * below gives (push f, pop the other: f alone in the queue, runq_len still 1), in
     * fewer loads and stores, with the switch called from here. A running fiber's state
     * is already FIBER_READY. */
    struct sched *s = tls_sched;
    struct fiber *f, *n;
    if (__builtin_expect(s && (f = s->current) && (n = s->runq_head) && n == s->runq_tail &&
                         s->batch, 1)) {
        s->batch--;
        s->runq_head = f; /* f alone in the queue: its next is not read (runq_push) */
        s->runq_tail = f;
        s->current = n;
        f->stayed = 0; /* fiber__sched_entry: its entering context may run meanwhile */
        /* A second call site of the switch, as in join_from_main(): a ping-pong's every
         * switch is made here, so the `ret` into the other fiber still goes where the
         * return-stack buffer says. */
        SCHED_SWITCH_ASM(&f->ctx, &n->ctx);
        after_switch(tls_sched);
        return;
    }
#endif
    fiber_yield_slow();
}

static __attribute__((noinline)) void fiber_yield_slow(void)
{
    struct fiber *f = current_or_panic("fiber_yield");
    struct sched *s = f->sched;
    f->state = FIBER_READY;
    runq_push(s, f);
    struct fiber *next = pick_next(s);
    if (next == f) /* alone in its round: keep running */
        return;
    sched_switch(s, f, next);
}

int fiber__park(struct sched *s, struct fiber *f, uint64_t deadline_ns)
{
    f->state = FIBER_WAITING;
    f->wake_reason = 0;
    if (deadline_ns != FIBER_FOREVER) {
        f->deadline = deadline_ns;
        if (heap_push(s, f) != 0) {
            f->state = FIBER_READY;
            f->wait_kind = WAIT_NONE;
            return ENOMEM;
        }
    }
    fiber__attn_check(s);
    sched_switch(s, f, pick_next(s));
    return f->wake_reason;
}

static void waitq_unlink(struct fiber *f)
{
    fiber_waitq_t *q = f->waitq;
    if (f->prev)
        f->prev->next = f->next;
    else
        q->head = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else
        q->tail = f->prev;
    f->waitq = NULL;
    f->prev = f->next = NULL;
}

void fiber__wake(struct sched *s, struct fiber *f, int reason)
{
    if (f->state != FIBER_WAITING)
        return;
    if (f->heap_idx != NO_HEAP)
        heap_remove(s, f);
    switch (f->wait_kind) {
    case WAIT_QUEUE:
        waitq_unlink(f);
        break;
    case WAIT_IO:
        fiber__io_unpark(s, f);
        break;
    default:
        break;
    }
    f->wait_kind = WAIT_NONE;
    f->wake_reason = reason;
    f->state = FIBER_READY;
    runq_push(s, f);
    fiber__attn_check(s);
}

void fiber_sleep_until(uint64_t deadline_ns)
{
    struct fiber *f = current_or_panic("fiber_sleep_until");
    struct sched *s = f->sched;
    if (deadline_ns <= fiber_now_ns()) {
        fiber_yield();
        return;
    }
    f->wait_kind = WAIT_SLEEP;
    if (fiber__park(s, f, deadline_ns) == ENOMEM) {
        /* No room in the timer heap: fall back to yielding until the time has come. */
        while (fiber_now_ns() < deadline_ns)
            fiber_yield();
    }
}

void fiber_sleep_ns(uint64_t ns)
{
    if (ns == 0) {
        fiber_yield();
        return;
    }
    uint64_t now = fiber_now_ns();
    fiber_sleep_until(ns > FIBER_FOREVER - now ? FIBER_FOREVER - 1 : now + ns);
}

/* ---- the scheduler loop ---- */

/* The scheduler's checks between rounds: expires timers, polls for I/O (waiting for the
 * next timer or event when no fiber is ready). Returns 0; -1 with errno on EDEADLK (no
 * fiber can ever run again) or a poller failure. */
/* With an I/O interval set (fiber_sched_io_interval): has it passed since the last
 * poll? Then it counts as polled now. *now is read from the clock if still 0. */
static inline int io_poll_due(struct sched *s, uint64_t *now)
{
    if (!s->io_interval_ns)
        return 1;
    if (!*now)
        *now = fiber_now_ns();
    if (*now - s->io_polled_ns < s->io_interval_ns)
        return 0;
    s->io_polled_ns = *now;
    return 1;
}

static inline __attribute__((always_inline)) int sched_wait(struct sched *s)
{
    uint64_t now = 0;
    fiber__attn_check(s);
    if (s->heap_len)
        timers_expire(s, now = fiber_now_ns());
    if (s->runq_head) {
        if (s->io_waiters && io_poll_due(s, &now) && fiber__io_poll(s, 0) < 0)
            return -1;
        if (s->remote && fiber__remote_pending(s))
            fiber__remote_drain(s, 0); /* other threads' messages, without a poll */
        return 0;
    }
    if (!s->heap_len && !s->io_waiters && !s->remote_waiters && !s->remote_published) {
        errno = EDEADLK; /* everyone parked on wait queues with no deadline */
        return -1;
    }
    uint64_t deadline = s->heap_len ? s->heap[0]->deadline : FIBER_FOREVER;
    if (s->spin_ns && deadline != FIBER_FOREVER) {
        if (!now)
            now = fiber_now_ns();
        if (deadline <= now || deadline - now <= s->spin_ns) {
            /* Close enough: poll and come round again, no sleep. With an I/O interval
             * the poll itself waits for its turn: spin on the clock and the timers. */
            if (!io_poll_due(s, &now))
                return 0;
            deadline = 0;
        }
    }
    if (fiber__io_poll(s, deadline) < 0)
        return -1;
    if (s->io_interval_ns && deadline)
        s->io_polled_ns = fiber_now_ns();
    if (s->heap_len)
        timers_expire(s, fiber_now_ns());
    return 0;
}

/* Runs until `until` has returned, or (until == NULL) until no fiber is left. */
static int sched_loop(struct sched *s, struct fiber *until)
{
    if (s->in_loop)
        FIBER_PANIC("the scheduler is already running on this thread");
    s->in_loop = 1;
    fiber__attn_add(s);
    int rc = 0;
    for (;;) {
        if (until ? until->state == FIBER_DONE : s->live == 0)
            break;
        /* With no timer, no I/O waiter, nothing in the inbox and a fiber ready, there is
         * nothing to check: the common case of a join or a run of compute-only fibers. */
        if (s->heap_len || s->io_waiters || !s->runq_head ||
            (s->remote && fiber__remote_pending(s)))
            if (sched_wait(s) != 0) {
                rc = -1;
                break;
            }
        struct fiber *next = runq_pop(s);
        if (!next)
            continue;
        s->batch = s->runq_len + 1 > MIN_ROUND ? s->runq_len : MIN_ROUND - 1;
        sched_switch(s, NULL, next);
    }
    s->in_loop = 0;
    fiber__attn_sub(s);
    fiber__attn_check(s);
    return rc;
}

int fiber_run(void)
{
    struct sched *s = fiber__sched();
    if (!s) {
        errno = ENOMEM;
        return -1;
    }
    if (s->current)
        FIBER_PANIC("fiber_run called from inside fiber %" PRIu64 " '%s'", fiber_id(s->current),
                    fiber__name(s->current));
    return sched_loop(s, NULL);
}

int fiber_sched_serve(void)
{
    struct sched *s = fiber__sched();
    if (!s) {
        errno = ENOMEM;
        return -1;
    }
    if (s->current)
        FIBER_PANIC("fiber_sched_serve called from inside fiber %" PRIu64 " '%s'",
                    fiber_id(s->current), fiber__name(s->current));
    if (!fiber_sched_self())
        return -1;
    for (;;) {
        if (s->live && sched_loop(s, NULL) != 0)
            return -1;
        if (s->stop_requested) {
            s->stop_requested = 0;
            return 0;
        }
        /* No fiber: sleep in the poller until another thread posts (published, so this
         * is never EDEADLK); its messages run in here and may spawn fibers or stop us.
         * Inside the loop as far as a message can tell: one that joins (a misuse: "fn
         * must not park") aborts as it does when sched_loop() runs it, instead of
         * running a scheduler nested in the drain. */
        s->in_loop = 1;
        fiber__attn_add(s);
        int rc = sched_wait(s);
        s->in_loop = 0;
        fiber__attn_sub(s);
        if (rc != 0)
            return -1;
    }
}

void fiber_sched_spin(uint64_t ns)
{
    struct sched *s = fiber__sched();
    if (s)
        s->spin_ns = ns;
}

void fiber_sched_io_interval(uint64_t ns)
{
    struct sched *s = fiber__sched();
    if (s)
        s->io_interval_ns = ns;
}

size_t fiber_stack_trim(void)
{
    struct fiber *f = current_or_panic("fiber_stack_trim");
    /* The system's page, not 4 KiB: madvise rounds the length up to whole pages, so on a
     * 16 or 64 KiB-page kernel a 4 KiB-aligned end would discard the page of this frame. */
    size_t ps = fiber__page_size();
    /* Keep a page of margin below this frame: the madvise call itself runs there. */
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    uintptr_t lo = (uintptr_t)f->stack.lo;
    uintptr_t end = (here - 2 * ps) & ~(uintptr_t)(ps - 1);
    if (end <= lo)
        return 0;
    if (madvise((void *)lo, end - lo, MADV_DONTNEED) != 0)
        return 0;
    return end - lo;
}

/* ---- join and detach ---- */

static void check_owner(struct sched *s, struct fiber *f, const char *what)
{
    if (!s || f->sched != s)
        FIBER_PANIC("%s: fiber %" PRIu64 " '%s' belongs to another thread's scheduler", what,
                    fiber_id(f), fiber__name(f));
}

/* fiber_join() outside any fiber: runs fibers from this context until f has returned.
 * While no timer and no I/O waiter exists and a fiber is ready, that is only popping
 * and switching; anything else goes through the full scheduler loop. */
static __attribute__((noinline)) int join_from_main(struct sched *s, struct fiber *f)
{
    if (s->in_loop)
        FIBER_PANIC("the scheduler is already running on this thread");
    s->in_loop = 1;
    fiber__attn_add(s);
    do {
        if (s->heap_len || s->io_waiters || !s->runq_head ||
            (s->remote && fiber__remote_pending(s))) {
            s->in_loop = 0;
            fiber__attn_sub(s);
            return sched_loop(s, f);
        }
        struct fiber *next = runq_pop(s);
        s->batch = s->runq_len + 1 > MIN_ROUND ? s->runq_len : MIN_ROUND - 1;
#if FIBER_ASAN
        sched_switch(s, NULL, next);
#else
        /* A second call site of the switch, on purpose: when the fiber runs to its end,
         * its last switch returns into this call, which is the entry on top of the
         * return-stack buffer; only a resume from a fiber's sched_switch() (the end of
         * a round) pays one misprediction here. Saves a call level per join. */
        s->current = next;
        SCHED_SWITCH_ASM(&s->main_ctx, &next->ctx);
        after_switch(s);
#endif
    } while (f->state != FIBER_DONE);
    s->in_loop = 0;
    fiber__attn_sub(s);
    return 0;
}

/* Every misuse fiber_join() can see, named: the fast path tests them all at once. */
static _Noreturn __attribute__((noinline, cold)) void join_misuse(fiber_t *h, struct sched *s)
{
    struct fiber *f = handle_check(h, "fiber_join");
    check_owner(s, f, "fiber_join");
    if (f->detached)
        FIBER_PANIC("fiber_join: fiber %" PRIu64 " '%s' is detached", fiber_id(f), fiber__name(f));
    if (f == s->current)
        FIBER_PANIC("fiber_join: fiber %" PRIu64 " '%s' joins itself", fiber_id(f), fiber__name(f));
    FIBER_PANIC("fiber_join: fiber %" PRIu64 " '%s' joined twice", fiber_id(f), fiber__name(f));
}

#if SCHED_JOIN
/* fiber_join()'s run path: main joins a fiber that is fresh at the head of the run queue
 * (its saved sp still NULL, as spawn left it: it has never run - the NULL is what the
 * switch trusts, and calling fn again on a live stack would corrupt it silently), and nothing
 * needs the scheduler's attention: no current fiber (this is the main context), no
 * timer, no I/O waiter, not inside the scheduler loop. The caller has checked those and
 * the inbox. f is taken off the queue and the run path (switch_<arch>.S) runs it and
 * finishes the join: fiber_join ends in a jump there. */
static inline __attribute__((always_inline)) int join_run(struct sched *s, struct fiber *f)
{
    if (__builtin_expect(f == s->runq_tail, 1)) { /* f alone in the queue */
        /* Stores, not a decrement: spawn's increment and this one would chain every
         * spawn+join to the previous through memory. */
        size_t zero = 0;
        __asm__("" : "+r"(zero)); /* a fresh zero, not one kept from above */
        s->runq_head = NULL;
        s->runq_len = zero; /* runq_tail stays: see runq_push() */
        s->batch = MIN_ROUND - 1;
    } else {
        s->runq_head = f->next;
        s->runq_len--;
        s->batch = s->runq_len + 1 > MIN_ROUND ? s->runq_len : MIN_ROUND - 1;
    }
    s->current = f;
    /* in_loop stays 0: nothing runs in this context until the run path returns */
    return SCHED_JOIN_ASM(&s->main_ctx, f);
}

/* The run path's conditions but the inbox: s->attn counts the inbox as 1. */
static inline int join_runnable(struct sched *s, struct fiber *f)
{
    return s->runq_head == f && !f->ctx.sp && !s->current &&
           s->attn == (s->remote != NULL);
}
#endif

#if SCHED_JOIN
/* fiber_join() of a fiber that has finished: its record back to the pool. */
static __attribute__((noinline)) int join_done(struct sched *s, struct fiber *f)
{
    fiber_release(s, f);
    return 0;
}
#endif

/* The rest of fiber_join() for every case the inline test in fiber_join() does not let
 * through to the run path: f finished already, joined from a fiber (which parks), or
 * joined from the main context when it is not fresh at the head of the run queue, the
 * scheduler needs attention, or the thread has an inbox (then the run path still
 * serves the join if the inbox is empty). */
static __attribute__((noinline)) int join_general(fiber_t *h, struct fiber *f, struct sched *s)
{
#if SCHED_JOIN
    if (s->remote && join_runnable(s, f) && !fiber__remote_pending(s))
        return join_run(s, f);
#endif
    if (f->state != FIBER_DONE) {
        struct fiber *self = s->current;
        if (self) {
            if (__builtin_expect(f == self, 0))
                join_misuse(h, s);
            f->joined = JOINED | JOINED_BY_FIBER;
            f->joiner = self;
            self->wait_kind = WAIT_JOIN;
            fiber__park(s, self, FIBER_FOREVER);
        } else {
            if (f->state != FIBER_DONE && join_from_main(s, f) != 0) {
                f->joined = 0;
                return -1;
            }
        }
    }
    fiber_release(s, f);
    return 0;
}

/* The end of a join that went into the run path and did not finish there (see
 * switch_<arch>.S): f ended with its record not put back, or the joiner was resumed by
 * a switch, f ended or not. Runs in the main context, on the joiner's stack. */
int fiber__join_finish(struct fiber *f)
{
    struct sched *s = f->sched;
    after_switch(s);
    if (f->state != FIBER_DONE && join_from_main(s, f) != 0) {
        f->joined = 0;
        return -1;
    }
    fiber_release(s, f);
    return 0;
}

int fiber_join(fiber_t *h)
{
    struct fiber *f = fiber__rec(h);
    struct sched *s = tls_sched;
    /* Another thread's scheduler (or none: records always have one), detached, joined
     * already, a stale handle; a fiber joining itself is caught in join_general(). */
    if (__builtin_expect(f->sched != s || f->dj || (uintptr_t)h != f->handle, 0))
        join_misuse(h, s);
    f->joined = JOINED;
#if SCHED_JOIN
    /* The common case: the run path, with no inbox to look at (a thread with one goes
     * through join_general). Nothing here calls anything but the run path, in the end:
     * the join costs no frame of its own. */
    if (__builtin_expect(s->runq_head == f && !f->ctx.sp &&
                         !((uintptr_t)s->current | s->attn), 1))
        return join_run(s, f);
    /* Finished already (the fibers of a batch after the first one joined): only the
     * record to put back, in a function of its own, so that this one needs no frame. */
    if (f->state == FIBER_DONE)
        return join_done(s, f);
#endif
    return join_general(h, f, s);
}

void fiber_detach(fiber_t *h)
{
    struct fiber *f = handle_check(h, "fiber_detach");
    struct sched *s = tls_sched;
    check_owner(s, f, "fiber_detach");
    if (f->detached)
        FIBER_PANIC("fiber_detach: fiber %" PRIu64 " '%s' is already detached", fiber_id(f), fiber__name(f));
    if (f->joined)
        FIBER_PANIC("fiber_detach: fiber %" PRIu64 " '%s' is being joined", fiber_id(f), fiber__name(f));
    f->detached = 1;
    if (f->state == FIBER_DONE)
        fiber_release(s, f);
}

/* ---- wait queues and semaphores ---- */

/* Waking another thread's fibers from here would push them onto that thread's run queue
 * while it runs, and waiting on its queue would link this fiber into its lists: silent
 * corruption. Detectable when the queue has a waiter. */
static void check_queue_owner(struct fiber *waiter, const char *what, const char *advice)
{
    if (__builtin_expect(waiter->sched != tls_sched, 0))
        FIBER_PANIC("%s from another thread: the wait queue's fibers belong to another "
                    "thread's scheduler (%s)", what, advice);
}

int fiber_waitq_wait(fiber_waitq_t *q, uint64_t deadline_ns)
{
    struct fiber *f = current_or_panic("fiber_waitq_wait");
    struct sched *s = f->sched;
    if (q->tail)
        check_queue_owner(q->tail, "fiber_waitq_wait", "a wait queue or semaphore serves the fibers of one thread");
    f->waitq = q;
    f->next = NULL;
    f->prev = q->tail;
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
    f->wait_kind = WAIT_QUEUE;
    int r = fiber__park(s, f, deadline_ns);
    if (r == ENOMEM) { /* never parked (no room for the deadline): undo the enqueue */
        waitq_unlink(f);
        f->wait_kind = WAIT_NONE;
    }
    if (r) {
        errno = r;
        return -1;
    }
    return 0;
}

int fiber_waitq_wake_one(fiber_waitq_t *q)
{
    struct fiber *f = q->head;
    if (!f)
        return 0;
    check_queue_owner(f, "fiber_waitq_wake_one", "from other threads, use fiber_waitq_wake_one_on()");
    fiber__wake(f->sched, f, 0);
    return 1;
}

int fiber_waitq_wake_all(fiber_waitq_t *q)
{
    int n = 0;
    if (q->head)
        check_queue_owner(q->head, "fiber_waitq_wake_all", "from other threads, use fiber_waitq_wake_all_on()");
    while (q->head) {
        fiber__wake(q->head->sched, q->head, 0);
        n++;
    }
    return n;
}

/* A released unit is handed straight to the first waiter instead of going through
 * count, so a fiber arriving between the release and the waiter's wake-up cannot take
 * it: waiters are served strictly in FIFO order. */
int fiber_sem_acquire(fiber_sem_t *sem, uint64_t deadline_ns)
{
    if (sem->count > 0) {
        sem->count--;
        return 0;
    }
    return fiber_waitq_wait(&sem->waiters, deadline_ns);
}

void fiber_sem_release(fiber_sem_t *sem)
{
    if (sem->waiters.head)
        check_queue_owner(sem->waiters.head, "fiber_sem_release", "from other threads, use fiber_sem_release_on()");
    if (!fiber_waitq_wake_one(&sem->waiters))
        sem->count++;
}
