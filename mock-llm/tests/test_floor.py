#!/usr/bin/env python3
"""test_floor.py - the benchmark's floor (bench/mllm_floor.c): its schedule. One case per
ctest entry (mockllm_floor_<case>):

    test_floor.py PATH/TO/mllm-floor CASE

The deadlines are read from the floor's --trace output (each event's fd, deadline and
write start, CLOCK_MONOTONIC ns); what a case asserts is a schedule, never a speed.
"""
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True

FLOOR = None
REQ = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
       b"Content-Length: 17\r\n\r\n{\"stream\": true }")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


class Floor:
    def __init__(self, *args, trace=True):
        self.p = subprocess.Popen([FLOOR, "--listen", "127.0.0.1:0"] +
                                  (["--trace"] if trace else []) + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        if not m:
            self.p.kill()
            fail(f"mllm-floor did not start: {line!r} {self.p.stderr.read()!r}")
        self.port = int(m.group(1))

    def stop(self):
        """Stops it; returns its trace: [(fd, due_ns, start_ns)] in write order."""
        self.p.send_signal(signal.SIGCONT)
        self.p.send_signal(signal.SIGTERM)
        try:
            _, err = self.p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            _, err = self.p.communicate()
        return [tuple(int(x) for x in m) for m in
                re.findall(r"event fd=(\d+) due=(\d+) start=(\d+)", err)]


def read_events(socks, until):
    """Reads the streams until `until` (time.monotonic); returns their data events' count."""
    n = {s: 0 for s in socks}
    while time.monotonic() < until:
        for s in select.select(socks, [], [], 0.05)[0]:
            b = s.recv(65536)
            if not b:
                fail("the floor closed a stream")
            n[s] += b.count(b"data: {")
    return n


def check_deadline_order(trace):
    """Fails unless the trace's events were written in the order of their deadlines."""
    for (f0, d0, _), (f1, d1, _) in zip(trace, trace[1:]):
        if d1 < d0:
            fail(f"an event due {(d0 - d1) / 1e6:.1f} ms before the one written before it "
                 f"(fd {f1} after fd {f0}): written out of deadline order")


def case_arrival():
    """Each stream is timed from its own request's arrival, as mock-llm times it: two
    requests sent 100 ms apart while the floor is stopped (SIGSTOP) get first deadlines
    at their arrival (before the resume: the wait is the floor's lateness) and keep the
    100 ms between them, every event 1/tps after the stream's last. Before (one even
    sequence over the open streams, re-based as each opened): both first deadlines after
    the resume, and 500 ms apart at 2 x 1 events/s (k / (N x tps)), whenever the
    requests came."""
    fl = Floor("--tps", "1")
    socks = []
    try:
        socks = [socket.create_connection(("127.0.0.1", fl.port), timeout=10) for _ in range(2)]
        time.sleep(0.2)  # both accepted, waiting for their requests
        os.kill(fl.p.pid, signal.SIGSTOP)
        try:
            sent = []
            for s in socks:
                sent.append(time.monotonic_ns())
                s.sendall(REQ)
                time.sleep(0.1)
            time.sleep(0.1)
            resumed = time.monotonic_ns()
        finally:
            os.kill(fl.p.pid, signal.SIGCONT)
        got = read_events(socks, time.monotonic() + 1.6)
    finally:
        trace = fl.stop()
        for s in socks:
            s.close()
    by_fd = {}
    for fd, due, start in trace:
        by_fd.setdefault(fd, []).append(due)
    if len(by_fd) != 2 or any(len(v) < 2 for v in by_fd.values()):
        fail(f"want two streams with >= 2 events each in 1.6 s at 1 token/s, got {by_fd} "
             f"(read {list(got.values())})")
    first = sorted(by_fd.values(), key=lambda v: v[0])
    a, b = first
    gap = (b[0] - a[0]) / 1e6
    want = (sent[1] - sent[0]) / 1e6
    if not (a[0] < resumed and b[0] < resumed):
        fail(f"first deadlines {(a[0] - resumed) / 1e6:+.1f} and {(b[0] - resumed) / 1e6:+.1f} ms "
             "from the resume, want both before it (at the requests' arrival): the "
             "schedule started when the floor got to the requests")
    for v, s in zip((a, b), sent):
        if abs(v[0] - s) > 20e6:
            fail(f"a first deadline {(v[0] - s) / 1e6:+.1f} ms from its request's send, "
                 "want within 20 ms (its arrival)")
    if abs(gap - want) > 5:
        fail(f"first deadlines {gap:.1f} ms apart, want the {want:.1f} ms between the "
             "requests")
    for v in (a, b):
        steps = [y - x for x, y in zip(v, v[1:])]
        if any(st != 1000000000 for st in steps):
            fail(f"a stream's deadlines {steps} ns apart, want 1/tps = 1e9")
    print(f"ok: first deadlines {gap:.1f} ms apart (requests {want:.1f} ms), "
          f"{(resumed - a[0]) / 1e6:.0f} ms before the resume; every event 1 s after the last")


def case_behind():
    """A stream opened while the floor is behind (other streams' events due and not yet
    written) is written in deadline order with them, and stays so: every event's deadline
    at or after the one written before it. 70 streams open at 1 event/s, the floor is
    stopped past their next deadlines, one more request comes 300 ms after those, and the
    floor resumes: it writes 64 due events, looks for new requests, and finds the new
    stream with 6 events still due before its own. Before (a new stream's first event
    written at once, the stream joining the ring at its next deadline, past the others'
    by more than a period): its first event went ahead of those 6, and from then on every
    round of the ring came out of order (at 1,000 streams x 70 events/s, the floor behind
    during the requests: half the events out of order, p99 10 ms)."""
    fl = Floor("--tps", "1")
    socks = []
    try:
        socks = [socket.create_connection(("127.0.0.1", fl.port), timeout=10)
                 for _ in range(71)]
        t0 = time.monotonic()
        for s in socks[:70]:
            s.sendall(REQ)
        time.sleep(0.4)
        os.kill(fl.p.pid, signal.SIGSTOP)
        try:
            # the 70 streams' next events are due ~1 s after their requests
            time.sleep(max(0.0, t0 + 1.3 - time.monotonic()))
            socks[70].sendall(REQ)
            time.sleep(0.2)
        finally:
            os.kill(fl.p.pid, signal.SIGCONT)
        read_events(socks, time.monotonic() + 1.5)
    finally:
        trace = fl.stop()
        for s in socks:
            s.close()
    fds = {fd for fd, _, _ in trace}
    if len(fds) != 71 or len(trace) < 71 * 2:
        fail(f"want 71 streams and >= 142 events, got {len(fds)} and {len(trace)}")
    check_deadline_order(trace)
    print(f"ok: {len(trace)} events of 71 streams written in deadline order")


def case_late_parse():
    """A request the floor gets to more than a period after it arrived (the floor had no
    CPU: stopped 350 ms at 10 events/s), when the other stream has caught up, is written
    in deadline order with it from then on. Before (the new stream's next deadline put
    ahead of the other's, the stream then held the place after it in the ring for good):
    every one of its events was written after the other stream's, due 230 ms later.
    The events written before the floor read the request are not judged."""
    fl = Floor("--tps", "10")
    socks = []
    try:
        socks = [socket.create_connection(("127.0.0.1", fl.port), timeout=10)
                 for _ in range(2)]
        socks[0].sendall(REQ)
        time.sleep(0.25)
        os.kill(fl.p.pid, signal.SIGSTOP)
        try:
            time.sleep(0.02)
            socks[1].sendall(REQ)
            time.sleep(0.35)
        finally:
            os.kill(fl.p.pid, signal.SIGCONT)
        read_events(socks, time.monotonic() + 0.8)
    finally:
        trace = fl.stop()
        for s in socks:
            s.close()
    fds = {fd for fd, _, _ in trace}
    if len(fds) != 2 or len(trace) < 12:
        fail(f"want 2 streams and >= 12 events, got {len(fds)} and {len(trace)}")
    # The floor reads the request only after writing the first stream's due events (64
    # at most a turn): those precede the new stream's first, whatever their deadlines.
    # From the new stream's first event on, deadline order.
    seen = trace[trace.index(next(t for t in trace if t[0] != trace[0][0])):]
    check_deadline_order(seen)
    print(f"ok: {len(trace)} events of 2 streams written in deadline order")


def case_far_behind():
    """A stream opened while the floor is behind by more than a period (its deadline past
    the next due event's by more than 1/tps) waits while the others come round, in
    deadline order, as in case_behind: 70 streams at 10 events/s, the floor stopped
    500 ms, one more request 10 ms before the resume. Before (the stream joined last in
    the ring and the others, written, each went after it): its events written ahead of
    the others' due up to 400 ms before them, round after round."""
    fl = Floor("--tps", "10")
    socks = []
    try:
        socks = [socket.create_connection(("127.0.0.1", fl.port), timeout=10)
                 for _ in range(71)]
        for s in socks[:70]:
            s.sendall(REQ)
        time.sleep(0.25)
        os.kill(fl.p.pid, signal.SIGSTOP)
        try:
            time.sleep(0.49)
            socks[70].sendall(REQ)
            time.sleep(0.01)
        finally:
            os.kill(fl.p.pid, signal.SIGCONT)
        read_events(socks, time.monotonic() + 0.8)
    finally:
        trace = fl.stop()
        for s in socks:
            s.close()
    fds = {fd for fd, _, _ in trace}
    if len(fds) != 71 or len(trace) < 71 * 4:
        fail(f"want 71 streams and >= 284 events, got {len(fds)} and {len(trace)}")
    last = max(fds)  # the last connection accepted, the last request
    first = next(i for i, t in enumerate(trace) if t[0] == last)
    # The events written before the floor read the last request are not judged (it
    # writes 64 due events between looks at its sockets).
    seen = trace[max(0, first - 1):]
    check_deadline_order(seen)
    print(f"ok: {len(seen)} events of 71 streams written in deadline order")


def case_even():
    """--pacing even keeps the floor before 3 December: one sequence, event k at
    base + k / (streams x tps), whatever the requests' timing."""
    fl = Floor("--tps", "1", "--pacing", "even")
    socks = []
    try:
        socks = [socket.create_connection(("127.0.0.1", fl.port), timeout=10) for _ in range(2)]
        for s in socks:
            s.sendall(REQ)
            time.sleep(0.1)
        read_events(socks, time.monotonic() + 1.8)
    finally:
        trace = fl.stop()
        for s in socks:
            s.close()
    dues = [d for _, d, _ in trace]
    steps = [y - x for x, y in zip(dues, dues[1:])]
    if len(dues) < 3 or any(abs(st - 500000000) > 1000 for st in steps[1:]):
        fail(f"even pacing: deadlines {steps} ns apart, want 5e8 (1 / (2 x 1))")
    fds = [fd for fd, _, _ in trace]
    if any(x == y for x, y in zip(fds[1:], fds[2:])):
        fail(f"even pacing: streams written {fds}, want round-robin")
    print(f"ok: even pacing, deadlines {steps} ns apart, round-robin")


def case_flat_out():
    """--tps 0 (the capacity part's flat-out floor) writes round-robin over every stream,
    in either pacing. With arrival pacing a written stream's deadline stays its arrival
    (no period to add), and the deadline-order walk put it back first: one stream got
    every write, the walk over all the others at each (44,600 events/s at 10,000 streams
    against 110,000 the run before, 3 December)."""
    for pacing in ("arrival", "even"):
        fl = Floor("--tps", "0", "--pacing", pacing, trace=False)
        socks = []
        try:
            socks = [socket.create_connection(("127.0.0.1", fl.port), timeout=10)
                     for _ in range(4)]
            for s in socks:
                s.sendall(REQ)
                time.sleep(0.02)
            n = read_events(socks, time.monotonic() + 0.5)
        finally:
            fl.stop()
            for s in socks:
                s.close()
        counts = sorted(n.values())
        if counts[0] == 0 or counts[0] * 4 < counts[-1]:
            fail(f"--tps 0, {pacing} pacing: events per stream {counts}, want round-robin")
        print(f"ok: --tps 0, {pacing} pacing: events per stream {counts}")


def case_bad_pacing():
    """A bad --pacing is a clear error, exit 2."""
    r = subprocess.run([FLOOR, "--pacing", "heap"], capture_output=True, text=True, timeout=10)
    if r.returncode != 2 or "--pacing" not in r.stderr:
        fail(f"--pacing heap: exit {r.returncode}, {r.stderr!r}; want 2 and a message")
    print("ok: --pacing heap refused, exit 2")
    # a rate whose period passes 2^64 ns (1e9 / 1e-300 is infinite; converting it to an
    # integer is undefined behaviour): accepted before
    for tps in ("1e-300", "1e-9", "-1", "nan"):
        try:
            r = subprocess.run([FLOOR, "--listen", "127.0.0.1:0", "--tps", tps],
                               capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            fail(f"--tps {tps}: accepted (the floor ran)")
        if r.returncode != 2 or "--tps" not in r.stderr:
            fail(f"--tps {tps}: exit {r.returncode}, {r.stderr!r}; want 2 and a message")
    print("ok: --tps 1e-300, 1e-9, -1, nan refused, exit 2")


def main():
    global FLOOR
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    FLOOR = sys.argv[1]
    case = globals().get("case_" + sys.argv[2])
    if not case:
        print(f"unknown case {sys.argv[2]}")
        sys.exit(2)
    case()


if __name__ == "__main__":
    main()
