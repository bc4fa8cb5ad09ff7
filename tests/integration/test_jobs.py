"""Real jobs in real containers on one shared daemon (setUpModule): the
reference matrix job, every failure code, the sandbox seen from inside,
logs, listing, cancel, priorities.  Tests run one after another, so a test
that checks "nothing is left while idle" may do so once its jobs are final."""

import json
import re
import os
import shutil
import subprocess
import tempfile
import math
import random
import threading
import time
import unittest

import harness
from harness import Daemon, check_error, check_job, parse_time, quick

MAX_LOG = 32768
_D = None


def setUpModule():
    global _D
    _D = Daemon("jobs", config={"workers": 2, "queue_capacity": 64, "max_log_bytes": MAX_LOG,
                                "max_timeout_seconds": 300}).start()


def tearDownModule():
    global _D
    d, _D = _D, None
    if d is not None:
        d.stop()


class JobCase(unittest.TestCase):
    @property
    def d(self):
        return _D

    def setUp(self):
        if _D is None:
            self.fail("shared daemon did not start")
        if _D not in harness.TOUCHED:
            harness.TOUCHED.append(_D)
        if not _D.alive():
            self.fail("shared daemon is not running (exit %s)" % _D.proc.returncode)

    def track(self, job_id):
        self.addCleanup(harness.cancel_quietly, _D, job_id)
        return job_id

    def assertFailedWith(self, job, code):
        self.assertEqual((job["status"], job["error"] and job["error"]["code"]), ("failed", code),
                         json.dumps(job)[:1500])
        self.assertIsNone(job["result"])
        self.assertTrue(job["error"]["message"])

    def seconds_between(self, a, b):
        return (parse_time(b) - parse_time(a)).total_seconds()


def host_has_ia32():
    """Does this kernel take 32-bit system calls (int 0x80) at all?  Asked
    of testkit outside any container: without IA32 emulation it faults."""
    tk = os.path.join(harness.OPTIONS["plugins"], "t_syscall32", "rootfs", "bin", "testkit")
    tmp = tempfile.mkdtemp(prefix="edgecd-ia32-")
    try:
        with open(os.path.join(tmp, "in.json"), "w") as f:
            f.write("{}")
        r = subprocess.run([tk, "syscall", "int80"], capture_output=True, timeout=10,
                           env={"EDGECD_INPUT": os.path.join(tmp, "in.json"), "EDGECD_OUTPUT": tmp})
        return r.returncode == 0
    finally:
        shutil.rmtree(tmp, True)


def matmul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(len(b))) for j in range(len(b[0]))]
            for i in range(len(a))]


class Matrix(JobCase):

    def assertProduct(self, job, a, b):
        self.assertEqual(job["status"], "succeeded", json.dumps(job)[:1500])
        want = matmul(a, b)
        res = job["result"]
        self.assertEqual((res["rows"], res["cols"]), (len(a), len(b[0])))
        got = res["product"]
        self.assertEqual(len(got), len(want))
        exact = all(isinstance(x, int) for row in a + b for x in row)
        for i, (gr, wr) in enumerate(zip(got, want)):
            self.assertEqual(len(gr), len(wr), "row %d" % i)
            for j, (g, w) in enumerate(zip(gr, wr)):
                if exact:
                    self.assertEqual(g, w, "product[%d][%d]" % (i, j))
                    self.assertIsInstance(g, int, "integer inputs give integer output")
                else:
                    self.assertTrue(math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12),
                                    "product[%d][%d] = %r, want %r" % (i, j, g, w))

    def mm(self, a, b):
        return self.d.run_job({"algorithm": "matrix_multiplication",
                               "parameters": {"matrix_a": a, "matrix_b": b}})

    @quick
    def test_non_square_wait_true(self):
        for a, b in (([[1, 2, 3], [4, 5, 6]], [[7, 8], [9, 10], [11, 12]]),
                     ([[1, 2, 3]], [[4], [5], [6]]),
                     ([[1], [2], [3]], [[4, 5, 6]])):
            job = self.mm(a, b)
            self.assertProduct(job, a, b)
            self.assertEqual(job["version"], "1.0.0")
            self.assertEqual(job["priority"], "normal")
            m = job["metrics"]
            self.assertGreater(m["peak_memory_bytes"], 0, m)
            self.assertGreaterEqual(m["cpu_ms"], 0, m)
            self.assertGreaterEqual(m["total_ms"], m["run_ms"], m)
            for k in harness.METRIC_KEYS:
                self.assertGreaterEqual(m[k], 0, m)
        self.assertEqual(self.mm([[1, 2, 3], [4, 5, 6]], [[7, 8], [9, 10], [11, 12]])["result"]
                         ["product"], [[58, 64], [139, 154]])

    def test_negative_and_fractional(self):
        a = [[-1, 2.5, -3.25], [0.5, -0.125, 1e-3]]
        b = [[1.5, -2], [-0.75, 4.25], [3.125, -0.5]]
        self.assertProduct(self.mm(a, b), a, b)
        a, b = [[-3, -7], [5, -11]], [[-2], [13]]
        job = self.mm(a, b)
        self.assertProduct(job, a, b)
        self.assertEqual(job["result"]["product"], [[-85], [-153]])

    def test_random_larger(self):
        rnd = random.Random(42)
        a = [[rnd.uniform(-100, 100) for _ in range(30)] for _ in range(20)]
        b = [[rnd.uniform(-100, 100) for _ in range(10)] for _ in range(30)]
        self.assertProduct(self.mm(a, b), a, b)

    @quick
    def test_accepted_then_poll(self):
        a, b = [[2, 0, -1], [1, 3, 5]], [[1, 4], [2, -5], [0, 6]]
        r = self.d.submit({"algorithm": "matrix_multiplication",
                           "parameters": {"matrix_a": a, "matrix_b": b}})
        self.assertEqual(r.status, 202, r)
        job = check_job(r.body)
        self.assertIn(job["status"], ("queued", "running"))
        self.assertEqual(r.headers["Location"], "/v1/jobs/" + job["id"])
        self.assertEqual(job["algorithm"], "matrix_multiplication")
        self.assertIsNone(job["finished_at"])
        self.assertIsNone(job["result"])
        final = self.d.wait_final(job["id"])
        self.assertProduct(final, a, b)
        self.assertEqual(final["created_at"], job["created_at"])

    @quick
    def test_dimension_mismatch(self):
        job = self.mm([[1, 2, 3], [4, 5, 6]], [[1, 2], [3, 4]])
        self.assertFailedWith(job, "algorithm_failed")
        msg = job["error"]["message"]
        self.assertRegex(msg, r"2\s*[x\u00d7]\s*3", "message should give matrix_a's shape")
        self.assertRegex(msg, r"2\s*[x\u00d7]\s*2", "message should give matrix_b's shape")
        self.assertIsInstance(job["exit_code"], int)
        self.assertNotEqual(job["exit_code"], 0)

    def test_ragged(self):
        job = self.mm([[1, 2, 3], [4, 5]], [[1], [2], [3]])
        self.assertFailedWith(job, "algorithm_failed")
        self.assertIn("matrix_a", job["error"]["message"])
        self.assertRegex(job["error"]["message"], r"row 1")
        r = self.d.submit({"algorithm": "matrix_multiplication",
                           "parameters": {"matrix_a": [[1, 2]], "matrix_b": [[1], [2, 3]]}})
        self.assertEqual(r.status, 202, r)
        job = self.d.wait_final(r.body["id"])
        self.assertFailedWith(job, "algorithm_failed")
        self.assertIn("matrix_b", job["error"]["message"])


