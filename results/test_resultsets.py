#!/usr/bin/env python3
"""Self-test of how a set is named and found (scripts/resultsets.py), and of the rule that
a set holds one CPU's results (scripts/publish.py --only, scripts/check_results.py,
scripts/reproduce.py's lookup), on made-up machine files in temporary directories."""
import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "scripts"))
import check_results  # noqa: E402
import publish  # noqa: E402
import reproduce  # noqa: E402
import resultsets  # noqa: E402

ZEN3_ID = "AuthenticAMD family 25 model 1 stepping 1"
ZEN4_ID = "AuthenticAMD family 25 model 17 stepping 1"
ZEN3 = {"gbench_mhz_per_cpu": "2445", "gbench_caches": "L1 Data 32 KiB x1; L2 Unified 512 KiB x1"}
ZEN4 = {"gbench_mhz_per_cpu": "2596", "gbench_caches": "L1 Data 32 KiB x1; L2 Unified 1024 KiB x1"}
BASE = {"cpu": "AMD EPYC", "cores": "2 (online: 0-1)", "virtualization": "vm: kvm, container: docker"}


def machine(cpu_id=None, **extra):
    m = dict(BASE)
    if cpu_id:
        m["cpu_id"] = cpu_id
    m.update(extra)
    return m


def write_machine(path, m):
    with open(path, "w") as f:
        for k, v in m.items():
            f.write(f"{k}: {v}\n")


class NameTest(unittest.TestCase):
    def test_cpu_id_tells_two_cpus_apart(self):
        a, b = machine(ZEN3_ID), machine(ZEN4_ID)
        self.assertEqual(resultsets.machine_name(a), "amd-epyc-f25m1-2vcpu-kvm")
        self.assertEqual(resultsets.machine_name(b), "amd-epyc-f25m17-2vcpu-kvm")
        intel = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_id": "GenuineIntel family 6 model 207 stepping 2",
                 "cores": "2", "virtualization": "vm: kvm, container: none"}
        self.assertEqual(resultsets.machine_name(intel), "intel-xeon-f6m207-2vcpu-kvm")

    def test_stepping_is_not_in_the_name(self):
        self.assertEqual(resultsets.machine_name(machine(ZEN3_ID)),
                         resultsets.machine_name(machine(ZEN3_ID.replace("stepping 1", "stepping 2"))))

    def test_legacy_name_unchanged(self):
        self.assertEqual(resultsets.machine_name(machine()), "amd-epyc-2vcpu-kvm")
        self.assertEqual(resultsets.machine_name(machine(ZEN3_ID), legacy=True), "amd-epyc-2vcpu-kvm")
        self.assertEqual(resultsets.machine_name(machine("")), "amd-epyc-2vcpu-kvm")

    def test_aarch64_part(self):
        m = {"cpu": "aarch64", "cores": "4", "virtualization": "vm: none, container: none",
             "cpu_id": "implementer 0x41 architecture 8 variant 0x3 part 0xd0c revision 1"}
        self.assertEqual(resultsets.machine_name(m), "aarch64-i41pd0c-4cpu-metal")

    def test_machine_sh_writes_cpu_id_on_x86(self):
        out = subprocess.run([os.path.join(TOP, "scripts", "machine.sh")], capture_output=True,
                             text=True, timeout=30).stdout
        with open("/proc/cpuinfo") as f:
            info = f.read()
        if "cpu family" not in info:
            self.skipTest("no x86 /proc/cpuinfo")
        line = [l for l in out.splitlines() if l.startswith("cpu_id: ")]
        self.assertEqual(len(line), 1, out)
        self.assertRegex(line[0], r"^cpu_id: \S+ family \d+ model \d+ stepping \d+$")

    def test_machine_sh_writes_the_kernels_mitigations(self):
        vd = "/sys/devices/system/cpu/vulnerabilities"
        if not os.path.isdir(vd):
            self.skipTest("no " + vd)
        out = subprocess.run([os.path.join(TOP, "scripts", "machine.sh")], capture_output=True,
                             text=True, timeout=30).stdout
        line = [l for l in out.splitlines() if l.startswith("kernel_mitigations: ")]
        self.assertEqual(len(line), 1, out)
        want = []
        for n in sorted(os.listdir(vd)):
            with open(os.path.join(vd, n)) as f:
                v = f.read().strip()
            if v.startswith("Mitigation: "):
                want.append(f"{n}={v[len('Mitigation: '):]}")
        self.assertEqual(line[0], "kernel_mitigations: " + (" | ".join(want) or "none"))


class FindSetTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def legacy_set(self, figures):
        d = os.path.join(self.root, "amd-epyc-2vcpu-kvm")
        os.makedirs(d, exist_ok=True)
        write_machine(os.path.join(d, "switch.machine.txt"), machine(**figures))
        write_machine(os.path.join(d, "mockllm.machine.txt"), machine())
        return d

    def test_exact_set_first(self):
        self.legacy_set(ZEN3)
        d = os.path.join(self.root, "amd-epyc-f25m1-2vcpu-kvm")
        os.makedirs(d)
        write_machine(os.path.join(d, "switch.machine.txt"), machine(ZEN3_ID, **ZEN3))
        got, why = resultsets.find_set([machine(ZEN3_ID, **ZEN3)], self.root)
        self.assertEqual(got, d)

    def test_exact_set_for_another_stepping(self):
        # the name leaves stepping out, so does the lookup: a Zen 3 of another stepping
        # (Milan B0 beside B1) is compared with the Zen 3 set, not judged cross-machine
        # against the README's (another CPU's) set; caches and MHz still have to agree
        d = os.path.join(self.root, "amd-epyc-f25m1-2vcpu-kvm")
        os.makedirs(d)
        write_machine(os.path.join(d, "switch.machine.txt"), machine(ZEN3_ID, **ZEN3))
        other = ZEN3_ID.replace("stepping 1", "stepping 0")
        got, why = resultsets.find_set([machine(other, **ZEN3)], self.root)
        self.assertEqual(got, d, why)
        got, why = resultsets.find_set([machine(other, **dict(ZEN3, gbench_mhz_per_cpu="2650"))],
                                       self.root)
        self.assertIsNone(got)
        self.assertIn("gbench_mhz_per_cpu differs", why)

    def test_fallback_taken_when_the_legacy_set_agrees(self):
        d = self.legacy_set(ZEN3)
        got, why = resultsets.find_set([machine(ZEN3_ID, **ZEN3)], self.root)
        self.assertEqual(got, d, why)
        self.assertIn("legacy set amd-epyc-2vcpu-kvm", why)
        self.assertIn("512 KiB", why)

    def test_fallback_refused_when_caches_or_mhz_differ(self):
        self.legacy_set(ZEN4)
        got, why = resultsets.find_set([machine(ZEN3_ID, **ZEN3)], self.root)
        self.assertIsNone(got)
        self.assertIn("another CPU", why)
        self.assertIn("gbench_caches differs", why)
        # the MHz alone tells them apart too
        shutil.rmtree(os.path.join(self.root, "amd-epyc-2vcpu-kvm"))
        self.legacy_set(dict(ZEN3, gbench_mhz_per_cpu="2596"))
        got, why = resultsets.find_set([machine(ZEN3_ID, **ZEN3)], self.root)
        self.assertIsNone(got)
        self.assertIn("gbench_mhz_per_cpu differs: 2445 vs 2596", why)

    def test_fallback_refused_without_a_figure_to_compare(self):
        self.legacy_set({})
        got, why = resultsets.find_set([machine(ZEN3_ID, **ZEN3)], self.root)
        self.assertIsNone(got)
        self.assertIn("no CPU figure", why)

    def test_no_fallback_for_a_legacy_run(self):
        # a run without cpu_id is named legacy: its set is the exact one, as before
        d = self.legacy_set(ZEN3)
        got, _ = resultsets.find_set([machine(**ZEN3)], self.root)
        self.assertEqual(got, d)

    def test_reproduce_says_which_set_and_why(self):
        self.legacy_set(ZEN4)
        fresh = os.path.join(self.root, "fresh")
        os.makedirs(fresh)
        write_machine(os.path.join(fresh, "switch.machine.txt"), machine(ZEN3_ID, **ZEN3))
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(io.StringIO()):
            reproduce.main(["--fresh", fresh, "--published",
                            os.path.join(self.root, "amd-epyc-2vcpu-kvm")])
        text = out.getvalue()
        self.assertIn("set lookup: amd-epyc-2vcpu-kvm is named like this run", text)
        self.assertIn("NO published set for amd-epyc-f25m1-2vcpu-kvm", text)
        self.assertNotIn("published set of the same machine", text)


