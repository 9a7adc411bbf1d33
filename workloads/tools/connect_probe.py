#!/usr/bin/env python3
"""connect_probe.py - the cost of one connect() against the connections already open from
one source address to one loopback destination (Linux's ephemeral port choice).

    connect_probe.py N [--sources-per BLOCK] [--blocking]

A child process listens on 127.0.0.1 and accepts (and holds) every connection; the parent
opens N connections, timing each connect() call alone (non-blocking by default: the call
returns once the port is chosen and the SYN sent, so its time is the port search), and
prints, per 1,000 connections, the median and max time of a connect() in microseconds.
--sources-per BLOCK binds each BLOCK connections to their own 127.0.0.x source
(IP_BIND_ADDRESS_NO_PORT), as wl_dial does. Everything is closed with a reset (no
TIME_WAIT). Keep N under the open-file limit (each process holds N descriptors).
"""
import argparse
import os
import resource
import socket
import statistics
import sys
import time

IP_BIND_ADDRESS_NO_PORT = 24


def count(text):
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Usage errors exit 2.")
    ap.add_argument("n", type=count, metavar="N", help="connections to open")
    ap.add_argument("--sources-per", type=count, default=0, metavar="BLOCK",
                    help="bind each BLOCK connections to their own 127.0.0.x source")
    ap.add_argument("--blocking", action="store_true", help="time blocking connect() calls")
    a = ap.parse_args()
    n, per, blocking = a.n, a.sources_per, a.blocking
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if per and (n - 1) // per + 1 > 254:
        ap.error(f"N={n} in blocks of {per} needs {(n - 1) // per + 1} sources: 254 at most "
                 "(127.0.0.1-127.0.0.254)")
    if n + 100 > hard:
        ap.error(f"N={n} is over the open-file limit {hard} (less 100 for the rest)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4096)
    port = ls.getsockname()[1]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the server: accept and hold until the parent says stop
        os.close(w)
        held = []
        ls.setblocking(False)
        import select
        while True:
            rd, _, _ = select.select([ls, r], [], [])
            if r in rd:
                os._exit(0)
            try:
                while True:
                    held.append(ls.accept()[0])
            except BlockingIOError:
                pass
    os.close(r)
    ls.close()
    socks, times = [], []
    lg = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, lg)
        if per and i >= per:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((f"127.0.0.{1 + i // per}", 0))
        s.setblocking(blocking)
        t0 = time.perf_counter_ns()
        e = s.connect_ex(("127.0.0.1", port))
        t1 = time.perf_counter_ns()
        if e not in (0, 115):  # EINPROGRESS
            print(f"connect {i}: errno {e}", file=sys.stderr)
            s.close()
            break
        socks.append(s)
        times.append((t1 - t0) / 1000)
    os.write(w, b"x")
    os.waitpid(pid, 0)
    for s in socks:
        s.close()
    print(f"# {len(times)} connects, {'blocking' if blocking else 'non-blocking'}, "
          f"sources per {per or 'none'}; us per connect() by 1,000 open")
    print("open_from open_to median_us max_us sum_ms")
    for b in range(0, len(times), 1000):
        c = times[b:b + 1000]
        print(f"{b} {b + len(c)} {statistics.median(c):.1f} {max(c):.0f} {sum(c) / 1000:.1f}")
    print(f"total_ms {sum(times) / 1000:.0f}  past_14000_ms {sum(times[14000:]) / 1000:.0f}")


if __name__ == "__main__":
    main()