class OtherAlgorithms(JobCase):

    def test_statistics(self):
        job = self.d.run_job({"algorithm": "statistics",
                              "parameters": {"values": [2, 4, 4, 4, 5, 5, 7, 9],
                                             "percentiles": [50, 90]}})
        self.assertEqual(job["status"], "succeeded", job)
        r = job["result"]
        self.assertEqual((r["count"], r["sum"], r["mean"], r["min"], r["max"], r["median"]),
                         (8, 40, 5, 2, 9, 4.5))
        self.assertTrue(math.isclose(r["variance"], 4) or math.isclose(r["variance"], 32 / 7), r)
        self.assertTrue(math.isclose(r["stddev"], math.sqrt(r["variance"])), r)
        self.assertTrue(math.isclose(r["percentiles"]["p50"], 4.5), r)
        self.assertTrue(7 <= r["percentiles"]["p90"] <= 9, r)

    def test_word_count(self):
        text = "the cat and the hat\nthe end"
        job = self.d.run_job({"algorithm": "word_count", "parameters": {"text": text}})
        self.assertEqual(job["status"], "succeeded", job)
        r = job["result"]
        self.assertEqual(r["words"], 7, r)
        self.assertIn(r["lines"], (1, 2), r)
        self.assertIn(r["chars"], (len(text), len(text) + 1), r)
        self.assertEqual(r["top_words"][0], {"word": "the", "count": 3}, r)

    def test_pids_limit(self):
        job = self.d.run_job({"algorithm": "t_pids"})
        self.assertEqual(job["status"], "succeeded", job)
        n = job["result"]["forked"]
        self.assertIsInstance(n, int)
        self.assertTrue(0 < n < 8, "forked %d children under pids limit 8" % n)


@quick
class Outcomes(JobCase):

    def test_algorithm_failed(self):
        job = self.d.run_job({"algorithm": "t_exit"})
        self.assertFailedWith(job, "algorithm_failed")
        self.assertEqual(job["exit_code"], 3)
        self.assertIn("testkit: failing on purpose with status 3", job["error"]["message"])

    def test_timeout_from_request(self):
        # run_ms is the daemon's own wait for the container: a doubled (or
        # halved) timeout shows there, whatever the build's speed.
        for seconds in (1, 2):
            job = self.d.run_job({"algorithm": "t_sleep", "parameters": {"seconds": 30},
                                  "timeout_seconds": seconds})
            self.assertFailedWith(job, "timeout")
            self.assertEqual(job["timeout_seconds"], seconds, job)
            ran = job["metrics"]["run_ms"]
            self.assertTrue(1000 * seconds - 50 <= ran < 1000 * seconds + 800,
                            "timeout %d s, ran %d ms" % (seconds, ran))
        self.d.assert_idle_clean()

    def test_timeout_from_manifest(self):
        job = self.d.run_job({"algorithm": "t_sleep"})      # sleeps 3600 s, manifest says 2 s
        self.assertFailedWith(job, "timeout")
        ran = self.seconds_between(job["started_at"], job["finished_at"])
        self.assertTrue(1.9 <= ran <= 3.5 * harness.slow_factor(), "ran %.2f s" % ran)
        self.d.assert_idle_clean()

    def test_request_timeout_can_exceed_manifest(self):
        job = self.d.run_job({"algorithm": "t_sleep", "parameters": {"seconds": 2.5},
                              "timeout_seconds": 10})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"], {"slept": 2.5})

    def test_no_result(self):
        self.assertFailedWith(self.d.run_job({"algorithm": "t_noresult"}), "no_result")

    def test_invalid_result(self):
        self.assertFailedWith(self.d.run_job({"algorithm": "t_invalid"}), "invalid_result")

    def test_a_result_with_an_unterminated_string_after_it_is_invalid(self):
        # yajl 2.1 takes `{} "x` as one value: such a result was kept and
        # spliced into its job's every reply, which was then not JSON.
        for text in ('{"ok": 1} "', '[1] "x', '1 "', '"a" "b'):
            job = self.d.run_job({"algorithm": "t_invalid", "parameters": {"text": text}})
            self.assertFailedWith(job, "invalid_result")
            self.assertIn("trailing garbage", job["error"]["message"], job)
            r = self.d.req("GET", "/v1/jobs/%s" % job["id"])
            self.assertEqual(r.status, 200, r)
            self.assertIsInstance(r.body, dict, "GET of the job is not JSON: %r" % (r.body,))
        job = self.d.run_job({"algorithm": "t_invalid", "parameters": {"text": ' {"ok": "a \\" b"} \n'}})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"], {"ok": 'a " b'})

    def test_result_too_large(self):
        self.assertFailedWith(self.d.run_job({"algorithm": "t_big"}), "result_too_large")
        job = self.d.run_job({"algorithm": "t_big", "parameters": {"bytes": 1000}})
        self.assertEqual(job["status"], "succeeded", job)

    def test_sandbox_violation(self):
        job = self.d.run_job({"algorithm": "t_syscall"})
        self.assertFailedWith(job, "sandbox_violation")

    def test_output_full_is_the_algorithms_failure(self):
        # t_big's /output is an 8 MiB tmpfs: writing 9 MB fails inside the
        # container, and the algorithm says so.
        job = self.d.run_job({"algorithm": "t_big", "parameters": {"bytes": 9000000}})
        self.assertFailedWith(job, "algorithm_failed")
        self.assertIn("No space left on device", job["error"]["message"], job)
        self.d.assert_idle_clean()

    def test_symlinked_result_is_refused(self):
        job = self.d.run_job({"algorithm": "t_symlink"})
        self.assertFailedWith(job, "invalid_result")
        self.assertIn("symlink", job["error"]["message"], job)
        self.assertNotIn("root:", json.dumps(job), "the host file leaked into the job")

    def test_32bit_syscall_is_a_sandbox_violation(self):
        if not host_has_ia32():
            self.skipTest("this kernel has no 32-bit system call ABI (int 0x80 faults outside any sandbox)")
        job = self.d.run_job({"algorithm": "t_syscall32"})
        self.assertFailedWith(job, "sandbox_violation")
        self.d.assert_idle_clean()

    def test_out_of_memory(self):
        job = self.d.run_job({"algorithm": "t_memory"})
        self.assertFailedWith(job, "out_of_memory")
        peak = job["metrics"]["peak_memory_bytes"]
        self.assertTrue(0 < peak <= 33 * 1024 * 1024, "peak %d under a 32 MiB limit" % peak)
        self.d.assert_idle_clean()

    def test_succeeded_cleans_up(self):
        job = self.d.run_job({"algorithm": "t_echo", "parameters": {"n": 1}})
        self.assertEqual(job["status"], "succeeded")
        self.d.assert_idle_clean()


