"""The daemon itself short of a resource: every client gets a clear answer,
nothing spins, and it recovers once the resource comes back.

File descriptors are taken away from a running daemon by lowering its
RLIMIT_NOFILE (prlimit on its pid) to just above what it holds, or under it,
and given back afterwards (also when the test fails).  Processes and threads
are taken away with a cgroup v1 pids cgroup (TasksMax=) the daemon is moved
into and out of.  LowHardLimit starts a daemon whose hard limit is 512."""

import http.client
import os
import re
import resource
import shutil
import signal
import socket
import tempfile
import time
import unittest

import harness
from harness import Daemon, DaemonCase, copy_plugin, slow_factor, wait_for

ECHO = {"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": 1}}


def open_fds(pid):
    return [int(x) for x in os.listdir("/proc/%d/fd" % pid)]


def procs_of_uid(uid):
    """Host processes whose real uid is uid."""
    out = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/status" % pid) as f:
                if any(line.startswith("Uid:") and int(line.split()[1]) == uid for line in f):
                    out.append(int(pid))
        except (OSError, ValueError):
            pass
    return out


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def starve(test, pid, soft):
    """Set pid's soft RLIMIT_NOFILE to soft (below the descriptors it holds:
    it can open none); put back when the test ends.  The old limits."""
    old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    test.addCleanup(resource.prlimit, pid, resource.RLIMIT_NOFILE, old)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, old[1]))
    return old


class FileDescriptors(DaemonCase):
    CONFIG = {"workers": 1}

    def starve(self, spare=1):
        """Lower the daemon's soft RLIMIT_NOFILE so that `spare`
        descriptors are left; restored when the test ends."""
        pid = self.d.proc.pid
        old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        self.addCleanup(resource.prlimit, pid, resource.RLIMIT_NOFILE, old)
        fds = open_fds(pid)
        soft = max(len(fds) + spare, max(fds) + 1)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, old[1]))
        return old

    def test_a_connection_past_the_limit_is_answered_503_and_nothing_spins(self):
        d = self.d
        pid = d.proc.pid
        sessions = []
        self.addCleanup(lambda: [s.close() for s in sessions])
        self.starve()
        answers = []
        # Kept-alive connections, each one descriptor, until one is refused.
        for _ in range(6):
            c = http.client.HTTPConnection(d.host, d.port, timeout=3 * slow_factor())
            sessions.append(c)
            try:
                c.request("GET", "/healthz")
                r = c.getresponse()
                answers.append((r.status, r.read()))
            except (OSError, http.client.HTTPException) as e:
                answers.append((None, repr(e)))
                break
            if r.status == 503:
                break
        self.assertEqual(answers[-1][0], 503, "a connection past the descriptor limit: %r" % (answers,))
        self.assertIn(b'"code":"busy"', answers[-1][1])
        self.assertIn(b"file descriptors", answers[-1][1])
        # Still out of descriptors, a client waiting: no thread may spin.
        waiting = socket.create_connection((d.host, d.port), timeout=3)
        sessions.append(waiting)
        waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(2)
        busy = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        self.assertLess(busy, 0.3, "the daemon used %.0f%% of a CPU while out of descriptors" % (busy * 100))
        waiting.settimeout(3 * slow_factor())
        # Refused; or served, when a descriptor came free for a moment (the
        # spares are closed while a shed accepts): never left waiting.
        got = waiting.recv(4096)
        self.assertTrue(got.startswith(b"HTTP/1.1 503") or got.startswith(b"HTTP/1.1 200"), got[:80])
        spam = [line for line in d.log_text().splitlines()
                if "resource limit" in line or "cannot accept connections" in line or "Too many open files" in line]
        self.assertLess(len(spam), 5, "warnings while out of descriptors:\n" + "\n".join(spam[:10]))
        # The descriptors come back: connections are served again, and jobs run.
        for s in sessions:
            s.close()
        self.doCleanups()
        r = d.req("GET", "/healthz", timeout=5)
        self.assertEqual(r.status, 200, r)
        job = d.run_job(ECHO)
        self.assertEqual(job["status"], "succeeded", job)
        d.assert_idle_clean()


    def test_every_connection_past_the_limit_is_answered_while_it_lasts(self):
        # Each HTTP thread holds a kept-alive connection; libmicrohttpd then
        # stops polling the listening socket in a thread that met the limit
        # until one of that thread's connections closes.  Every connection
        # that comes while the shortage lasts must still get its 503.
        d = self.d
        sessions = []
        self.addCleanup(lambda: [s.close() for s in sessions])
        for _ in range(8):
            c = http.client.HTTPConnection(d.host, d.port, timeout=5 * slow_factor())
            sessions.append(c)
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        old = self.starve(spare=0)
        refused = 0
        for i in range(16):
            s = socket.create_connection((d.host, d.port), timeout=5 * slow_factor())
            sessions.append(s)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                got = s.recv(4096)
            except TimeoutError:
                got = b"(no answer)"
            # Served while a descriptor is free (one the daemon closed
            # meanwhile; the connection is kept open), else refused: never
            # left unanswered.
            self.assertTrue(got.startswith(b"HTTP/1.1 200") or got.startswith(b"HTTP/1.1 503"),
                            "connection %d (%d refused before it): %r" % (i + 1, refused, got[:80]))
            refused += got.startswith(b"HTTP/1.1 503")
            if refused == 6:
                break
            time.sleep(0.2)
        self.assertEqual(refused, 6)
        # The descriptors come back while the threads still hold their
        # kept-alive connections: new connections are served, not refused.
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, old)
        # (A shed under way may still refuse one that comes meanwhile.)
        wait_for(lambda: d.req("GET", "/healthz", timeout=5).status == 200, 5, lambda: "not served again")
        for _ in range(3):
            r = d.req("GET", "/healthz", timeout=5)
            self.assertEqual(r.status, 200, r)
        for s in sessions:
            s.close()
        self.doCleanups()
        r = d.req("GET", "/healthz", timeout=5)
        self.assertEqual(r.status, 200, r)


