#!/usr/bin/env bash
# Draws every figure: each plots/*.gp over the CSVs in INDIR, as SVG and PNG in OUTDIR.
#   plots/draw.sh [INDIR [OUTDIR]] [--only NAME[,NAME]]
# Defaults: results/ -> plots/ (make plots); make plots-published draws each
# published set results/published/<machine>/ -> plots/published/<machine>/. A figure
# whose CSVs (its "# needs:" line) are missing is skipped with a note; a gnuplot error
# fails the run (exit 1).
set -uo pipefail
cd "$(dirname "$0")/.."
in=""; out=""; only=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --only) [ $# -ge 2 ] || { echo "draw.sh: --only needs a name" >&2; exit 2; }; only=$2; shift ;;
    -*) echo "draw.sh: unknown flag '$1' (try --help)" >&2; exit 2 ;;
    *) if [ -z "$in" ]; then in=$1; elif [ -z "$out" ]; then out=$1; else
         echo "draw.sh: too many arguments (try --help)" >&2; exit 2; fi ;;
  esac
  shift
done
in=${in:-results}; out=${out:-plots}
command -v gnuplot >/dev/null || { echo "draw.sh: gnuplot is missing: scripts/deps.sh bench" >&2; exit 1; }
[ -d "$in" ] || { echo "draw.sh: no directory $in" >&2; exit 2; }
mkdir -p "$out"
drawn=0; skipped=0; failed=0
# The figures are independent: up to PLOT_JOBS (default: the CPUs) draw at once, each
# into a log of its own, printed in the figures' order once all are done. make bench
# draws after its last stage, when nothing is measured.
jobs_max=${PLOT_JOBS:-$(nproc 2>/dev/null || echo 1)}
[[ "$jobs_max" =~ ^[1-9][0-9]*$ ]] || jobs_max=1
logs=$(mktemp -d "${TMPDIR:-/tmp}/fiberbench-plots.XXXXXX")
trap 'rm -rf "$logs"' EXIT
draw_one() { # gp name: both formats; "ok" in $logs/name.rc when both drew
  local gp=$1 name=$2 fmt ok=1
  for fmt in svg png; do
    if ! gnuplot -e "dir='$in'; out='$out'; fmt='$fmt'" "$gp" 2>"$out/.$name.$fmt.log"; then
      echo "plots: gnuplot failed on $gp ($fmt):"; sed 's/^/  /' "$out/.$name.$fmt.log"; ok=0
    elif grep -q . "$out/.$name.$fmt.log"; then
      sed 's/^/  /' "$out/.$name.$fmt.log"
    fi
    rm -f "$out/.$name.$fmt.log"
  done
  if [ $ok -eq 1 ]; then echo "plots: $out/$name.svg $out/$name.png"; echo ok >"$logs/$name.rc"; fi
}
names=()
for gp in plots/*.gp; do
  name=$(basename "$gp" .gp)
  if [ -n "$only" ] && ! grep -qw "$name" <<<"${only//,/ }"; then continue; fi
  missing=""
  for need in $(sed -n 's/^# needs: //p' "$gp"); do
    [ -s "$in/$need" ] || missing="$missing $need"
  done
  if [ -n "$missing" ]; then
    echo "plots: skip $name (no$missing in $in/)" >&2; skipped=$((skipped + 1)); continue
  fi
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
  draw_one "$gp" "$name" >"$logs/$name.log" 2>&1 &
  names+=("$name")
done
wait
for name in "${names[@]}"; do
  cat "$logs/$name.log" >&2
  if [ -f "$logs/$name.rc" ]; then drawn=$((drawn + 1)); else failed=$((failed + 1)); fi
done
echo "plots: $drawn drawn, $skipped skipped, $failed failed (from $in/ into $out/)" >&2
[ $failed -eq 0 ]