class RuntimeFailure(unittest.TestCase):
    """The runtime itself refuses: runtime_error with its own words, no leftovers."""

    def test_runtime_create_failure_is_runtime_error(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-rtfail-")
        self.addCleanup(shutil.rmtree, tmp, True)
        shutil.copytree(os.path.join(harness.OPTIONS["plugins"], "t_echo"), os.path.join(tmp, "t_echo"),
                        symlinks=True)
        # uid 65534 cannot exec a root-only binary: `create` fails inside runc.
        os.chmod(os.path.join(tmp, "t_echo", "rootfs", "bin", "testkit"), 0o700)
        d = Daemon("rtfail", plugins=tmp)
        self.addCleanup(d.stop)
        d.start()
        job = d.run_job({"algorithm": "t_echo"})
        self.assertEqual(job["status"], "failed", job)
        self.assertEqual(job["error"]["code"], "runtime_error", job)
        self.assertIn("permission denied", job["error"]["message"].lower(), job)
        self.assertIsNone(job["exit_code"], job)
        d.assert_idle_clean()
        self.assertTrue(d.healthz_ok())


class FullDisk(unittest.TestCase):
    """The state dir fills up: a submission that does not fit is refused
    with 503 storage_unavailable (nothing recorded, nothing half-made), the
    daemon goes on, and takes jobs again once a probe write fits."""

    def test_full_state_dir(self):
        state = tempfile.mkdtemp(prefix="edgecd-it-full-")
        self.addCleanup(shutil.rmtree, state, True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", state],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(subprocess.run, ["umount", "-l", state], capture_output=True)
        d = Daemon("fulldisk", config={"state_dir": state})
        self.addCleanup(d.stop)
        d.start()
        big = {"blob": "x" * 700000}         # the parameters alone are over the 512 KiB
        r = d.submit({"algorithm": "t_echo", "version": "1.0.0", "parameters": big})
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.error_code(), "storage_unavailable", r)
        self.assertIn("full", r.body["error"]["message"], r)
        self.assertEqual(os.listdir(d.view(os.path.join(state, "workspaces"))), [], "half-made workspace left")
        self.assertEqual(d.list_jobs(), [], "a refused job was recorded")
        self.assertTrue(d.healthz_ok())
        # The failed transaction's WAL frames keep their disk space (the
        # next transactions reuse it), so the store can write again at once
        # while the disk stays full: jobs are accepted again.  The workspace
        # is on the daemon's own tmpfs, but the runtime's state is on the
        # full disk: a job it cannot run fails with a clear runtime_error
        # (the runtime's words were lost with its log: that is said), and
        # its log is marked cut.
        deadline = time.monotonic() + 10
        while True:
            r = d.submit({"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": 1}}, wait="true")
            if r.status != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        self.assertEqual(r.status, 200, r)
        if r.body["status"] != "succeeded":
            self.assertEqual(r.body["error"]["code"], "runtime_error", r)
            self.assertIn("No space left on device", r.body["error"]["message"], r)
            logs = d.req("GET", "/v1/jobs/%s/logs" % r.body["id"])
            self.assertEqual(logs.headers.get("X-Edgecd-Log-Truncated"), "true", logs.headers)
        d.wait_cleaned()
        self.assertEqual(os.listdir(d.view(os.path.join(state, "workspaces"))), [], "half-made workspace left")
        self.assertTrue(d.healthz_ok())


def container_cgroup_re(d, run_id):
    """A run's container's cgroupsPath: in a slot, reused on cgroup v1, made
    ahead for this run on v2 (daemon/sandbox/runcgroup.h)."""
    return "^%s/slot-(0|[1-9][0-9]*)/%s$" % (re.escape(d.cgroup_parent), re.escape(run_id))


