#!/usr/bin/env python3
"""Prints the README's result tables (markdown) from a results directory.

    plots/tables.py [DIR]        (default: the README's set, results/published/shown.txt)

Reads only DIR/*.csv (results/README.md schema); prints one table per harness that is
present, each figure as median (min-max over runs). scripts/gen_readme.py puts these
into the READMEs between markers, so every published number can be traced to a row.
Python 3 standard library only.
"""
import argparse
import csv
import os
import sys


def load(d, h):
    p = os.path.join(d, h + ".csv")
    if not os.path.isfile(p):
        return []
    with open(p, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def num(x):
    x = float(x)
    if x == 0:
        return "0"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.3g}M"
    if abs(x) >= 1e4:
        return f"{x / 1e3:.3g}k"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def ns(x):
    x = float(x)
    if x >= 1e6:
        return f"{x / 1e6:.3g} ms"
    if x >= 1e3:
        return f"{x / 1e3:.3g} µs"
    return f"{x:.3g} ns"


def kib(x):
    return f"{float(x) / 1024:.1f} KiB"


def mib(x):
    return f"{float(x) / 1048576:.1f} MiB"


def cell(r, f=num):
    if r is None:
        return "-"
    if int(r["runs"]) == 1 or r["min"] == r["max"]:
        return f(r["median"])
    return f"{f(r['median'])} ({f(r['min'])}-{f(r['max'])})"


def short(case):
    return case.split("/", 1)[1] if "/" in case else case


def table(head, rows):
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()


def by(rows, **kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]


def one(rows, **kw):
    hits = by(rows, **kw)
    return hits[0] if hits else None


def switch(d):
    rows = sorted(by(load(d, "switch"), metric="ns_per_switch"), key=lambda r: float(r["median"]))
    if rows:
        print("### One context switch (`switch.csv`, ns per one-way switch)\n")
        table(["case", "median (min-max)"], [[f"`{short(r['case'])}`", cell(r, ns)] for r in rows])


def alloc(d):
    rows = sorted(by(load(d, "alloc"), metric="ns_per_create"), key=lambda r: float(r["median"]))
    if rows:
        print("### Creating one unit (`alloc.csv`, create + run + join)\n")
        table(["case", "median (min-max)"], [[f"`{short(r['case'])}`", cell(r, ns)] for r in rows])


def memory(d):
    rows = load(d, "memory")
    cases = []
    for r in by(rows, metric="bytes_per_unit"):
        cases.append(r)
    if cases:
        print("### Memory per live unit (`memory.csv`)\n")
        out = []
        for r in cases:
            k = dict(case=r["case"])
            out.append([f"`{short(r['case'])}`",
                        cell(one(rows, metric="user_bytes_per_unit", **k), kib),
                        cell(one(rows, metric="kernel_bytes_per_unit", **k), kib),
                        cell(r, kib)])
        table(["case", "user (RSS)", "kernel", "total"], out)


def scale(d):
    rows = load(d, "scale")
    lim = by(rows, metric="limit_units") + by(rows, metric="live_units")
    if lim:
        print("### How far each kind of unit goes (`scale.csv`)\n")
        out = []
        for r in lim:
            what = "stopped by a limit" if r["metric"] == "limit_units" else "reached (cap)"
            out.append([f"`{short(r['case'])}`", num(r["median"]), what])
        table(["case", "live units", ""], out)


