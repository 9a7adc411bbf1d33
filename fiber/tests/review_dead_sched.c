/* Review finding: a fiber_sched_t outlives nothing. When its thread exits, remote.c
 * frees the face (inbox and eventfd) while every other thread that was handed it may
 * still post: fiber_sched_post()/fiber_spawn_on()/..._on() then return 0 ("queued")
 * for a message that will never run, after a compare-and-swap on freed memory (glibc's
 * tcache link lives there) and possibly an 8-byte write() into whatever file now has
 * the closed eventfd's number. fiber.h calls it undefined, but the poster cannot know:
 * there is no way to learn that the thread is leaving, nor to hold the face alive. A
 * worker pool whose threads come and go (or a server shutting down) meets this race.
 * Expected: a post to a scheduler whose thread has exited fails with an error (EPIPE, say)
 * and frees its message - the face kept as a small tombstone marked closed (or
 * reference-counted), its eventfd closed only once no poster can still write it.
 * Runs in a forked child: the use-after-free must not corrupt the test runner. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fiber.h"

static void never(void *arg) { (void)arg; }

static void *worker(void *arg)
{
    *(fiber_sched_t **)arg = fiber_sched_self(); /* hands its scheduler out, then leaves */
    return NULL;
}

static void test_post_to_exited_thread_fails(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fiber_sched_t *s = NULL;
        pthread_t t;
        if (pthread_create(&t, NULL, worker, &s) != 0 || pthread_join(t, NULL) != 0 || !s)
            _exit(5);
        errno = 0;
        int r = fiber_sched_post(s, never, NULL);
        _exit(r == -1 ? 0 : r == 0 ? 3 : 4);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("posting to a scheduler whose thread had exited crashed (signal %d)",
                 WTERMSIG(status));
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 3)
        fail_msg("fiber_sched_post() to a scheduler whose thread had exited returned 0: "
                 "the message is lost and the freed face was written");
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_to_exited_thread_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
