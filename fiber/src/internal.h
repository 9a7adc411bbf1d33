/* internal.h - shared by the runtime's sources; not installed. */
#ifndef FIBER_INTERNAL_H
#define FIBER_INTERNAL_H

#include "fiber.h"
#include "fiber_context.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>

#if defined(__SANITIZE_ADDRESS__)
#define FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBER_ASAN 1
#endif
#endif
#ifndef FIBER_ASAN
#define FIBER_ASAN 0
#endif

/* Misuse and "cannot happen": say what and where, then abort. The one way the runtime
 * reports a bug in its caller or in itself. */
#define FIBER_PANIC(...) fiber__panic(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void fiber__panic(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* READY: runnable, in a run queue or running (s->current says which; nothing needs the
 * difference, so the switches do not store it). */
enum fiber_state { FIBER_READY, FIBER_WAITING, FIBER_DONE };
enum fiber_wait { WAIT_NONE, WAIT_SLEEP, WAIT_QUEUE, WAIT_IO, WAIT_JOIN, WAIT_OFFLOAD };
/* struct fiber.joined: being joined, and by a fiber (then joiner waits for the end). */
enum { JOINED = 1, JOINED_BY_FIBER = 2 };
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "dj: detached is the low byte");
/* dj bits that need the end of a fiber to act: detached, or a fiber waits to join it. */
#define FIBER_DJ_ATTENTION (0xffu | (unsigned)JOINED_BY_FIBER << 8)

struct sched;

/* One registration of a parked fiber for one direction of one fd (io.c). It lives on the
 * parked fiber's own stack (in the frame of the call that parks), so waiting costs no
 * allocation, and any number of fibers - and any number of fds per fiber - can wait. */
struct fiber__iow {
    struct fiber__iow *next, *prev; /* the fd's circular list for this direction */
    struct fiber      *f;
    int                fd;
    uint32_t           dir;     /* EPOLLIN or EPOLLOUT */
    uint32_t           revents; /* the events that woke the fiber through this node */
    uint32_t           closes;  /* the fd slot's close count when the fiber parked */
};

/*
 * A fiber's record lives at the top of its own stack (up to 15 cache lines below it, to
 * spread records over cache sets), so creating a fiber from the pool allocates nothing,
 * and the record shares a page with the first stack frame.
 * Consequence: a joinable fiber that has returned keeps its stack until it is joined.
 */
struct fiber {
    /* The first cache line: all that spawn writes and a join from the main context reads
     * (records are reused hot from the pool; one line is one line to fetch otherwise). */
    fiber_context_t ctx;      /* first: the switch reads ctx.sp */
    struct sched   *sched;    /* set when the record is made or given to a pool */
    struct fiber   *next;     /* run queue, wait queue or pool link */
    void          (*fn)(void *);
    void           *arg;
    uint64_t        id;       /* 0 until fiber_id() hands one out */
    uintptr_t       handle;   /* the current fiber's fiber_t: address and tag (below);
                                 spawn moves the tag on */
    union {
        struct {
            unsigned char state, wait_kind;
            union {
                struct {
                    unsigned char detached, joined;
                };
                uint16_t dj;  /* both, for one test (FIBER_DJ_ATTENTION) */
            };
            unsigned char named;  /* name[] holds this fiber's name (else it is "") */
            unsigned char stayed; /* 1 until it first switches away (fiber__sched_entry,
                                     the run path) */
            unsigned char spare_[2];
        };
        uint64_t    status;   /* the eight bytes above, for spawn's one store */
    };
    /* waiting */
    struct fiber   *joiner;   /* NULL at rest: cleared when the fiber ends */
    struct fiber   *prev;     /* wait queue */
    uint64_t        deadline;
    size_t          heap_idx; /* position in the timer heap, or NO_HEAP */
    union {
        fiber_waitq_t     *waitq; /* WAIT_QUEUE: the queue it is parked on */
        struct fiber__iow *iow;   /* WAIT_IO: its registrations (io.c), io_n of them */
    };
    uint32_t        io_n;
    int             wake_reason; /* 0, ETIMEDOUT, EBADF or another errno value */
    void           *asan_fake_stack;
    fiber_stack_t   stack;
    char            name[32];
};

/* The name of the record's current fiber ("" when it was given none). */
static inline const char *fiber__name(const struct fiber *f)
{
    return f->named ? f->name : "";
}