class RunningJob(DaemonCase):
    CONFIG = {"workers": 1}

    def test_a_result_written_while_the_daemon_is_out_of_descriptors_is_kept(self):
        d = self.d
        jid = self.track(d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 1.5},
                                   "timeout_seconds": 30}).body["id"])
        d.wait_status(jid, "running")
        # Its container, log and wait are set up (the algorithm runs); it
        # ends while the daemon can open nothing, and the descriptors come
        # back 2 s later.
        wait_for(lambda: d.get_job(jid)["attempts"] and procs_of_uid(d.get_job(jid)["attempts"][-1]["uid"]), 10,
                 lambda: "t_sleep not running: %r" % d.get_job(jid))
        old = starve(self, d.proc.pid, 3)
        time.sleep(2.5)
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, old)
        job = d.wait_final(jid, timeout=30)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertIsNotNone(job["result"], job)
        d.assert_idle_clean()

    def submit_starved(self, pauses):
        """A job submitted, on a connection opened before, while the daemon
        can open nothing; returns (session, job id, old limits) once the
        log says the job's pauses-th wait for its cancel eventfd began."""
        d = self.d
        session = d.session()
        self.addCleanup(session.close)
        self.assertEqual(session.req("GET", "/healthz").status, 200)
        old = starve(self, d.proc.pid, 3)
        r = session.req("POST", "/v1/jobs", ECHO)
        self.assertEqual(r.status, 202, r)
        jid = self.track(r.body["id"])
        self.assertTrue(d.wait_log(r"cannot create the job's cancel eventfd \(Too many open files\): trying again "
                                   r"after \d+ ms \(%d of 8 such pauses\)" % pauses, 15), d.log_tail(20))
        return session, jid, old

    def test_a_job_started_while_the_daemon_is_out_of_descriptors_waits_it_out_and_says_why(self):
        d = self.d
        # Not even its cancel eventfd can be made: the job waits (it failed
        # at once before), says why in the log, and is still not final after
        # three pauses (1, 2 and 4 s).
        session, jid, old = self.submit_starved(3)
        job = session.req("GET", "/v1/jobs/" + jid).body
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, old)
        self.assertNotIn(job["status"], harness.FINAL, job)
        # Once they are back, the job runs (after the pause under way, 4 s).
        job = d.wait_final(jid, timeout=30)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"], ECHO["parameters"], job)
        algs = {a["name"]: a for a in d.req("GET", "/v1/algorithms").body["algorithms"]}
        self.assertEqual(algs["t_echo"]["health"]["state"], "healthy", algs["t_echo"])

    def test_a_job_waiting_for_a_descriptor_is_cancelled_at_once(self):
        d = self.d
        session, jid, old = self.submit_starved(2)
        # In its 2 s pause: the cancel ends it there.
        c = session.req("DELETE", "/v1/jobs/" + jid)
        self.assertIn(c.status, (200, 202), c)
        job = None
        deadline = time.monotonic() + 5 * slow_factor()
        while time.monotonic() < deadline:
            job = session.req("GET", "/v1/jobs/" + jid).body
            if job["status"] in harness.FINAL:
                break
            time.sleep(0.1)
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, old)
        self.assertEqual(job["status"], "cancelled", job)
        self.assertEqual(job["attempts"], [], job)
        d.assert_idle_clean()


