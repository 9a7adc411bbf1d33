# notes.awk: a note for each row of select.awk's output, from the companion metrics of
# the same case in the harness CSVs (read first): one run only, fewer conversations done
# or alive than asked for (a probe stopped by a limit), a load generator that was the
# ceiling, connections a pool never served. Peak-alive counts are noted on single-run
# probes only, below 95% of N (short conversations or spread arrivals overlap less by
# design). Output: the rows that have a note, with the note appended as column 17.
#   awk -f select.awk ... | awk -F, -v OFS=, -f notes.awk [-v runs=1] [-v gen=1] CSV... -
# runs=1: say "1 run" on single-run rows. gen=1: instead, only the rows whose load
# generator was the ceiling in at least one run (generator_bound_count > 0), as they are.
# all=1: every row, the note "-" where there is none, and the peak alive noted
# whatever the runs (a per-conversation figure taken over fewer than N alive).
FILENAME != "-" {
    if (FNR == 1) next
    m = $7; c = $1 SUBSEP $2
    if (m == "completed_count" || m == "live_units" || m == "generator_bound_count" || m == "unserved_conns_count")
        val[c, m] = (m == "generator_bound_count") ? $11 : $9   # its max: any run
    next
}
{
    c = $1 SUBSEP $2; n = $6 + 0; note = ""
    if (gen) { if (((c, "generator_bound_count") in val) && val[c, "generator_bound_count"] + 0 > 0) print; next }
    if (runs && $12 == 1) note = "1 run"
    if ((c, "completed_count") in val && n > 0 && val[c, "completed_count"] + 0 < n)
        note = note (note == "" ? "" : ", ") sprintf("%d/%d done", val[c, "completed_count"], n)
    else if ((all || $12 == 1) && ((c, "live_units") in val) && n > 0 && val[c, "live_units"] + 0 < 0.95 * n)
        note = note (note == "" ? "" : ", ") sprintf("%d/%d alive%s", val[c, "live_units"], n, all ? " at peak" : "")
    if (((c, "unserved_conns_count") in val) && val[c, "unserved_conns_count"] + 0 > 0)
        note = note (note == "" ? "" : ", ") sprintf("%d unserved", val[c, "unserved_conns_count"])
    if (note != "") print $0, note
    else if (all) print $0, "-"
}