class KeptBundle(unittest.TestCase):
    """keep_bundles: the real config.json a job ran with stays behind, and it
    passes the OCI runtime-spec schema (Debian's copy, tests/tools/oci-validate)."""

    def test_kept_bundle_is_valid_oci(self):
        d = Daemon("keep", config={"keep_bundles": True})
        self.addCleanup(d.stop)
        d.start()
        job = d.run_job({"algorithm": "matrix_multiplication",
                         "parameters": {"matrix_a": [[1]], "matrix_b": [[2]]}})
        self.assertEqual(job["result"]["product"], [[2]], job)
        run_id = job["attempts"][-1]["run_id"]
        self.assertEqual(run_id, job["id"] + "-1", job)
        ws = os.path.join(d.state_dir, "workspaces", run_id)
        config = os.path.join(ws, "bundle", "config.json")
        d.wait_cleaned()
        # The workspaces' tmpfs is in the daemon's mount namespace.
        ws, config = d.view(ws), d.view(config)
        self.assertEqual(os.listdir(ws), ["bundle"], "only the bundle is kept")
        self.assertEqual(d.job_mounts(), [], "the /output tmpfs is unmounted")
        validator = os.path.join(harness.REPO, "tests", "tools", "oci-validate")
        r = subprocess.run(["/usr/bin/python3", validator, config], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(config) as f:
            c = json.load(f)
        self.assertRegex(c["linux"]["cgroupsPath"], container_cgroup_re(d, run_id))
        self.assertEqual(c["process"]["args"], ["/bin/matrix_multiplication"])
        # memory_mb: 1024 in plugins/matrix_multiplication/plugin.yaml
        self.assertEqual(c["linux"]["resources"]["memory"]["limit"], 1024 * 1024 * 1024)
        self.assertTrue(c["root"]["readonly"])
        shutil.rmtree(ws)    # the harness checks that workspaces/ ends empty

    def test_each_run_has_its_own_config(self):
        # A job's config.json is a copy of the first of its kind with its
        # own values put in (oci.c): every kept one must name its own run,
        # paths, cgroup and user, carry its own plugin's command and limits,
        # and otherwise be the same for every job of a plugin.
        d = Daemon("keep-kinds", config={"keep_bundles": True})
        self.addCleanup(d.stop)
        d.start()
        echo = {"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": 1}}
        matrix = {"algorithm": "matrix_multiplication", "parameters": {"matrix_a": [[1]], "matrix_b": [[2]]}}
        jobs = [d.run_job(b) for b in (echo, matrix, echo, matrix, echo)]
        d.wait_cleaned()
        ws_root = os.path.join(d.state_dir, "workspaces")
        self.addCleanup(shutil.rmtree, d.view(ws_root), True)
        shapes = {}
        for job in jobs:
            self.assertEqual(job["status"], "succeeded", job)
            a = job["attempts"][-1]
            run_id, uid, gid = a["run_id"], a["uid"], a["gid"]
            ws = os.path.join(ws_root, run_id)
            with open(d.view(os.path.join(ws, "bundle", "config.json"))) as f:
                c = json.load(f)
            self.assertEqual(c["hostname"], run_id[:63])
            self.assertRegex(c["linux"]["cgroupsPath"], container_cgroup_re(d, run_id))
            self.assertEqual((c["process"]["user"]["uid"], c["process"]["user"]["gid"]), (uid, gid))
            sources = {m["destination"]: m["source"] for m in c["mounts"]}
            self.assertEqual(sources["/input"], os.path.join(ws, "input"))
            self.assertEqual(sources["/output"], os.path.join(ws, "output"))
            for m in c["mounts"]:
                if m["type"] == "tmpfs" and m["destination"] != "/dev":
                    self.assertIn("uid=%d" % uid, m["options"], m)
                    self.assertIn("gid=%d" % gid, m["options"], m)
            want = (["/bin/testkit", "echo"] if job["algorithm"] == "t_echo"
                    else ["/bin/matrix_multiplication"])
            self.assertEqual(c["process"]["args"], want)
            # The rest, with this run's own values taken out, is the plugin's.
            text = json.dumps(c, sort_keys=True)
            for v in (os.path.join(ws, "input"), os.path.join(ws, "output"), run_id[:63],
                      c["linux"]["cgroupsPath"]):
                text = text.replace(json.dumps(v), '"RUN"')
            text = re.sub(r'("uid": |"gid": |uid=|gid=)%d\b' % uid, r"\1U", text)
            text = re.sub(r'("gid": |gid=)%d\b' % gid, r"\1G", text)
            shapes.setdefault(job["algorithm"], set()).add(text)
        self.assertEqual({k: len(v) for k, v in shapes.items()}, {"t_echo": 1, "matrix_multiplication": 1})
        self.assertNotEqual(shapes["t_echo"], shapes["matrix_multiplication"])


@quick
class Sandbox(JobCase):

    def test_sandbox_from_inside(self):
        job = self.d.run_job({"algorithm": "t_sandbox"})
        self.assertEqual(job["status"], "succeeded", job)
        s = job["result"]
        a = job["attempts"][-1]
        self.assertEqual((s["uid"], s["gid"], s["euid"]), (a["uid"], a["gid"], a["uid"]), s)
        users = self.d.config["job_users"]
        self.assertTrue(users["first_uid"] <= a["uid"] < users["first_uid"] + users["count"], (a, users))
        self.assertEqual(a["gid"] - users["first_gid"], a["uid"] - users["first_uid"], (a, users))
        self.assertNotEqual(s["uid"], 65534, "never the host's nobody")
        self.assertEqual(s["pid"], 1, "own pid namespace")
        for k in ("cap_inh", "cap_prm", "cap_eff", "cap_bnd", "cap_amb"):
            self.assertEqual(int(s[k], 16), 0, "%s = %s" % (k, s[k]))
        self.assertEqual(s["no_new_privs"], 1)
        self.assertEqual(s["seccomp"], 2, "seccomp filter mode")
        self.assertIs(s["rootfs_writable"], False)
        # It starts with no signal blocked or ignored (the daemon blocks
        # them in its threads and ignores SIGPIPE: none of it may leak).
        self.assertEqual(int(s["sig_blocked"], 16), 0, s["sig_blocked"])
        # (Real-time signals are the runtime's business: runc leaves 32.)
        self.assertEqual(int(s["sig_ignored"], 16) & 0x7fffffff, 0, s["sig_ignored"])
        self.assertIn(str(s["rootfs_errno"]), ("EROFS", "30", "Read-only file system"), s)
        self.assertIs(s["input_writable"], False)
        self.assertIs(s["output_writable"], True)
        self.assertTrue(set(s["net_interfaces"]) <= {"lo"}, s["net_interfaces"])
        self.assertIn("/input", s["mounts"])
        self.assertIn("/output", s["mounts"])
        self.assertIn("EDGECD_INPUT=/input/input.json", s["env"])
        self.assertIn("EDGECD_OUTPUT=/output", s["env"])
        with open("/proc/sys/kernel/hostname") as f:
            self.assertNotEqual(s["hostname"], f.read().strip(), "own uts namespace")


