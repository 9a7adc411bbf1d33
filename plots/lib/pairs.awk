# pairs.awk: the thread/fiber pairs of the post's protocol for one metric, grouped as
# the post's figure is read: published Ruby | Ruby here | C. Input: select.awk rows of
# one metric. Output: "group,thread,fiber" with a header; where a group has several
# thread (or fiber) variants it keeps the best one (lowest time, or highest rate when
# hib=1) and names it in the group label, the same rule scripts/reproduce.py uses, so
# a ratio is never flattered by a slow variant.
#   awk -F, -v hib=0 -f pairs.awk
function better(a, b) { return hib ? a > b : a < b }
{
    model = $3; impl = $4; v = $9 + 0
    side = (model ~ /thread$/) ? "t" : (model ~ /fiber$/) ? "f" : ""
    if (side == "") next
    if (model ~ /^ruby/) g = (impl ~ /^published/) ? "1" : "2"; else g = "3"
    if (!((g, side) in best) || better(v, best[g, side])) { best[g, side] = v; name[g, side] = impl }
    n[g, side]++; seen[g] = 1; if (g == "2") rimpl = impl
}
END {
    print "group,thread,fiber"
    for (g = 1; g <= 3; g++) {
        if (!(g in seen)) continue
        # Short labels: three groups share a third of the picture.
        if (g == 1) label = "Ruby 3.4 published"
        else if (g == 2) { v = rimpl; sub(/^ruby-?/, "", v); label = "Ruby " v " here" }
        else { v = name[g, "t"]; sub(/\/cpu=same/, "@1cpu", v); label = "C" (n[g, "t"] > 1 ? ": " v : "") }
        t = ((g, "t") in best) ? best[g, "t"] : "NaN"
        f = ((g, "f") in best) ? best[g, "f"] : "NaN"
        print label "," t "," f
    }
}
