#!/bin/sh
# smoke.sh BINARY HARNESS DIR - runs one harness in --tiny mode into DIR and checks
# that DIR/HARNESS.csv has the schema header and rows of 12 fields with numbers, that
# the machine description is beside it (scripts/check_results.py when the tree has
# it), that --help works and that a bad flag exits 2.
set -u
bin=$1 harness=$2 dir=$3
top=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "smoke $harness: $*" >&2; exit 1; }

"$bin" --help >/dev/null || fail "--help failed"
"$bin" --no-such-flag >/dev/null 2>&1
[ $? -eq 2 ] || fail "a bad flag did not exit 2"

rm -rf "$dir"
"$bin" --tiny --out "$dir" || fail "run failed ($?)"
csv=$dir/$harness.csv
[ -s "$csv" ] || fail "no $csv"
python3 - "$csv" "$harness" <<'PY' || fail "bad CSV"
import csv, math, sys
path, harness = sys.argv[1], sys.argv[2]
rows = list(csv.reader(open(path)))
assert rows[0] == "harness,case,model,impl,param,value,metric,unit,median,min,max,runs".split(","), rows[0]
assert len(rows) > 1, "no rows"
for r in rows[1:]:
    assert len(r) == 12, r
    assert r[0] == harness, r
    lo, med, hi = (float(x) for x in r[8:11])
    assert all(math.isfinite(x) for x in (lo, med, hi)), r
    assert int(r[11]) >= 1, r
print("smoke %s: %d rows" % (harness, len(rows) - 1))
PY
grep -q '^cpu: ' "$dir/$harness.machine.txt" || fail "no machine description"
if [ -f "$top/scripts/check_results.py" ]; then
  python3 "$top/scripts/check_results.py" -q "$csv" || fail "check_results.py rejects $csv"
fi