def seed(d):
    rows = load(d, "seed")
    if not rows:
        return
    print("### The post's protocol (`seed.csv`, thread / fiber = how many times cheaper fibers are)\n")
    models = []
    for r in rows:
        if r["model"] == "thread" and r["impl"] not in models:
            models.append(r["impl"])
    groups = [("Ruby 3.4 published", "ruby-thread", "ruby-fiber", lambda i: i.startswith("published")),
              ("Ruby here", "ruby-thread", "ruby-fiber", lambda i: not i.startswith("published"))]
    groups += [(f"C, `{m}` threads", "thread", "fiber", (lambda m: lambda i: i in (m, "scheduler"))(m))
               for m in models]
    out = []
    for metric, label, higher in (("us_per_unit", "create, µs per unit", False),
                                  ("us_per_switch", "switch, µs per switch", False),
                                  ("units_per_s", "throughput, units/s (10th repeat)", True)):
        line = [label]
        for _, mt, mf, impl_ok in groups:
            t = [r for r in rows if r["metric"] == metric and r["model"] == mt and impl_ok(r["impl"])]
            f = [r for r in rows if r["metric"] == metric and r["model"] == mf and impl_ok(r["impl"])]
            if not t or not f:
                line.append("-")
                continue
            t, f = t[0], f[0]
            ratio = (float(f["median"]) / float(t["median"]) if higher
                     else float(t["median"]) / float(f["median"]))
            line.append(f"{num(t['median'])} / {num(f['median'])} = **{ratio:.0f}x**")
        out.append(line)
    table(["measure"] + [g[0] for g in groups], out)


def mockllm(d):
    rows = load(d, "mockllm")
    if not rows:
        return
    print("### mock-llm (`mockllm.csv`)\n")
    out = []
    for r in rows:
        if r["metric"] in ("max_events_per_s", "open_streams", "failed_streams", "rss_per_stream",
                           "requests_per_s", "cpu_percent", "lateness_p99", "ratio",
                           "cpu_per_event_us", "accept_to_request_us") or (
                r["metric"] == "events_per_s" and "max-rate" in r["case"]):
            out.append([f"`{r['case']}`", r["metric"], cell(r) + " " + r["unit"]])
    table(["case", "metric", "median (min-max)"], out)


def throughput(d):
    allr = load(d, "throughput")
    # open-loop cases (wl-load) carry their offered rate; they get a table of their own
    openc = {r["case"] for r in allr if r["metric"] == "offered_req_per_s"}
    rows = [r for r in by(allr, metric="req_per_s") if r["case"] not in openc]
    if not rows:
        return
    print("### HTTP over loopback (`throughput.csv`, req/s; p99 ms)\n")
    # columns that older sets do not have appear only when the set has them
    has_cpu = any(r["metric"] == "cpu_per_req_us" for r in allr)
    has_gen = any(r["metric"] == "generator_cpu_percent" for r in allr)

    def gen(case):
        g = one(allr, case=case, metric="generator_cpu_percent")
        b = one(allr, case=case, metric="generator_bound_count")
        if b is None or float(b["max"]) <= 0:
            return cell(g)
        # a 0/1 flag per run: min 1 = every run, median 1 = most, max 1 = some
        how = ("every run" if float(b["min"]) > 0 else "most runs" if float(b["median"]) >= 0.5
               else "some runs")
        return cell(g) + f" **generator-bound** ({how})"
    out = []
    for r in rows:
        p99 = one(allr, case=r["case"], metric="p99_ms")
        err = one(allr, case=r["case"], metric="errors")
        line = [f"`{short(r['case'])}`", cell(r), cell(p99), cell(err)]
        if has_cpu:
            line.append(cell(one(allr, case=r["case"], metric="cpu_per_req_us")))
        if has_gen:
            line.append(gen(r["case"]))
        out.append(line)
    table(["case", "req/s", "p99 ms", "errors"] + (["server CPU µs / request"] if has_cpu else [])
          + (["load generator CPU %"] if has_gen else []), out)
    if openc:
        print("Open loop (`wl-load`: constant arrival rate; p50/p99 from each request's due "
              "time, service p99 from its actual send, as a closed-loop tool measures):\n")
        out = []
        for r in allr:
            if r["case"] in openc and r["metric"] == "offered_req_per_s":
                k = dict(case=r["case"])
                out.append([f"`{short(r['case'])}`", cell(r),
                            cell(one(allr, metric="req_per_s", **k)),
                            cell(one(allr, metric="p50_ms", **k)),
                            cell(one(allr, metric="p99_ms", **k)),
                            cell(one(allr, metric="service_p99_ms", **k)),
                            cell(one(allr, metric="incomplete_count", **k)),
                            cell(one(allr, metric="cpu_per_req_us", **k)), gen(r["case"])])
        table(["case", "offered req/s", "answered req/s", "p50 ms", "p99 ms", "service p99 ms",
               "never answered", "server CPU µs / request", "load generator CPU %"], out)


