# pairs.awk: the thread/fiber pairs of the post's protocol for one metric, grouped as
# the post's figure is read: published Ruby | Ruby here | C against each C thread model
# (baton, baton on one CPU, sched_yield on one CPU ... in the order of the CSV), so that
# no single thread model stands for "threads" (the verdicts in the panel titles name the
# models a claim holds against). Input: select.awk rows of one metric. Output:
# "group,thread,fiber" with a header. Where a C group has several fiber variants it keeps
# the slowest (highest time, or lowest rate when hib=1): a ratio is never flattered.
#   awk -F, -v hib=0 -f pairs.awk
function worse(a, b) { return hib ? a < b : a > b }
{
    model = $3; impl = $4; v = $9 + 0
    side = (model ~ /thread$/) ? "t" : (model ~ /fiber$/) ? "f" : ""
    if (side == "") next
    if (model ~ /^ruby/) {
        g = (impl ~ /^published/) ? "p" : "r"
        if (g == "r") rimpl = impl
        val[g, side] = v; seen[g] = 1
        next
    }
    if (side == "f") {
        if (!have_f || worse(v, cfib)) cfib = v
        have_f = 1
        next
    }
    if (!(impl in cidx)) { cidx[impl] = ++nc; cname[nc] = impl }
    cthr[cidx[impl]] = v
}
END {
    print "group,thread,fiber"
    for (k = 1; k <= 2; k++) {
        g = (k == 1) ? "p" : "r"
        if (!(g in seen)) continue
        if (g == "p") label = "Ruby 3.4 published"
        else { v = rimpl; sub(/^ruby-?/, "", v); label = "Ruby " v " here" }
        t = ((g, "t") in val) ? val[g, "t"] : "NaN"
        f = ((g, "f") in val) ? val[g, "f"] : "NaN"
        print label "," t "," f
    }
    for (i = 1; i <= nc; i++) {
        v = cname[i]; sub(/\/cpu=same/, "@1cpu", v)
        print "C: " v "," cthr[i] "," (have_f ? cfib : "NaN")
    }
}