class JobRead(DaemonCase):
    CONFIG = {"workers": 1}

    def test_a_job_read_while_out_of_descriptors_is_503_busy(self):
        d = self.d
        # A running job is read from the store at each GET (a final one
        # is rendered from the cache).
        jid = self.track(d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 60},
                                   "timeout_seconds": 120}).body["id"])
        # Its start read the store (its parameters) while nothing else
        # did: no store connection opened for reads at once yet.
        time.sleep(1)
        d.wait_status(jid, "running")
        # Connections taken before, spread over the HTTP threads; each is
        # sent its GETs at once (pipelined), so that the threads read at
        # the same moment and need store connections that are opened on
        # first need, for which there is no descriptor now.
        conns = []
        self.addCleanup(lambda: [c.close() for c in conns])
        for _ in range(24):   # under http.max_connections_per_client
            c = socket.create_connection((d.host, d.port), timeout=10 * slow_factor())
            conns.append(c)
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: edgecd\r\n\r\n")
            self.assertTrue(c.recv(4096).startswith(b"HTTP/1.1 200"))
        # The limit at the lowest free descriptor: none can be opened
        # (the kernel gives the lowest).  Not under 16: the HTTP threads'
        # poll() fails EINVAL past the limit's count of descriptors, which
        # no daemon meets by running out.
        pid = d.proc.pid
        fds = set(settled_fds(pid))
        free = min(set(range(len(fds) + 1)) - fds)
        old = starve(self, pid, max(free, 16))
        n = 40
        get = ("GET /v1/jobs/%s HTTP/1.1\r\nHost: edgecd\r\n\r\n" % jid).encode()
        answers, odd = [], []
        # A few rounds: which thread takes a connection is the server's
        # choice, and a round may find the reads one after another.
        for _ in range(5):
            for c in conns:
                c.sendall(get * n)
            got = []
            for c in conns:
                data = b""
                deadline = time.monotonic() + 10 * slow_factor()
                while data.count(b"HTTP/1.1 ") < n and time.monotonic() < deadline:
                    data += c.recv(1 << 16)
                got += [b"HTTP/1.1 " + a for a in data.split(b"HTTP/1.1 ")[1:]]
            self.assertEqual(len(got), len(conns) * n)
            answers += got
            odd = [a for a in answers if not a.startswith(b"HTTP/1.1 200")]
            if odd:
                break
        resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
        for c in conns:
            c.close()
        db = [f for f in fds if os.path.realpath("/proc/%d/fd/%d" % (pid, f)) == os.path.realpath(d.db_path)]
        self.assertTrue(odd, "no read met the limit: %d answers, all 200 (%d descriptors of the store)"
                        % (len(answers), len(db)))
        for a in odd:
            self.assertRegex(a, b"^HTTP/1.1 503 ", a)
            self.assertRegex(a, b"\r\nRetry-After: \\d+\r\n", a)
            self.assertIn(b'"code":"busy"', a)
            self.assertIn(b"Too many open files", a)
        self.assertEqual(d.get_job(jid)["status"], "running")
        self.assertIn(d.req("DELETE", "/v1/jobs/" + jid).status, (200, 202))
        self.assertEqual(d.wait_final(jid)["status"], "cancelled")