/*
 * Tagged handles (fiber_t for fiber records, fiber_sched_t for schedulers' remote faces).
 * A handle is the object's address with a 22-bit tag in the bits an address leaves
 * free: bits 0-5 (the objects are 64-byte aligned) and bits 48-63 (user addresses on
 * x86-64 and aarch64 Linux stay below 2^48 unless a mapping is asked for above, which
 * this runtime never does). The tag moves on each time the object starts a new life (a
 * record a new fiber, a face a new scheduler), so a handle kept past its object's life
 * no longer matches, and the public calls compare and refuse it. It wraps after 2^22
 * (4,194,304) lives of one object; a new object starts at a random tag, so one mapped
 * where an old one was (after fiber_pool_trim()) matches an old handle with odds of
 * 1 in 2^22.
 */
#define FIBER__TAG_BITS (~(((uintptr_t)1 << 48) - 1) | (uintptr_t)63)
static inline void *fiber__untag(const void *h)
{
    return (void *)((uintptr_t)h & ~FIBER__TAG_BITS);
}
/* The next handle of the same object. Bits 48-63 are the tag's low digit, so the common
 * step is one add; when they wrap, the carry goes on in bits 0-5 (kept within them). */
static inline uintptr_t fiber__tag_next(uintptr_t h)
{
    uintptr_t n;
    if (__builtin_expect(__builtin_add_overflow(h, (uintptr_t)1 << 48, &n), 0)) {
        /* A branch, not a select: without the barrier GCC computes the carry on every
         * spawn on aarch64 (4 instructions and a csel for a case of 1 in 65,536). */
        __asm__("" : "+r"(n));
        n = (n & ~(uintptr_t)63) | ((n + 1) & 63);
    }
    return n;
}
/* A random tag (the bits of FIBER__TAG_BITS only), for a new object. */
uintptr_t fiber__tag_random(void);

static inline struct fiber *fiber__rec(const fiber_t *h)
{
    return (struct fiber *)fiber__untag(h);
}
static inline fiber_t *fiber__handle(struct fiber *f)
{
    return (fiber_t *)f->handle;
}

/* The system's page size - 1 (4, 16 or 64 KiB pages), set before the first scheduler. */
extern size_t fiber__page_mask;
size_t fiber__page_size(void);

#define NO_HEAP ((size_t)-1)
/* Bytes reserved at the top of every stack for the record (cache-line multiple). */
#define FIBER_RECORD_SIZE ((sizeof(struct fiber) + 63u) & ~(size_t)63u)

/* Declared by the assembly. */
void fiber_context_trampoline(void);
/* The scheduler's switch (switch_<arch>.S): saves *from, resumes *to; when to->sp is
 * NULL, to is a fresh fiber whose stack top is `to` itself (16-byte aligned),
 * entered by calling fiber__sched_entry(to); what that returns is resumed when it does. */
void fiber__sched_switch_lean(fiber_context_t *from, fiber_context_t *to);
#if defined(__x86_64__)
/* The strict one's two MXCSR policies; fiber__sched_switch_strict points at one of them,
 * chosen per CPU at start (context.c), as do the two below, which the public
 * fiber_context_switch_strict(_ret) jump through (switch_x86_64.S). */
void fiber__sched_switch_strict_always(fiber_context_t *from, fiber_context_t *to);
void fiber__sched_switch_strict_cmp(fiber_context_t *from, fiber_context_t *to);
extern __attribute__((visibility("hidden"))) void (*fiber__sched_switch_strict)(fiber_context_t *,
                                                                                fiber_context_t *);
extern __attribute__((visibility("hidden"))) void (*fiber__strict_switch)(fiber_context_t *,
                                                                          fiber_context_t *);
extern __attribute__((visibility("hidden"))) void (*fiber__strict_switch_ret)(fiber_context_t *,
                                                                              fiber_context_t *);
/* The join's run path (switch_<arch>.S), fiber_join()'s last step: enters
 * the fresh fiber f from *from, which must be &f->sched->main_ctx (the assembly takes the
 * joiner's frame back from there), and returns fiber_join's result. If f
 * neither switches away nor leaves another fiber runnable, it ends there (its record put
 * back by fiber__join_finish() unless the pool's hot slot takes it) and the joiner is
 * resumed at once; otherwise it ends through fiber__sched_exit(), and the joiner, resumed
 * by whichever switch, finishes in fiber__join_finish(). */
int fiber__sched_join_lean(fiber_context_t *from, struct fiber *f);
int fiber__sched_join_strict_always(fiber_context_t *from, struct fiber *f);
int fiber__sched_join_strict_cmp(fiber_context_t *from, struct fiber *f);
extern __attribute__((visibility("hidden"))) int (*fiber__sched_join_strict)(fiber_context_t *,
                                                                            struct fiber *);
#else
void fiber__sched_switch_strict(fiber_context_t *from, fiber_context_t *to);
/* The join's run path (switch_aarch64.S), as above; strict and lean are one function
 * there (no FP control word travels with a context). */
