#!/usr/bin/env python3
"""analyze.py - reads run.sh's lines (stdin) and tests the 4K-aliasing hypothesis.

Per process: ns (median batch), the calibration's adds/ns, and the addresses mod 4096.
Prints the distribution, how much of ns the calibration explains (a least-squares line),
and the residual ns grouped by where the joiner's saved frame sits against the record
(mod 4096): if aliasing made the slow level, one group would carry it after the
calibration is taken out.
"""
import re
import statistics as st
import sys

rows = []
for line in sys.stdin:
    m = re.match(r"(\S+)\s+([\d.]+) ([\d.]+) adds_per_ns=([\d.]+) ghz=([\d.]+) cpu=(\d+) (.*)", line)
    if not m:
        continue
    kv = dict(p.split("=") for p in m.group(7).split())
    rows.append(dict(kind=m.group(1), ns=float(m.group(2)), ns_min=float(m.group(3)),
                     adds=float(m.group(4)), ghz=float(m.group(5)), cpu=int(m.group(6)),
                     **{k: int(v) for k, v in kv.items()}))
if len(rows) < 3:
    sys.exit("analyze.py: too few lines")
ns = [r["ns"] for r in rows]
adds = [r["adds"] for r in rows]


def dist(v):
    return "median %.2f (min %.2f, max %.2f)" % (st.median(v), min(v), max(v))


print("processes %d; ns/iteration %s; slow (>12 ns) %d of %d" %
      (len(rows), dist(ns), sum(x > 12 for x in ns), len(ns)))
print("calibration adds/ns %s; clock GHz %s" % (dist(adds), dist([r["ghz"] for r in rows])))
print("pearson(ns, adds/ns) = %.3f; pearson(ns, GHz) = %.3f" %
      (st.correlation(ns, adds), st.correlation(ns, [r["ghz"] for r in rows])))
slope, icpt = st.linear_regression(adds, ns)
res = [n - (slope * a + icpt) for n, a in zip(ns, adds)]
var_all = st.pvariance(ns)
print("ns = %.2f %+.2f * adds/ns explains %.0f%% of the variance; residual sd %.2f ns" %
      (icpt, slope, 100 * (1 - st.pvariance(res) / var_all), st.pstdev(res)))
for lo, hi, name in ((0, 9.0, "core slow (<9 adds/ns)"), (9.0, 99, "core fast (>=9 adds/ns)")):
    g = [r["ns"] for r in rows if lo <= r["adds"] < hi]
    if g:
        print("  %-24s n=%2d ns %s" % (name, len(g), dist(g)))
print("residual ns by (save - rec) mod 4096, the joiner's saved frame against the record:")
for lo in range(0, 4096, 512):
    g = [e for r, e in zip(rows, res) if lo <= (r["save"] - r["rec"]) % 4096 < lo + 512]
    if g:
        print("  %4d-%4d n=%2d mean %+.2f ns" % (lo, lo + 511, len(g), st.mean(g)))
near = [e for r, e in zip(rows, res) if min((r["save"] - r["rec"]) % 4096,
                                            (r["rec"] - r["save"]) % 4096) < 128]
far = [e for r, e in zip(rows, res) if min((r["save"] - r["rec"]) % 4096,
                                           (r["rec"] - r["save"]) % 4096) >= 128]
if near and far:
    print("  within 128 B of the record mod 4096: n=%d mean %+.2f; farther: n=%d mean %+.2f" %
          (len(near), st.mean(near), len(far), st.mean(far)))