class ResultRead(DaemonCase):
    # One counted failure would show: degraded and isolated at the first.
    CONFIG = {"workers": 1, "retry": {"max_attempts": 1},
              "breaker": {"degrade_after": 1, "isolate_after": 1}}

    def test_a_result_unread_for_want_of_descriptors_is_not_counted_against_the_algorithm(self):
        d = self.d
        session = d.session()
        self.addCleanup(session.close)
        jid = self.track(session.req("POST", "/v1/jobs", {"algorithm": "t_sleep", "parameters": {"seconds": 1.5},
                                                           "timeout_seconds": 60}).body["id"])
        wait_for(lambda: session.req("GET", "/v1/jobs/" + jid).body["attempts"] and
                 procs_of_uid(session.req("GET", "/v1/jobs/" + jid).body["attempts"][-1]["uid"]), 10,
                 lambda: "t_sleep not running: %r" % d.get_job(jid))
        # It ends while the daemon can open nothing, and the descriptors
        # stay away past the result read's retries (10 s): the job is
        # told on the session opened before.
        old = starve(self, d.proc.pid, 3)
        job = None
        deadline = time.monotonic() + 40 * slow_factor()
        while time.monotonic() < deadline:
            job = session.req("GET", "/v1/jobs/" + jid).body
            if job["status"] in harness.FINAL:
                break
            time.sleep(0.2)
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, old)
        self.assertEqual((job["status"], job["error"] and job["error"]["code"]), ("failed", "runtime_error"), job)
        self.assertIn("Too many open files", job["error"]["message"])
        self.assertRegex(job["error"]["message"], "result.json|output directory")
        # The daemon was short, not the algorithm: its breaker did not count it.
        algs = {a["name"]: a for a in d.req("GET", "/v1/algorithms").body["algorithms"]}
        self.assertEqual(algs["t_sleep"]["health"]["state"], "healthy", algs["t_sleep"])
        job = d.run_job({"algorithm": "t_sleep", "parameters": {"seconds": 0}})
        self.assertEqual(job["status"], "succeeded", job)
        d.assert_idle_clean(timeout=30)


class AcceptMemory(unittest.TestCase):
    def test_a_connection_not_taken_for_want_of_memory_is_warned_of_as_such_and_once(self):
        # accept() failing ENOBUFS (the kernel short of memory for a
        # socket) comes from a shim: nothing on the host brings it about.
        tmp = tempfile.mkdtemp(prefix="edgecd-it-exhaust-accept-")
        self.addCleanup(shutil.rmtree, tmp, True)
        flag = os.path.join(tmp, "fail")
        env = harness.preload_shim("acceptfail_shim", tmp)
        env["ACCEPTFAIL_FLAG"] = flag
        d = Daemon("AcceptMemory", env=env)
        self.addCleanup(d.stop)
        d.start()
        open(flag, "w").close()
        self.addCleanup(lambda: os.path.exists(flag) and os.unlink(flag))
        # A client waits in the backlog while every accept fails.
        waiting = socket.create_connection((d.host, d.port), timeout=10 * slow_factor())
        self.addCleanup(waiting.close)
        waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: edgecd\r\n\r\n")
        time.sleep(2.5)
        os.unlink(flag)
        # Memory back: it is served (or, taken by a shed that began just
        # before, told to try again).
        answer = waiting.recv(4096)
        self.assertRegex(answer, b"^HTTP/1.1 (200|503)", answer)
        said = [line for line in d.log_text().splitlines()
                if re.search("accepting connection|cannot accept|resource limit|No buffer space|file descriptors", line)]
        self.assertTrue([line for line in said if "cannot accept connections: No buffer space available" in line],
                        "no warning says what accept() met:\n" + "\n".join(said[:10]))
        self.assertEqual([line for line in said if "file descriptors" in line], [],
                         "descriptors were not what was short")
        self.assertLess(len(said), 3, "%d warnings in 2.5 s:\n%s" % (len(said), "\n".join(said[:10])))
        self.assertEqual(d.req("GET", "/healthz", timeout=5).status, 200)