int fiber__sched_join_lean(fiber_context_t *from, struct fiber *f);
int fiber__sched_join_strict(fiber_context_t *from, struct fiber *f);
#endif
/* The C ends of the join's run path (sched.c). */
int fiber__join_finish(struct fiber *f);
fiber_context_t *fiber__sched_exit(struct fiber *f);
/* On x86-64 bit 0 of the context returned says the fiber never switched away (the
 * assembly then may skip reloading the context that entered it; see there). */
fiber_context_t *fiber__sched_entry(fiber_context_t *ctx);
_Noreturn void fiber__context_returned(void);

/* context.c: maps up to n guarded stacks of `size` usable bytes in one mapping, with
 * their guards installed in one call where the kernel allows. Returns how many (>= 1),
 * or -1 with errno. */
int fiber__stack_alloc_batch(fiber_stack_t *st, size_t n, size_t size);

/* overflow.c */
void fiber__overflow_init_thread(void);
void fiber__overflow_fini_thread(void);

/* io.c */
int  fiber__io_init(struct sched *s); /* the epoll instance; 0 or -1 with errno */
int  fiber__io_poll(struct sched *s, uint64_t deadline_ns); /* 0 = don't wait */
void fiber__io_wake_fd(struct sched *s, int fd, int reason);
void fiber__io_unpark_n(struct sched *s, struct fiber *f);
void fiber__io_sched_free(struct sched *s);
void fiber__io_atfork_child(struct sched *s);

/* remote.c: a message from another thread, run on the scheduler's own thread (outside
 * any fiber) by fiber__remote_drain(); run may free the message. */
struct fiber__msg {
    struct fiber__msg *next;
    void             (*run)(struct sched *s, struct fiber__msg *m);
};
#define FIBER__REMOTE_TAG UINT64_MAX /* the eventfd's epoll data (fd slots use gen|fd) */
fiber_sched_t *fiber__remote(struct sched *s); /* s's face, made on demand; NULL+errno */
/* Any thread: queues m for the scheduler h names. 0, or -1 with errno EPIPE when that
 * scheduler's thread has exited (m is then the caller's to free). */
int  fiber__remote_post(fiber_sched_t *h, struct fiber__msg *m);
void fiber__remote_drain(struct sched *s, int from_event);
int  fiber__remote_pending(struct sched *s);
void fiber__remote_free(struct sched *s);
void fiber__fork_init(void); /* the pthread_atfork handlers (once, at the first scheduler) */

/* offload.c */
struct fiber__job;
void fiber__offload_atfork_child(struct sched *s);

/* context.c: size rounded up to whole pages of this system */
size_t fiber__stack_round(size_t size);

/* sched.c, for io.c and remote.c */
size_t fiber__pool_has(struct sched *s, size_t size); /* pooled stacks of that size */
/* A detached fiber on the stack whose record is rec (set up by fiber__record_init). */
fiber_t *fiber__spawn_given(struct fiber *rec, void (*fn)(void *), void *arg, const char *name);
/* Sets up a record at f, on stack st, as the pool keeps records between fibers. */
void fiber__record_init(struct fiber *f, const fiber_stack_t *st);
struct sched *fiber__sched(void);          /* this thread's, created on demand; NULL+ENOMEM */
struct sched *fiber__sched_peek(void);     /* this thread's, or NULL if it has none */
int  fiber__park(struct sched *s, struct fiber *f, uint64_t deadline_ns);
void fiber__wake(struct sched *s, struct fiber *f, int reason);

/* The per-thread scheduler. */
struct fdslot {
    struct fiber__iow *readers, *writers; /* FIFO (circular) lists of parked fibers' nodes */
    uint32_t      gen;        /* generation of the current registration (io.c) */
    uint32_t      closes;     /* bumped by fiber_fd_forget(): a parked fiber compares */
    unsigned char registered;
};

#define POOL_BUCKETS 4

/* Stacks are mapped in batches (one mmap and one guard-installing call for up to
 * FRESH_MAX stacks); the ones not yet used wait here, untouched, so they cost no RSS. */
#define FRESH_MAX 64

struct pool_bucket {
    size_t        size;  /* usable size of the stacks in this bucket, 0 = unused */
    struct fiber *hot;   /* the last stack given back, taken first (no list to walk) */
    struct fiber *head;  /* the others given back by finished fibers (records in place) */
    size_t        count; /* on the list (hot not counted) */
    size_t        nfresh;
    fiber_stack_t fresh[FRESH_MAX];
};

