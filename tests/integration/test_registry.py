"""The registry as the API shows it: /v1/algorithms, /readyz, versions, and
input.json being the parameters as accepted."""

import os
import re
import shutil
import tempfile
import unittest

import harness
from harness import DaemonCase, check_error, quick

EXPECTED = {"matrix_multiplication", "statistics", "word_count", "t_echo", "t_exit", "t_sleep",
            "t_noresult", "t_invalid", "t_big", "t_sandbox", "t_syscall", "t_memory", "t_spam",
            "t_pids"}
ALGO_KEYS = ("name", "description", "latest", "versions", "input_schema", "resources",
             "timeout_seconds", "max_concurrent", "health")


@quick
class Registry(DaemonCase):

    def test_readyz_degraded_by_broken_manifests(self):
        r = self.d.req("GET", "/readyz")
        self.assertEqual(r.status, 200, r)
        b = r.body
        self.assertEqual(b["status"], "degraded", r)
        rt = b["runtime"]
        self.assertIn(rt["name"], ("youki", "crun", "runc", os.path.basename(harness.OPTIONS["runtime"])), rt)
        self.assertTrue(rt["path"].startswith("/") and os.path.basename(rt["path"]) == rt["name"], rt)
        self.assertTrue(os.access(rt["path"], os.X_OK), rt)
        if harness.OPTIONS["runtime"] == "youki" and not shutil.which("youki"):
            self.assertNotEqual(rt["name"], "youki", "youki is not installed: the daemon must fall back")
        self.assertIsInstance(rt["version"], str)
        self.assertTrue(rt["version"], rt)
        self.assertEqual(b["plugins"]["broken"], 2, b)
        self.assertGreaterEqual(b["plugins"]["loaded"], len(EXPECTED) + 1, b)   # + t_echo 2.0.0
        why = " ".join(b["reasons"])
        self.assertIn("t_broken_yaml", why, b)
        self.assertIn("t_broken_key", why, b)

    def test_algorithms_listing(self):
        r = self.d.req("GET", "/v1/algorithms")
        self.assertEqual(r.status, 200, r)
        algos = {a["name"]: a for a in r.body["algorithms"]}
        self.assertEqual(len(algos), len(r.body["algorithms"]), "a name is listed twice")
        self.assertTrue(EXPECTED <= set(algos), "missing: %s" % (EXPECTED - set(algos)))
        self.assertFalse({"t_broken_yaml", "t_broken_key"} & set(algos))
        for a in algos.values():
            for k in ALGO_KEYS:
                self.assertIn(k, a, "%s lacks %s" % (a.get("name"), k))
            self.assertIn(a["latest"], a["versions"])
            self.assertEqual(a["versions"][0], a["latest"], "versions newest first")
            self.assertIsInstance(a["input_schema"], dict)
            for k in ("cpu_cores", "memory_mb", "pids", "disk_mb"):
                self.assertIn(k, a["resources"], a["name"])
        self.assertEqual(algos["t_echo"]["versions"], ["2.0.0", "1.0.0"])
        self.assertEqual(algos["t_echo"]["latest"], "2.0.0")
        self.assertEqual(algos["t_memory"]["resources"]["memory_mb"], 32)
        self.assertEqual(algos["t_pids"]["resources"]["pids"], 8)
        self.assertEqual(algos["t_sleep"]["timeout_seconds"], 2)
        self.assertEqual(algos["matrix_multiplication"]["input_schema"]["required"],
                         ["matrix_a", "matrix_b"])

    def test_broken_listing_names_file_line_key(self):
        r = self.d.req("GET", "/v1/algorithms")
        broken = r.body["broken"]
        self.assertEqual(len(broken), 2, broken)
        by = {}
        for b in broken:
            self.assertEqual(set(b), {"path", "error"}, b)
            name = "t_broken_yaml" if "t_broken_yaml" in b["path"] else "t_broken_key"
            by[name] = b
            self.assertRegex(b["error"], r"plugin\.yaml:\d+:\d+: ", b)
        self.assertEqual(set(by), {"t_broken_yaml", "t_broken_key"})
        self.assertRegex(by["t_broken_key"]["error"], r"plugin\.yaml:\d+:\d+: memory: ")

    def test_algorithm_lookup(self):
        r = self.d.req("GET", "/v1/algorithms/t_echo")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["name"], "t_echo")
        self.assertEqual(r.body["latest"], "2.0.0")
        for k in ALGO_KEYS:
            self.assertIn(k, r.body)
        r = self.d.req("GET", "/v1/algorithms/matrix_multiplication")
        self.assertEqual(r.body["versions"], ["1.0.0"])
        check_error(self.d.req("GET", "/v1/algorithms/nope"), 404)

    def test_versions(self):
        latest = self.d.run_job({"algorithm": "t_echo", "parameters": {"a": 1}})
        self.assertEqual(latest["version"], "2.0.0")
        self.assertEqual(latest["result"], {"version": 2, "input": {"a": 1}})
        v1 = self.d.run_job({"algorithm": "t_echo", "version": "1.0.0", "parameters": {"a": 1}})
        self.assertEqual(v1["version"], "1.0.0")
        self.assertEqual(v1["result"], {"a": 1})
        v2 = self.d.run_job({"algorithm": "t_echo", "version": "2.0.0", "parameters": {"a": 1}})
        self.assertEqual(v2["result"], {"version": 2, "input": {"a": 1}})
        check_error(self.d.submit({"algorithm": "t_echo", "version": "1.0.1"}), 404,
                    "unknown_algorithm")
        check_error(self.d.submit({"algorithm": "t_echo", "version": "3.0.0"}), 404,
                    "unknown_algorithm")

    def test_input_is_parameters_as_accepted(self):
        params = {
            "text": "h\u00e9llo \u2713 \U0001d11e \u4e2d\u6587 \"quoted\" back\\slash \t tab \n nl",
            "escapes": "\u0001\u001f\u007f</script>",
            "nested": {"a": [1, [2, [3, {"b": None}]]], "empty_obj": {}, "empty_list": []},
            "numbers": [0, -1, 9007199254740993, -9223372036854775808, 1.5, -2.25e-10, 1e300],
            "bools": [True, False, None],
            "n": 7,
            "k\u00e9y \u2603": "value",
            "long": "x" * 10000,
        }
        job = self.d.run_job({"algorithm": "t_echo", "version": "1.0.0", "parameters": params})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"], params)
        job = self.d.run_job({"algorithm": "t_echo", "version": "1.0.0"})
        self.assertEqual(job["result"], {}, "parameters default to {}")

    def test_metrics_endpoint(self):
        r = self.d.req("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain"), r.headers)
        samples = [ln for ln in r.body.splitlines() if ln and not ln.startswith("#")]
        self.assertTrue(samples, "no samples")
        for ln in samples:
            self.assertRegex(ln, r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+$")
        self.assertTrue(any(re.match(r"^edgecd_", ln) for ln in samples), "no edgecd_ metric")


class VersionRanges(unittest.TestCase):
    """Many versions side by side, picked exactly, by a semver range, or
    by default (the newest release: pre-releases only when named)."""

    VERSIONS = ("1.0.0", "1.2.0", "1.2.5", "2.0.0-rc.1")

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="edgecd-it-ranges-")
        for v in cls.VERSIONS:
            dst = os.path.join(cls.tmp, "t_echo-" + v)
            shutil.copytree(os.path.join(harness.OPTIONS["plugins"], "t_echo"), dst, symlinks=True)
            path = os.path.join(dst, "plugin.yaml")
            with open(path) as f:
                text, n = re.subn(r"(?m)^version: .*$", "version: %s" % v, f.read())
            assert n == 1, text
            with open(path, "w") as f:
                f.write(text)
        cls.d = harness.Daemon("ranges", plugins=cls.tmp)
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        shutil.rmtree(cls.tmp, True)

    def picked(self, version):
        body = {"algorithm": "t_echo", "parameters": {"a": 1}}
        if version is not None:
            body["version"] = version
        r = self.d.submit(body)
        self.assertEqual(r.status, 202, (version, r))
        return r.body["version"]

    def test_listing_has_every_version(self):
        r = self.d.req("GET", "/v1/algorithms/t_echo")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["versions"], ["2.0.0-rc.1", "1.2.5", "1.2.0", "1.0.0"])
        self.assertEqual(r.body["latest"], "1.2.5")

    def test_selection(self):
        want = {None: "1.2.5", "1.0.0": "1.0.0", "2.0.0-rc.1": "2.0.0-rc.1", "^1": "1.2.5",
                "^1.0": "1.2.5", "~1.0": "1.0.0", "~1.2.0": "1.2.5", ">=1.0.0 <1.2.5": "1.2.0",
                "1.2.x": "1.2.5", "1.0.0 - 1.2.0": "1.2.0", "<1.2 || >=1.2.1 <1.2.4": "1.0.0",
                ">=2.0.0-rc.1": "2.0.0-rc.1", "^2.0.0-rc.0": "2.0.0-rc.1", "*": "1.2.5"}
        got = {k: self.picked(k) for k in want}
        self.assertEqual(got, want)
        job = self.d.run_job({"algorithm": "t_echo", "version": "~1.2", "parameters": {"a": 2}})
        self.assertEqual((job["status"], job["version"], job["result"]), ("succeeded", "1.2.5", {"a": 2}), job)

    def test_no_match_and_bad_range(self):
        # A pre-release is never picked unless named: ^2 has no release.
        for v in ("^2", "2.x", ">1.2.5 <2.0.0", "1.1.0"):
            r = self.d.submit({"algorithm": "t_echo", "version": v})
            check_error(r, 404, "unknown_algorithm")
            self.assertEqual(r.body["error"]["field"], "/version", r.body)
            self.assertIn(v, r.body["error"]["message"])
        for v in ("=>1", "^^1", "1.2.3.4", "", "1.x.3", 7, ["1.0.0"]):
            r = self.d.submit({"algorithm": "t_echo", "version": v})
            check_error(r, 400)
            self.assertEqual(r.body["error"]["field"], "/version", r.body)
        r = self.d.submit({"algorithm": "nope", "version": "^1"})
        check_error(r, 404, "unknown_algorithm")
        self.assertEqual(r.body["error"]["field"], "/algorithm", r.body)