class HttpStartFailure(unittest.TestCase):
    def test_an_http_server_that_fails_to_start_closes_each_descriptor_once(self):
        # libmicrohttpd closes the listening socket it was given on most of
        # its start-up failures (not all); the daemon closed it again, a
        # number that another thread may have opened by then.  Its eventfd()
        # failing (out of descriptors) comes from a shim, for its first
        # worker (it closes the socket itself) and its second (it stops
        # the half-started server, which closes it).
        tmp = tempfile.mkdtemp(prefix="edgecd-it-exhaust-mhd-")
        self.addCleanup(shutil.rmtree, tmp, True)
        for at in ("1", "2"):
            with self.subTest(failing_eventfd=at):
                env = harness.preload_shim("mhdfail_shim", tmp)
                env["MHDFAIL_AT"] = at
                d = Daemon("HttpStartFailure", env=env)
                self.addCleanup(d.stop, check=False)
                with self.assertRaises(AssertionError) as cm:
                    d.start(timeout=30)
                self.assertRegex(str(cm.exception), "exited with status [1-9][0-9]* during startup")
                log = d.log_tail()   # the start's last 80 lines (its temp dir is gone)
                self.assertIn("mhdfail shim: libmicrohttpd's eventfd() fails", log)
                self.assertIn("cannot start the HTTP server", log)
                self.assertNotIn("closed twice", log)


class LowHardLimit(unittest.TestCase):
    def test_a_daemon_whose_hard_descriptor_limit_is_under_1024_runs_jobs(self):
        # LimitNOFILE=512: the containers get 512, not the 1024 that the
        # runtime could not give them.
        d = Daemon("LowHardLimit", argv0=["prlimit", "--nofile=512:512", "--"])
        self.addCleanup(d.stop)
        d.start()
        job = d.run_job(ECHO)
        self.assertEqual(job["status"], "succeeded", job)




SLOT_FILE = re.compile(r"/slot-\d+/(memory\.max_usage_in_bytes|memory\.usage_in_bytes|cpuacct\.usage)$")


def slot_files_held(pid):
    """Does pid hold a run cgroup slot's counter files (opened when a fresh
    slot is first taken, kept while it serves)?"""
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if SLOT_FILE.search(os.readlink("/proc/%d/fd/%s" % (pid, fd))):
                return True
        except OSError:
            pass
    return False


def settled_fds(pid, timeout=5.0):
    """pid's open descriptors once the same twice 100 ms apart (a moment's
    one, a log or a socket being closed, would count as spare)."""
    deadline = time.monotonic() + timeout
    fds = sorted(open_fds(pid))
    while time.monotonic() < deadline:
        time.sleep(0.1)
        again = sorted(open_fds(pid))
        if again == fds:
            break
        fds = again
    return fds