class ScratchDirs(unittest.TestCase):
    """A job's /tmp is its own tmpfs, owned by its user: writable even when
    the plugin's rootfs has /tmp at mode 0755 (runc gives a tmpfs the mode
    of its mount point)."""

    def test_tmp_writable_with_a_0755_mount_point(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-tmp755-")
        self.addCleanup(shutil.rmtree, tmp, True)
        shutil.copytree(os.path.join(harness.OPTIONS["plugins"], "t_sandbox"), os.path.join(tmp, "t_sandbox"),
                        symlinks=True)
        os.chmod(os.path.join(tmp, "t_sandbox", "rootfs", "tmp"), 0o755)
        d = Daemon("tmp755", plugins=tmp)
        self.addCleanup(d.stop)
        d.start()
        job = d.run_job({"algorithm": "t_sandbox"})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertIs(job["result"]["tmp_writable"], True, job["result"])
        self.assertIs(job["result"]["rootfs_writable"], False, job["result"])


class Logs(JobCase):

    @quick
    def test_log_capped_and_flagged(self):
        job = self.d.run_job({"algorithm": "t_spam"})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"], {"ok": True})
        r = self.d.req("GET", "/v1/jobs/%s/logs" % job["id"])
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain"), r.headers)
        self.assertLessEqual(len(r.raw), MAX_LOG, "log not capped at max_log_bytes")
        self.assertGreater(len(r.raw), MAX_LOG // 2, "capped log is nearly empty")
        self.assertEqual((r.headers.get("X-Edgecd-Log-Truncated") or "").lower(), "true")

    def test_log_over_a_lowered_limit_is_served_cut(self):
        """A log written under a higher max_log_bytes, read after a restart
        with a lower one: served cut to today's limit and flagged, not
        refused."""
        d = Daemon("logcut", config={"max_log_bytes": MAX_LOG})
        self.addCleanup(d.stop)
        d.start()
        job = d.run_job({"algorithm": "t_spam"})
        self.assertEqual(job["status"], "succeeded", job)
        whole = d.req("GET", "/v1/jobs/%s/logs" % job["id"])
        self.assertEqual(whole.status, 200, whole)
        self.assertGreater(len(whole.raw), 4096, "t_spam wrote too little to test a cut")
        d.terminate()
        d.config["max_log_bytes"] = 4096
        with open(d.config_path, "w") as f:
            f.write("\n".join(harness.yaml_dump(d.config)) + "\n")
        d.restart()
        r = d.req("GET", "/v1/jobs/%s/logs" % job["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.raw), 4096)
        self.assertEqual(r.raw, whole.raw[:4096])
        self.assertEqual((r.headers.get("X-Edgecd-Log-Truncated") or "").lower(), "true")

    @quick
    def test_failure_message_quotes_the_end_of_a_capped_output(self):
        """A run that prints past max_log_bytes, then says why it fails:
        the message quotes what it said last (the log file holds only the
        first max_log_bytes), and a NUL byte before it hides nothing."""
        job = self.d.run_job({"algorithm": "t_spam", "parameters": {"fail": 3}})
        self.assertFailedWith(job, "algorithm_failed")
        self.assertEqual(job["exit_code"], 3)
        msg = job["error"]["message"]
        self.assertTrue(msg.endswith("quick brown fox jumps over the lazy dog 01234\n?testkit: gave up after all "
                                     "that output"), msg[-300:])
        r = self.d.req("GET", "/v1/jobs/%s/logs" % job["id"])
        self.assertEqual((r.headers.get("X-Edgecd-Log-Truncated") or "").lower(), "true")

    @quick
    def test_log_holds_stderr(self):
        job = self.d.run_job({"algorithm": "t_exit"})
        r = self.d.req("GET", "/v1/jobs/%s/logs" % job["id"])
        self.assertEqual(r.status, 200, r)
        self.assertIn("testkit: failing on purpose with status 3", r.body)
        self.assertNotEqual((r.headers.get("X-Edgecd-Log-Truncated") or "").lower(), "true")

    def test_runs_leave_no_descriptor_behind(self):
        """Each run's log pipe (both ends are the pump's until it stops),
        workspace and runtime handles are closed with the run: the
        daemon's descriptors are as many after runs that print, stay
        quiet or fail as before them."""
        d = Daemon("fds")
        self.addCleanup(d.stop)
        d.start()
        jobs = [{"algorithm": "t_echo"}, {"algorithm": "t_spam", "parameters": {"bytes": 5000}},
                {"algorithm": "t_exit"}]
        def fds():
            # The fewest of a few looks: an HTTP connection, a slot's
            # counter files or a store reader may come and go meanwhile.
            looks = []
            for _ in range(3):
                looks.append(sorted(os.listdir("/proc/%d/fd" % d.proc.pid)))
                time.sleep(0.2)
            return min(looks, key=len)

        for j in jobs:                  # the first of each kind opens what stays (templates, slots)
            d.run_job(j)
        d.wait_cleaned()
        before = fds()
        for _ in range(4):
            for j in jobs:
                d.run_job(j)
        d.wait_cleaned()
        after = fds()
        # One left per run would be 12 more.
        self.assertLess(len(after), len(before) + 4, "descriptors before %s, after %s" % (before, after))

    def test_a_log_on_a_stalled_disk_holds_up_no_other_run(self):
        """Writes of one run's log that stall (a throttled or stalled disk;
        here 8 s each) hold up that run's log alone: another job starts,
        runs and ends meanwhile, and the stalled run still ends with its
        log.  (Every run's log once shared one lock, held through each
        write: the other job waited for the stalled writes, 15 s here.)"""
        tmp = tempfile.mkdtemp(prefix="edgecd-slowlog-")
        self.addCleanup(shutil.rmtree, tmp, True)
        flag = os.path.join(tmp, "slow")
        d = Daemon("slowlog", config={"max_log_bytes": MAX_LOG}, env=harness.preload_shim("slowlog_shim", tmp))
        d.env.update({"SLOWLOG_FLAG": flag, "SLOWLOG_DIR": os.path.join(d.state_dir, "logs") + "/",
                      "SLOWLOG_MS": "8000"})
        self.addCleanup(d.stop)
        d.start()
        open(flag, "w").close()
        self.addCleanup(lambda: os.path.exists(flag) and os.unlink(flag))
        r = d.submit({"algorithm": "t_spam", "parameters": {"bytes": 1048576}, "timeout_seconds": 120})
        self.assertEqual(r.status, 202, r)
        spam = r.body["id"]
        d.wait_status(spam, "running")
        time.sleep(1)       # its log's first write has begun, and stalls
        t0 = time.monotonic()
        job = d.run_job({"algorithm": "t_echo", "parameters": {"n": 1}})
        took = time.monotonic() - t0
        self.assertEqual(job["status"], "succeeded", job)
        self.assertLess(took, 6, "a job took %.1f s while another run's log write stalled" % took)
        self.assertNotEqual(d.get_job(spam)["status"], "succeeded", "the stall ended too soon to tell")
        os.unlink(flag)
        job = d.wait_final(spam, timeout=60)
        self.assertEqual(job["status"], "succeeded", job)
        r = d.req("GET", "/v1/jobs/%s/logs" % spam)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.raw), MAX_LOG)
        self.assertTrue(r.raw.startswith(b"testkit spam: the quick brown fox"), r.raw[:100])

    def test_log_of_quiet_job(self):
        job = self.d.run_job({"algorithm": "t_echo"})
        r = self.d.req("GET", "/v1/jobs/%s/logs" % job["id"])
        self.assertEqual(r.status, 200, r)
        self.assertLess(len(r.raw), 1024)


@quick
class Listing(JobCase):

    def test_newest_first_and_paginated(self):
        ids = [self.d.run_job({"algorithm": "t_echo", "version": "1.0.0",
                               "parameters": {"list": i}})["id"] for i in range(3)]
        r = self.d.req("GET", "/v1/jobs?algorithm=t_echo&limit=2")
        self.assertEqual(r.status, 200, r)
        page = r.body["jobs"]
        self.assertEqual([j["id"] for j in page], ids[::-1][:2])
        for j in page:
            check_job(j)
        self.assertIsInstance(r.body["next"], str, r.body)
        r2 = self.d.req("GET", "/v1/jobs?algorithm=t_echo&limit=2&after=" + r.body["next"])
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r2.body["jobs"][0]["id"], ids[0])
        everything = self.d.list_jobs(limit=5)
        seen = [j["id"] for j in everything]
        self.assertEqual(len(seen), len(set(seen)), "pagination repeats jobs")
        times = [parse_time(j["created_at"]) for j in everything]
        self.assertEqual(times, sorted(times, reverse=True), "not newest first")
        self.assertTrue(set(ids) <= set(seen))
        check_error(self.d.req("GET", "/v1/jobs?after=00000000-0000-4000-8000-000000000000"), 400,
                    "invalid_request", "?after")

    def test_filters(self):
        ok = self.d.run_job({"algorithm": "t_echo", "version": "1.0.0"})
        bad = self.d.run_job({"algorithm": "t_exit"})
        failed = self.d.list_jobs(status="failed")
        self.assertTrue(failed and all(j["status"] == "failed" for j in failed))
        self.assertIn(bad["id"], [j["id"] for j in failed])
        self.assertNotIn(ok["id"], [j["id"] for j in failed])
        echo = self.d.list_jobs(algorithm="t_echo", status="succeeded")
        self.assertTrue(all(j["algorithm"] == "t_echo" for j in echo))
        self.assertIn(ok["id"], [j["id"] for j in echo])
        r = self.d.req("GET", "/v1/jobs?algorithm=no_such_algorithm")
        self.assertEqual((r.status, r.body["jobs"], r.body["next"]), (200, [], None))


@quick
class LargeListing(unittest.TestCase):
    """GET /v1/jobs?result=true stops a page once it holds a few MiB,
    however many jobs `limit` asks for: `next` goes on.  Without
    ?result=true a listing leaves the results out."""

    def test_page_of_large_results_is_cut_and_continued(self):
        d = Daemon("biglist", config={"workers": 2})
        self.addCleanup(d.stop)
        d.start()
        ids = set()
        for i in range(8):
            job = d.run_job({"algorithm": "t_big", "parameters": {"bytes": 700000}})
            self.assertEqual(job["status"], "succeeded", job)
            ids.add(job["id"])
        r = d.req("GET", "/v1/jobs?limit=1000")
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body["jobs"]), 8)
        self.assertTrue(all(j["result"] is None for j in r.body["jobs"]), "results listed unasked")
        self.assertLess(len(r.raw), 64 * 1024, len(r.raw))
        r = d.req("GET", "/v1/jobs?limit=1000&result=true")
        self.assertEqual(r.status, 200)
        first = r.body["jobs"]
        self.assertLess(len(first), 8, "one page carried %d large results" % len(first))
        self.assertGreater(len(first), 0)
        self.assertLess(len(r.raw), 6 * 1024 * 1024, len(r.raw))
        self.assertEqual(r.body["next"], first[-1]["id"])
        self.assertEqual(len(first[0]["result"][0]), 700000 - 4)
        listed = d.list_jobs(limit=1000, result="true")
        self.assertEqual({j["id"] for j in listed}, ids)
        self.assertEqual(len(listed), 8)


