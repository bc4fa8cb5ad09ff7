"""The daemon in systemd's environment, without systemd: NOTIFY_SOCKET set
to a datagram socket of the test's own (as a Type=notify unit has it), and
a listening socket passed the way socket activation passes it (LISTEN_FDS,
LISTEN_PID, fd 3).

runc proxies NOTIFY_SOCKET when it finds it in its environment, and `start`
then waits for the container to say READY: a daemon that handed its own
environment to the runtime hung at the start-up probe and found no runtime.
Every runtime process gets an explicit minimal environment instead.

Also what the daemon tells systemd as it serves: STATUS= with the running
and queued counts, WATCHDOG=1 (WATCHDOG_USEC, WATCHDOG_PID) only while every
worker beats (a worker wedged by EDGECD_TEST_WEDGE_WORKER_MS stops it), and
RELOADING=1 then READY=1 around a SIGHUP rescan.  tests/system checks the
same under a real systemd."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import Daemon, check_job, quick, slow_factor

MATRIX = {"algorithm": "matrix_multiplication",
          "parameters": {"matrix_a": [[1, 2], [3, 4]], "matrix_b": [[5, 6], [7, 8]]}}


class NotifySocket:
    """A datagram socket collecting what the daemon says to systemd, in a
    temporary directory of its own (removed by close).  A thread reads it
    all the time, as systemd does: a unix datagram socket queues only
    net.unix.max_dgram_qlen (10) messages, and a daemon sending to a full
    one blocks."""

    def __init__(self, test):
        self.dir = tempfile.mkdtemp(prefix="edgecd-it-notify-")
        test.addCleanup(self.close)
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages = []
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.closed:
            try:
                m = self.sock.recv(4096).decode("utf-8", "replace")
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append(m)

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def find(self, line, start=0):
        """The index of the first message from start on with this line, or -1."""
        msgs = self.snapshot()
        for i in range(start, len(msgs)):
            if line in msgs[i].split("\n"):
                return i
        return -1

    def wait_for(self, line, timeout, start=0):
        """True once a message from index start on has this line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.find(line, start) >= 0:
                return True
            time.sleep(0.05)
        return self.find(line, start) >= 0

    def count(self, line, start=0):
        return sum(1 for m in self.snapshot()[start:] if line in m.split("\n"))

    def __len__(self):
        return len(self.snapshot())

    def close(self):
        self.closed = True
        self.thread.join(5)
        self.sock.close()
        shutil.rmtree(self.dir, True)


@quick
class Notify(unittest.TestCase):

    def test_ready_and_jobs_with_notify_socket(self):
        ns = NotifySocket(self)
        d = Daemon("notify", env={"NOTIFY_SOCKET": ns.path})
        self.addCleanup(d.stop)
        d.start(timeout=20 * slow_factor())
        self.assertTrue(ns.wait_for("READY=1", 20 * slow_factor()), "no READY=1: %s" % ns.messages)
        job = d.run_job(MATRIX)
        self.assertEqual(job["result"]["product"], [[19, 22], [43, 50]], job)
        self.assertIn("the sandbox probe passed", d.log_text())
        d.stop()
        self.assertTrue(ns.wait_for("STOPPING=1", 5), "no STOPPING=1: %s" % ns.messages)


@quick
class SocketActivation(unittest.TestCase):

    def test_passed_socket_serves_and_runs_jobs(self):
        ns = NotifySocket(self)
        # The configured address is not used: the passed socket wins.
        d = harness.socket_activated(self, "sockact", env={"NOTIFY_SOCKET": ns.path})
        d.start(timeout=20 * slow_factor())
        self.assertTrue(ns.wait_for("READY=1", 20 * slow_factor()), ns.messages)
        self.assertIn("socket-activated fd 3", d.log_text())
        job = d.run_job(MATRIX)
        check_job(job, final=True)
        self.assertEqual(job["status"], "succeeded", job)


def sleep_job(seconds):
    return {"algorithm": "t_sleep", "parameters": {"seconds": seconds}, "timeout_seconds": 120}


