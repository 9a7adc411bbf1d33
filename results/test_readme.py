#!/usr/bin/env python3
"""Self-test of scripts/gen_readme.py: the tree's READMEs agree with the set they show
(the check make test relies on), and the check fails when a number inside a marked
section is edited by hand or when a CSV changes; bad markers are errors; a section whose
rows the set lacks says so instead of inventing them."""
import csv
import io
import os
import shutil
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "scripts"))
import gen_readme  # noqa: E402
import resultsets  # noqa: E402


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = gen_readme.main(list(argv))
    return code, out.getvalue() + err.getvalue()


class ReadmeTest(unittest.TestCase):
    def setUp(self):
        self.set = resultsets.shown_set()
        if self.set is None:
            self.skipTest("no published set")
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def copy_readme(self):
        p = os.path.join(self.tmp.name, "README.md")
        shutil.copy(os.path.join(TOP, "README.md"), p)
        return p

    def test_tree_is_in_sync(self):
        code, out = run("--check")
        self.assertEqual(code, 0, out)

    def test_hand_edited_number_fails(self):
        p = self.copy_readme()
        with open(p) as f:
            text = f.read()
        a = text.index("<!-- gen:headline -->")
        b = text.index("<!-- /gen -->", a)
        block = text[a:b]
        edited = block.replace("**", "**1", 1)
        self.assertNotEqual(block, edited)
        with open(p, "w") as f:
            f.write(text[:a] + edited + text[b:])
        code, out = run("--check", p)
        self.assertEqual(code, 1, out)
        self.assertIn("disagrees with", out)
        code, out = run(p)  # make readme puts it right
        self.assertEqual(code, 0, out)
        code, out = run("--check", p)
        self.assertEqual(code, 0, out)

    def test_changed_csv_fails(self):
        s = os.path.join(self.tmp.name, "published", os.path.basename(self.set))
        shutil.copytree(self.set, s)
        p = os.path.join(s, "memory.csv")
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            if r["case"] == "memory/fiber/stack=64K/n=10000" and r["metric"] == "bytes_per_unit":
                r["median"] = r["min"] = r["max"] = "8192"
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        code, out = run("--check", "--set", s, self.copy_readme())
        self.assertEqual(code, 1, out)
        self.assertIn("+- **Memory per live unit at 10,000 live** (`memory.csv`): a parked fiber **8.0 KiB**", out)

    def test_missing_rows_are_said_not_invented(self):
        s = os.path.join(self.tmp.name, "published", "x")
        os.makedirs(s)
        for n in os.listdir(self.set):
            if not n.startswith("seed."):
                shutil.copy(os.path.join(self.set, n), s)
        p = self.copy_readme()
        code, out = run("--set", s, p)
        self.assertEqual(code, 0, out)
        with open(p) as f:
            text = f.read()
        self.assertIn("(seed.csv: not in this set)", text)

    def test_bad_markers(self):
        for text, needle in (("<!-- gen:nonesuch -->\n<!-- /gen -->\n", "unknown section"),
                             ("<!-- gen:claims -->\nno end\n", "has no <!-- /gen -->"),
                             ("text\n<!-- /gen -->\n", "stray marker"),
                             ("<!-- gen:claims -->\n<!-- gen:set -->\n<!-- /gen -->\n", "not closed")):
            p = os.path.join(self.tmp.name, "bad.md")
            with open(p, "w") as f:
                f.write(text)
            code, out = run("--check", p)
            self.assertEqual(code, 1, out)
            self.assertIn(needle, out)


if __name__ == "__main__":
    unittest.main()