class ForbiddenSyscall(unittest.TestCase):
    """A manifest asking for a system call that no plugin may have is
    broken, named by file, line and key, and never loaded."""

    def test_manifest_asking_for_mount(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-mount-")
        self.addCleanup(shutil.rmtree, tmp, True)
        shutil.copytree(os.path.join(harness.OPTIONS["plugins"], "t_echo"), os.path.join(tmp, "t_mounter"),
                        symlinks=True)
        path = os.path.join(tmp, "t_mounter", "plugin.yaml")
        with open(path, "w") as f:
            f.write("name: t_mounter\nversion: 1.0.0\ndescription: wants mount\n"
                    "command: [/bin/testkit, echo]\ninput_schema: {type: object}\nsyscalls: [read, mount]\n")
        d = harness.Daemon("mounter", plugins=tmp)
        self.addCleanup(d.stop)
        d.start()
        r = d.req("GET", "/v1/algorithms")
        self.assertEqual([a["name"] for a in r.body["algorithms"]], [], r.body)
        (broken,) = r.body["broken"]
        self.assertIn(path + ":6:", broken["error"])
        self.assertIn("syscalls[1]", broken["error"])
        self.assertIn("`mount` can never be allowed", broken["error"])
        check_error(d.submit({"algorithm": "t_mounter"}), 404, "unknown_algorithm")