@unittest.skipIf(harness.cgroup_v2(), "run cgroup slots are cgroup v1's")
class RunCgroupSlot(unittest.TestCase):
    def test_a_slot_whose_files_could_not_be_opened_is_not_left_behind(self):
        # Jobs started with 1, 2, ... descriptors to spare until one finds
        # none left for its run cgroup's counter files.  Only a fresh slot
        # opens them: a run that got past them (what the daemon opens
        # meanwhile varies) holds them, and the daemon is started again
        # for a fresh slot, a step back.
        # One run a job, its shortage not waited out: the job ends on it.
        d = Daemon("RunCgroupSlot", config={"workers": 1, "retry": {"max_attempts": 1, "shortage_retries": 0}})
        self.addCleanup(d.stop)
        d.start()
        spare, errors, restarts = 1, [], 0
        for _ in range(40):
            if slot_files_held(d.proc.pid):
                d.terminate()
                d.restart()
                restarts += 1
                spare = max(1, spare - 2)
            session = d.session()
            try:
                self.assertEqual(session.req("GET", "/healthz").status, 200)
                pid = d.proc.pid
                old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
                fds = settled_fds(pid)
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (max(len(fds) + spare, max(fds) + 1), old[1]))
                try:
                    r = session.req("POST", "/v1/jobs", ECHO)
                    if r.status == 202:
                        deadline = time.monotonic() + 10 * slow_factor()
                        while time.monotonic() < deadline:
                            g = session.req("GET", "/v1/jobs/" + r.body["id"])
                            if g.status == 200 and g.body["status"] in harness.FINAL:
                                break
                            time.sleep(0.05)
                finally:
                    resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
            finally:
                session.close()
            self.assertEqual(r.status, 202, r)
            job = d.wait_final(r.body["id"], timeout=30)
            errors.append((spare, job["error"] and job["error"]["message"]))
            if errors[-1][1] and errors[-1][1].startswith("run cgroup:"):
                break
            spare += 1
        msg = errors[-1][1]
        self.assertTrue(msg and msg.startswith("run cgroup:") and "Too many open files" in msg,
                        "no run met the limit at its run cgroup's files (%d restarts): %r" % (restarts, errors))
        self.assertFalse(slot_files_held(d.proc.pid), "the slot kept files it could not open all of")
        # The slot serves again, its files opened when next taken, and the
        # daemon's stop (d.stop, checked) leaves no cgroup behind.
        for k in range(3):
            job = d.run_job(dict(ECHO, parameters={"n": k}))
            self.assertEqual(job["status"], "succeeded", job)
        self.assertTrue(slot_files_held(d.proc.pid), "no slot took its files again")


class PluginRescan(unittest.TestCase):
    def test_a_plugin_added_while_out_of_descriptors_is_loaded_once_they_come_back(self):
        plugins = tempfile.mkdtemp(prefix="edgecd-it-exhaust-plugins-")
        self.addCleanup(shutil.rmtree, plugins, True)
        copy_plugin("t_echo", os.path.join(plugins, "t_echo"))
        d = Daemon("PluginRescan", plugins=plugins)
        self.addCleanup(d.stop)
        d.start()
        old = starve(self, d.proc.pid, 3)
        copy_plugin("t_echo", os.path.join(plugins, "t_late"), name="t_late")
        self.assertTrue(d.wait_log(r"plugins not reloaded \(watch\).*Too many open files", 5),
                        "no rescan failed for want of descriptors")
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, old)
        names = lambda: [a["name"] for a in d.req("GET", "/v1/algorithms").body["algorithms"]]
        wait_for(lambda: "t_late" in names(), 5, lambda: "t_late not loaded: %r" % names())
        job = d.run_job({"algorithm": "t_late", "version": "1.0.0", "parameters": {"n": 1}})
        self.assertEqual(job["status"], "succeeded", job)


PIDS_V1 = "/sys/fs/cgroup/pids"


