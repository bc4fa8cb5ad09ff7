"""Hostile plugins, on a real daemon and real containers.

Each test runs an algorithm that attacks its sandbox or the daemon (a fork
bomb, a CPU spinner, a process that ignores SIGTERM, a double-fork escapee,
network attempts, forbidden system calls, hostile result files, a result
that is cheap in bytes and costly as a tree, two jobs probing each other),
asserts the error code it ends with, then that the host is unchanged (no
process of the job's user left, no container, cgroup, mount or workspace)
and that the next job runs fine.  (A memory hog: test_jobs.Outcomes.
test_out_of_memory; a symlinked result: test_symlinked_result_is_refused.)
"""

import json
import os
import shutil
import tempfile
import time

from harness import Daemon, DaemonCase, copy_plugin, quick, slow_factor

SIGSYS = 31


def procs_of_uid(uid):
    """Host processes whose real or effective uid is uid."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/status" % pid) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        ids = [int(x) for x in line.split()[1:3]]
                        if uid in ids:
                            out.append(int(pid))
                        break
        except OSError:
            pass
    return out


class HostileCase(DaemonCase):
    CONFIG = {"workers": 2}

    def assertEnded(self, job, code):
        self.assertEqual(job["status"], "failed" if code else "succeeded", job)
        if code:
            self.assertEqual(job["error"]["code"], code, job)

    def assertHostUnchanged(self, job):
        """No process of the job's user is left, nothing of the run on the
        host, and the next job runs."""
        uid = job["attempts"][-1]["uid"]
        self.assertNotEqual(uid, 65534)
        deadline = time.monotonic() + 5
        while procs_of_uid(uid) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(procs_of_uid(uid), [], "processes of job uid %d left on the host" % uid)
        self.d.assert_idle_clean()
        nxt = self.d.run_job({"algorithm": "t_echo", "version": "1.0.0", "parameters": {"next": job["id"]}})
        self.assertEqual(nxt["result"], {"next": job["id"]}, nxt)


@quick
class Processes(HostileCase):

    def test_fork_bomb_ends_in_timeout_within_its_pids_limit(self):
        job = self.d.run_job({"algorithm": "t_forkbomb"})
        self.assertEnded(job, "timeout")
        self.assertGreaterEqual(job["metrics"]["run_ms"], 1900, job)
        self.assertHostUnchanged(job)

    def test_cpu_spinner_is_held_to_its_quota(self):
        job = self.d.run_job({"algorithm": "t_spin"})
        self.assertEnded(job, "timeout")
        m = job["metrics"]
        # cpu_cores 0.5: half of the wall clock at most (some slack for the
        # period boundaries), and it did spin.
        self.assertLess(m["cpu_ms"], 0.5 * m["run_ms"] * 1.25 + 100, m)
        self.assertGreater(m["cpu_ms"], 0.2 * m["run_ms"], m)
        self.assertHostUnchanged(job)

    def test_sigterm_ignorer_is_killed_at_its_timeout(self):
        job = self.d.run_job({"algorithm": "t_ignoreterm"})
        self.assertEnded(job, "timeout")
        self.assertLess(job["metrics"]["run_ms"], 2000 + 5000 * slow_factor(), job)
        self.assertHostUnchanged(job)

    def test_sigterm_ignorer_is_cancelled(self):
        r = self.d.submit({"algorithm": "t_ignoreterm", "timeout_seconds": 60})
        self.assertEqual(r.status, 202, r)
        jid = self.track(r.body["id"])
        self.d.wait_status(jid, "running")
        time.sleep(0.3)
        t0 = time.monotonic()
        self.assertEqual(self.d.req("DELETE", "/v1/jobs/" + jid).status, 202)
        job = self.d.wait_final(jid, timeout=15)
        self.assertLess(time.monotonic() - t0, 10 * slow_factor())
        self.assertEqual(job["status"], "cancelled", job)
        self.assertHostUnchanged(job)

    def test_double_fork_escapee_dies_with_its_job(self):
        job = self.d.run_job({"algorithm": "t_escape"})
        self.assertEnded(job, None)
        self.assertIsInstance(job["result"]["escaped_pid"], int)
        self.assertHostUnchanged(job)


@quick
class Network(HostileCase):

    def test_no_network_at_all(self):
        job = self.d.run_job({"algorithm": "t_net", "parameters": {"port": self.d.port}})
        self.assertEnded(job, None)
        res = job["result"]
        # Its own loopback only (runtimes differ on whether it is up).
        self.assertEqual([i["name"] for i in res["interfaces"]], ["lo"], res)
        # Binding a netlink socket talks to its own namespace's kernel
        # tables only; everything else would leave the namespace.
        reached = {k: v for k, v in res["attempts"].items() if v["ok"] and k != "netlink_route_bind"}
        self.assertEqual(reached, {}, "reached from inside a job: %s" % json.dumps(res["attempts"]))
        # The daemon listens on the host's 127.0.0.1: not the job's.
        self.assertIn(res["attempts"]["tcp4_localhost"]["errno"], ("ECONNREFUSED", "ENETUNREACH"), res)
        self.assertHostUnchanged(job)


@quick
class Syscalls(HostileCase):

    def test_every_forbidden_call_is_killed(self):
        job = self.d.run_job({"algorithm": "t_deadly_all"})
        self.assertEnded(job, None)
        calls = job["result"]["calls"]
        self.assertGreaterEqual(len(calls), 15, calls)
        alive = {k: v for k, v in calls.items() if v["signal"] != SIGSYS}
        self.assertEqual(alive, {}, "calls not killed by seccomp: %s" % json.dumps(alive))
        self.assertHostUnchanged(job)

    def test_clone_newuser_is_a_sandbox_violation(self):
        for call in ("clone_newuser", "unshare", "vsock"):
            job = self.d.run_job({"algorithm": "t_deadly", "parameters": {"call": call}})
            self.assertEnded(job, "sandbox_violation")
            self.assertIsNone(job["result"], job)
        self.assertHostUnchanged(job)


class ResultFiles(HostileCase):
    """What an algorithm leaves at /output/result.json is read without
    following links, without blocking, within the size limit."""

    CASES = (("fifo", "invalid_result"), ("dir", "invalid_result"), ("hardlink", "no_result"),
             ("sparse", "result_too_large"), ("proc_symlink", "invalid_result"),
             ("devzero", "invalid_result"), ("tmp_then_rename_late", "no_result"))

    def test_hostile_result_files(self):
        for kind, code in self.CASES:
            with self.subTest(kind=kind):
                t0 = time.monotonic()
                job = self.d.run_job({"algorithm": "t_resultattack", "parameters": {"kind": kind}})
                self.assertEnded(job, code)
                self.assertLess(time.monotonic() - t0, 15 * slow_factor(), "%s: took too long" % kind)
                self.assertNotIn("root:", json.dumps(job))
        self.assertHostUnchanged(job)

    def test_result_still_growing(self):
        # A child keeps appending after the main process exits: the pid
        # namespace dies with its init, and what is read is bounded.
        job = self.d.run_job({"algorithm": "t_resultattack", "parameters": {"kind": "growing"}})
        self.assertEqual(job["status"], "failed", job)
        self.assertIn(job["error"]["code"], ("invalid_result", "result_too_large"), job)
        self.assertHostUnchanged(job)


class CostlyResults(HostileCase):
    """1 MiB of `{},` is 349,525 objects: as a parsed tree that cost the
    daemon about 78 MiB each.  Results are kept as the text they are."""

    def test_many_objects_do_not_grow_the_daemon(self):
        before = self.d.rss_kib()
        for _ in range(3):
            job = self.d.run_job({"algorithm": "t_manyobjects", "parameters": {"bytes": 1048576}})
            self.assertEnded(job, None)
            self.assertEqual(len(job["result"]), 349525, len(job["result"]))
        grown = self.d.rss_kib() - before
        # Three results are 3 MiB of text; a sanitizer build keeps freed
        # buffers in quarantine for a while.
        limit = (48 if slow_factor() > 1 else 16) * 1024
        self.assertLess(grown, limit, "the daemon grew by %d KiB for 3 MiB of results" % grown)
        self.assertHostUnchanged(job)

    def test_deep_nesting_is_returned_as_written(self):
        r = self.d.submit({"algorithm": "t_manyobjects", "parameters": {"shape": "deep", "depth": 100000,
                                                                        "bytes": 200100}}, wait="true")
        self.assertEqual(r.status, 200, r)
        # Too deep for Python's json: look at the bytes.
        raw = r.raw.decode()
        self.assertIn('"status":"succeeded"', raw)
        self.assertIn('"result":' + "[" * 100000 + "]" * 100000, raw)
        job = json.loads(raw[:raw.index(',"result":')] + "}")
        self.assertEqual(job["status"], "succeeded", job)
        self.d.assert_idle_clean()


class Neighbours(HostileCase):
    """Two jobs side by side cannot reach each other's processes, files or
    IPC, and one exhausting its user's kernel limits (inotify instances,
    message queues) leaves the other's intact: each run has a uid of its
    own."""

    CONFIG = {"workers": 2}

    def test_two_jobs_cannot_reach_each_other(self):
        r = self.d.submit({"algorithm": "t_peer", "parameters": {"role": "holder", "tag": "nb", "seconds": 4}})
        self.assertEqual(r.status, 202, r)
        holder_id = self.track(r.body["id"])
        self.d.wait_status(holder_id, "running")
        time.sleep(1.0)
        prober = self.d.run_job({"algorithm": "t_peer", "parameters": {"role": "prober", "tag": "nb"}})
        holder = self.d.wait_final(holder_id, timeout=30)
        self.assertEnded(holder, None)
        self.assertEnded(prober, None)
        h, p = holder["result"], prober["result"]
        self.assertNotEqual(holder["attempts"][-1]["uid"], prober["attempts"][-1]["uid"])
        self.assertEqual((h["uid"], p["uid"]), (holder["attempts"][-1]["uid"], prober["attempts"][-1]["uid"]))
        # The holder did exhaust its user's inotify instances...
        self.assertEqual(h["inotify"]["errno"], "EMFILE", h)
        self.assertGreater(h["inotify"]["count"], 0, h)
        # ...and the prober, as another user, is unaffected.
        self.assertTrue(p["inotify_init"]["ok"], p)
        self.assertTrue(p["mq_open_new"]["ok"] or p["mq_open_new"]["errno"] != "EMFILE", p)
        for what in ("tmp_file", "shm_file", "sysv_msg", "sysv_shm", "posix_mq", "abstract_socket"):
            self.assertFalse(p[what]["ok"], "the prober reached the holder's %s: %s" % (what, p))
        self.assertEqual(p["procs"], [p["pid"]], "the prober sees other processes: %s" % p)
        self.assertEqual(p["kill_all"], [], p)
        self.assertHostUnchanged(prober)
        self.assertHostUnchanged(holder)


class OwnPluginsCase(HostileCase):
    """A daemon on a plugins dir of the class's own (cls.tmp, made by
    plugins_dir()), removed after it."""

    @classmethod
    def plugins_dir(cls, prefix):
        cls.tmp = tempfile.mkdtemp(prefix=prefix)
        os.chmod(cls.tmp, 0o755)
        copy_plugin("t_echo", os.path.join(cls.tmp, "t_echo"))
        return cls.tmp

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)


@quick
class PidsCeiling(OwnPluginsCase):
    """A manifest's `pids` is held to the config's max_pids: the host's pid
    space (kernel.pid_max, 32768 by default) is shared by every job and the
    host itself, and a manifest may ask for up to 65536."""

    @classmethod
    def setUpClass(cls):
        cls.plugins_dir("edgecd-it-pidsceiling-")
        copy_plugin("t_pids", os.path.join(cls.tmp, "t_manypids"), name="t_manypids", drop_resources=True,
                    extra="resources: {pids: 64}\n")
        config = {"workers": 2, "max_pids": 8, "defaults": {"pids": 8}}
        cls.d = Daemon(cls.__name__, plugins=cls.tmp, config=config).start()

    def test_manifest_pids_over_max_pids_is_cut(self):
        job = self.d.run_job({"algorithm": "t_manypids"})
        self.assertEnded(job, None)
        n = job["result"]["forked"]
        self.assertTrue(0 < n < 8, "forked %d children under max_pids 8 (the manifest asks for 64)" % n)
        self.assertHostUnchanged(job)


@quick
class ExitStatusOver128(OwnPluginsCase):
    """A runtime run in the foreground (runc, crun) exits 128+N for a
    container killed by signal N, and with the same status for an algorithm
    that exited with it itself.  The job must not drop what an exit has:
    the status, and the line the algorithm printed (README: "its message
    includes the exit status and the tail of the output")."""

    @classmethod
    def setUpClass(cls):
        cls.plugins_dir("edgecd-it-exit128-")
        for status in (139, 159):
            path = copy_plugin("t_exit", os.path.join(cls.tmp, "t_exit%d" % status), name="t_exit%d" % status)
            with open(path) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(text.replace('"exit", "3"]', '"exit", "%d"]' % status))
        cls.d = Daemon(cls.__name__, plugins=cls.tmp, config={"workers": 2}).start()

    def test_exit_status_and_output_are_kept(self):
        for status in (139, 159):
            with self.subTest(status=status):
                job = self.d.run_job({"algorithm": "t_exit%d" % status})
                self.assertEqual(job["status"], "failed", job)
                msg = job["error"]["message"]
                self.assertIn(str(status), msg, job)
                # An exit, or a status the runtime passed on: the number
                # the message names, never null.
                self.assertEqual(job["exit_code"], status, job)
                self.assertIn("failing on purpose with status %d" % status, msg, job)
                if job["error"]["code"] != "algorithm_failed":
                    # Only where the runtime cannot tell an exit from a
                    # signal; the message then says it may be either.
                    self.assertIn("or exited with status %d" % status, msg, job)
        self.assertHostUnchanged(job)
