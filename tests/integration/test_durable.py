"""The durable job store (SQLite in STATE_DIR/edgecd.db): records and logs
outlive the daemon; a crash (SIGKILL) re-runs the jobs that were running
once, a planned stop (SIGTERM) drains the running ones and keeps the queued
ones; a full disk refuses new work and recovers; retention and max_records
prune old records with their logs; Idempotency-Key; batch submit; listings
without results; the store's counters in /metrics; and a chaos run: 16
clients submit 1,000 jobs while the daemon is SIGKILLed ten times.

Every test has its own daemon (harness.Daemon) and restarts it on the same
config, state dir, port and cgroup parent with Daemon.kill() or
Daemon.terminate() and Daemon.restart().  The plugins these tests need that
the shared test plugins lack (rerun: false) are made in a temporary plugins
dir, so the shared one and its counts stay as other tests expect."""

import calendar
import contextlib
import ctypes
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

import harness
from harness import Daemon, FINAL, check_error, check_job, parse_time, quick, slow_factor


def echo(i, **params):
    """A t_echo 1.0.0 job whose result is its parameters ({"i": i, ...})."""
    p = {"i": i}
    p.update(params)
    return {"algorithm": "t_echo", "version": "1.0.0", "parameters": p}


def sleep(seconds, timeout=30, algorithm="t_sleep"):
    # t_sleep's manifest says timeout_seconds 2: every test names its own.
    return {"algorithm": algorithm, "parameters": {"seconds": seconds}, "timeout_seconds": timeout}


def body_bytes(body):
    """The exact bytes sent for body (a replay must be byte-identical)."""
    return json.dumps(body, separators=(",", ":")).encode()


JSON = {"Content-Type": "application/json"}


def keyed(key):
    h = dict(JSON)
    h["Idempotency-Key"] = key
    return h


# ------------------------------------------------------------------ SQLite

def db_connect(path):
    """A read-only connection to the daemon's database (it may be running)."""
    return contextlib.closing(sqlite3.connect("file:%s?mode=ro" % urllib.parse.quote(path), uri=True,
                                              timeout=10))


# enum job_status in daemon/store/record.h, as the jobs table stores it.
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def db_record_status(path, job_id):
    """The status stored for job_id in the jobs table (schema version 1 of
    daemon/store/store_sqlite.c), read straight from the file; None when there is
    no such row."""
    with db_connect(path) as c:
        row = c.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        return None
    return STATUSES[row[0]] if isinstance(row[0], int) and 0 <= row[0] < len(STATUSES) else row[0]


def utc_seconds(rfc3339):
    return calendar.timegm(parse_time(rfc3339).timetuple()) + parse_time(rfc3339).microsecond / 1e6


def integrity_check(path):
    with db_connect(path) as c:
        return [r[0] for r in c.execute("PRAGMA integrity_check")]


# -------------------------------------------------------------- test base

class DurableCase(unittest.TestCase):

    def daemon(self, name, config=None, plugins=None, start=True, after_stop=None, env=None):
        cfg = {"workers": 2, "queue_capacity": 64}
        cfg.update(config or {})
        d = Daemon(name, config=cfg, plugins=plugins, env=env)
        if after_stop is not None:
            self.addCleanup(after_stop, d)
        self.addCleanup(d.stop)
        # Cleanups run last-in first-out: queued and running jobs are
        # cancelled first, so that stop()'s SIGTERM has nothing to drain.
        self.addCleanup(harness.cancel_all, d)
        if start:
            d.start()
        return d

    def slow_fsync_daemon(self, name):
        """A daemon whose WAL fsyncs take a second once `flag` exists."""
        tmp = tempfile.mkdtemp(prefix="edgecd-slowfsync-")
        self.addCleanup(shutil.rmtree, tmp, True)
        flag = os.path.join(tmp, "slow")
        env = harness.preload_shim("slowfsync_shim", tmp)
        env.update({"SLOWFSYNC_FLAG": flag, "SLOWFSYNC_MS": "1000"})
        d = self.daemon(name, {"workers": 1}, env=env)
        return d, flag

    def submit_ok(self, d, body, headers=None):
        r = d.submit(body, headers=headers)
        self.assertEqual(r.status, 202, "submit %s: %s" % (json.dumps(body)[:200], r))
        check_job(r.body, runtime=d.runtime.get("name"))
        return r.body["id"]

    def wait_attempt_running(self, d, job_id, n, timeout=20.0):
        """Wait until job_id runs its n-th run (run id <id>-n), then give the
        container a moment to be up."""
        deadline = time.monotonic() + timeout * slow_factor()
        job = None
        while time.monotonic() < deadline:
            job = d.get_job(job_id)
            a = job.get("attempts") or []
            if job["status"] == "running" and len(a) == n and a[-1]["run_id"] == "%s-%d" % (job_id, n):
                time.sleep(0.3)
                return job
            if job["status"] in FINAL:
                break
            time.sleep(0.05)
        self.fail("job %s never ran its run %d: %s" % (job_id, n, json.dumps(job)[:1500]))

    def assertRuns(self, job, codes):
        """job's attempts are <id>-1..<id>-n with these error codes (None: ok)."""
        a = job["attempts"]
        self.assertEqual([x["run_id"] for x in a], ["%s-%d" % (job["id"], i + 1) for i in range(len(a))],
                         json.dumps(job)[:2000])
        self.assertEqual([(x.get("error") or {}).get("code") for x in a], list(codes), json.dumps(job)[:2000])

    def assertEcho(self, job, i):
        self.assertEqual(job["status"], "succeeded", json.dumps(job)[:1500])
        self.assertEqual(job["result"], {"i": i}, json.dumps(job)[:1500])

    def log_file(self, d, run_id):
        return os.path.join(d.state_dir, "logs", run_id + ".log")


def plugins_with(tmp, names, extra=()):
    """A plugins dir in tmp with copies of the shared test plugins `names`
    and, for each (new name, source, manifest lines to add) in extra, a
    copy of source renamed, with those lines added to its plugin.yaml."""
    plugins = os.path.join(tmp, "plugins")
    os.makedirs(plugins)
    src = harness.OPTIONS["plugins"]
    for n in names:
        shutil.copytree(os.path.join(src, n), os.path.join(plugins, n), symlinks=True)
    for new, source, lines in extra:
        shutil.copytree(os.path.join(src, source), os.path.join(plugins, new), symlinks=True)
        y = os.path.join(plugins, new, "plugin.yaml")
        with open(y) as f:
            text = f.read().replace("name: %s\n" % source, "name: %s\n" % new)
        # Drop the source's own timeout: the tests name their own.
        text = "".join(ln for ln in text.splitlines(True) if not ln.startswith("timeout_seconds:"))
        text += "timeout_seconds: 30\n" + "".join(ln + "\n" for ln in lines)
        with open(y, "w") as f:
            f.write(text)
        os.chmod(y, 0o644)
    return plugins


# ------------------------------------------------------------- 1. restart

class RecordsOutliveTheDaemon(DurableCase):

    @quick
    def test_record_and_log_survive_a_restart(self):
        d = self.daemon("restart")
        echo_job = d.run_job(echo(1))
        self.assertEcho(echo_job, 1)
        spam = d.run_job({"algorithm": "t_spam", "parameters": {"bytes": 3000}})
        self.assertEqual((spam["status"], spam["result"]), ("succeeded", {"ok": True}), spam)
        failed = d.run_job({"algorithm": "t_exit"})
        self.assertEqual(failed["error"]["code"], "algorithm_failed", failed)

        self.assertTrue(os.path.isfile(d.db_path), "no %s" % d.db_path)
        with db_connect(d.db_path) as c:
            mode = c.execute("PRAGMA journal_mode").fetchone()[0]
        self.assertEqual(mode.lower(), "wal", "the store is not in WAL mode")
        jobs = [echo_job, spam, failed]
        before, logs = {}, {}
        for j in jobs:
            before[j["id"]] = d.get_job(j["id"])
            run_id = j["id"] + "-1"
            # A run that printed nothing (t_echo) leaves no file: an empty log.
            self.assertEqual(os.path.isfile(self.log_file(d, run_id)), j is not echo_job, "log file of run %s" % run_id)
            r = d.req("GET", "/v1/jobs/%s/logs" % j["id"])
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("X-Edgecd-Run-Id"), run_id, r.headers)
            logs[j["id"]] = r.raw
        self.assertEqual(logs[echo_job["id"]], b"")
        self.assertIn(b"testkit spam: the quick brown fox", logs[spam["id"]])
        self.assertIn(b"testkit: failing on purpose with status 3", logs[failed["id"]])
        listed = [j["id"] for j in d.list_jobs()]

        rc, _ = d.terminate()
        self.assertEqual(rc, 0, "exit status after SIGTERM")
        self.assertTrue(os.path.isfile(d.db_path), "the store is gone after SIGTERM")
        d.restart()

        for j in jobs:
            after = d.get_job(j["id"])
            self.assertEqual(after, before[j["id"]], "the record changed across the restart")
            r = d.req("GET", "/v1/jobs/%s/logs" % j["id"])
            self.assertEqual(r.status, 200, "logs after the restart: %s" % (r,))
            self.assertEqual(r.headers.get("X-Edgecd-Run-Id"), j["id"] + "-1", r.headers)
            self.assertEqual(r.raw, logs[j["id"]], "the log changed across the restart")
        self.assertEqual([j["id"] for j in d.list_jobs()], listed, "the listing changed across the restart")

        # The restarted daemon goes on: a new job, newest first.
        new = d.run_job(echo(2))
        self.assertEcho(new, 2)
        self.assertNotIn(new["id"], before)
        self.assertEqual([j["id"] for j in d.list_jobs(algorithm="t_echo")], [new["id"], echo_job["id"]])
        d.assert_idle_clean()


# ------------------------------------------------------ 2. SIGKILL recovery

class CrashRecovery(DurableCase):

    def test_killed_during_the_sandbox_probe_leaves_nothing(self):
        # The first probe stops before the runtime's create, its workspace
        # (and tmpfs mounts) made, and waits there to be killed.
        tmp = tempfile.mkdtemp(prefix="edgecd-it-probekill-")
        self.addCleanup(shutil.rmtree, tmp, True)
        reached = os.path.join(tmp, "reached")
        body = ('case "$op:$id" in create:edgecd-probe-*) if [ ! -e %s ]; then '
                'echo $$ > %s; exec sleep 60; fi;; esac' % (reached, reached))
        w = harness.write_runtime_wrapper(tmp, "slowprobe", body)
        d = Daemon("probekill", config={"runtime": w})
        self.addCleanup(d.stop)
        p = subprocess.Popen([harness.OPTIONS["daemon"], "--config", d.config_path],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=d.tmp)
        try:
            deadline = time.monotonic() + 20 * slow_factor()
            while time.monotonic() < deadline and not os.path.exists(reached):
                self.assertIsNone(p.poll(), "the daemon exited before probing")
                time.sleep(0.05)
            self.assertTrue(os.path.exists(reached), "the probe never reached create")
            self.assertTrue(harness.mounts_under(d.tmp, p.pid), "the probe had mounted nothing to leave")
        finally:
            p.kill()                                # ours, by its pid
            p.wait()
            with contextlib.suppress(OSError, ValueError):
                with open(reached) as f:
                    sleeper = int(f.read().strip())   # the wrapper we started, now sleep
                if sleeper > 0:
                    os.kill(sleeper, signal.SIGKILL)
        d.start()
        # (workspaces/ is the running daemon's own tmpfs.)
        probe = os.path.join(d.state_dir, "probe")
        self.assertEqual(harness.mounts_under(probe) + harness.mounts_under(probe, d.proc.pid), [],
                         "the killed probe's mounts outlived the restart")
        d.stop()
        self.assertEqual(harness.mounts_under(d.tmp), [])

    def test_sigkill_reruns_the_running_job_and_runs_the_queued_ones(self):
        d = self.daemon("sigkill", {"workers": 1})
        sid = self.submit_ok(d, sleep(3, timeout=30))
        d.wait_status(sid, "running")
        eids = [self.submit_ok(d, echo(i)) for i in range(3)]
        time.sleep(0.3)
        for e in eids:
            self.assertEqual(d.get_job(e)["status"], "queued")
        d.kill()
        root = os.path.join(d.state_dir, "runtime")
        killed = "%s/%s-1" % (d.runtime["name"], sid)
        self.assertEqual(harness.runtime_containers(root), [killed], "the killed daemon's container")

        d.restart()
        self.assertNotIn(killed, harness.runtime_containers(root), "the killed daemon's container is still there")
        job = d.wait_final(sid, timeout=30)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(float(job["result"]["slept"]), 3.0, job)
        self.assertRuns(job, ["interrupted", None])
        self.assertTrue(job["attempts"][0]["error"]["message"], job)
        for i, e in enumerate(eids):
            ej = d.wait_final(e, timeout=30)
            self.assertEcho(ej, i)
            self.assertRuns(ej, [None])
        d.wait_cleaned()
        d.assert_idle_clean()
        self.assertEqual(harness.runtime_containers(root), [])
        self.assertEqual(harness.cgroup_children(d.cgroup_parent), [])
        self.assertEqual(os.listdir(d.view(os.path.join(d.state_dir, "workspaces"))), [])

    def test_a_cancel_answered_is_not_undone_by_a_crash(self):
        # The answer to a running job's cancel comes once its end is on
        # disk: a SIGKILL right after it must not run the job again.
        d = self.daemon("cancelcrash", {"workers": 1})
        sid = self.submit_ok(d, sleep(5, timeout=30))
        d.wait_status(sid, "running")
        r = d.req("DELETE", "/v1/jobs/" + sid)
        d.kill()
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.body["status"], "cancelled", json.dumps(r.body)[:1500])
        d.restart()
        job = d.wait_final(sid, timeout=30)
        self.assertEqual(job["status"], "cancelled", json.dumps(job)[:1500])
        self.assertRuns(job, ["cancelled"])
        # Nobody asked: a second cancel is refused, the job stays as it was.
        self.assertEqual(d.req("DELETE", "/v1/jobs/" + sid).status, 409)
        d.wait_cleaned()
        d.assert_idle_clean()