@unittest.skipUnless(os.path.isfile(os.path.join(PIDS_V1, "cgroup.procs")), "needs the cgroup v1 pids hierarchy")
class Processes(unittest.TestCase):
    """The daemon in a pids cgroup of its own (systemd's TasksMax=); each
    test starts a daemon and moves it back out at its end."""

    def setUp(self):
        # Isolated after 2 runtime errors in a row: 3 runs failed short
        # (1 s and 2 s pauses between them) would have done it.
        # A stop drains running jobs for up to 30 s (the harness's 0 would
        # interrupt them at once).
        self.d = Daemon("ExhaustPids", config={"workers": 1, "drain_seconds": 30,
                                               "breaker": {"degrade_after": 1, "isolate_after": 2}})
        self.cg = os.path.join(PIDS_V1, "edgecd-it-exhaust-%d" % os.getpid())
        os.mkdir(self.cg)
        self.addCleanup(os.rmdir, self.cg)
        self.addCleanup(self.d.stop)
        self.d.start()
        self.write("cgroup.procs", self.d.proc.pid)
        self.addCleanup(self.lift)

    def write(self, name, value):
        with open(os.path.join(self.cg, name), "w") as f:
            f.write(str(value))

    def squeeze(self):
        """No room for one more thread or process (TasksMax=, reached)."""
        with open(os.path.join(self.cg, "pids.current")) as f:
            self.write("pids.max", int(f.read()))

    def lift(self):
        self.write("pids.max", "max")
        try:
            with open(os.path.join(PIDS_V1, "cgroup.procs"), "w") as f:
                f.write(str(self.d.proc.pid))
        except ProcessLookupError:
            pass    # it has exited (a test that stopped it)

    def assertRunsFailedShort(self, job_id, runs):
        """Waits until job_id has runs failed runs, each for want of the
        daemon's processes, and is not final: the shortage does not end it."""
        job = wait_for(lambda: (lambda j: j if len([a for a in j.get("attempts") or [] if a.get("error")]) >= runs
                                or j["status"] in harness.FINAL else None)(self.d.get_job(job_id)),
                       30, lambda: "job %s: fewer than %d failed runs" % (job_id, runs))
        self.assertNotIn(job["status"], harness.FINAL, job)
        for a in job["attempts"]:
            if a.get("error"):
                self.assertEqual(a["error"]["code"], "runtime_error", job)
                self.assertIn("Resource temporarily unavailable", a["error"]["message"], job)
        return job

    def test_a_log_pump_that_could_not_start_starts_for_a_later_run(self):
        d = self.d
        self.squeeze()
        jid = d.submit(ECHO).body["id"]
        self.assertRunsFailedShort(jid, 1)
        self.lift()
        job = d.wait_final(jid, timeout=30)
        self.assertEqual(job["status"], "succeeded", job)
        job = d.run_job(dict(ECHO, parameters={"n": 9}))
        self.assertEqual(job["status"], "succeeded", job)

    def test_a_stop_during_a_shortage_pause_keeps_the_job_for_the_next_start(self):
        d = self.d
        self.squeeze()
        jid = d.submit(ECHO).body["id"]
        self.assertRunsFailedShort(jid, 4)
        # In the 8 s pause after its fourth run: the stop does not wait it
        # out (and then run the job in the drain, the room given back just
        # before): the job is queued again for the next start.
        self.lift()
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(20)
        d.logf.close()
        self.assertIn("interrupted by the daemon's stop; it runs again at the next start", d.log_text())
        d.restart()
        job = d.wait_final(jid, timeout=30)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(len(job["attempts"]), 5, job)

    def test_runs_failed_for_want_of_the_daemons_processes_do_not_isolate_the_algorithm(self):
        d = self.d
        self.squeeze()
        # More runs failed in a row than breaker.isolate_after (2) and than
        # retry.max_attempts (3): the job waits, the algorithm is not
        # isolated, and the job runs once the room is back.
        jid = d.submit(ECHO).body["id"]
        self.assertRunsFailedShort(jid, 4)
        algs = {a["name"]: a for a in d.req("GET", "/v1/algorithms").body["algorithms"]}
        self.assertEqual(algs["t_echo"]["health"]["state"], "healthy", algs["t_echo"])
        self.lift()
        job = d.wait_final(jid, timeout=30)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertGreaterEqual(len(job["attempts"]), 5, job)