def llm(d):
    rows = load(d, "llm")
    hw = [r for r in rows if r["metric"] == "vm_hwm_bytes" and r["case"].startswith("llm/")]
    if not hw:
        return
    print("### Streaming LLM conversations (`llm.csv`, client side)\n")
    out = []
    for r in hw:
        k = dict(case=r["case"])
        out.append([f"`{short(r['case'])}`", cell(r, mib),
                    cell(one(rows, metric="ttft_p50_ms", **k)),
                    cell(one(rows, metric="ttft_p99_ms", **k)),
                    cell(one(rows, metric="tokens_per_s", **k)),
                    cell(one(rows, metric="cpu_per_1k_tokens_ms", **k)),
                    cell(one(rows, metric="errors", **k))])
    table(["case", "peak RSS", "TTFT p50 ms", "TTFT p99 ms", "tokens/s", "CPU ms / 1k tokens",
           "errors"], out)
    mg = [r for r in rows if r["metric"] == "cpu_per_1k_tokens_marginal_ms"]
    if mg:
        print("Marginal client CPU per 1,000 tokens (the difference between two conversation "
              "lengths on the same draws: connection setup and unit creation excluded):\n")
        out = []
        for r in mg:
            n = r["value"]
            lbl = r["case"].split("/")[2]
            q = one(rows, case=f"llm/ratio/thread-over-fiber/{lbl}/n={n}/cpu-per-token-marginal",
                    metric="ratio")
            out.append([f"`{short(r['case'])}`", cell(r), cell(q) + "x" if q and
                        r["impl"] == "thread" else ""])
        table(["case", "CPU ms / 1k tokens", "thread / fiber"], out)
    st = [r for r in rows if r["case"].startswith("starve/") and r["metric"] == "ttft_p99_ms"]
    if st:
        print("Slot starvation (pool of 25 workers):\n")
        table(["case", "first-token p99 ms"], [[f"`{short(r['case'])}`", cell(r)] for r in st])
    lim = [r for r in rows if r["metric"] == "limit_units"]
    for r in lim:
        print(f"Limit: `{r['case']}` at {num(r['median'])} conversations.\n")


def llm_tls(d):
    rows = load(d, "llm")
    tls = [r for r in rows if r["metric"] == "client_hwm_per_conv_bytes" and
           r["case"].startswith("llm-tls/")]
    if tls:
        print("HTTPS against plain HTTP (stage `tls`, client per conversation):\n")
        out = []
        for r in tls:
            k = dict(case=r["case"])
            out.append([f"`{short(r['case'])}`", cell(r, kib),
                        cell(one(rows, metric="kernel_est_bytes", **k),
                             lambda x: kib(float(x) / float(r["value"]))),
                        cell(one(rows, metric="cpu_per_1k_tokens_ms", **k)),
                        cell(one(rows, metric="server_rss_per_open_stream_bytes", **k), kib),
                        cell(one(rows, metric="errors", **k))])
        table(["case", "peak RSS / conv", "kernel / conv", "CPU ms / 1k tokens",
               "mock-llm RSS / stream", "errors"], out)
        cost = [r for r in rows if r["case"].startswith("llm-tls/") and
                r["metric"] in ("client_tls_bytes_per_conv_bytes", "server_tls_bytes_per_stream_bytes")]
        if cost:
            print("What TLS (OpenSSL) costs per connection, HTTPS minus HTTP of the same round:\n")
            table(["case", "metric", "median (min-max)"],
                  [[f"`{short(r['case'])}`", r["metric"], cell(r, kib)] for r in cost])


def main(argv=None):
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description="Print the README's markdown tables from results CSVs.")
    sys.path.insert(0, os.path.join(top, "scripts"))
    import resultsets
    ap.add_argument("dir", nargs="?", default=resultsets.shown_set())
    a = ap.parse_args(argv)
    if not a.dir or not os.path.isdir(a.dir):
        print(f"tables: no directory {a.dir}", file=sys.stderr)
        return 2
    for f in (seed, switch, alloc, memory, scale, mockllm, throughput, llm, llm_tls):
        f(a.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