def wait_command_runs(d, job_id, timeout=30.0):
    """Until job_id's container runs its command (a process of its cgroup
    is no longer the runtime's init): its worker is past building the run
    (writes to the state dir) and waits on the container, beating.
    "running" alone comes before the build."""
    deadline = time.monotonic() + timeout * slow_factor()
    seen = {}
    while time.monotonic() < deadline:
        attempts = d.get_job(job_id).get("attempts") or []
        rid = attempts[-1].get("run_id") if attempts else None
        for cg in harness.container_cgroup_dirs(d.cgroup_parent, rid) if rid else []:
            try:
                with open(os.path.join(cg, "cgroup.procs")) as f:
                    pids = f.read().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    with open("/proc/%s/comm" % pid) as f:
                        comm = f.read().strip()
                except OSError:
                    continue
                seen[pid] = comm
                if not comm.startswith("runc") and not comm.startswith("crun") and \
                        not comm.startswith("youki"):
                    return
        time.sleep(0.05)
    raise AssertionError("job %s: its container did not run its command within %.0f s (processes seen: %s)"
                         % (job_id, timeout * slow_factor(), seen))


def wait_log(d, pattern, timeout):
    """True once the daemon's log matches pattern (a regular expression)."""
    return d.wait_log(pattern, timeout / slow_factor())


@quick
class Status(unittest.TestCase):

    def test_status_counts_follow_the_jobs(self):
        ns = NotifySocket(self)
        d = Daemon("status", config={"workers": 1}, env={"NOTIFY_SOCKET": ns.path})
        self.addCleanup(d.stop)
        d.start(timeout=20 * slow_factor())
        self.assertTrue(ns.wait_for("READY=1", 20 * slow_factor()), ns.messages)
        self.assertTrue(ns.wait_for("STATUS=serving: 0 running, 0 queued", 5), ns.messages)
        ids = []
        for _ in range(3):
            r = d.submit(sleep_job(60))
            self.assertEqual(r.status, 202, r)
            ids.append(r.body["id"])
        d.wait_status(ids[0], "running")
        # One worker: one running, two waiting.
        self.assertTrue(ns.wait_for("STATUS=serving: 1 running, 2 queued", 10 * slow_factor()), ns.messages)
        mark = len(ns)
        for i in ids:
            self.assertIn(d.req("DELETE", "/v1/jobs/%s" % i).status, (200, 202))
        for i in ids:
            d.wait_final(i)
        self.assertTrue(ns.wait_for("STATUS=serving: 0 running, 0 queued", 10 * slow_factor(), start=mark),
                        ns.messages)
        # Without WATCHDOG_USEC, no watchdog.
        self.assertEqual(ns.count("WATCHDOG=1"), 0, ns.messages)