class Cancel(JobCase):

    def sleeper(self, seconds=60, **extra):
        body = {"algorithm": "t_sleep", "parameters": {"seconds": seconds}, "timeout_seconds": 120}
        body.update(extra)
        r = self.d.submit(body)
        self.assertEqual(r.status, 202, r)
        return self.track(r.body["id"])

    def test_cancel_running(self):
        jid = self.sleeper()
        self.d.wait_status(jid, "running")
        time.sleep(0.3)
        t0 = time.monotonic()
        r = self.d.req("DELETE", "/v1/jobs/" + jid)
        self.assertEqual(r.status, 202, r)
        job = self.d.wait_final(jid, timeout=10)
        self.assertLess(time.monotonic() - t0, 5 * harness.slow_factor())
        self.assertEqual(job["status"], "cancelled", job)
        self.assertEqual(job["error"]["code"], "cancelled")
        self.assertIsNotNone(job["started_at"])
        check_error(self.d.req("DELETE", "/v1/jobs/" + jid), 409)
        self.d.assert_idle_clean()

    def test_cancel_between_a_submits_commit_and_its_queueing(self):
        """A client that takes ids from a listing can cancel a job whose
        submit is on disk but not yet handed to the scheduler (widened
        here by EDGECD_TEST_ACCEPT_DELAY_MS): it is cancelled, not
        answered as it stands and then run."""
        d = harness.busy_daemon(self, "acceptwin", {}, env={"EDGECD_TEST_ACCEPT_DELAY_MS": "1500"})
        answers = []
        t = threading.Thread(target=lambda: answers.append(d.submit({"algorithm": "t_echo", "parameters": {"w": 1}})))
        t.start()
        self.addCleanup(t.join)
        deadline = time.monotonic() + 10
        queued = []
        while not queued and time.monotonic() < deadline:
            queued = [j["id"] for j in d.list_jobs(status="queued")]
            time.sleep(0.02)
        self.assertTrue(queued, "the submit never showed in the listing")
        self.assertFalse(answers, "the submit was answered before the window: %s" % answers)
        r = d.req("DELETE", "/v1/jobs/" + queued[0])
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.body["status"], "cancelled", r.body)
        t.join(10)
        self.assertEqual(answers[0].status, 202, answers)
        job = d.wait_final(queued[0], timeout=10)
        self.assertEqual((job["status"], job["started_at"]), ("cancelled", None), job)

    def test_cancel_queued(self):
        running = [self.sleeper(), self.sleeper()]
        for jid in running:
            self.d.wait_status(jid, "running")
        r = self.d.submit({"algorithm": "t_echo", "parameters": {"queued": True}})
        self.assertEqual(r.status, 202, r)
        qid = self.track(r.body["id"])
        time.sleep(0.3)
        self.assertEqual(self.d.get_job(qid)["status"], "queued", "both workers are busy")
        r = self.d.req("DELETE", "/v1/jobs/" + qid)
        self.assertEqual(r.status, 202, r)
        job = self.d.wait_final(qid, timeout=5)
        self.assertEqual(job["status"], "cancelled", job)
        self.assertEqual(job["error"]["code"], "cancelled")
        self.assertIsNone(job["started_at"])
        self.assertIsNone(job["exit_code"])
        for jid in running:
            self.assertEqual(self.d.req("DELETE", "/v1/jobs/" + jid).status, 202)
        for jid in running:
            self.assertEqual(self.d.wait_final(jid, timeout=10)["status"], "cancelled")
        self.d.assert_idle_clean()


