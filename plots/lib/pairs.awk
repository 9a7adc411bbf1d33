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
    keep(g, side, v, impl)
    if (model ~ /^ruby/) rimpl = (g == "2") ? impl : rimpl
    # Group 4: C against the GVL-like baton threads, the C model of the Ruby threads the
    # post measured (scripts/reproduce.py judges the claims there); group 3 stays the
    # cheapest C thread.
    if (g == "3" && (side == "f" || impl ~ /^baton/)) keep("4", side, v, impl)
}
function keep(g, side, v, impl) {
    if (!((g, side) in best) || better(v, best[g, side])) { best[g, side] = v; name[g, side] = impl }
    n[g, side]++; seen[g] = 1
}
END {
    print "group,thread,fiber"
    split("1 2 4 3", order, " ")
    for (k = 1; k <= 4; k++) {
        g = order[k]
        if (!(g in seen)) continue
        if (g == 4 && !((4, "t") in best)) continue
        # Short labels: three groups share a third of the picture.
        if (g == 1) label = "Ruby 3.4 published"
        else if (g == 2) { v = rimpl; sub(/^ruby-?/, "", v); label = "Ruby " v " here" }
        else if (g == 4) label = "C: GVL-like baton"
        else { v = name[g, "t"]; sub(/\/cpu=same/, "@1cpu", v); label = "C" (n[g, "t"] > 1 ? ": " v : "") }
        t = ((g, "t") in best) ? best[g, "t"] : "NaN"
        f = ((g, "f") in best) ? best[g, "f"] : "NaN"
        print label "," t "," f
    }
}
