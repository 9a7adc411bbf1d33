/* stopper.h - a child process that stops (SIGSTOP) and continues (SIGCONT) the test
 * process every few milliseconds, for the tests that fibers blocked while their process
 * is stopped lose nothing (fiber/tests/test_io.c, fiber/hook/tests/test_hook.c).
 * Include after <cmocka.h>. Start it with sc_stopper_start(); end it with
 * sc_stopper_end(), which is also the test's cmocka teardown, so a failed assert (which
 * leaves the test by longjmp) does not leave it stopping the next tests for ~30 s. */
#ifndef FIBERBENCH_TESTS_STOPPER_H
#define FIBERBENCH_TESTS_STOPPER_H

#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Told to end through shared memory: the parent cannot kill it safely, it may be about
 * to stop the parent. */
struct sc_shared { volatile int done; volatile int stops; };

static struct sc_shared *sc_sh;
static pid_t sc_pid = -1;

static struct sc_shared *sc_stopper_start(void)
{
    struct sc_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    sh->done = 0;
    sh->stops = 0;
    sc_sh = sh;
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid) {
        sc_pid = pid;
        return sh;
    }
    /* Ends with the test process (a crash, an exit after a failed assert): it would
     * otherwise go on signalling a pid that may name another process by then. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    unsigned seed = (unsigned)parent;
    for (int i = 0; i < 3000 && !sh->done && getppid() == parent; i++) { /* ~3000 * 20 ms */
        struct timespec gap = { 0, (long)(2 + rand_r(&seed) % 10) * 1000000L };
        struct timespec held = { 0, (long)(1 + rand_r(&seed) % 8) * 1000000L };
        syscall(SYS_nanosleep, &gap, NULL); /* the system call itself: never a hook's */
        if (sh->done)
            break;
        kill(parent, SIGSTOP);
        syscall(SYS_nanosleep, &held, NULL);
        kill(parent, SIGCONT);
        sh->stops++;
    }
    _exit(0);
}

static int sc_stopper_end(void **state)
{
    (void)state;
    if (sc_pid > 0) {
        sc_sh->done = 1;
        waitpid(sc_pid, NULL, 0);
        sc_pid = -1;
    }
    if (sc_sh) {
        munmap(sc_sh, sizeof *sc_sh);
        sc_sh = NULL;
    }
    return 0;
}

#endif
