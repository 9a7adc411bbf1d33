#!/usr/bin/env python3
"""Self-test of make publish (scripts/publish.py) in temporary directories: a full,
calm run of every harness becomes results/published/<machine>/ named by its machine
files and becomes the README's set; a noisy, quick, incomplete or mixed-machine run is
refused with every problem named; --only refreshes an existing set only."""
import glob
import io
import os
import shutil
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "scripts"))
import publish  # noqa: E402
import resultsets  # noqa: E402


class PublishTest(unittest.TestCase):
    def setUp(self):
        src = resultsets.shown_set()
        if src is None:
            self.skipTest("no published set to copy")
        self.tmp = tempfile.TemporaryDirectory()
        self.res = os.path.join(self.tmp.name, "results")
        self.root = os.path.join(self.tmp.name, "published")
        shutil.copytree(src, self.res)
        self.name = os.path.basename(src)  # the set's name, from its machine files
        for p in glob.glob(os.path.join(self.res, "*.machine.txt")):
            with open(p) as f:
                lines = [l for l in f if not l.startswith("noise:")]
            with open(p, "w") as f:
                f.writelines(lines + ["noisy: no\n"])

    def tearDown(self):
        self.tmp.cleanup()

    def run_it(self, *extra):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = publish.main(["--from", self.res, "--published-root", self.root,
                                 "--no-plots", "--no-readme", *extra])
        return code, out.getvalue() + err.getvalue()

    def edit(self, harness, fn):
        p = os.path.join(self.res, harness + ".machine.txt")
        with open(p) as f:
            lines = f.readlines()
        with open(p, "w") as f:
            f.writelines(fn(lines))

    def test_calm_full_set_is_published_and_shown(self):
        code, out = self.run_it()
        self.assertEqual(code, 0, out)
        dest = os.path.join(self.root, self.name)
        # every harness, and the optional ones the copied set has (the shown set may hold them)
        present = resultsets.ALL_HARNESSES + [
            h for h in resultsets.OPTIONAL_HARNESSES if os.path.isfile(os.path.join(self.res, h + ".csv"))]
        self.assertEqual(sorted(os.listdir(dest)),
                         sorted(f"{h}{e}" for h in present for e in (".csv", ".machine.txt")))
        with open(os.path.join(self.root, "shown.txt")) as f:
            self.assertEqual(f.read().strip(), self.name)
        # --only refreshes one harness of the set that now exists.
        code, out = self.run_it("--only", "seed")
        self.assertEqual(code, 0, out)

    def test_optional_harness_goes_with_the_set(self):
        """curl, ruby and peers CSVs are not required, but a run that has them publishes them
        with the rest (the README's Ruby, peers and libcurl sections read the published set)."""
        self.assertEqual(set(resultsets.OPTIONAL_HARNESSES), {"curl", "ruby", "peers"})
        for h in resultsets.OPTIONAL_HARNESSES:
            for ext in (".csv", ".machine.txt"):
                shutil.copyfile(os.path.join(self.res, "llm" + ext), os.path.join(self.res, h + ext))
            with open(os.path.join(self.res, h + ".csv")) as f:
                text = f.read().replace("\nllm,", f"\n{h},")
            with open(os.path.join(self.res, h + ".csv"), "w") as f:
                f.write(text)
        code, out = self.run_it()
        self.assertEqual(code, 0, out)
        dest = os.path.join(self.root, self.name)
        for h in resultsets.OPTIONAL_HARNESSES:
            self.assertIn(h + ".csv", os.listdir(dest))
            self.assertIn(h + ".machine.txt", os.listdir(dest))

    def test_refusals_name_every_problem(self):
        os.remove(os.path.join(self.res, "llm.csv"))
        self.edit("switch", lambda ls: [l.replace("noisy: no", "noisy: yes (busy at the start)")
                                        for l in ls])
        self.edit("seed", lambda ls: [l.replace("mode: full", "mode: quick") for l in ls])
        self.edit("alloc", lambda ls: [l for l in ls if not l.startswith("noisy:")])
        self.edit("scale", lambda ls: [l for l in ls if not l.startswith("mode:")])
        self.edit("memory", lambda ls: [("cpu: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\n"
                                         if l.startswith("cpu:") else l) for l in ls])
        code, out = self.run_it()
        self.assertEqual(code, 1, out)
        for needle in ("REFUSED", "llm: no ", "switch: noisy run (yes (busy at the start))",
                       "seed: a quick run", "alloc: no noise record",
                       "scale: no 'mode:' line",
                       "different machines: ", "memory intel-xeon-platinum-8375c-2vcpu-kvm"):
            self.assertIn(needle, out)
        self.assertFalse(os.path.exists(self.root))

    def test_only_needs_an_existing_set(self):
        code, out = self.run_it("--only", "seed")
        self.assertEqual(code, 1, out)
        self.assertIn("publish the whole set first", out)

    def test_bad_usage(self):
        with redirect_stderr(io.StringIO()):
            with self.assertRaises(SystemExit) as e:
                publish.main(["--only", "nonesuch", "--from", self.res])
        self.assertEqual(e.exception.code, 2)
        with redirect_stderr(io.StringIO()):
            self.assertEqual(publish.main(["--from", "/nonexistent"]), 2)


if __name__ == "__main__":
    unittest.main()
