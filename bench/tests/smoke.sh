#!/bin/sh
# smoke.sh BINARY HARNESS DIR - runs one harness in --tiny mode into DIR and checks
# that DIR/HARNESS.csv has the schema header and at least one row with numbers, that
# the machine description is beside it, that --help works and a bad flag exits 2.
set -u
bin=$1 harness=$2 dir=$3
header='harness,case,model,impl,param,value,metric,unit,median,min,max,runs'
fail() { echo "smoke $harness: $*" >&2; exit 1; }

"$bin" --help >/dev/null || fail "--help failed"
"$bin" --no-such-flag >/dev/null 2>&1
[ $? -eq 2 ] || fail "a bad flag did not exit 2"

rm -rf "$dir"
"$bin" --tiny --out "$dir" || fail "run failed ($?)"
csv=$dir/$harness.csv
[ -s "$csv" ] || fail "no $csv"
[ "$(head -1 "$csv")" = "$header" ] || fail "bad header: $(head -1 "$csv")"
rows=$(tail -n +2 "$csv" | grep -c "^$harness,")
[ "$rows" -ge 1 ] || fail "no rows"
# Every row has 12 fields (no quoted commas are expected in these harnesses) and a
# numeric median.
bad=$(tail -n +2 "$csv" | awk -F, 'NF != 12 || $9 !~ /^-?[0-9.e+-]+$|^nan$|^inf$/' | head -3)
[ -z "$bad" ] || fail "malformed rows: $bad"
grep -q '^cpu: ' "$dir/$harness.machine.txt" || fail "no machine description"
echo "smoke $harness: $rows rows"