# ---------------------------------------------- 3. a crash re-runs only once

class CrashRerunsOnce(DurableCase):

    def test_rerun_false_is_not_rerun(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-norerun-")
        self.addCleanup(shutil.rmtree, tmp, True)
        plugins = plugins_with(tmp, ["t_sleep"], extra=[("t_norerun", "t_sleep", ["rerun: false"]),
                                                       ("t_rerun", "t_sleep", ["rerun: true"]),
                                                       ("t_badrerun", "t_sleep", ["rerun: 7"])])
        d = self.daemon("norerun", {"workers": 3}, plugins=plugins)
        r = d.req("GET", "/v1/algorithms")
        self.assertEqual(r.status, 200, r)
        names = {a["name"] for a in r.body["algorithms"]}
        self.assertTrue({"t_norerun", "t_rerun", "t_sleep"} <= names, "rerun: true/false must load: %s" % (r,))
        bad = [b for b in r.body["broken"] if "t_badrerun" in b["path"]]
        self.assertEqual(len(bad), 1, "rerun: 7 is not a bool: %s" % (r,))
        self.assertIn("rerun", bad[0]["error"], bad)
        self.assertEqual(len(r.body["broken"]), 1, r)

        no = self.submit_ok(d, sleep(20, algorithm="t_norerun"))
        yes = self.submit_ok(d, sleep(3, algorithm="t_rerun"))
        default = self.submit_ok(d, sleep(3))
        for j in (no, yes, default):
            d.wait_status(j, "running")
        time.sleep(0.3)
        d.kill()
        d.restart()

        job = d.wait_final(no, timeout=10)
        self.assertEqual((job["status"], job["error"]["code"]), ("failed", "interrupted"), job)
        self.assertRuns(job, ["interrupted"])
        self.assertIsNone(job["result"], job)
        for j in (yes, default):
            job = d.wait_final(j, timeout=30)
            self.assertEqual(job["status"], "succeeded", job)
            self.assertRuns(job, ["interrupted", None])
        d.assert_idle_clean()

    def test_killed_twice_while_running_fails_interrupted(self):
        d = self.daemon("twice", {"workers": 1})
        sid = self.submit_ok(d, sleep(20, timeout=30))
        self.wait_attempt_running(d, sid, 1)
        d.kill()
        d.restart()
        self.wait_attempt_running(d, sid, 2)
        d.kill()
        d.restart()
        job = d.wait_final(sid, timeout=10)
        self.assertEqual((job["status"], job["error"]["code"]), ("failed", "interrupted"), job)
        self.assertRuns(job, ["interrupted", "interrupted"])
        self.assertTrue(job["error"]["message"], job)
        # The daemon goes on.
        self.assertEcho(d.run_job(echo(1)), 1)
        d.assert_idle_clean()


# ------------------------------------------------------- 4. planned stops

class PlannedStop(DurableCase):

    def test_sigterm_drains_the_running_job_and_keeps_the_queued(self):
        d = self.daemon("drain", {"workers": 1, "drain_seconds": 15})
        # 3 s: the job must still run at the SIGTERM, after the submits and
        # looks below (1 s, from its container's start, could be over by
        # then on a loaded host: "nothing was drained", or an echo running).
        sid = self.submit_ok(d, sleep(3, timeout=10))
        d.wait_status(sid, "running")
        eids = [self.submit_ok(d, echo(i)) for i in range(3)]
        for e in eids:
            self.assertEqual(d.get_job(e)["status"], "queued")
        signalled = time.time()
        rc, secs = d.terminate()
        self.assertEqual(rc, 0)
        self.assertLess(secs, 10 * slow_factor(), "the drain of a 3 s job took %.1f s" % secs)
        self.assertEqual(d.leftovers(include_parent=False), [])
        self.assertEqual(db_record_status(d.db_path, eids[0]), "queued", "a queued job's stored status")

        d.restart()
        job = d.wait_final(sid, timeout=10)
        self.assertEqual(job["status"], "succeeded", "the running job was not drained: %s" % job)
        self.assertRuns(job, [None])
        self.assertGreater(utc_seconds(job["finished_at"]), signalled - 0.05,
                           "the job ended before SIGTERM: nothing was drained (%s)" % job)
        for i, e in enumerate(eids):
            ej = d.wait_final(e, timeout=30)
            self.assertEcho(ej, i)
            self.assertRuns(ej, [None])
        d.assert_idle_clean()

    def test_api_answers_during_the_drain(self):
        # While running jobs drain, the daemon still listens: /readyz says
        # it is stopping, a submit gets 503 shutting_down, reads and cancels
        # work.
        d = self.daemon("drainapi", {"workers": 1, "drain_seconds": 20})
        sid = self.submit_ok(d, sleep(30, timeout=60))
        d.wait_status(sid, "running")
        qid = self.submit_ok(d, echo(1))
        d.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and d.req("GET", "/readyz").status != 503:
            time.sleep(0.05)
        ready = d.req("GET", "/readyz")
        self.assertEqual(ready.status, 503, ready)
        self.assertIn("shutting down", json.dumps(ready.body["reasons"]), ready)
        r = d.submit(echo(2))
        check_error(r, 503, "shutting_down")
        self.assertEqual(d.get_job(sid)["status"], "running")
        self.assertEqual(d.get_job(qid)["status"], "queued")
        r = d.req("DELETE", "/v1/jobs/" + qid)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(d.get_job(qid)["status"], "cancelled")
        # The operator's cancel wins over the stop: the running job ends
        # cancelled, not queued for the next start.
        r = d.req("DELETE", "/v1/jobs/" + sid)
        self.assertEqual(r.status, 202, r)
        rc = d.proc.wait(15 * slow_factor())
        d.logf.close()
        self.assertEqual(rc, 0)
        self.assertEqual(db_record_status(d.db_path, sid), "cancelled")
        self.assertEqual(db_record_status(d.db_path, qid), "cancelled")
        d.restart()
        self.assertEqual(d.get_job(sid)["error"]["code"], "cancelled")
        d.assert_idle_clean()

    def test_drain_seconds_bound_the_stop_and_the_job_runs_again(self):
        d = self.daemon("draintimeout", {"workers": 1, "drain_seconds": 1})
        sid = self.submit_ok(d, sleep(6, timeout=30))
        self.wait_attempt_running(d, sid, 1)
        qid = self.submit_ok(d, echo(7))
        rc, secs = d.terminate()
        self.assertEqual(rc, 0)
        self.assertLess(secs, 1 + 2.5 * slow_factor(),
                        "drain_seconds 1: the daemon took %.1f s to exit (the job sleeps 6 s)" % secs)
        self.assertEqual(d.leftovers(include_parent=False), [], "the interrupted run left something")
        self.assertEqual(db_record_status(d.db_path, sid), "queued", "the interrupted job's stored status")
        self.assertEqual(db_record_status(d.db_path, qid), "queued", "the queued job's stored status")
        self.assertEqual(integrity_check(d.db_path), ["ok"])

        d.restart()
        job = d.wait_final(sid, timeout=30)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertRuns(job, ["interrupted", None])
        self.assertEcho(d.wait_final(qid), 7)
        d.assert_idle_clean()

    def test_planned_stop_does_not_use_up_the_crash_rerun(self):
        d = self.daemon("plannedthencrash", {"workers": 1, "drain_seconds": 1})
        sid = self.submit_ok(d, sleep(4, timeout=30))
        self.wait_attempt_running(d, sid, 1)
        rc, _ = d.terminate()
        self.assertEqual(rc, 0)
        d.restart()
        self.wait_attempt_running(d, sid, 2)
        d.kill()
        d.restart()
        job = d.wait_final(sid, timeout=30)
        self.assertEqual(job["status"], "succeeded",
                         "interrupted once by SIGTERM and once by SIGKILL: the crash re-run is due: %s" % job)
        self.assertRuns(job, ["interrupted", "interrupted", None])
        d.assert_idle_clean()


# ------------------------------------------------------------- 5. chaos

class Chaos(DurableCase):
    JOBS = 1000
    CLIENTS = 16
    KILLS = 10

    def test_thousand_submits_through_ten_sigkills(self):
        d = self.daemon("chaos", {"workers": 2, "queue_capacity": 2000})
        rng = random.Random(os.getpid() ^ int(time.time()))
        ids = [None] * self.JOBS
        statuses = [None] * self.JOBS
        problems = []
        stats = {"conn_errors": 0, "503": 0, "replayed": 0}
        lock = threading.Lock()
        give_up = time.monotonic() + 150 * slow_factor()
        last_ack = [0.0]

        def client(k):
            crng = random.Random(k * 7919 + rng.random())
            for i in range(k, self.JOBS, self.CLIENTS):
                data = body_bytes(echo(i))
                hdrs = keyed("chaos-%04d" % i)
                while True:
                    if time.monotonic() > give_up:
                        with lock:
                            problems.append("job %d: no 2xx before the deadline" % i)
                        return
                    try:
                        r = d.req("POST", "/v1/jobs", data, hdrs, timeout=15)
                    except (OSError, http.client.HTTPException):
                        with lock:
                            stats["conn_errors"] += 1
                        time.sleep(crng.uniform(0.05, 0.2))
                        continue
                    if r.status == 503:
                        with lock:
                            stats["503"] += 1
                        time.sleep(crng.uniform(0.05, 0.2))
                        continue
                    if r.status in (200, 202) and isinstance(r.body, dict) and isinstance(r.body.get("id"), str):
                        ids[i], statuses[i] = r.body["id"], r.status
                        with lock:
                            last_ack[0] = time.monotonic()
                            if r.status == 200:
                                stats["replayed"] += 1
                        break
                    with lock:
                        problems.append("job %d: %s" % (i, r))
                    break
                time.sleep(crng.uniform(0, 0.3))

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(self.CLIENTS)]
        for t in threads:
            t.start()
        kill_times = []
        try:
            for _ in range(self.KILLS):
                time.sleep(rng.uniform(0.8, 2.5))
                kill_times.append(time.monotonic())
                d.kill()
                d.restart(timeout=60)
        finally:
            for t in threads:
                t.join(200)
        self.assertFalse(any(t.is_alive() for t in threads), "clients still submitting")
        self.assertEqual(problems, [], "clients (%s): %s" % (stats, problems[:20]))
        self.assertEqual(len(kill_times), self.KILLS)
        self.assertLess(kill_times[0], last_ack[0], "no SIGKILL fell while clients were submitting")
        self.assertGreater(stats["conn_errors"], 0, "no client ever saw the daemon gone: %s" % stats)
        missing = [i for i in range(self.JOBS) if ids[i] is None]
        self.assertEqual(missing, [], "submissions without a 2xx")
        self.assertEqual(len(set(ids)), self.JOBS,
                         "%d distinct ids for %d idempotency keys" % (len(set(ids)), self.JOBS))

        deadline = time.monotonic() + 240 * slow_factor()
        while True:
            busy = [j["id"] for st in ("queued", "running")
                    for j in d.req("GET", "/v1/jobs?status=%s&limit=5" % st).body["jobs"]]
            if not busy:
                break
            self.assertLess(time.monotonic(), deadline, "jobs still active: %s" % busy)
            time.sleep(0.5)

        listed = [j["id"] for j in d.list_jobs(algorithm="t_echo")]
        self.assertEqual(len(listed), len(set(listed)), "the listing repeats jobs")
        self.assertEqual(set(listed), set(ids), "listed jobs and acknowledged ids differ: %d extra, %d missing"
                         % (len(set(listed) - set(ids)), len(set(ids) - set(listed))))
        twice = []
        for i, jid in enumerate(ids):
            r = d.req("GET", "/v1/jobs/" + jid)
            self.assertEqual(r.status, 200, "acknowledged job %d (%s) is gone: %s" % (i, jid, r))
            job = check_job(r.body, final=True, runtime=d.runtime.get("name"))
            codes = [(a.get("error") or {}).get("code") for a in job["attempts"]]
            if job["status"] == "failed" and job["error"]["code"] == "interrupted" \
                    and codes == ["interrupted", "interrupted"]:
                twice.append(jid)       # running at two kills in a row: allowed (test 3)
                continue
            self.assertEcho(job, i)
            # One success, at most one crash re-run before it.
            self.assertIn(codes, ([None], ["interrupted", None]), json.dumps(job)[:1500])
            self.assertRuns(job, codes)
        self.assertLessEqual(len(twice), 2, "jobs interrupted twice: %s" % twice)
        d.assert_idle_clean()
        rc, _ = d.terminate(timeout=30)
        self.assertEqual(rc, 0)
        self.assertEqual(integrity_check(d.db_path), ["ok"])