class Watchdog(unittest.TestCase):
    """WATCHDOG_USEC=1 s: WATCHDOG=1 every half second; a worker silent for
    longer than the interval (10 s at least) holds it back."""

    def daemon(self, ns, env=None, before_start=None):
        # WATCHDOG_PID is the daemon's own pid: the shell's, kept across exec.
        shim = ["/bin/sh", "-c", 'export WATCHDOG_PID=$$; exec "$@"', "sh"]
        e = {"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "1000000"}
        e.update(env or {})
        d = Daemon("watchdog", config={"workers": 1, "drain_seconds": 0}, argv0=shim, env=e)
        # Before the stop is registered: what it sets up is undone after.
        if before_start:
            before_start(d)
        self.addCleanup(d.stop)
        d.start(timeout=20 * slow_factor())
        self.assertTrue(ns.wait_for("READY=1", 20 * slow_factor()), ns.messages)
        return d

    def test_watchdog_sent_while_a_long_job_runs(self):
        ns = NotifySocket(self)
        d = self.daemon(ns)
        # Longer than the 10 s bound: the worker waiting on the container
        # beats all along.
        job = d.run_job(sleep_job(12), timeout=60)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertGreaterEqual(ns.count("WATCHDOG=1"), 10, ns.messages)
        mark = len(ns)
        self.assertTrue(ns.wait_for("WATCHDOG=1", 5, start=mark), ns.messages)
        self.assertNotIn("no heartbeat", d.log_text())

    def test_wedged_worker_stops_watchdog(self):
        ns = NotifySocket(self)
        d = self.daemon(ns, {"EDGECD_TEST_WEDGE_WORKER_MS": "600000"})
        self.assertTrue(ns.wait_for("WATCHDOG=1", 5), ns.messages)
        r = d.submit(sleep_job(0))
        self.assertEqual(r.status, 202, r)
        self.assertTrue(wait_log(d, r"warn: job \S+: worker 0 wedged", 10), d.log_tail())
        self.assertTrue(wait_log(d, r"watchdog: worker 0 has had no heartbeat", 30 * slow_factor()),
                        d.log_tail())
        time.sleep(0.2)
        mark = len(ns)
        # Four intervals without a single WATCHDOG=1.
        time.sleep(4)
        self.assertEqual(ns.count("WATCHDOG=1", start=mark), 0, ns.snapshot()[mark:])
        # The stop ends the wedge; the job, never started, stays queued.
        d.stop()

    def test_store_stuck_in_a_write_stops_watchdog(self):
        """The state dir's file system frozen (fsfreeze: every write to it
        waits, as on a disk that hangs) while one job runs and a second is
        submitted: the store's writer is stuck in its write, and the
        worker, waiting on its container, still beats.  The watchdog names
        the writer and holds WATCHDOG=1 back; after the thaw it is sent
        again and the submit is answered."""
        ns = NotifySocket(self)

        def on_ext4(d):
            self.addCleanup(harness.unmount_state, d)
            try:
                harness.state_on_ext4(d)
            except AssertionError as e:
                self.skipTest("skipped: no ext4 on a loop device here: %s" % e)

        d = self.daemon(ns, before_start=on_ext4)
        first = d.submit(sleep_job(60))
        self.assertEqual(first.status, 202, first)
        self.addCleanup(harness.cancel_quietly, d, first.body["id"])
        d.wait_status(first.body["id"], "running")
        wait_command_runs(d, first.body["id"])
        self.assertTrue(ns.wait_for("WATCHDOG=1", 5), ns.messages)

        r = subprocess.run(["fsfreeze", "-f", d.state_dir], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        thawed = []

        def thaw():
            if not thawed:
                thawed.append(True)
                subprocess.run(["fsfreeze", "-u", d.state_dir], capture_output=True)
        # Runs before the cancel and the stop above (cleanups run last first).
        self.addCleanup(thaw)
        answers = []
        submit = threading.Thread(target=lambda: answers.append(d.submit(sleep_job(0), timeout=120)))
        submit.start()
        self.assertTrue(wait_log(d, r"watchdog: the store's writer has had no heartbeat", 30 * slow_factor()),
                        d.log_tail())
        self.assertNotIn("watchdog: worker", d.log_text())
        time.sleep(0.2)
        mark = len(ns)
        time.sleep(3)
        self.assertEqual(ns.count("WATCHDOG=1", start=mark), 0, ns.snapshot()[mark:])
        self.assertTrue(submit.is_alive(), "the submit was answered while the store could not write: %s" % answers)

        thaw()
        submit.join(30 * slow_factor())
        self.assertFalse(submit.is_alive(), "the submit is still unanswered after the thaw")
        self.assertEqual(answers[0].status, 202, answers[0])
        self.addCleanup(harness.cancel_quietly, d, answers[0].body["id"])
        self.assertTrue(wait_log(d, r"watchdog: every watched thread beats again", 10 * slow_factor()),
                        d.log_tail())
        mark = len(ns)
        self.assertTrue(ns.wait_for("WATCHDOG=1", 5, start=mark), ns.messages)
        self.assertIn(d.req("DELETE", "/v1/jobs/" + first.body["id"]).status, (200, 202))
        d.wait_final(first.body["id"])
        self.assertEqual(d.wait_final(answers[0].body["id"])["status"], "succeeded")


@quick
class Reload(unittest.TestCase):

    def test_sighup_says_reloading_then_ready(self):
        ns = NotifySocket(self)
        d = Daemon("reload", env={"NOTIFY_SOCKET": ns.path})
        self.addCleanup(d.stop)
        d.start(timeout=20 * slow_factor())
        self.assertTrue(ns.wait_for("READY=1", 20 * slow_factor()), ns.messages)
        mark = len(ns)
        os.kill(d.proc.pid, signal.SIGHUP)
        self.assertTrue(ns.wait_for("RELOADING=1", 10, start=mark), ns.messages)
        i = ns.find("RELOADING=1", mark)
        self.assertRegex(ns.snapshot()[i], r"(^|\n)MONOTONIC_USEC=\d+(\n|$)")
        self.assertTrue(ns.wait_for("READY=1", 10, start=i + 1), ns.messages)
        self.assertIn("plugins reloaded (sighup)", d.log_text())