class MaxConcurrent(JobCase):
    """A plugin's max_concurrent holds even with idle workers, and only that
    plugin waits."""

    def test_one_at_a_time(self):
        # 2.5 s each: the echo beside them (a cold run of its own) must end
        # before the second starts; with 0.7 s that was a margin of about
        # half a second, which a loaded host's container starts can eat.
        ids = [self.track(self.d.submit({"algorithm": "t_single", "parameters": {"seconds": 2.5}}).body["id"])
               for _ in range(2)]
        time.sleep(0.2)
        echo = self.d.run_job({"algorithm": "t_echo", "version": "1.0.0", "parameters": {"beside": 1}})
        self.assertEqual(echo["status"], "succeeded")
        jobs = sorted((self.d.wait_final(i) for i in ids), key=lambda j: j["started_at"])
        for j in jobs:
            self.assertEqual(j["status"], "succeeded", j)
        self.assertLessEqual(parse_time(jobs[0]["finished_at"]), parse_time(jobs[1]["started_at"]),
                             "two t_single jobs ran at once: %s" % jobs)
        # The other plugin did not wait behind them.
        self.assertLess(parse_time(echo["finished_at"]), parse_time(jobs[1]["started_at"]), echo)


class LargerThanThePool(unittest.TestCase):
    """A job whose memory limit is over the whole pool still runs, alone."""

    def test_alone_always_fits(self):
        d = Daemon("tinypool", config={"memory_pool_mb": 1})
        self.addCleanup(d.stop)
        d.start()
        job = d.run_job({"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": 1}}, timeout=20)
        self.assertEqual(job["status"], "succeeded", job)


class MemoryPool(unittest.TestCase):
    """A job starts only while the running jobs' memory limits fit the pool."""

    def test_second_job_waits_for_memory(self):
        # t_sleep gets the default 256 MiB; a 300 MiB pool holds one at a time
        # although two workers are free.
        d = Daemon("mempool", config={"workers": 2, "memory_pool_mb": 300})
        self.addCleanup(d.stop)
        d.start()
        ids = []
        # 2 s each: the first must still run at the looks below (1 s from
        # its container's start was short for a loaded host).
        for _ in range(2):
            r = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 2}, "timeout_seconds": 10})
            self.assertEqual(r.status, 202, r)
            ids.append(r.body["id"])
        d.wait_status(ids[0], "running")
        time.sleep(0.3)
        self.assertEqual(d.get_job(ids[1])["status"], "queued", "must wait for memory, not a worker")
        ready = d.req("GET", "/readyz").body["jobs"]
        self.assertEqual((ready["memory_reserved_mb"], ready["memory_pool_mb"]), (256, 300), ready)
        a, b = d.wait_final(ids[0]), d.wait_final(ids[1])
        self.assertEqual((a["status"], b["status"]), ("succeeded", "succeeded"), (a, b))
        self.assertGreaterEqual(parse_time(b["started_at"]), parse_time(a["finished_at"]))
        metrics = d.req("GET", "/metrics").body
        self.assertIn("edgecd_memory_pool_bytes %d" % (300 * 1024 * 1024), metrics)


# Jobs that hold memory until the test cancels them (under the submits'
# timeout_seconds of 30).
HOLD_S = 20