struct sched {
    struct fiber   *current;  /* NULL while the scheduler's own context runs */
    struct fiber   *runq_head, *runq_tail; /* runq_tail: stale while runq_head is NULL */
    size_t          runq_len;
    size_t          batch;    /* direct fiber-to-fiber handoffs left before polling */
    fiber_context_t main_ctx;
    struct fiber   *zombie;   /* a detached fiber that returned; freed after the switch */
    size_t          live;
    int             in_loop;
    int             epfd;     /* the poller (here: fills in_loop's padding) */
    /* timers: a binary min-heap of parked fibers with a deadline */
    struct fiber  **heap;
    size_t          heap_len, heap_cap;
    /* I/O */
    struct fdslot  *fds;
    size_t          nfds;
    size_t          io_waiters;
    struct fiber_sched *remote;   /* inbox + eventfd (remote.c), made on demand; tested
                                     beside io_waiters in the loop, so on its cache line */
    /* heap_len + io_waiters + in_loop + (remote != NULL), kept with them: nonzero when
     * anything but the run queue needs the scheduler, so that fiber_join() decides on its
     * run path with one load instead of four (fiber__attn_add/sub below). */
    size_t          attn;
    /* stacks */
    struct pool_bucket pool[POOL_BUCKETS];
    size_t          batch_stacks; /* stacks to map in the next batch: 4, 8, ... FRESH_MAX */
    unsigned        colour;   /* spreads fresh records over cache sets (record_place) */
    uint64_t        spin_ns;  /* poll without sleeping when the next timer is this close */
    uint64_t        io_interval_ns; /* busy: poll I/O at most this often (0: every round) */
    uint64_t        io_polled_ns;   /* when I/O was last polled (with an interval) */
    /* the thread's own stack, for ASan's fiber annotations */
    void           *main_stack_lo;
    size_t          main_stack_size;
    /* cross-thread wake-ups (remote.c) */
    size_t          remote_waiters;   /* fibers parked in fiber_offload() */
    unsigned char   remote_published; /* fiber_sched_self() was called: others may wake */
    unsigned char   stop_requested;   /* fiber_sched_stop() came: fiber_sched_serve returns */
    struct fiber__job *jobs;          /* offload jobs its fibers wait for (offload.c) */
};

/* s->attn follows heap_len, io_waiters, in_loop and remote: every change of one of them
 * goes with one of these. */
static inline void fiber__attn_add(struct sched *s) { s->attn++; }
static inline void fiber__attn_sub(struct sched *s) { s->attn--; }
/* The ASan build (every test runs against it) checks that attn still is the sum, at the
 * scheduler's slow points; a writer that forgot its add/sub would let fiber_join() take
 * the run path past a due timer, an I/O waiter or the inbox. */
#if FIBER_ASAN
#define fiber__attn_check(s)                                                                 \
    do {                                                                                     \
        if ((s)->attn != (s)->heap_len + (s)->io_waiters + (size_t)(s)->in_loop +             \
                             ((s)->remote != NULL))                                          \
            FIBER_PANIC("s->attn %zu: heap %zu + io %zu + loop %d + inbox %d", (s)->attn,   \
                        (s)->heap_len, (s)->io_waiters, (s)->in_loop, (s)->remote != NULL); \
    } while (0)
#else
#define fiber__attn_check(s) ((void)0)
#endif

/* io.c's wait lists, inline for fiber__wake(). A slot's list for one direction. */
static inline struct fiber__iow **fiber__slot_list(struct fdslot *slot, uint32_t dir)
{
    return dir == EPOLLIN ? &slot->readers : &slot->writers;
}

static inline void fiber__iow_unlink(struct fiber__iow **head, struct fiber__iow *w)
{
    if (w->next == w) {
        *head = NULL;
    } else {
        w->prev->next = w->next;
        w->next->prev = w->prev;
        if (*head == w)
            *head = w->next;
    }
    w->next = w->prev = NULL;
}

/* Unlinks the n nodes w (those that are linked). */
static inline void fiber__iow_unlink_all(struct sched *s, struct fiber__iow *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (w[i].next)
            fiber__iow_unlink(fiber__slot_list(&s->fds[w[i].fd], w[i].dir), &w[i]);
}

/* fiber__wake() of a fiber parked in io.c: takes its nodes off their lists. */
static inline void fiber__io_unpark(struct sched *s, struct fiber *f)
{
    if (__builtin_expect(f->io_n == 1, 1)) /* fiber_read, _write, _accept, _connect */
        fiber__iow_unlink(fiber__slot_list(&s->fds[f->iow->fd], f->iow->dir), f->iow);
    else
        fiber__io_unpark_n(s, f);
    s->io_waiters--;
    fiber__attn_sub(s);
}

#endif