# ------------------------------------------------------------ 6. full disk

class FullDisk(DurableCase):

    def test_full_state_dir_refuses_work_and_recovers(self):
        d = self.daemon("fullstore", start=False, after_stop=harness.unmount_state)
        fill = harness.state_on_small_disk(d)
        # Before d.stop(): the daemon stops on a disk with room.
        self.addCleanup(lambda: os.path.exists(fill) and os.unlink(fill))
        d.start()

        first = d.run_job(echo(1))
        self.assertEcho(first, 1)
        time.sleep(0.5)
        harness.fill_disk(fill)
        self.assertGreater(os.path.getsize(fill), 8 << 20)

        # A commit in WAL space the file already has may still succeed: a
        # job accepted that way is durable and fine.  The disk is full, so
        # a 503 must come within a few submits.
        accepted = []
        refused = None
        for k in range(20):
            r = d.submit(echo(100 + k))
            if r.status == 202:
                accepted.append(r.body["id"])
                continue
            refused = r
            break
        self.assertIsNotNone(refused, "20 submits accepted on a full disk")
        check_error(refused, 503, "storage_unavailable")
        self.assertLessEqual(len(accepted), 3, "accepted on a full disk: %s" % accepted)
        r = d.req("GET", "/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.body["status"], "unhealthy", r)
        self.assertIn("store", " ".join(r.body.get("reasons") or []).lower(), r)
        r = d.req("GET", "/v1/jobs/" + first["id"])
        self.assertEqual(r.status, 200, "a read while the disk is full: %s" % (r,))
        self.assertEcho(r.body, 1)
        check_error(d.submit(echo(200)), 503, "storage_unavailable")
        self.assertTrue(d.alive(), "the daemon died on a full disk")

        os.unlink(fill)
        t0 = time.monotonic()
        again = None
        while time.monotonic() - t0 < 5 * slow_factor():
            r = d.submit(echo(2))
            if r.status == 202:
                again = r.body["id"]
                break
            check_error(r, 503, "storage_unavailable")
            time.sleep(0.2)
        self.assertIsNotNone(again, "submits still refused 5 s after space came back")
        while True:
            r = d.req("GET", "/readyz")
            why = " ".join(r.body.get("reasons") or []).lower()
            if "store" not in why and r.body["status"] != "unhealthy":
                break
            self.assertLess(time.monotonic() - t0, 5 * slow_factor(), "readyz still unhealthy: %s" % (r,))
            time.sleep(0.2)
        self.assertEcho(d.wait_final(again, timeout=30), 2)
        for jid in accepted:
            job = d.wait_final(jid, timeout=30)
            # Run while the disk was full, it may have failed in the runtime.
            self.assertIn((job["status"], (job["error"] or {}).get("code")),
                          (("succeeded", None), ("failed", "runtime_error")), job)
        self.assertTrue(d.alive(), "the daemon died")
        d.assert_idle_clean()
        rc, _ = d.terminate()
        self.assertEqual(rc, 0)
        self.assertEqual(integrity_check(d.db_path), ["ok"])


    def test_a_cancel_the_store_cannot_record_is_503(self):
        # A running job's cancel is answered once the end is on disk; with
        # a full disk that never comes: 503 after the wait, and the cancel
        # lands once there is room.
        d = self.daemon("fullcancel", start=False, after_stop=harness.unmount_state)
        fill = harness.state_on_small_disk(d)
        self.addCleanup(lambda: os.path.exists(fill) and os.unlink(fill))
        d.start()
        sid = self.submit_ok(d, sleep(60, timeout=90))
        d.wait_status(sid, "running")
        # Kept full: the cancelled run's own files, taken apart, free
        # enough for the store to record the end (seen in a clean check).
        release = harness.keep_disk_full(fill)
        self.addCleanup(release)
        for k in range(20):
            if d.submit(echo(k)).status == 503:
                break
        else:
            self.fail("20 submits accepted on a full disk")
        t0 = time.monotonic()
        r = d.req("DELETE", "/v1/jobs/" + sid, timeout=60)
        check_error(r, 503, "storage_unavailable")
        self.assertGreaterEqual(time.monotonic() - t0, 5, "answered before the wait for the end")
        self.assertIn(sid, r.body["error"]["message"])
        release()
        os.unlink(fill)
        job = d.wait_final(sid, timeout=30)
        self.assertEqual(job["status"], "cancelled", json.dumps(job)[:1500])
        self.assertTrue(d.alive(), "the daemon died")
        d.assert_idle_clean()

    def test_start_on_a_full_state_dir_names_the_disk(self):
        """A start on a full state disk fails (the runtime cannot keep its
        state there), saying that the disk is full, not only that no
        runtime works; with room again it starts, its jobs intact."""
        d = self.daemon("fullstart", start=False, after_stop=harness.unmount_state)
        fill = harness.state_on_small_disk(d)
        self.addCleanup(lambda: os.path.exists(fill) and os.unlink(fill))
        d.start()
        first = d.run_job(echo(1))
        self.assertEcho(first, 1)
        rc, _ = d.terminate()
        self.assertEqual(rc, 0)
        harness.fill_disk(fill)
        r = subprocess.run([harness.OPTIONS["daemon"], "--config", d.config_path], cwd=d.tmp,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertIn("cannot start", r.stderr, r.stderr[-3000:])
        self.assertIn("the state dir %s is full" % d.state_dir, r.stderr, r.stderr[-3000:])
        os.unlink(fill)
        d.restart()
        self.assertEcho(d.get_job(first["id"]), 1)
        self.assertEcho(d.run_job(echo(2)), 2)
        d.assert_idle_clean()


# ------------------------------------------------------------ 7. retention

class Retention(DurableCase):

    def test_max_records_prunes_the_oldest_with_their_logs(self):
        d = self.daemon("maxrecords", {"store": {"retention_seconds": 3600, "max_records": 3},
                                       "sweep_interval_seconds": 1})
        # t_spam prints: each run has a log file, looked at as it ends (the
        # six take more than a sweep's second: the oldest may go before the
        # last ends).
        jobs = []
        for i in range(6):
            j = d.run_job({"algorithm": "t_spam", "parameters": {"bytes": 100 + i}})
            self.assertEqual(j["status"], "succeeded", j)
            self.assertTrue(os.path.isfile(self.log_file(d, j["id"] + "-1")), j)
            jobs.append(j)
        old, new = jobs[:3], jobs[3:]
        deadline = time.monotonic() + 5 * slow_factor()
        while any(d.req("GET", "/v1/jobs/" + j["id"]).status != 404 for j in old):
            self.assertLess(time.monotonic(), deadline, "the 3 oldest records are still there")
            time.sleep(0.2)
        for j in old:
            check_error(d.req("GET", "/v1/jobs/" + j["id"]), 404, "not_found")
            self.assertEqual(d.req("GET", "/v1/jobs/%s/logs" % j["id"]).status, 404)
            self.assertFalse(os.path.exists(self.log_file(d, j["id"] + "-1")), "log of a pruned record")
        time.sleep(1.5)         # another sweep: the newest stay
        for j in new:
            self.assertEqual(d.get_job(j["id"])["status"], "succeeded")
            self.assertTrue(os.path.isfile(self.log_file(d, j["id"] + "-1")), "log of a kept record")
        self.assertEqual([j["id"] for j in d.list_jobs()], [j["id"] for j in reversed(new)])

    def test_logs_without_a_record_go_at_the_next_start(self):
        # A crash between a prune's commit and its unlinks, or before a
        # waited job's first commit, leaves logs no record names: the next
        # start removes them, and nothing else in the logs directory.
        d = self.daemon("orphanlogs")
        job = d.run_job({"algorithm": "t_spam", "parameters": {"bytes": 200}})
        self.assertEqual(job["status"], "succeeded", job)
        kept = self.log_file(d, job["id"] + "-1")
        self.assertTrue(os.path.isfile(kept))
        d.kill()
        logs = os.path.dirname(kept)
        orphans = [os.path.join(logs, "%s-%d.log" % (uuid.uuid4(), n)) for n in (1, 2)]
        other = os.path.join(logs, "operator-notes.txt")
        for p in orphans + [other]:
            with open(p, "w") as f:
                f.write("x\n")
        d.restart()
        for p in orphans:
            self.assertFalse(os.path.exists(p), "a log with no record is still there: %s" % p)
        self.assertTrue(os.path.isfile(kept), "the log of a kept record went")
        self.assertTrue(os.path.isfile(other), "a file that is not a run's log went")
        r = d.req("GET", "/v1/jobs/%s/logs" % job["id"])
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"quick brown fox", r.raw)

    def test_retention_seconds_spare_active_jobs(self):
        d = self.daemon("retentionsecs", {"workers": 1, "store": {"retention_seconds": 1, "max_records": 100000},
                                          "sweep_interval_seconds": 1})
        done = d.run_job(echo(1))
        sid = self.submit_ok(d, sleep(4, timeout=10))
        qid = self.submit_ok(d, echo(2))        # queued behind the sleeper for ~4 s
        deadline = time.monotonic() + 5 * slow_factor()
        while d.req("GET", "/v1/jobs/" + done["id"]).status != 404:
            self.assertLess(time.monotonic(), deadline, "a finished job outlived retention_seconds 1")
            time.sleep(0.2)
        self.assertFalse(os.path.exists(self.log_file(d, done["id"] + "-1")), "log of a pruned record")

        # The active ones outlive several sweeps, and end normally.
        seen = {sid: [], qid: []}
        deadline = time.monotonic() + 20 * slow_factor()
        while not all(seen[j] and seen[j][-1] in FINAL for j in seen):
            self.assertLess(time.monotonic(), deadline, "jobs did not end: %s" % seen)
            for j in seen:
                if seen[j] and seen[j][-1] in FINAL:
                    continue
                r = d.req("GET", "/v1/jobs/" + j)
                self.assertEqual(r.status, 200, "an active job was pruned (seen %s): %s" % (seen[j], r))
                if not seen[j] or seen[j][-1] != r.body["status"]:
                    seen[j].append(r.body["status"])
                    if r.body["status"] in FINAL:
                        self.assertEqual(r.body["status"], "succeeded", r)
            time.sleep(0.05)
        self.assertEqual(seen[sid][-2:], ["running", "succeeded"], seen)
        self.assertEqual(seen[qid][0], "queued", seen)
        # ...and once final, they go too.
        deadline = time.monotonic() + 5 * slow_factor()
        while any(d.req("GET", "/v1/jobs/" + j).status != 404 for j in seen):
            self.assertLess(time.monotonic(), deadline, "final jobs outlived retention_seconds 1")
            time.sleep(0.2)
        d.assert_idle_clean()


# ---------------------------------------------------------- 8. idempotency

class Idempotency(DurableCase):

    @quick
    def test_replay_and_conflict(self):
        d = self.daemon("idem")
        data = body_bytes(echo(1))
        r1 = d.req("POST", "/v1/jobs", data, keyed("key-1"))
        self.assertEqual(r1.status, 202, r1)
        self.assertNotEqual((r1.headers.get("Idempotent-Replayed") or "").lower(), "true", r1.headers)
        jid = check_job(r1.body)["id"]
        d.wait_final(jid)
        r2 = d.req("POST", "/v1/jobs", data, keyed("key-1"))
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual((r2.headers.get("Idempotent-Replayed") or "").lower(), "true", r2.headers)
        self.assertEqual(check_job(r2.body)["id"], jid, r2)
        self.assertEcho(r2.body, 1)

        r3 = d.req("POST", "/v1/jobs", body_bytes(echo(2)), keyed("key-1"))
        check_error(r3, 409, "idempotency_conflict")
        # Another key, or none, is another job.
        r4 = d.req("POST", "/v1/jobs", data, keyed("key-2"))
        self.assertEqual(r4.status, 202, r4)
        r5 = d.req("POST", "/v1/jobs", data, JSON)
        self.assertEqual(r5.status, 202, r5)
        self.assertEqual(len({jid, r4.body["id"], r5.body["id"]}), 3)
        for j in (r4.body["id"], r5.body["id"]):
            d.wait_final(j)
        self.assertEqual(len(d.list_jobs(algorithm="t_echo")), 3)

    def test_twenty_parallel_submits_make_one_job(self):
        d = self.daemon("idempar", {"http": {"max_connections_per_client": 64}})
        data = body_bytes(echo(5))
        n = 20
        barrier = threading.Barrier(n)
        out = [None] * n

        def one(k):
            barrier.wait(10)
            try:
                out[k] = d.req("POST", "/v1/jobs", data, keyed("parallel"), timeout=20)
            except Exception as e:   # noqa: BLE001 - reported below
                out[k] = e
        threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        bad = [x for x in out if not isinstance(x, harness.Response) or x.status not in (200, 202)]
        self.assertEqual(bad, [], "answers: %s" % [str(x) for x in out])
        self.assertEqual(sorted(x.status for x in out), [200] * (n - 1) + [202], [str(x) for x in out])
        for x in out:
            if x.status == 200:
                self.assertEqual((x.headers.get("Idempotent-Replayed") or "").lower(), "true", x.headers)
        ids = {x.body["id"] for x in out}
        self.assertEqual(len(ids), 1, ids)
        listed = d.list_jobs(algorithm="t_echo")
        self.assertEqual([j["id"] for j in listed], list(ids), "jobs made from one key")
        self.assertEcho(d.wait_final(ids.pop()), 5)

    def test_key_survives_a_restart(self):
        d = self.daemon("idemrestart")
        data = body_bytes(echo(3))
        r = d.req("POST", "/v1/jobs", data, keyed("durable-key"))
        self.assertEqual(r.status, 202, r)
        jid = r.body["id"]
        d.wait_final(jid)
        # A second key, its job perhaps still running at the stop.
        d2 = body_bytes(sleep(0.5, timeout=10))
        r = d.req("POST", "/v1/jobs", d2, keyed("second-key"))
        self.assertEqual(r.status, 202, r)
        qid = r.body["id"]
        rc, _ = d.terminate()
        self.assertEqual(rc, 0)
        d.restart()
        r = d.req("POST", "/v1/jobs", data, keyed("durable-key"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.headers.get("Idempotent-Replayed") or "").lower(), "true", r.headers)
        self.assertEqual(r.body["id"], jid, r)
        self.assertEcho(r.body, 3)
        check_error(d.req("POST", "/v1/jobs", body_bytes(echo(4)), keyed("durable-key")), 409,
                    "idempotency_conflict")
        r = d.req("POST", "/v1/jobs", d2, keyed("second-key"))
        self.assertEqual((r.status, r.body.get("id")), (200, qid), r)
        self.assertEqual(d.wait_final(qid)["status"], "succeeded")
        self.assertEqual(len(d.list_jobs(algorithm="t_echo")), 1)
        self.assertEqual(len(d.list_jobs(algorithm="t_sleep")), 1)

    def replayed(self, r, jid):
        self.assertEqual((r.headers.get("Idempotent-Replayed") or "").lower(), "true", r)
        self.assertEqual(check_job(r.body)["id"], jid, r)

    @quick
    def test_a_retry_is_its_job_when_the_queue_is_full(self):
        # The key is looked up first: a retry whose job exists is that job
        # (or a conflict), not the 429 a new job gets.
        d = self.daemon("idemfull", {"workers": 1, "queue_capacity": 1})
        running, queued = body_bytes(sleep(30, timeout=60)), body_bytes(sleep(29, timeout=60))
        r = d.req("POST", "/v1/jobs", running, keyed("running-key"))
        self.assertEqual(r.status, 202, r)
        rid = r.body["id"]
        d.wait_status(rid, "running")
        r = d.req("POST", "/v1/jobs", queued, keyed("queued-key"))
        self.assertEqual(r.status, 202, r)
        qid = r.body["id"]
        check_error(d.req("POST", "/v1/jobs", body_bytes(echo(1)), JSON), 429, "queue_full")
        check_error(d.req("POST", "/v1/jobs", body_bytes(echo(1)), keyed("new-key")), 429, "queue_full")

        r = d.req("POST", "/v1/jobs", running, keyed("running-key"))
        self.assertEqual((r.status, r.body.get("status")), (200, "running"), r)
        self.replayed(r, rid)
        r = d.req("POST", "/v1/jobs", queued, keyed("queued-key"))
        self.assertEqual((r.status, r.body.get("status")), (200, "queued"), r)
        self.replayed(r, qid)
        # A retry that waits waits for its job (here: until ?wait runs out).
        r = d.req("POST", "/v1/jobs?wait=1", running, keyed("running-key"))
        self.assertEqual((r.status, r.body.get("status")), (202, "running"), r)
        self.replayed(r, rid)
        r = d.req("POST", "/v1/jobs", queued, keyed("running-key"))
        check_error(r, 409, "idempotency_conflict", "Idempotency-Key")
        self.assertIn(rid, r.body["error"]["message"])
        self.assertEqual(sorted(j["id"] for j in d.list_jobs(algorithm="t_sleep")), sorted([rid, qid]))

    def test_a_retry_is_its_job_when_its_algorithm_is_gone(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-idemgone-")
        self.addCleanup(shutil.rmtree, tmp, True)
        harness.copy_plugin("t_echo", os.path.join(tmp, "t_echo"))
        d = self.daemon("idemgone", plugins=tmp)
        data = body_bytes(echo(7))
        r = d.req("POST", "/v1/jobs", data, keyed("gone-key"))
        self.assertEqual(r.status, 202, r)
        jid = r.body["id"]
        self.assertEcho(d.wait_final(jid), 7)
        shutil.rmtree(os.path.join(tmp, "t_echo"))
        harness.wait_for(lambda: d.req("GET", "/v1/algorithms/t_echo").status == 404, 10, lambda: "t_echo still served")
        check_error(d.req("POST", "/v1/jobs", data, keyed("another-key")), 404, "unknown_algorithm")
        r = d.req("POST", "/v1/jobs", data, keyed("gone-key"))
        self.assertEqual(r.status, 200, r)
        self.replayed(r, jid)
        self.assertEcho(r.body, 7)

    def test_a_retry_is_its_job_while_the_daemon_drains(self):
        d = self.daemon("idemdrain", {"workers": 1, "drain_seconds": 20})
        data = body_bytes(sleep(30, timeout=60))
        r = d.req("POST", "/v1/jobs", data, keyed("drain-key"))
        self.assertEqual(r.status, 202, r)
        jid = r.body["id"]
        d.wait_status(jid, "running")
        d.proc.send_signal(signal.SIGTERM)
        harness.wait_for(lambda: d.req("GET", "/readyz").status == 503, 5, lambda: "/readyz still 200")
        check_error(d.req("POST", "/v1/jobs", data, keyed("another-key")), 503, "shutting_down")
        r = d.req("POST", "/v1/jobs", data, keyed("drain-key"))
        self.assertEqual((r.status, r.body.get("status")), (200, "running"), r)
        self.replayed(r, jid)
        self.assertEqual(d.req("DELETE", "/v1/jobs/" + jid).status, 202)
        self.assertEqual(d.proc.wait(15 * slow_factor()), 0)
        d.logf.close()

    @quick
    def test_bad_keys(self):
        d = self.daemon("idembad")
        data = body_bytes(echo(1))
        for key in ("k" * 129, "bad\x01key", "bad\x7fkey", "k" * 1000):
            r = d.req("POST", "/v1/jobs", data, keyed(key))
            check_error(r, 400, "invalid_request", "Idempotency-Key")
        self.assertEqual(d.list_jobs(algorithm="t_echo"), [], "a refused submit made a job")
        r = d.req("POST", "/v1/jobs", data, keyed("k" * 128))
        self.assertEqual(r.status, 202, "a 128-character key: %s" % (r,))
        r = d.req("POST", "/v1/jobs", data, keyed("printable-~!@#$%^&*()_+=[]{};:'\",.<>/?|`"))
        self.assertEqual(r.status, 202, "a printable key: %s" % (r,))
        for j in d.list_jobs(algorithm="t_echo"):
            d.wait_final(j["id"])


# ---------------------------------------------------------------- 9. batch

class Batch(DurableCase):

    def batch(self, d, body):
        return d.req("POST", "/v1/jobs/batch", body)

    @quick
    def test_mixed_batch_in_order(self):
        d = self.daemon("batch")
        items = [echo(0), {"algorithm": "t_nope"}, echo(1),
                 {"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": 99}}, 42, echo(2)]
        r = self.batch(d, {"jobs": items})
        self.assertEqual(r.status, 200, r)
        out = r.body["jobs"]
        self.assertEqual(len(out), len(items), r)
        want = [202, 404, 202, 400, 400, 202]
        self.assertEqual([x.get("status") for x in out], want, r)
        for x in out:
            if x["status"] == 202:
                self.assertNotIn("error", x, x)
                check_job(x["job"])
            else:
                self.assertNotIn("job", x, x)
                e = x["error"]
                self.assertTrue(isinstance(e.get("code"), str) and isinstance(e.get("message"), str) and
                                e["message"], x)
        self.assertEqual(out[1]["error"]["code"], "unknown_algorithm", out[1])
        self.assertEqual(out[3]["error"]["code"], "invalid_parameters", out[3])
        self.assertTrue((out[3]["error"].get("field") or "").endswith("/parameters/n"), out[3])
        self.assertEqual(out[4]["error"]["code"], "invalid_request", out[4])
        good = [out[0]["job"]["id"], out[2]["job"]["id"], out[5]["job"]["id"]]
        self.assertEqual(len(set(good)), 3)
        for i, jid in enumerate(good):
            self.assertEcho(d.wait_final(jid), i)
        self.assertEqual(sorted(j["id"] for j in d.list_jobs(algorithm="t_echo")), sorted(good))

        # The default max_batch is 100.
        r = self.batch(d, {"jobs": [echo(i) for i in range(101)]})
        check_error(r, 400, "invalid_request", "/jobs")
        self.assertEqual(len(d.list_jobs(algorithm="t_echo")), 3, "a refused batch made jobs")

    def test_max_batch(self):
        d = self.daemon("maxbatch", {"max_batch": 4})
        r = self.batch(d, {"jobs": [echo(i) for i in range(5)]})
        check_error(r, 400, "invalid_request", "/jobs")
        self.assertEqual(d.list_jobs(algorithm="t_echo"), [], "a refused batch made jobs")
        r = self.batch(d, {"jobs": [echo(i) for i in range(4)]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual([x["status"] for x in r.body["jobs"]], [202] * 4, r)
        for i, x in enumerate(r.body["jobs"]):
            self.assertEcho(d.wait_final(x["job"]["id"]), i)

    @quick
    def test_body_without_a_jobs_array(self):
        d = self.daemon("batchbad")
        for body in ({}, {"jobs": {}}, {"jobs": "x"}, {"jobs": None}, [], [echo(1)], {"job": [echo(1)]}):
            r = self.batch(d, body)
            check_error(r, 400)
        check_error(d.req("POST", "/v1/jobs/batch", b"{\"jobs\": [", JSON), 400, "invalid_json")
        self.assertEqual(d.list_jobs(), [], "a refused batch made jobs")


# ----------------------------------------------------- 10. listing results

class ListingResults(DurableCase):

    @quick
    def test_results_only_on_request(self):
        d = self.daemon("listresult")
        ids = [d.run_job(echo(i))["id"] for i in range(3)]
        r = d.req("GET", "/v1/jobs?algorithm=t_echo")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([j["id"] for j in r.body["jobs"]], ids[::-1])
        for j in r.body["jobs"]:
            check_job(j)
            self.assertEqual(j["status"], "succeeded", j)
            self.assertIn("result", j)
            self.assertIsNone(j["result"], "a listing without ?result=true carries results")
        r = d.req("GET", "/v1/jobs?algorithm=t_echo&result=true")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([j["result"] for j in r.body["jobs"]], [{"i": 2}, {"i": 1}, {"i": 0}], r)
        # GET of one job has it either way.
        self.assertEcho(d.get_job(ids[0]), 0)

        # Pagination, newest first, with and without results.
        for q, want in (("", [None, None, None]), ("&result=true", [{"i": 2}, {"i": 1}, {"i": 0}])):
            r = d.req("GET", "/v1/jobs?algorithm=t_echo&limit=2" + q)
            self.assertEqual(r.status, 200, r)
            page = r.body["jobs"]
            self.assertEqual([j["id"] for j in page], [ids[2], ids[1]], r)
            self.assertEqual([j["result"] for j in page], want[:2], r)
            self.assertIsInstance(r.body["next"], str, r)
            r2 = d.req("GET", "/v1/jobs?algorithm=t_echo&limit=2&after=%s%s" % (r.body["next"], q))
            self.assertEqual(r2.status, 200, r2)
            self.assertEqual([j["id"] for j in r2.body["jobs"]], [ids[0]], r2)
            self.assertEqual([j["result"] for j in r2.body["jobs"]], want[2:], r2)
            self.assertIsNone(r2.body.get("next"), r2)


# --------------------------------------------------------------- 11. metrics

class StoreMetrics(DurableCase):

    @quick
    def test_commit_and_write_counters(self):
        d = self.daemon("storemetrics", {"http": {"max_connections_per_client": 64}})
        w0 = d.metric("edgecd_store_writes_total")
        c0 = d.metric("edgecd_store_commits_total")
        self.assertIsNotNone(w0, "no edgecd_store_writes_total")
        self.assertIsNotNone(c0, "no edgecd_store_commits_total")
        out = [None] * 20

        def one(k):
            try:
                out[k] = d.submit(echo(k), timeout=20)
            except Exception as e:   # noqa: BLE001 - reported below
                out[k] = e
        threads = [threading.Thread(target=one, args=(k,)) for k in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertTrue(all(isinstance(x, harness.Response) and x.status == 202 for x in out),
                        [str(x) for x in out])
        for k, x in enumerate(out):
            self.assertEcho(d.wait_final(x.body["id"]), k)
        w = d.metric("edgecd_store_writes_total")
        c = d.metric("edgecd_store_commits_total")
        self.assertGreater(w, 0)
        self.assertGreater(c, 0)
        self.assertLessEqual(c, w, "more commits than writes")
        self.assertGreaterEqual(w - w0, 20, "20 submits are at least 20 writes")
        self.assertGreater(c, c0)
        r = d.req("GET", "/metrics")
        for name in ("edgecd_store_writes_total", "edgecd_store_commits_total"):
            self.assertIn("# TYPE %s counter" % name, r.body)



class QueueFullAsSubmitsAreTold(DurableCase):
    """/readyz calls the queue full exactly when a submit would get 429:
    the places held for jobs being committed count, as they do for a
    submit."""

    def test_readyz_counts_the_places_held_for_jobs_being_committed(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-slowfsync-")
        self.addCleanup(shutil.rmtree, tmp, True)
        flag = os.path.join(tmp, "slow")
        env = harness.preload_shim("slowfsync_shim", tmp)
        env.update({"SLOWFSYNC_FLAG": flag, "SLOWFSYNC_MS": "3000"})
        d = self.daemon("readyfull", {"workers": 1, "queue_capacity": 1}, env=env)
        busy = self.submit_ok(d, sleep(30, timeout=60))
        d.wait_status(busy, "running")
        full = "the job queue is full"
        ready = d.req("GET", "/readyz")
        self.assertNotIn(full, ready.body["reasons"], ready)
        open(flag, "w").close()
        self.addCleanup(lambda: os.path.exists(flag) and os.unlink(flag))
        out = {}

        def committing():
            out["r"] = d.submit(sleep(29, timeout=60), timeout=60)
        t = threading.Thread(target=committing)
        t.start()
        self.addCleanup(t.join, 60)
        # Its commit (3 s of fsync) holds the queue's one place from when
        # the daemon has its request: waited for (a fixed 0.5 s could end
        # before it came on a loaded host, and the submit below took the
        # place), then the submit and /readyz must both say so.
        harness.wait_for(lambda: full in d.req("GET", "/readyz").body["reasons"], 10,
                         lambda: "/readyz never called the queue full while a submit was committed: %s" % out)
        check_error(d.submit(echo(1)), 429, "queue_full")
        ready = d.req("GET", "/readyz")
        self.assertIsNone(out.get("r"), "the commit ended before /readyz answered: %s" % out.get("r"))
        self.assertIn(full, ready.body["reasons"], ready)
        self.assertEqual(ready.body["status"], "degraded", ready)
        self.assertEqual(ready.body["jobs"]["queued"], 0, ready)
        os.unlink(flag)
        t.join(60)
        self.assertEqual(out["r"].status, 202, out["r"])


class LazyCommits(DurableCase):
    """A submit that waits for its job (no Idempotency-Key) and that job's
    first run starting are answered before they are committed: nobody has
    been told of them yet.  The job's final commit carries them, or a sync
    before any answer that names a job still running, or the store's
    writer within a second (DEFER_MS); until then no read shows them
    (a listing never names a job that is not on disk), and a crash of the
    daemon loses them with the job nobody had the id of."""

    def commits(self, d):
        return d.metric("edgecd_store_commits_total")

    def deferred(self, d):
        return d.metric("edgecd_store_deferred_writes_total")

    @quick
    def test_a_waited_job_costs_one_commit(self):
        d = self.daemon("lazy1", {"workers": 1})
        f0, l0 = self.commits(d), self.deferred(d)
        jobs = []
        for i in range(4):
            jobs.append(d.run_job(echo(i)))
            self.assertEcho(jobs[-1], i)
        f1, l1 = self.commits(d), self.deferred(d)
        # Each: the submit and the start answered before their commit, the
        # end's commit carrying them.  The collector may have committed a
        # prune meanwhile (a submit made while the store's writer commits
        # goes through it, and so does its start), and a job that took
        # near a second had its first two written on their own.
        self.assertIn(l1 - l0, (6, 8), "deferred writes for 4 waited jobs")
        slow = sum(1 for j in jobs if j["metrics"]["total_ms"] >= 900)
        self.assertGreaterEqual(f1 - f0, 4)
        self.assertLessEqual(f1 - f0, 5 + slow, "commits for 4 waited jobs")
        # With an Idempotency-Key, or without waiting, the submit is
        # acknowledged as such, and each run is on disk before it starts
        # (a job that brings the machine down is counted): a commit each.
        r = d.submit(echo(7), wait="true", headers=keyed("lazy-key-1"))
        self.assertEqual(r.status, 200, r)
        jid = self.submit_ok(d, echo(8))
        self.assertEcho(d.wait_final(jid), 8)
        f2, l2 = self.commits(d), self.deferred(d)
        self.assertEqual(l2 - l1, 0, "nothing deferred for jobs someone was told of")
        self.assertIn(f2 - f1, (6, 7))
        # A submit with parameters over 64 KiB is committed at once (the
        # store keeps a copy of what it answers before committing), and so
        # is its run's start.
        big = echo(9)
        big["parameters"]["pad"] = "x" * (70 * 1024)
        job = d.run_job(big, timeout=60)
        self.assertEqual(job["status"], "succeeded", job["status"])
        self.assertEqual(job["result"], big["parameters"], "the large parameters did not reach the run")
        self.assertEqual(self.deferred(d) - l2, 0, "deferred writes for a job with large parameters")

    @quick
    def test_a_waited_job_of_near_half_a_second_still_makes_one_commit(self):
        # The store's own deadline for what it keeps is a second after
        # the submit: a job of 0.4 s (past the quarter of a second that
        # was the deadline once, which a cold job in the QEMU VM often
        # passed) is neither listed while it runs nor committed twice.
        # Nothing else commits here: the collector's first pass is a
        # minute after the start.  A host so slow that the answer took
        # near the deadline itself only shows that it made two at most.
        d = self.daemon("lazyonce", {"workers": 1})
        f0, l0 = self.commits(d), self.deferred(d)
        out = {}

        def waiter():
            t0 = time.monotonic()
            out["r"] = d.submit(sleep(0.4), wait="true", timeout=60)
            out["s"] = time.monotonic() - t0
        t = threading.Thread(target=waiter)
        t.start()
        listed = []
        while t.is_alive():
            listed += [j["status"] for j in d.list_jobs()]
            time.sleep(0.05)
        t.join()
        r = out.get("r")
        self.assertIsNotNone(r, "the waited submit got no answer")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["status"], "succeeded", r)
        self.assertGreaterEqual(r.body["metrics"]["total_ms"], 400, r.body["metrics"])
        commits = self.commits(d) - f0
        if out["s"] >= 0.9:
            print("  [slow host: the answer took %.2f s; two commits at most checked]" % out["s"], flush=True)
            self.assertLessEqual(commits, 2, "commits for one waited job of %.2f s" % out["s"])
            return
        self.assertNotIn("running", listed, "listed while it ran: committed before its end")
        self.assertEqual(self.deferred(d) - l0, 2, "the submit and the start, deferred")
        self.assertEqual(commits, 1, "commits for one waited job of %.2f s" % out["s"])

    @quick
    def test_an_answer_that_names_a_running_job_comes_after_an_fsync(self):
        d = self.daemon("lazy2", {"workers": 1})
        f0, l0 = self.commits(d), self.deferred(d)
        r = d.submit(sleep(3), wait="1", timeout=30)
        self.assertEqual(r.status, 202, r)
        self.assertIn(r.body["status"], ("queued", "running"), r)
        self.assertEqual(r.headers.get("Location"), "/v1/jobs/%s" % r.body["id"], r)
        f1, l1 = self.commits(d), self.deferred(d)
        # (The start not, if a second went by before it.)
        self.assertIn(l1 - l0, (1, 2), "the submit and the start, deferred")
        self.assertGreaterEqual(f1 - f0, 1, "the job was named before it was on disk")
        self.assertEqual(d.req("GET", "/v1/jobs/%s" % r.body["id"]).status, 200)
        job = d.wait_final(r.body["id"], timeout=30)
        self.assertEqual(job["status"], "succeeded", job)

    def test_a_running_job_is_named_only_after_its_fsync(self):
        d, flag = self.slow_fsync_daemon("lazy4")
        keyed_job = d.submit(echo(1), headers=keyed("lazy4-key"))
        self.assertEqual(keyed_job.status, 202, keyed_job)
        d.wait_final(keyed_job.body["id"])
        open(flag, "w").close()
        f0, l0 = self.commits(d), self.deferred(d)
        out = {}

        def waiter():
            t0 = time.monotonic()
            out["r"] = d.submit(sleep(6, timeout=30), wait="2", timeout=60)
            out["s"] = time.monotonic() - t0
        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.5)
        # A replay meanwhile (a write that is not lazy) answers only once
        # the lazy submit is on disk with it.
        replay = d.submit(echo(1), headers=keyed("lazy4-key"))
        self.assertEqual(replay.status, 200, replay)
        t.join(60)
        r = out.get("r")
        self.assertIsNotNone(r, "no answer")
        self.assertEqual(r.status, 202, r)
        self.assertIn(r.body["status"], ("queued", "running"), r)
        # The wait ran out at 2 s; the answer waited for an fsync (1 s).
        self.assertGreaterEqual(out["s"], 2.9, "answered %.2f s after the submit, before its fsync (%s commits, "
                                "%s deferred writes since): %s" % (out["s"], self.commits(d) - f0,
                                self.deferred(d) - l0, r))
        os.unlink(flag)
        job = d.wait_final(r.body["id"], timeout=30)
        self.assertEqual(job["status"], "succeeded", job)

    def test_a_job_named_while_queued_has_its_run_on_disk_before_it_starts(self):
        d = self.daemon("lazy5", {"workers": 1})
        busy = self.submit_ok(d, sleep(3))
        d.wait_status(busy, "running")
        l0 = self.deferred(d)
        r = d.submit(echo(5), wait="1", timeout=30)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.body["status"], "queued", r)
        self.assertEcho(d.wait_final(r.body["id"], timeout=30), 5)
        # Its submit was lazy; its run, once its id was given, is not.
        self.assertLessEqual(self.deferred(d) - l0, 1)

    def test_a_waited_job_listed_while_queued_has_its_run_on_disk_before_it_starts(self):
        d = self.daemon("lazy7", {"workers": 1})
        # 4 s: the waited job must be listed queued behind it (2 s from
        # its container's start left little for the submit and its commit
        # on a loaded host; the job then ran at once, never listed queued).
        busy = self.submit_ok(d, sleep(4))
        d.wait_status(busy, "running")
        l0 = self.deferred(d)
        out = {}
        t = threading.Thread(target=lambda: out.update(r=d.submit(echo(6), wait="true", timeout=60)))
        t.start()
        listed = []
        deadline = time.monotonic() + 10
        while not listed and time.monotonic() < deadline:
            listed = d.list_jobs(status="queued")
            time.sleep(0.02)
        t.join(60)
        self.assertTrue(listed, "the waited job was never listed while queued")
        self.assertEqual(out["r"].status, 200, out["r"])
        self.assertEqual(out["r"].body["id"], listed[0]["id"])
        # Its submit waited for a commit; once listed, its run's start did not.
        self.assertLessEqual(self.deferred(d) - l0, 1)

    def test_a_listing_names_a_waited_job_only_once_it_is_on_disk(self):
        d, flag = self.slow_fsync_daemon("lazy6")
        open(flag, "w").close()
        out = {}

        def waiter():
            out["r"] = d.submit(sleep(4, timeout=30), wait="true", timeout=60)
        t0 = time.monotonic()
        t = threading.Thread(target=waiter)
        t.start()
        seen = None
        while seen is None and time.monotonic() - t0 < 20:
            if d.list_jobs():
                seen = time.monotonic() - t0
            time.sleep(0.02)
        os.unlink(flag)
        t.join(60)
        self.assertIsNotNone(seen, "the running job was never listed")
        # Committed a second after the submit (nothing else commits
        # meanwhile), then a second's fsync: never listed before that
        # fsync ended, two seconds after the submit.
        self.assertGreaterEqual(seen, 1.9, "listed %.2f s after its submit, before its fsync" % seen)
        self.assertEqual(out["r"].status, 200, out["r"])

    def test_a_sync_on_a_full_disk_waits_for_room(self):
        d = self.daemon("lazyfull", {"workers": 1}, start=False, after_stop=harness.unmount_state)
        fill = harness.state_on_small_disk(d)
        self.addCleanup(lambda: os.path.exists(fill) and os.unlink(fill))
        d.start()
        out = {}

        def waiter():
            out["r"] = d.submit(sleep(4, timeout=30), wait="2", timeout=60)
        t = threading.Thread(target=waiter)
        t.start()
        deadline = time.monotonic() + 20 * slow_factor()
        running = []
        while not running and time.monotonic() < deadline:
            running = d.list_jobs(status="running")
            time.sleep(0.05)
        self.assertTrue(running, "the waited job never ran")
        harness.fill_disk(fill)
        for k in range(20):
            if d.submit(echo(100 + k)).status == 503:
                break
        self.assertEqual(d.req("GET", "/readyz").status, 503)
        # Past its wait: no answer names the job while it cannot be on
        # disk, and the held sync does not make the store look healthy.
        t.join(3)
        self.assertTrue(t.is_alive(), "answered on a full disk: %s" % out.get("r"))
        r = d.req("GET", "/readyz")
        self.assertEqual(r.status, 503, "the held sync made the store look healthy: %s" % (r,))
        os.unlink(fill)
        t.join(60)
        r = out.get("r")
        self.assertIsNotNone(r, "no answer once the disk had room")
        self.assertIn(r.status, (200, 202), r)
        self.assertEqual(r.body["id"], running[0]["id"], r)
        job = d.wait_final(running[0]["id"], timeout=60)
        self.assertIn(job["status"], ("succeeded", "failed"), job)
        d.assert_idle_clean()

    def test_sigkill_keeps_a_waited_job_and_its_start(self):
        d = self.daemon("lazy3", {"workers": 1})
        out = {}

        def waiter():
            try:
                out["r"] = d.submit(sleep(3, timeout=30), wait="true", timeout=30)
            except Exception as e:   # noqa: BLE001 - the daemon is killed under it
                out["e"] = e
        t = threading.Thread(target=waiter)
        t.start()
        deadline = time.monotonic() + 20 * slow_factor()
        running = []
        while not running and time.monotonic() < deadline:
            running = [j for j in d.list_jobs(status="running") if (j.get("attempts") or [])]
            time.sleep(0.05)
        self.assertTrue(running, "the waited job never ran")
        jid = running[0]["id"]
        time.sleep(0.3)
        d.kill()
        t.join(30)
        self.assertNotIn("r", out, "answered although the daemon was killed: %s" % out.get("r"))
        d.restart()
        job = d.wait_final(jid, timeout=30)
        self.assertEqual(job["status"], "succeeded", job)
        # Its first run was counted: the lazy start outlived the daemon.
        self.assertRuns(job, ["interrupted", None])
        d.wait_cleaned()
        d.assert_idle_clean()



class ServerTiming(DurableCase):
    """The answer to a job this request made says where its time went on the
    daemon's clock (Server-Timing, milliseconds): admit (head in to job
    made), then for a final answer job (made to final: total_ms), commit
    (final to its final commit done) and reply; for an answer at once,
    submit (made to its record on disk, then this answer)."""

    @staticmethod
    def timing(r):
        out = {}
        for part in (r.headers.get("Server-Timing") or "").split(","):
            name, _, dur = part.strip().partition(";dur=")
            if name:
                out[name] = float(dur)
        return out

    def assertPhases(self, r, names):
        t = self.timing(r)
        self.assertEqual(sorted(t), sorted(names), r.headers.get("Server-Timing"))
        for k, v in t.items():
            self.assertGreaterEqual(v, 0, "%s: %s" % (k, r.headers.get("Server-Timing")))
        # All on the daemon's side of the client's own timing of the request.
        self.assertLessEqual(sum(t.values()), r.elapsed * 1000 + 1, r.headers.get("Server-Timing"))
        return t

    @quick
    def test_each_phase_is_where_the_time_went(self):
        d, flag = self.slow_fsync_daemon("timing")
        r = d.submit(echo(1), wait="true")
        self.assertEqual(r.status, 200, r)
        t1 = self.assertPhases(r, ("admit", "job", "commit", "reply"))
        # One clock read each end (job.c): total_ms is the phase, floored.
        self.assertLessEqual(abs(t1["job"] - r.body["metrics"]["total_ms"]), 1, (t1, r.body["metrics"]))
        # Its final commit's fsync held for a second: in commit, not in job.
        open(flag, "w").close()
        self.addCleanup(lambda: os.path.exists(flag) and os.unlink(flag))
        r = d.submit(echo(2), wait="true", timeout=30)
        self.assertEqual(r.status, 200, r)
        t = self.assertPhases(r, ("admit", "job", "commit", "reply"))
        self.assertGreaterEqual(t["commit"], 990, t)
        self.assertLess(t["job"], t1["job"] + 900, (t1, t))
        self.assertLess(t["reply"], 900, t)
        # Answered at once: its submit's commit (and fsync) before the 202.
        r = d.submit(echo(3), headers=keyed("timing-key"), timeout=30)
        self.assertEqual(r.status, 202, r)
        t = self.assertPhases(r, ("admit", "submit"))
        self.assertGreaterEqual(t["submit"], 990, t)
        os.unlink(flag)
        d.wait_final(r.body["id"])
        # Not made by this request: a replay, a read.
        again = d.submit(echo(3), headers=keyed("timing-key"))
        self.assertEqual(again.status, 200, again)
        self.assertNotIn("Server-Timing", again.headers, again.headers)
        got = d.req("GET", "/v1/jobs/%s" % r.body["id"])
        self.assertNotIn("Server-Timing", got.headers, got.headers)
        # A replay that waits for the first request's job, still running,
        # and is answered when it ends: not this request's job either.
        first = d.submit(sleep(1, timeout=30), headers=keyed("timing-key-2"))
        self.assertEqual(first.status, 202, first)
        again = d.submit(sleep(1, timeout=30), wait="true", headers=keyed("timing-key-2"), timeout=30)
        self.assertEqual((again.status, again.body["id"]), (200, first.body["id"]), again)
        self.assertNotIn("Server-Timing", again.headers, again.headers)
        # A wait that ends before the job (its submit committed then, as
        # the answer names it): admit and submit, the wait in submit.
        r = d.submit(sleep(3, timeout=30), wait="1", timeout=30)
        self.assertEqual(r.status, 202, r)
        t = self.assertPhases(r, ("admit", "submit"))
        self.assertGreaterEqual(t["submit"], 990, t)
        d.wait_final(r.body["id"], timeout=30)

    def test_a_replay_found_only_at_its_commit_carries_none(self):
        # The first request's commit held by a slow fsync: the second,
        # same key and body, finds no key before its own commit, makes a
        # job of its own, and learns it is a replay only there; it then
        # waits for the first request's job.
        d, flag = self.slow_fsync_daemon("timing3")
        open(flag, "w").close()
        self.addCleanup(lambda: os.path.exists(flag) and os.unlink(flag))
        out = {}

        def first():
            out["a"] = d.submit(echo(6), wait="true", headers=keyed("timing-race"), timeout=60)
        t = threading.Thread(target=first)
        t.start()
        self.addCleanup(t.join, 60)
        time.sleep(0.3)
        b = d.submit(echo(6), wait="true", headers=keyed("timing-race"), timeout=60)
        t.join(60)
        a = out["a"]
        self.assertEqual((a.status, b.status), (200, 200), (a, b))
        self.assertEqual(b.body["id"], a.body["id"], "the second is a replay of the first")
        self.assertEqual(b.headers.get("Idempotent-Replayed"), "true", b.headers)
        self.assertNotIn("Server-Timing", b.headers, b.headers)
        self.assertPhases(a, ("admit", "job", "commit", "reply"))

    @quick
    def test_admit_counts_from_the_requests_head(self):
        d = self.daemon("timing2", {"workers": 1})
        body = body_bytes(echo(4))

        def slowly():
            yield body[:5]
            time.sleep(0.6)
            yield body[5:]
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
        self.addCleanup(c.close)
        t0 = time.monotonic()
        c.request("POST", "/v1/jobs?wait=true", body=slowly(),
                  headers={"Content-Type": "application/json", "Content-Length": str(len(body))})
        resp = c.getresponse()
        raw = resp.read()
        elapsed = time.monotonic() - t0
        self.assertEqual(resp.status, 200, raw[:500])
        self.assertEqual(json.loads(raw)["result"], echo(4)["parameters"])
        r = harness.Response(resp.status, resp.headers, json.loads(raw))
        r.elapsed = elapsed
        t = self.assertPhases(r, ("admit", "job", "commit", "reply"))
        self.assertGreaterEqual(t["admit"], 590, t)


class WalMadeAhead(DurableCase):
    """At each start the store makes its WAL as long as it grows between
    the writer's checkpoints (zeros past SQLite's frames), so a job's
    commit writes blocks the file has and its fdatasync does not commit the
    filesystem's journal too; SQLite reads the zeros as the log's end."""

    def test_commits_do_not_grow_it_and_a_kill_loses_nothing(self):
        d = self.daemon("walahead", {"workers": 1})
        fs = subprocess.run(["stat", "-f", "-c", "%T", d.state_dir], capture_output=True, text=True).stdout.strip()
        if fs in ("tmpfs", "ramfs"):
            self.skipTest("the state dir is on %s: no WAL is made ahead there" % fs)
        with db_connect(d.db_path) as db:
            page = db.execute("PRAGMA page_size").fetchone()[0]
        want = min(32 + (1000 + 100) * (page + 24), 16 << 20)   # store_sqlite.c: wal_prefill()
        vfs = os.statvfs(d.state_dir)
        if vfs.f_bavail * vfs.f_frsize < 8 * want + (64 << 20):
            self.skipTest("%d MiB free where the state dir is: too little for a WAL made ahead"
                          % (vfs.f_bavail * vfs.f_frsize >> 20))
        self.WANT = want
        wal = os.path.join(d.state_dir, "edgecd.db-wal")
        size = os.path.getsize(wal)
        self.assertEqual(size, want, "the WAL after start")
        jobs = [d.run_job(echo(i)) for i in range(5)]
        for i, job in enumerate(jobs):
            self.assertEcho(job, i)
        self.assertEqual(os.path.getsize(wal), size, "the jobs' commits grew the WAL")
        # Killed: what was committed is read back from the frames before
        # the zeros, nothing after them is taken for a frame.
        d.kill()
        d.restart()
        for i, job in enumerate(jobs):
            self.assertEcho(d.get_job(job["id"]), i)
        self.assertEqual(os.path.getsize(wal), size, "the WAL after a restart")
        self.assertEcho(d.run_job(echo(5)), 5)
        self.assertEqual(len(d.list_jobs(limit=100)), 6)
        # A clean stop: SQLite removes the WAL, the next start makes it again.
        rc, _ = d.terminate()
        self.assertEqual(rc, 0)
        self.assertFalse(os.path.exists(wal), "the WAL outlived a clean stop")
        d.restart()
        self.assertEqual(os.path.getsize(wal), self.WANT, "the WAL after a clean restart")
        self.assertEcho(d.get_job(jobs[0]["id"]), 0)


class FinalRenderingCached(DurableCase):
    """A job's final record is rendered by its worker while it is being
    committed, and the answers read it from memory: byte for byte what
    the store gives once the daemon has restarted (nothing cached)."""

    @quick
    def test_cached_answer_is_the_stored_record(self):
        d = self.daemon("rendercache", {"workers": 1})
        bodies = [echo(3, text="h\u00e9llo \"q\""),
                  {"algorithm": "monte_carlo_pi", "parameters": {"samples": 2000, "seed": 5}},
                  {"algorithm": "t_exit", "parameters": {}}]
        answers = []
        for b in bodies:
            r = d.submit(b, wait="true", timeout=60)
            self.assertEqual(r.status, 200, r)
            self.assertIn(r.body["status"], FINAL, r)
            answers.append(r)
        got = [d.req("GET", "/v1/jobs/%s" % r.body["id"]) for r in answers]
        d.terminate()
        d.restart()
        fresh = [d.req("GET", "/v1/jobs/%s" % r.body["id"]) for r in answers]
        for a, g, f in zip(answers, got, fresh):
            self.assertEqual(f.status, 200, f)
            self.assertEqual(a.raw, f.raw, "the waited answer is not the stored record")
            self.assertEqual(g.raw, f.raw, "the cached GET is not the stored record")
        self.assertEqual(answers[1].body["status"], "succeeded", answers[1])
        self.assertIn("progress", answers[1].body, answers[1])


class WorkspacesInMemory(DurableCase):
    """STATE_DIR/workspaces is a tmpfs of the daemon's own while it runs
    (its runs' files cost no disk inode, journal or discard), in its own
    mount namespace; it goes at a stop, a killed daemon's is never seen
    here nor by the next start (not stacked), what lay on the disk below
    it is removed, never hidden, and an operator's own mount there is left
    alone."""

    def root_mounts(self, d, source=False):
        """(fstype, options) of each mount right on STATE_DIR/workspaces,
        oldest first, as the daemon sees them while it runs and as this
        process does otherwise; (source, fstype) with source."""
        ws = os.path.join(d.state_dir, "workspaces")
        out = []
        with open("/proc/%d/mounts" % d.proc.pid if d.alive() else "/proc/self/mounts") as f:
            for line in f:
                p = line.split()
                if harness._unescape_mount(p[1]) == ws:
                    out.append((p[0], p[2]) if source else (p[2], set(p[3].split(","))))
        return out

    def mount_tmpfs(self, source, path):
        """A small tmpfs named source on path (made), in this namespace."""
        os.makedirs(path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", source, path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def on_the_disk(self, d, fn):
        """fn(path of STATE_DIR as it is on the disk, below any mount on
        workspaces/), through a bind mount of the state dir alone."""
        below = os.path.join(d.tmp, "below")
        os.makedirs(below, exist_ok=True)
        r = subprocess.run(["mount", "--bind", d.state_dir, below], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            return fn(below)
        finally:
            subprocess.run(["umount", below], check=True)

    def test_root_is_a_tmpfs_while_running_and_gone_after(self):
        d = self.daemon("WsTmpfs")
        (fstype, opts), = self.root_mounts(d)
        self.assertEqual(fstype, "tmpfs")
        self.assertTrue({"nosuid", "nodev", "noexec"} <= opts, opts)
        # 4 s: its workspace must still be there at the looks below, made
        # 0.3 s after it is seen running (2 s was little on a loaded host).
        jid = self.submit_ok(d, sleep(4))
        job = self.wait_attempt_running(d, jid, 1)
        ws = d.view(os.path.join(d.state_dir, "workspaces", job["attempts"][0]["run_id"]))
        st, root = os.stat(os.path.join(ws, "input", "input.json")), os.stat(d.view(os.path.join(d.state_dir, "workspaces")))
        self.assertEqual(st.st_dev, root.st_dev, "the input is not on the workspaces' tmpfs")
        self.assertNotEqual(root.st_dev, os.stat(d.state_dir).st_dev)
        # In a mount namespace of the daemon's own where / is shared
        # (mountns.h): its run's /output there, nothing of it in this
        # process's; else all of it here.
        out = os.path.join(d.state_dir, "workspaces", job["attempts"][0]["run_id"], "output")
        self.assertIn(out, harness.mounts_under(d.state_dir, d.proc.pid))
        self.assertEqual(d.own_mount_ns(), harness.root_shared(), "a daemon in a namespace of its own")
        if d.own_mount_ns():
            self.assertEqual(harness.mounts_under(d.state_dir), [], "the daemon's mounts are in this namespace")
        else:
            self.assertIn(out, harness.mounts_under(d.state_dir))
        self.assertEqual(d.wait_final(jid, timeout=30)["status"], "succeeded")
        d.stop()
        self.assertEqual(harness.mounts_under(d.tmp), [])

    def test_killed_daemons_tmpfs_is_replaced_not_stacked(self):
        d = self.daemon("WsKill")
        jid = self.submit_ok(d, sleep(30))
        rid = self.wait_attempt_running(d, jid, 1)["attempts"][0]["run_id"]
        own = d.own_mount_ns()
        d.kill()
        if own:
            # Its tmpfs was in its own mount namespace, not this one.
            self.assertEqual(self.root_mounts(d), [], "the killed daemon's tmpfs is here")
            self.assertFalse(os.path.exists(os.path.join(d.state_dir, "workspaces", rid)))
        else:
            self.assertEqual(len(self.root_mounts(d)), 1, "the killed daemon's tmpfs vanished by itself")
            self.assertTrue(os.path.isdir(os.path.join(d.state_dir, "workspaces", rid)))
        # And below it on the disk, a tree an older version left.
        old = "0123abcd-9"
        self.on_the_disk(d, lambda p: os.makedirs(os.path.join(p, "workspaces", old, "input")))
        d.restart()
        self.assertEqual([m[0] for m in self.root_mounts(d)], ["tmpfs"], "tmpfs stacked on tmpfs")
        self.assertNotIn(rid, os.listdir(d.view(os.path.join(d.state_dir, "workspaces"))))
        self.assertEqual(self.on_the_disk(d, lambda p: os.listdir(os.path.join(p, "workspaces"))), [],
                         "what lay on the disk below the killed daemon's tmpfs")
        self.assertEqual(d.get_job(jid)["attempts"][0]["error"]["code"], "interrupted")
        harness.cancel_all(d)
        d.stop()
        self.assertEqual(harness.mounts_under(d.tmp), [])

    def test_a_runs_input_goes_when_the_run_ends(self):
        # The cleanup waits (the tests' window): the workspace is there,
        # its input (in memory) is not.
        d = self.daemon("WsInput", env={"EDGECD_TEST_CLEANUP_DELAY_MS": "30000"})
        job = d.run_job(echo(7))
        self.assertEcho(job, 7)
        ws = d.view(os.path.join(d.state_dir, "workspaces", job["attempts"][0]["run_id"]))
        self.assertTrue(os.path.isdir(os.path.join(ws, "bundle")), "the cleanup did not wait")
        self.assertEqual(os.listdir(os.path.join(ws, "input")), [])

    def test_a_killed_daemons_tmpfs_here_goes_at_the_next_start(self):
        # What a daemon without a namespace of its own (an older one, or
        # one where / was private) left in this namespace: the start takes
        # it away here, not only from a copy in its own namespace.
        d = self.daemon("WsLeft", start=False)
        ws = os.path.join(d.state_dir, "workspaces")
        self.mount_tmpfs("edgecd-workspaces", ws)
        os.makedirs(os.path.join(ws, "0123abcd-1", "input"))
        d.start()
        here = [m for m in harness.mounts_under(ws) if m == ws]
        self.assertEqual(here, [] if d.own_mount_ns() else [ws], "the old tmpfs is still here")
        self.assertEqual([m[0] for m in self.root_mounts(d)], ["tmpfs"], "tmpfs stacked on tmpfs")
        self.assertEqual(os.listdir(d.view(ws)), [])
        d.stop()
        self.assertEqual(harness.mounts_under(d.tmp), [])

    def test_an_operators_own_tmpfs_there_is_left_alone(self):
        d = self.daemon("WsOperator", start=False)
        ws = os.path.join(d.state_dir, "workspaces")
        self.mount_tmpfs("operator-tmpfs", ws)
        d.own_mounts.append(ws)
        d.start()
        self.assertEqual(self.root_mounts(d, source=True), [("operator-tmpfs", "tmpfs"), ("edgecd-workspaces", "tmpfs")])
        self.assertEcho(d.run_job(echo(1)), 1)
        self.assertEqual(d.terminate()[0], 0)
        self.assertEqual(self.root_mounts(d, source=True), [("operator-tmpfs", "tmpfs")])
        d.restart()      # an operator's tmpfs on top is not taken for a killed daemon's
        self.assertEqual(self.root_mounts(d, source=True), [("operator-tmpfs", "tmpfs"), ("edgecd-workspaces", "tmpfs")])

    def test_a_mount_moved_onto_ours_is_not_taken_for_ours(self):
        # The operator's tmpfs is older than ours (mountinfo lists it first)
        # but is moved on top of the killed daemon's: it is on top.
        if harness.root_shared():
            self.skipTest("skipped: the kernel moves no mount that sits under a shared one (/ is shared here)")
        d = self.daemon("WsMoved", start=False)
        ws = os.path.join(d.state_dir, "workspaces")
        elsewhere = os.path.join(d.tmp, "elsewhere")
        self.mount_tmpfs("operator-tmpfs", elsewhere)
        d.own_mounts += [ws, elsewhere]
        d.start()
        d.kill()
        r = subprocess.run(["mount", "--move", elsewhere, ws], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        d.restart()
        self.assertIn(("operator-tmpfs", "tmpfs"), self.root_mounts(d, source=True))
        self.assertEqual(d.terminate()[0], 0)
        self.assertIn(("operator-tmpfs", "tmpfs"), self.root_mounts(d, source=True), "the operator's mount went")

    def test_what_lies_below_on_the_disk_is_removed_first(self):
        d = self.daemon("WsBelow", start=False)
        old = os.path.join(d.state_dir, "workspaces", "0123abcd-1")
        os.makedirs(os.path.join(old, "input"))
        with open(os.path.join(old, "input", "input.json"), "w") as f:
            f.write("{}")
        d.start()
        self.assertEqual(os.listdir(os.path.join(d.state_dir, "workspaces")), [])
        d.stop(check=False)
        self.assertEqual(harness.mounts_under(d.tmp), [])
        # Now that the tmpfs is gone: the disk below it is empty too.
        self.assertFalse(os.path.exists(old), "a leftover hidden under the tmpfs")


def daemon_running_a_sleep(test, name, seconds):
    """A started daemon (stopped at the test's end) and the id of a
    t_sleep job of `seconds` it is running."""
    d = Daemon(name)
    test.addCleanup(d.stop)
    d.start()
    r = d.submit(sleep(seconds))
    test.assertEqual(r.status, 202, r)
    job_id = r.body["id"]
    d.wait_status(job_id, "running")
    return d, job_id


class OneDaemonPerStateDir(unittest.TestCase):
    """Two daemons on one state dir would both recover and run the same
    stored jobs: the second refuses to start, naming the lock."""

    @quick
    def test_second_daemon_on_the_same_state_dir_is_refused(self):
        d = Daemon("lock1")
        self.addCleanup(d.stop)
        d.start()
        other = Daemon("lock2", config={"state_dir": d.state_dir})
        other.write_config = True
        cmd = [harness.OPTIONS["daemon"], "--config", other.config_path]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        other.stopped = True
        shutil.rmtree(other.tmp, ignore_errors=True)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertIn("in use by another edgecd", r.stdout + r.stderr)
        self.assertTrue(d.healthz_ok(), "the first daemon was disturbed")
        self.assertEqual(d.run_job(echo(1))["status"], "succeeded")

    @quick
    def test_second_daemon_on_the_same_cgroup_parent_is_refused(self):
        # Its start-up sweep would take the first daemon's job cgroups for
        # leftovers and kill them.
        d, job_id = daemon_running_a_sleep(self, "cglock1", 3)
        other = Daemon("cglock2", config={"cgroup_parent": d.cgroup_parent})
        other.write_config = True
        cmd = [harness.OPTIONS["daemon"], "--config", other.config_path]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = p.communicate(timeout=20 * slow_factor())
        except subprocess.TimeoutExpired:
            p.kill()                                # ours, by its pid
            out, _ = p.communicate()
        finally:
            # A daemon B that was not refused left its workspaces tmpfs.
            for m in sorted(harness.mounts_under(other.tmp), key=len, reverse=True):
                subprocess.run(["umount", "-l", m], capture_output=True)
            other.stopped = True
            shutil.rmtree(other.tmp, ignore_errors=True)
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("cgroup_parent %s is in use by another edgecd" % d.cgroup_parent, out)
        self.assertTrue(d.healthz_ok(), "the first daemon was disturbed")
        self.assertEqual(d.wait_final(job_id)["status"], "succeeded")


    @quick
    def test_second_daemon_with_the_same_job_users_is_refused(self):
        # Its jobs would run as the first one's job users: per-uid limits
        # (inotify instances, message queues, RLIMIT_NPROC) shared across
        # the two daemons' jobs.
        d = Daemon("uids1")
        self.addCleanup(d.stop)
        d.start()
        users = d.config["job_users"]
        overlap = {"first_uid": users["first_uid"] + users["count"] - 1,
                   "first_gid": users["first_gid"] + 10 * users["count"], "count": 8}
        other = Daemon("uids2", config={"job_users": overlap})
        self.addCleanup(other.stop, check=False)
        with self.assertRaises(AssertionError) as cm:
            other.start(timeout=20)
        self.assertIn("job_users: the job uid range %d-%d is another edgecd's on this host"
                      % (overlap["first_uid"], overlap["first_uid"] + 7), str(cm.exception))
        self.assertTrue(d.healthz_ok(), "the first daemon was disturbed")
        self.assertEqual(d.run_job(echo(1))["status"], "succeeded")
        # Ranges of its own: it starts, beside the first.
        third = Daemon("uids3")
        self.addCleanup(third.stop)
        third.start()
        self.assertEqual(third.run_job(echo(1))["status"], "succeeded")

    def test_restart_while_a_killed_daemons_copies_hold_its_locks(self):
        # SIGKILLed while it spawns its runtime, a daemon leaves a child
        # between its clone and its exec holding copies of the daemon's
        # open files for a moment, longer on a loaded host; the job_users
        # claim and the cgroup_parent lock live on the open file, so a
        # restart right then was refused ("is another edgecd's").  Here
        # the test takes a copy of one of them itself (pidfd_getfd) and
        # lets it go a second after the kill: the restart waits and starts.
        # The listening socket too: its port was "in use".
        d = Daemon("heldlocks")
        self.addCleanup(d.stop)
        d.start()
        parent = os.path.basename(d.cgroup_parent)

        def listening_inodes():
            found = set()
            with open("/proc/net/tcp") as f:
                for line in list(f)[1:]:
                    col = line.split()
                    if int(col[1].split(":")[1], 16) == d.port and col[3] == "0A":
                        found.add("socket:[%s]" % col[9])
            return found

        def is_lock(lock, target):
            if lock == "job_users claim":
                return target == "/run/lock/edgecd-job-users"
            if lock == "cgroup_parent lock":
                return target.startswith("/sys/fs/cgroup/") and os.path.basename(target) == parent
            return target in listening_inodes()
        libc = ctypes.CDLL(None, use_errno=True)
        copies = []

        def let_go():
            while copies:
                os.close(copies.pop())
        self.addCleanup(let_go)
        for lock in ("job_users claim", "cgroup_parent lock", "listening socket"):
            with self.subTest(lock=lock):
                fd_dir = "/proc/%d/fd" % d.proc.pid
                pidfd = os.pidfd_open(d.proc.pid)
                try:
                    for name in os.listdir(fd_dir):
                        try:
                            target = os.readlink(os.path.join(fd_dir, name))
                        except OSError:
                            continue
                        if is_lock(lock, target):
                            fd = libc.syscall(438, pidfd, int(name), 0)     # pidfd_getfd
                            self.assertGreaterEqual(fd, 0, os.strerror(ctypes.get_errno()))
                            copies.append(fd)
                finally:
                    os.close(pidfd)
                self.assertTrue(copies, "the daemon's %s not found among its fds" % lock)
                timer = threading.Timer(1.0, let_go)     # within the daemon's grace, 2 s
                d.kill()
                timer.start()
                self.addCleanup(timer.join)
                t0 = time.monotonic()
                d.restart(timeout=20)
                self.assertGreaterEqual(time.monotonic() - t0, 0.8, "started while the copy held the lock")
                self.assertEqual(d.run_job(echo(1))["status"], "succeeded")


class StrayRuntimes(unittest.TestCase):
    """An edgecd killed with SIGKILL alone (not its whole service) leaves
    its runtime calls running; a `run` that had not saved its container
    when the next start swept the runtime's root would make one after the
    sweep, running for nobody with a job uid handed out again.  The start
    ends them first.  The strays here stand in for such calls (a real one
    caught in that moment cannot be made to order): a shell run under the
    runtime's name, whose command line names `--root` on a root of the
    state dir, or of another one."""

    def fake_runtime_call(self, d, name, root, own_roots=False):
        """own_roots: in a mount namespace of its own, where the roots'
        directory is another one at the same path (a daemon in a container
        with the same state dir path)."""
        exe = os.path.join(d.tmp, name)
        if not os.path.exists(exe):
            os.symlink("/bin/sh", exe)     # the process's name is the link's
        # The shell's own `read` on a pipe we hold: it waits, with no child.
        argv = [exe, "-c", "read x", "sh", "--root", root, "run", "--bundle", "/nowhere", "x"]
        if own_roots:
            roots = os.path.dirname(root)
            argv = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none "$1" && shift && exec "$@"', "sh",
                    roots] + argv
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)                        # ours, by its pid
        # Until it has exec'd, its command line is this test's.
        until = time.monotonic() + 10 * slow_factor()
        while time.monotonic() < until:
            with open("/proc/%d/cmdline" % p.pid, "rb") as f:
                if b"--root\0" + root.encode() + b"\0" in f.read():
                    return p
            time.sleep(0.01)
        raise AssertionError("the stand-in runtime call never showed its command line")

    @quick
    def test_runtime_calls_left_on_its_roots_are_ended_at_restart(self):
        d = Daemon("stray")
        self.addCleanup(d.stop)
        d.start()
        self.assertEqual(d.run_job(echo(1))["status"], "succeeded")
        name = d.runtime["name"]
        root = os.path.join(d.state_dir, "runtime", name)
        self.assertTrue(os.path.isdir(root), root)
        d.kill()
        mine = self.fake_runtime_call(d, name, root)
        elsewhere = self.fake_runtime_call(d, name, os.path.join(d.tmp, "another-state", "runtime", name))
        unnamed = self.fake_runtime_call(d, "not-a-runtime", root)
        contained = self.fake_runtime_call(d, name, root, own_roots=True)
        d.restart()
        # Ended before the daemon served: restart() returned once it did.
        self.assertEqual(mine.poll(), -signal.SIGKILL)
        self.assertIsNone(elsewhere.poll(), "a runtime call on another state dir's roots was ended")
        self.assertIsNone(unnamed.poll(), "a process not named as a runtime was ended")
        self.assertIsNone(contained.poll(), "a runtime call on another mount namespace's roots was ended")
        self.assertIn("ended 1 runtime process(es) on `%s/runtime` that a previous edgecd left running"
                      % d.state_dir, d.log_text())
        self.assertEqual(d.run_job(echo(2))["status"], "succeeded")


class BindBeforeWork(unittest.TestCase):
    """A daemon that cannot serve (its port in use) stops before it takes
    on any work: a stored job does not run again, or lose an attempt, in a
    start that fails."""

    def test_port_in_use_at_a_restart_runs_no_stored_job(self):
        d, job_id = daemon_running_a_sleep(self, "listenfirst", 1)
        d.kill()
        holder = harness.hold_port(d.port)
        self.addCleanup(holder.close)
        p = subprocess.run([harness.OPTIONS["daemon"], "--config", d.config_path], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        out = p.stdout + p.stderr
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("listen on `127.0.0.1:%d`" % d.port, out)
        self.assertNotIn("job %s: t_sleep 1.0.0 started" % job_id, out)
        holder.close()
        d.restart()
        job = d.wait_final(job_id)
        self.assertEqual(job["status"], "succeeded", job)
        # The first daemon's run and the last one's, none for the refused start.
        self.assertEqual(len(job["attempts"]), 2, job)


class ClientGoneDuringCommit(unittest.TestCase):
    """A client that hangs up while its submit is being committed: the job
    is on disk, so it is queued and runs, and its place in the queue is
    used, not lost.  The commit is held back by another process holding
    the database's write lock (SQLite waits for it)."""

    def test_submit_whose_client_left_still_runs(self):
        d = Daemon("gone", config={"workers": 1, "queue_capacity": 2})
        self.addCleanup(d.stop)
        d.start()
        body = body_bytes(echo(5))
        head = ("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode() + body
        blocker = sqlite3.connect(d.db_path, isolation_level=None, timeout=10)
        try:
            blocker.execute("BEGIN IMMEDIATE")      # the daemon's writer now waits
            for _ in range(2):
                c = socket.create_connection(("127.0.0.1", d.port), timeout=5)
                c.sendall(head)
                time.sleep(0.3)                     # the submit is waiting for its commit
                c.close()                           # ... and its client leaves
            time.sleep(0.3)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(d.list_jobs()) < 2:
            time.sleep(0.1)
        jobs = d.list_jobs()
        self.assertEqual(len(jobs), 2, "both submits were committed: %s" % jobs)
        for j in jobs:
            job = d.wait_final(j["id"], timeout=30)
            self.assertEqual(job["status"], "succeeded", "a committed job whose client left never ran: %s" % job)
        # Their queue places were used, not leaked: the queue takes jobs.
        for i in range(2):
            r = d.submit(echo(10 + i))
            self.assertEqual(r.status, 202, r)
            self.assertEqual(d.wait_final(r.body["id"], timeout=30)["status"], "succeeded")