class BadFigureTest(unittest.TestCase):
    def test_mhz_that_is_not_a_number_is_no_evidence(self):
        # a hand-edited or truncated machine file: no crash (IndexError before), and a
        # side whose MHz does not parse agrees on nothing
        bad = machine(ZEN3_ID, gbench_mhz_per_cpu="n/a")
        self.assertEqual(resultsets.cpu_conflicts([bad], [bad]), ([], ["cpu_id " + ZEN3_ID]))
        conflicts, agree = resultsets.cpu_conflicts([machine(gbench_mhz_per_cpu="2445")],
                                                    [machine(gbench_mhz_per_cpu="")])
        self.assertEqual((conflicts, agree), ([], []))
        conflicts, agree = resultsets.cpu_conflicts([machine(gbench_mhz_per_cpu="2445")],
                                                    [machine(gbench_mhz_per_cpu="fast")])
        self.assertEqual((conflicts, agree), ([], []))


class ReferenceRunTest(unittest.TestCase):
    """make reproduce's default reference run (results/reference/<set name>/) is used only
    when its machine files do not name another CPU than the run's."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        self.saved = reproduce.REFERENCE
        reproduce.REFERENCE = os.path.join(self.root, "reference")

    def tearDown(self):
        reproduce.REFERENCE = self.saved
        self.tmp.cleanup()

    def run_with_reference(self, ref_figures):
        pub = os.path.join(self.root, "published", "amd-epyc-2vcpu-kvm")
        os.makedirs(pub)
        write_machine(os.path.join(pub, "switch.machine.txt"), machine(**ZEN3))
        ref = os.path.join(reproduce.REFERENCE, "amd-epyc-2vcpu-kvm")
        os.makedirs(ref)
        for h in ("switch", "alloc"):
            write_machine(os.path.join(ref, h + ".machine.txt"), machine(**ref_figures))
        fresh = os.path.join(self.root, "fresh")
        os.makedirs(fresh)
        write_machine(os.path.join(fresh, "switch.machine.txt"), machine(ZEN3_ID, **ZEN3))
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(io.StringIO()):
            reproduce.main(["--fresh", fresh, "--published", pub])
        return out.getvalue()

    def test_reference_of_the_same_cpu_is_used(self):
        text = self.run_with_reference(ZEN3)
        self.assertIn("published set of the same machine", text)
        self.assertIn("from the reference run", text)

    def test_reference_of_another_cpu_is_not_used(self):
        # the set agrees with the run (Zen 3), the reference of the same name does not
        text = self.run_with_reference(ZEN4)
        self.assertIn("published set of the same machine", text)
        self.assertNotIn("from the reference run", text)
        self.assertIn("reference run", text)
        self.assertIn("gbench_caches differs", text)


class OneCpuPerSetTest(unittest.TestCase):
    """publish --only and check_results refuse a set of two CPUs."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = os.path.join(self.tmp.name, "published")
        self.src = os.path.join(self.tmp.name, "results")
        os.makedirs(self.src)
        shown = resultsets.shown_set()
        if shown is None or not os.path.isfile(os.path.join(shown, "seed.csv")):
            self.skipTest("no published seed.csv to copy")
        self.seed_csv = os.path.join(shown, "seed.csv")

    def tearDown(self):
        self.tmp.cleanup()

    def put(self, directory, harness, m):
        os.makedirs(directory, exist_ok=True)
        shutil.copyfile(self.seed_csv, os.path.join(directory, "seed.csv"))
        if harness != "seed":
            # a CSV of the right harness: seed's rows renamed are enough for the schema
            with open(self.seed_csv) as f:
                text = f.read().replace("\nseed,", f"\n{harness},")
            with open(os.path.join(directory, harness + ".csv"), "w") as f:
                f.write(text)
        write_machine(os.path.join(directory, harness + ".machine.txt"),
                      dict(m, date="2026-12-03T16:00:00Z", kernel="Linux 6 x86_64",
                           compiler="cc 12", commit="abc1234", noisy="no", mode="full"))

    def publish_only(self, harnesses):
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(out):
            code = publish.main(["--from", self.src, "--published-root", self.root, "--only",
                                 harnesses, "--no-plots", "--no-readme"])
        return code, out.getvalue()

    def test_only_refuses_a_legacy_mix(self):
        dest = os.path.join(self.root, "amd-epyc-2vcpu-kvm")
        self.put(dest, "seed", machine())
        self.put(dest, "switch", machine(**ZEN4))
        self.put(self.src, "seed", machine())
        self.put(self.src, "switch", machine(**ZEN3))
        code, out = self.publish_only("seed,switch")
        self.assertEqual(code, 2, out)
        self.assertIn("measured on different CPUs", out)
        self.assertIn("gbench_caches differs", out)
        with open(os.path.join(dest, "switch.machine.txt")) as f:
            self.assertIn("1024 KiB", f.read())  # nothing written

    def test_only_refuses_another_cpu_id(self):
        # same name (stepping is not in it), another cpu_id
        dest = os.path.join(self.root, "amd-epyc-f25m1-2vcpu-kvm")
        self.put(dest, "seed", machine(ZEN3_ID))
        self.put(self.src, "seed", machine(ZEN3_ID.replace("stepping 1", "stepping 2")))
        code, out = self.publish_only("seed")
        self.assertEqual(code, 2, out)
        self.assertIn("cpu_id differs", out)

    def test_only_on_the_same_cpu_goes_through(self):
        dest = os.path.join(self.root, "amd-epyc-f25m1-2vcpu-kvm")
        self.put(dest, "seed", machine(ZEN3_ID))
        self.put(dest, "switch", machine(ZEN3_ID, **ZEN3))
        self.put(self.src, "switch", machine(ZEN3_ID, **dict(ZEN3, gbench_mhz_per_cpu="2446")))
        code, out = self.publish_only("switch")
        self.assertEqual(code, 0, out)

    def test_only_names_the_legacy_set_it_cannot_refresh(self):
        # the Intel host next time: its run has cpu_id, its set is a legacy one; --only
        # cannot refresh it, and the refusal says why instead of only "no set yet"
        legacy = os.path.join(self.root, "amd-epyc-2vcpu-kvm")
        self.put(legacy, "switch", machine(**ZEN3))
        self.put(self.src, "switch", machine(ZEN3_ID, **ZEN3))
        code, out = self.publish_only("switch")
        self.assertEqual(code, 1, out)
        self.assertIn("there is no", out)
        self.assertIn("legacy set amd-epyc-2vcpu-kvm", out)
        self.assertIn("whole", out)
        self.assertFalse(os.path.isdir(os.path.join(self.root, "amd-epyc-f25m1-2vcpu-kvm")))

    def test_checker_rejects_a_set_of_two_cpus(self):
        dest = os.path.join(self.root, "amd-epyc-2vcpu-kvm")
        self.put(dest, "switch", machine(**ZEN4))
        self.put(dest, "alloc", machine(**ZEN3))
        rep = check_results.Report(quiet=True)
        with redirect_stderr(io.StringIO()) as err:
            check_results.check_published_set(dest, rep)
        self.assertGreater(rep.errors, 0)
        self.assertIn("more than one CPU in one set", err.getvalue())

    def test_published_sets_hold_one_cpu_each(self):
        for d in resultsets.list_sets():
            conflicts, _ = resultsets.cpu_conflicts(resultsets.dir_machines(d), [])
            self.assertEqual(conflicts, [], d)
            # a set named with family/model: every machine file has the cpu_id
            if resultsets.cpu_id_token(resultsets.read_machine(resultsets.machine_file_of(d))):
                for m in resultsets.dir_machines(d):
                    self.assertTrue(m.get("cpu_id"), d)


if __name__ == "__main__":
    unittest.main()