class MemoryHoldsTheLine(unittest.TestCase):
    """A big job waiting for memory is not overtaken for ever by small ones:
    once it waits, no job behind it starts before it."""

    def daemon(self, name, config):
        """A daemon with t_small (150 MiB) and t_large (300 MiB), both
        t_sleep; returns it and a submit(name, seconds) -> id."""
        tmp = tempfile.mkdtemp(prefix="edgecd-it-mem-")
        self.addCleanup(shutil.rmtree, tmp, True)
        src = os.path.join(harness.OPTIONS["plugins"], "t_sleep")
        for plugin, mb in (("t_small", 150), ("t_large", 300)):
            shutil.copytree(src, os.path.join(tmp, plugin), symlinks=True)
            path = os.path.join(tmp, plugin, "plugin.yaml")
            with open(path) as f:
                text = f.read().replace("name: t_sleep", "name: " + plugin)
            with open(path, "w") as f:
                f.write(text + "resources: {memory_mb: %d}\n" % mb)
        d = Daemon(name, plugins=tmp, config=config)
        self.addCleanup(d.stop)
        d.start()

        def submit(algorithm, seconds, priority="normal"):
            r = d.submit({"algorithm": algorithm, "parameters": {"seconds": seconds}, "timeout_seconds": 30,
                          "priority": priority})
            self.assertEqual(r.status, 202, r)
            self.addCleanup(harness.cancel_quietly, d, r.body["id"])
            return r.body["id"]
        return d, submit

    def cancel(self, d, *ids):
        """Cancel the jobs that hold memory (HOLD_S sleepers): each ends cancelled."""
        for i in ids:
            self.assertEqual(d.req("DELETE", "/v1/jobs/" + i).status, 202)
        for i in ids:
            job = d.wait_final(i, timeout=30)
            self.assertEqual(job["status"], "cancelled", job)

    def test_big_job_is_not_starved_by_small_ones(self):
        # Two small jobs fill 300 of 400 MiB; the large one needs the pool to
        # itself, so without holding the line a third small job would start
        # as soon as one of the first two ends, and so on.
        d, submit = self.daemon("memline", {"workers": 2, "memory_pool_mb": 400})
        s1 = submit("t_small", 1.0)
        s2 = submit("t_small", 1.5)
        d.wait_status(s1, "running")
        d.wait_status(s2, "running")
        large = submit("t_large", 0.2)
        s3 = submit("t_small", 0.2)
        jobs = {i: d.wait_final(i, timeout=30) for i in (s1, s2, large, s3)}
        for j in jobs.values():
            self.assertEqual(j["status"], "succeeded", j)
        self.assertLess(parse_time(jobs[large]["started_at"]), parse_time(jobs[s3]["started_at"]),
                        "the small job behind the waiting large one started first")
        self.assertGreaterEqual(parse_time(jobs[large]["started_at"]), parse_time(jobs[s2]["finished_at"]))

    def test_cancelling_the_job_that_holds_the_line_frees_it(self):
        # 300 of 500 MiB run; the large job does not fit and holds the line;
        # the small one behind it would fit.
        d, submit = self.daemon("memcancel", {"workers": 3, "memory_pool_mb": 500})
        # s1 and s2 run until cancelled at the end: with 4 s each, what
        # follows (s3's own start and run among it) could outlast them on a
        # loaded host, and s3 seemed to have waited for them.
        s1 = submit("t_small", HOLD_S)
        s2 = submit("t_small", HOLD_S)
        d.wait_status(s1, "running")
        d.wait_status(s2, "running")
        large = submit("t_large", 0.2)
        s3 = submit("t_small", 0.2)
        time.sleep(0.5)
        self.assertEqual(d.get_job(s3)["status"], "queued", "the line was not held")
        self.assertEqual(d.req("DELETE", "/v1/jobs/" + large).status, 202)
        done = d.wait_final(s3, timeout=10)
        self.assertEqual(done["status"], "succeeded", done)
        first = d.get_job(s1)
        self.assertNotEqual(first["status"], "succeeded", "s3 waited for a running job to end: %s" % first)
        self.cancel(d, s1, s2)

    def test_a_higher_priority_job_is_not_held_by_a_lower_ones_line(self):
        # 300 of 500 MiB run; a low-priority large job does not fit and
        # holds the line.  A high-priority small one that came later is
        # ahead of it in queue order and fits: it starts at once, while the
        # low-priority small one behind the large one still waits.
        d, submit = self.daemon("memprio", {"workers": 3, "memory_pool_mb": 500})
        s1 = submit("t_small", HOLD_S)      # until cancelled (see above)
        s2 = submit("t_small", HOLD_S)
        d.wait_status(s1, "running")
        d.wait_status(s2, "running")
        large = submit("t_large", 0.2, "low")
        behind = submit("t_small", 0.2, "low")
        time.sleep(0.5)
        self.assertEqual(d.get_job(large)["status"], "queued")
        high = submit("t_small", 0.2, "high")
        done = d.wait_final(high, timeout=10)
        self.assertEqual(done["status"], "succeeded", done)
        first = d.get_job(s1)
        self.assertNotEqual(first["status"], "succeeded",
                            "the high-priority job waited behind the low-priority one's line: %s" % first)
        self.assertEqual(d.get_job(behind)["status"], "queued", "the line was not held for the job behind it")
        self.cancel(d, s1, s2)
        jobs = {i: d.wait_final(i, timeout=30) for i in (large, behind)}
        for j in jobs.values():
            self.assertEqual(j["status"], "succeeded", j)


@quick
class Priority(JobCase):

    def test_high_before_normal_before_low(self):
        # The four below must all be queued before `short` frees a worker:
        # 3 s from its container's start (1 s could be over before the
        # last submit on a loaded host, and `low`, first in, ran first).
        short = self.d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 3},
                               "timeout_seconds": 10})
        long_ = self.d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 6},
                               "timeout_seconds": 10})
        for r in (short, long_):
            self.assertEqual(r.status, 202, r)
            self.track(r.body["id"])
        for r in (short, long_):
            self.d.wait_status(r.body["id"], "running")
        ids = {}
        for name, prio in (("low", "low"), ("normal", "normal"), ("high1", "high"),
                           ("high2", "high")):
            r = self.d.submit({"algorithm": "t_echo", "priority": prio, "parameters": {"p": name}})
            self.assertEqual(r.status, 202, r)
            self.assertEqual(r.body["priority"], prio)
            ids[name] = r.body["id"]
        jobs = {n: self.d.wait_final(i) for n, i in ids.items()}
        for r in (short, long_):
            self.d.wait_final(r.body["id"])
        order = sorted(jobs, key=lambda n: parse_time(jobs[n]["started_at"]))
        self.assertEqual(order, ["high1", "high2", "normal", "low"],
                         {n: j["started_at"] for n, j in jobs.items()})
