#!/usr/bin/env python3
"""Prints the three-state verdict of one of the post's claims for a results directory
(scripts/reproduce.py's rule), for the seed figure's panel titles.

    plots/lib/verdict.py DIR METRIC     METRIC: us_per_unit | us_per_switch | units_per_s
"""
import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "scripts"))
import reproduce  # noqa: E402

if len(sys.argv) != 3:
    print(__doc__, file=sys.stderr)
    sys.exit(2)
spec = next((c for c in reproduce.CLAIMS if c["metric"] == sys.argv[2]), None)
if spec is None:
    print(f"verdict.py: no claim on {sys.argv[2]}", file=sys.stderr)
    sys.exit(2)
v = reproduce.verdict(reproduce.claim_ratios(sys.argv[1], spec), spec["claim"])
r = reproduce.claim_ratios(sys.argv[1], spec, ruby=True).get("Ruby threads")
ruby = "" if r is None else f"; Ruby here: {'holds' if r >= spec['claim'] else 'does not hold'}"
print(f">= {spec['claim']:g}x: in C {v}{ruby}")
