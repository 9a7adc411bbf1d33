#!/usr/bin/env python3
"""stopcont.py - run a command while stopping and continuing it (SIGSTOP/SIGCONT) at random.

usage: scripts/stopcont.py [options] -- CMD [ARG...]

Runs CMD and, until it exits, repeatedly SIGSTOPs it and every descendant (e.g. a test's
mock-llm server), waits, and SIGCONTs them, as a tool that freezes processes for a quiet
benchmark window does. No handler runs for either signal, so a correct
program sees nothing but lost time - yet Linux makes some blocking calls fail with EINTR
after such a stop (signal(7): epoll_wait, sockets with SO_RCVTIMEO/SO_SNDTIMEO, semop,
sigtimedwait, ...). A test that passes plainly and fails under this driver either calls
one of those without retrying, or the code under it turns such an EINTR into an error.

options:
  --every MIN,MAX   milliseconds between the end of one stop and the next (default 50,200)
  --stop MIN,MAX    milliseconds each stop lasts (default 20,500)
  --timeout S       kill CMD (SIGKILL, with its descendants) after S seconds (default 300)
  --seed N          seed of the random intervals (default: the time), printed at the end
  --quiet           no summary line on stderr

Exit status: CMD's (128+signal if a signal ended it, 124 at the timeout), 2 on a usage error.
Loopback only in spirit: it sends signals, nothing else; it never stops its own process.
"""
import os, random, signal, subprocess, sys, time


def usage(msg):
    sys.stderr.write(f"stopcont.py: {msg}\n(see scripts/stopcont.py --help)\n")
    sys.exit(2)


def pair(s, name):
    try:
        a, b = (float(x) for x in s.split(','))
    except ValueError:
        usage(f"{name} wants MIN,MAX in milliseconds, not '{s}'")
    if not (0 <= a <= b < float('inf')):
        usage(f"{name}: need 0 <= MIN <= MAX, got '{s}'")
    return a / 1000.0, b / 1000.0


def descendants(root):
    """root and every process below it (from /proc, one scan)."""
    kids = {}
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                s = f.read()
            kids.setdefault(int(s[s.rfind(')') + 2:].split()[1]), []).append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def signal_all(pids, sig):
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass


def main():
    argv = sys.argv[1:]
    if argv and argv[0] in ('-h', '--help'):
        sys.stdout.write(__doc__)
        return 0
    if '--' not in argv:
        usage("missing '-- CMD'")
    i = argv.index('--')
    opts, cmd = argv[:i], argv[i + 1:]
    if not cmd:
        usage("no command after '--'")
    every, stop, timeout, seed, quiet = (0.05, 0.2), (0.02, 0.5), 300.0, None, False
    k = 0
    while k < len(opts):
        o = opts[k]
        if o == '--quiet':
            quiet = True
            k += 1
            continue
        if o not in ('--every', '--stop', '--timeout', '--seed'):
            usage(f"unknown option '{o}'")
        if k + 1 >= len(opts):
            usage(f"{o} wants a value")
        v = opts[k + 1]
        k += 2
        if o == '--every':
            every = pair(v, o)
        elif o == '--stop':
            stop = pair(v, o)
        elif o == '--timeout':
            try:
                timeout = float(v)
            except ValueError:
                usage(f"--timeout wants seconds, not '{v}'")
            if not 0 < timeout < float('inf'):
                usage("--timeout must be a positive number of seconds")
        else:
            try:
                seed = int(v)
            except ValueError:
                usage(f"--seed wants an integer, not '{v}'")
    if seed is None:
        seed = int(time.time() * 1000) % 1000000
    rnd = random.Random(seed)
    try:
        pr = subprocess.Popen(cmd)
    except OSError as e:
        sys.stderr.write(f"stopcont.py: cannot run {cmd[0]}: {e}\n")
        return 127
    # ended by SIGTERM/SIGHUP (ctest's timeout, a shell): continue what we stopped first
    for sg in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sg, lambda n, f: sys.exit(128 + n))
    t0 = time.monotonic()
    stops, stopped_s, timed_out = 0, 0.0, False
    rc = None
    pids = []  # the last set stopped: continued again at the end whatever happens
    try:
        while rc is None:
            end = time.monotonic() + rnd.uniform(*every)
            while rc is None and time.monotonic() < end:
                time.sleep(0.005)
                rc = pr.poll()
            if rc is not None:
                break
            if time.monotonic() - t0 > timeout:
                timed_out = True
                signal_all(descendants(pr.pid), signal.SIGKILL)
                rc = pr.wait()
                break
            pids = descendants(pr.pid)
            signal_all(pids, signal.SIGSTOP)
            d = rnd.uniform(*stop)
            time.sleep(d)
            # the command may have forked while being stopped (a fork in flight): continue
            # everything under it now, not only what was stopped
            signal_all(set(pids) | set(descendants(pr.pid)), signal.SIGCONT)
            stops += 1
            stopped_s += d
            rc = pr.poll()
    finally:
        if rc is None:  # interrupted: leave nothing stopped behind (what was stopped
            # last too: a process reparented away from the tree meanwhile)
            signal_all(set(pids) | set(descendants(pr.pid)), signal.SIGCONT)
    if not quiet:
        sys.stderr.write(f"stopcont.py: {stops} stops ({stopped_s:.1f} s stopped) in "
                         f"{time.monotonic() - t0:.1f} s, seed {seed}, exit "
                         f"{'timeout' if timed_out else rc}\n")
    if timed_out:
        return 124
    return rc if rc >= 0 else 128 - rc


if __name__ == '__main__':
    sys.exit(main())
