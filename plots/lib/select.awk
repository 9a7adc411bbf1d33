# select.awk: picks rows out of a tidy results CSV (results/README.md) for gnuplot.
#   awk -f select.awk -v where='model=fiber;metric=ns_per_op|ns_per_switch;case~^switch/' \
#       [-v uniq=model] [-v pivot=metric] results/switch.csv
# where: ';'-separated conditions on named columns: col=a|b (one of), col!=a|b (none of),
#        col~regex. Empty: every row.
# Output (default): the matching rows without the header, commas inside quoted fields
#        turned into ';' so gnuplot's comma separator holds, then two extra columns:
#        13 = series index of the model (fiber 1, thread 2, anything else 3+ in order
#        of appearance), 14 = the row's ordinal among the matches (for bar charts),
#        15 = the series: the case without its "<param>=<value>" component (or any
#        "<key>=<value>" component holding the swept value), so that
#        llm/fiber/n=100 and llm/fiber/n=1000 draw one line; 16 = the last component of
#        the case (the cause in scale/thread/limit=EAGAIN).
# uniq=COL: the distinct values of COL (or of "series"), in order of first appearance.
# pivot=COL: one line per case (or per value of rowkey=COL2): the row key, then the median for each distinct value of COL
#        (in order of first appearance, or as listed in cols=A,B; NaN where missing),
#        header line first.
function split_csv(line, out,    n, i, c, inq, f) {
    n = 0; f = ""; inq = 0
    for (i = 1; i <= length(line); i++) {
        c = substr(line, i, 1)
        if (c == "\"") { inq = !inq; continue }
        if (c == "," && !inq) { out[++n] = f; f = ""; continue }
        if (c == "," ) c = ";"
        f = f c
    }
    out[++n] = f
    return n
}
# True when component "key=v" carries the swept value itself (offered=50000 with
# param offered_events_per_s, value 50000).
function same_value(c, v,    p) {
    p = index(c, "=")
    return p > 0 && v != "" && substr(c, p + 1) + 0 == v + 0 && substr(c, p + 1) ~ /^[0-9.eE+-]+$/
}
function matches(f,    k, cond, op, col, rhs, p, alts, a, m, hit) {
    for (k = 1; k <= ncond; k++) {
        cond = conds[k]
        if ((p = index(cond, "!=")) > 0) { op = "!="; col = substr(cond, 1, p - 1); rhs = substr(cond, p + 2) }
        else if ((p = index(cond, "~")) > 0) { op = "~"; col = substr(cond, 1, p - 1); rhs = substr(cond, p + 1) }
        else if ((p = index(cond, "=")) > 0) { op = "="; col = substr(cond, 1, p - 1); rhs = substr(cond, p + 1) }
        else continue
        if (col == "series") fv = sr
        else if (col in idx) fv = f[idx[col]]
        else { print "select.awk: unknown column " col > "/dev/stderr"; exit 2 }
        if (op == "~") { if (fv !~ rhs) return 0; continue }
        m = split(rhs, alts, "|"); hit = 0
        for (a = 1; a <= m; a++) if (fv == alts[a]) hit = 1
        if ((op == "=" && !hit) || (op == "!=" && hit)) return 0
    }
    return 1
}
BEGIN { ncond = (where == "") ? 0 : split(where, conds, ";"); nser = 2 }
FNR == 1 { n = split_csv($0, hdr); for (i = 1; i <= n; i++) idx[hdr[i]] = i; next }
{
    sub(/\r$/, "")
    if ($0 == "") next
    n = split_csv($0, f)
    sr = f[idx["case"]]
    if (f[idx["param"]] != "") {
        nc = split(sr, comp, "/"); sr = ""
        for (i = 1; i <= nc; i++)
            if (index(comp[i], f[idx["param"]] "=") != 1 && !same_value(comp[i], f[idx["value"]]))
                sr = sr (sr == "" ? "" : "/") comp[i]
    }
    if (!matches(f)) next
    if (uniq != "") { v = (uniq == "series") ? sr : f[idx[uniq]]; if (!(v in seenu)) { seenu[v] = 1; print v }; next }
    if (pivot != "") {
        c = f[idx[(rowkey != "") ? rowkey : "case"]]; v = f[idx[pivot]]
        if (!(c in seenc)) { seenc[c] = 1; cases[++ncases] = c }
        if (!(v in seenv)) { seenv[v] = 1; vals[++nvals] = v }
        cell[c, v] = f[idx["median"]]
        next
    }
    mdl = f[idx["model"]]
    if (mdl == "fiber") s = 1; else if (mdl == "thread") s = 2
    else { if (!(mdl in ser)) ser[mdl] = ++nser; s = ser[mdl] }
    line = f[1]; for (i = 2; i <= 12; i++) line = line "," f[i]
    nc = split(f[idx["case"]], comp, "/")
    print line "," s "," (++ord) "," sr "," comp[nc]
}
END {
    if (pivot != "" && cols != "") nvals = split(cols, vals, ",")
    if (pivot != "" && ncases > 0) {
        line = (rowkey != "") ? rowkey : "case"; for (j = 1; j <= nvals; j++) line = line "," vals[j]; print line
        for (i = 1; i <= ncases; i++) {
            line = cases[i]
            for (j = 1; j <= nvals; j++) line = line "," (((cases[i], vals[j]) in cell) ? cell[cases[i], vals[j]] : "NaN")
            print line
        }
    }
}
