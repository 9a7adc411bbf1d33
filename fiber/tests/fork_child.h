/*
 * fork_child.h - for the runtime's tests that must watch a process die (an abort on
 * misuse, a guard page hit) or keep a process-wide change away from the other tests:
 * run the code in a forked child and read what it wrote on stderr. Include after
 * <cmocka.h>.
 */
#ifndef FIBER_TESTS_FORK_CHILD_H
#define FIBER_TESTS_FORK_CHILD_H

#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs child() in a forked process with its stderr going to buf (at most cap - 1 bytes
 * kept, NUL-terminated); a child() that returns exits 0. Returns the child's wait
 * status. */
static int fork_child(void (*child)(void), char *buf, size_t cap)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL); /* or the child flushes the parent's buffered output again */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        child();
        _exit(0);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t n;
    while (got < cap - 1 && (n = read(p[0], buf + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = 0;
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

#endif
