"""Resilience: runs the runtime failed are retried (never the algorithm's
own failures), each attempt recorded under its own run id; the cause of a
`create` failure is kept; an algorithm whose runs keep failing in the
runtime or the sandbox is degraded, then isolated, then probed back; what a
failed cleanup leaves is collected; a change of runtime still sweeps the old
runtime's containers.

Runtime failures are injected with wrapper runtimes (harness.
write_runtime_wrapper): shell scripts that fail an operation for job
containers (never for the start-up probe's, edgecd-probe-*) and otherwise
hand over to the real runtime."""

import datetime
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import uuid

import harness
from harness import Daemon, check_error, quick, slow_factor

ECHO = {"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": 1}}


def fail_first(op, n, counter, extra=""):
    """Wrapper body: the first n `op` calls on job containers fail.  op
    "create" also means `run` (the cold path creates and starts in one
    call)."""
    ops = ["create", "run"] if op == "create" else [op]
    probe = "|".join("%s:edgecd-probe-*" % o for o in ops)
    job = "|".join("%s:*" % o for o in ops)
    return ('case "$op:$id" in\n'
            '  %s) ;;\n'
            '  %s) c=$(cat %s 2>/dev/null || echo 0); echo $((c + 1)) > %s\n'
            '     if [ "$c" -lt %d ]; then echo "injected %s failure $c" >&2; %s exit 1; fi ;;\n'
            'esac' % (probe, job, counter, counter, n, op, extra))


def wrapped_daemon(test, name, wrapper, body, config):
    """A started daemon whose runtime is the wrapper script `wrapper` (its
    file name: the daemon names the runtime after it) running body first;
    COUNTER in body is a file of the test's own."""
    tmp = tempfile.mkdtemp(prefix="edgecd-it-wrap-")
    test.addCleanup(shutil.rmtree, tmp, True)
    w = harness.write_runtime_wrapper(tmp, wrapper, body.replace("COUNTER", os.path.join(tmp, "count")))
    d = Daemon(name, config=dict(config, runtime=w))
    test.addCleanup(d.stop)
    d.start()
    test.assertEqual(d.runtime["path"], w, "the wrapper passed the sandbox probe")
    return d


class Retries(unittest.TestCase):

    def daemon(self, name, body, config=None):
        return wrapped_daemon(self, name, name, body, dict({"retry": {"max_attempts": 3, "backoff_ms": 50}},
                                                           **(config or {})))

    @quick
    def test_transient_create_failures_are_retried(self):
        d = self.daemon("flaky", fail_first("create", 2, "COUNTER"))
        job = d.run_job(ECHO)
        self.assertEqual(job["status"], "succeeded", job)
        a = job["attempts"]
        self.assertEqual([x["run_id"] for x in a], ["%s-%d" % (job["id"], i) for i in (1, 2, 3)], a)
        for x in a[:2]:
            self.assertEqual(x["error"]["code"], "runtime_error", a)
            self.assertIn("injected create failure", x["error"]["message"], a)
        self.assertIsNone(a[2]["error"], a)
        self.assertEqual(d.metric("edgecd_job_retries_total"), 2)
        d.assert_idle_clean()

    def test_retries_end(self):
        d = self.daemon("broken", fail_first("create", 99, "COUNTER"))
        job = d.run_job(ECHO)
        self.assertEqual((job["status"], job["error"]["code"]), ("failed", "runtime_error"), job)
        self.assertEqual(len(job["attempts"]), 3, job)
        self.assertIn("injected create failure 2", job["error"]["message"], job)
        self.assertIsNone(job["exit_code"], job)
        d.assert_idle_clean()

    @quick
    def test_the_algorithms_own_failure_is_not_retried(self):
        d = self.daemon("flaky2", fail_first("create", 0, "COUNTER"))
        job = d.run_job({"algorithm": "t_exit"})
        self.assertEqual((job["status"], job["error"]["code"]), ("failed", "algorithm_failed"), job)
        self.assertEqual(len(job["attempts"]), 1, job)
        job = d.run_job({"algorithm": "t_sleep", "parameters": {"seconds": 30}, "timeout_seconds": 1})
        self.assertEqual(job["error"]["code"], "timeout", job)
        self.assertEqual(len(job["attempts"]), 1, job)

    def test_pause_doubles(self):
        d = self.daemon("doubling", fail_first("create", 99, "COUNTER"), config={"retry": {"max_attempts": 3,
                                                                                      "backoff_ms": 600}})
        job = d.run_job(ECHO, timeout=30)
        a = job["attempts"]
        self.assertEqual(len(a), 3, job)
        gap1 = (harness.parse_time(a[1]["started_at"]) - harness.parse_time(a[0]["finished_at"])).total_seconds()
        gap2 = (harness.parse_time(a[2]["started_at"]) - harness.parse_time(a[1]["finished_at"])).total_seconds()
        self.assertGreaterEqual(gap1, 0.55, a)
        self.assertGreaterEqual(gap2, 1.15, "the second pause is not doubled: %s" % a)

    def test_no_retry_once_isolated(self):
        d = self.daemon("isolating", fail_first("create", 99, "COUNTER"),
                        config={"breaker": {"degrade_after": 1, "isolate_after": 1, "cooldown_seconds": 60}})
        job = d.run_job(ECHO)
        self.assertEqual(job["error"]["code"], "runtime_error", job)
        self.assertEqual(len(job["attempts"]), 1, "retried an isolated algorithm: %s" % job)

    def test_create_failure_keeps_its_cause(self):
        # A `create` (or `run`: the cold path's) that hangs past
        # runtime_timeout_seconds: the message says so, not "(no output)"
        # nor the log of another run.
        d = self.daemon("hang", 'case "$op:$id" in create:edgecd-probe-*|run:edgecd-probe-*) ;; '
                                'create:*|run:*) sleep 30 ;; esac',
                        config={"runtime_timeout_seconds": 1, "retry": {"max_attempts": 1}})
        job = d.run_job(ECHO, timeout=60)
        self.assertEqual(job["error"]["code"], "runtime_error", job)
        self.assertIn("timed out after 1000 ms and was killed", job["error"]["message"], job)
        d.assert_idle_clean()

    def test_cancel_between_runs(self):
        # The pause and the bound on the cancel scale alike (2.5 s is
        # daemon work: the cancel, its commit, the answers; tight for an
        # ASan daemon on a loaded host).
        d = self.daemon("slowretry", fail_first("create", 99, "COUNTER"),
                        config={"retry": {"max_attempts": 5, "backoff_ms": int(3000 * slow_factor())}})
        r = d.submit(ECHO)
        jid = r.body["id"]
        deadline = time.monotonic() + 20 * slow_factor()
        while len(d.get_job(jid)["attempts"]) < 1 or d.get_job(jid)["attempts"][0]["finished_at"] is None:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        t0 = time.monotonic()
        self.assertEqual(d.req("DELETE", "/v1/jobs/" + jid).status, 202)
        job = d.wait_final(jid, timeout=10)
        self.assertLess(time.monotonic() - t0, 2.5 * slow_factor(), "the pause before the next run is cut short")
        self.assertEqual(job["status"], "cancelled", job)
        self.assertEqual(len(job["attempts"]), 1, job)


def flaky_plugins(tmp):
    """A plugins dir with t_echo and t_flaky (t_echo whose binary only root
    may run: every `create` (or `start`) fails in the runtime)."""
    plugins = os.path.join(tmp, "plugins")
    os.makedirs(plugins)
    src = os.path.join(harness.OPTIONS["plugins"], "t_echo")
    for name in ("t_echo", "t_flaky"):
        shutil.copytree(src, os.path.join(plugins, name), symlinks=True)
    y = os.path.join(plugins, "t_flaky", "plugin.yaml")
    with open(y) as f:
        text = f.read().replace("name: t_echo", "name: t_flaky")
    with open(y, "w") as f:
        f.write(text)
    shutil.copytree(os.path.join(harness.OPTIONS["plugins"], "t_deadly"), os.path.join(plugins, "t_deadly"),
                    symlinks=True)
    binary = os.path.join(plugins, "t_flaky", "rootfs", "bin", "testkit")
    os.chmod(binary, 0o700)
    return plugins, binary


class Breaker(unittest.TestCase):

    def daemon(self, config):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-breaker-")
        self.addCleanup(shutil.rmtree, tmp, True)
        plugins, binary = flaky_plugins(tmp)
        cfg = {"retry": {"max_attempts": 1}}
        cfg.update(config)
        d = Daemon("breaker", plugins=plugins, config=cfg)
        self.addCleanup(d.stop)
        d.start()
        return d, binary

    def health(self, d, name="t_flaky"):
        r = d.req("GET", "/v1/algorithms/" + name)
        self.assertEqual(r.status, 200, r)
        return r.body["health"]

    def wait_health(self, d, state, timeout=15):
        deadline = time.monotonic() + timeout * slow_factor()
        while time.monotonic() < deadline:
            h = self.health(d)
            if h["state"] == state:
                return h
            time.sleep(0.1)
        self.fail("t_flaky never became %s: %s" % (state, h))

    @quick
    def test_through_all_states(self):
        d, binary = self.daemon({"breaker": {"degrade_after": 2, "isolate_after": 3, "cooldown_seconds": 2}})
        flaky = {"algorithm": "t_flaky", "parameters": {}}
        self.assertEqual(self.health(d)["state"], "healthy")
        # Every loaded algorithm is counted healthy, failed once or never
        # (only those that had failed were counted, in their state).
        names = {a["name"] for a in d.req("GET", "/v1/algorithms").body["algorithms"]}
        self.assertIn("t_flaky", names)
        self.assertEqual(d.metric("edgecd_algorithms_by_health", {"state": "healthy"}), len(names))
        job = d.run_job(flaky)
        self.assertEqual(job["error"]["code"], "runtime_error", job)
        self.assertEqual(self.health(d)["state"], "healthy")
        self.assertEqual(self.health(d)["consecutive_failures"], 1)

        d.run_job(flaky)
        h = self.health(d)
        self.assertEqual(h["state"], "degraded", h)
        self.assertIn("runtime_error", h["reason"], h)
        ready = d.req("GET", "/readyz").body
        self.assertEqual(ready["status"], "degraded", ready)
        self.assertTrue(any("t_flaky" in r and "degraded" in r for r in ready["reasons"]), ready)
        self.assertEqual(d.metric("edgecd_algorithm_unhealthy", {"algorithm": "t_flaky", "state": "degraded"}), 1)
        self.assertEqual(d.metric("edgecd_algorithms_by_health", {"state": "healthy"}), len(names) - 1)
        self.assertEqual(d.metric("edgecd_algorithms_by_health", {"state": "degraded"}), 1)

        d.run_job(flaky)
        h = self.health(d)
        self.assertEqual(h["state"], "isolated", h)
        self.assertIn("retry_at", h)
        retry_at = harness.parse_time(h["retry_at"])
        r = d.submit(flaky)
        e = check_error(r, 503, "algorithm_unavailable")
        self.assertIn("t_flaky", e["message"])
        self.assertIn("isolated", e["message"])
        self.assertEqual(d.metric("edgecd_jobs_rejected_total", {"reason": "algorithm_unavailable"}), 1)
        # Others go on.
        self.assertEqual(d.run_job(ECHO)["status"], "succeeded")
        # A rescan does not forget it.  Waited for (0.3 s could end before
        # it on a loaded host); and the 2 s cool-down may have run out by
        # then (the run above took long): probing is its end, not a reset.
        reloads = d.log_text().count("plugins reloaded (sighup)")
        d.proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: d.log_text().count("plugins reloaded (sighup)") > reloads, 10,
                         lambda: "no rescan after SIGHUP: %s" % d.log_tail(10))
        h = self.health(d)
        over = datetime.datetime.utcnow() >= retry_at + datetime.timedelta(seconds=0.05)
        self.assertIn(h["state"], ("isolated", "probing") if over else ("isolated",),
                      "after a rescan, %s the cool-down's end (%s): %s"
                      % ("after" if over else "before", retry_at, h))

        # Mended; after the cool-down one probe job decides.
        os.chmod(binary, 0o755)
        self.wait_health(d, "probing")
        job = d.run_job(flaky)
        self.assertEqual(job["status"], "succeeded", job)
        h = self.health(d)
        self.assertEqual((h["state"], h["consecutive_failures"]), ("healthy", 0), h)
        self.assertEqual(d.req("GET", "/readyz").body["status"], "healthy")
        self.assertIsNone(d.metric("edgecd_algorithm_unhealthy", {"algorithm": "t_flaky"}))
        self.assertEqual(d.metric("edgecd_algorithms_by_health", {"state": "healthy"}), len(names))

    def test_queued_jobs_run_after_the_cool_down(self):
        # Isolated with jobs still queued, and no request after: the next
        # queued job is the probe once the cool-down ends.
        d, binary = self.daemon({"workers": 1, "breaker": {"degrade_after": 1, "isolate_after": 1,
                                                             "cooldown_seconds": 2}})
        flaky = {"algorithm": "t_flaky", "parameters": {}}
        ids = [d.submit(flaky).body["id"] for _ in range(3)]
        first = d.wait_final(ids[0])
        self.assertEqual(first["error"]["code"], "runtime_error", first)
        self.assertEqual(self.health(d)["state"], "isolated")
        os.chmod(binary, 0o755)
        for i in ids[1:]:
            job = d.wait_final(i, timeout=20)
            self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(self.health(d)["state"], "healthy")

    def test_failed_probe_isolates_again(self):
        # A 3 s cool-down: each isolation is looked at (and a submit
        # refused) after the failed run's answer, which a loaded host can
        # hold up for as long as a 1 s cool-down lasts.
        d, _ = self.daemon({"breaker": {"degrade_after": 1, "isolate_after": 1, "cooldown_seconds": 3}})
        flaky = {"algorithm": "t_flaky", "parameters": {}}
        d.run_job(flaky)
        first = self.health(d)
        self.assertEqual(first["state"], "isolated", first)
        self.wait_health(d, "probing")
        job = d.run_job(flaky)
        self.assertEqual(job["error"]["code"], "runtime_error", job)
        h = self.health(d)
        self.assertEqual(h["state"], "isolated", h)
        check_error(d.submit(flaky), 503, "algorithm_unavailable")

    def test_degraded_runs_one_at_a_time(self):
        d, _ = self.daemon({"workers": 2, "breaker": {"degrade_after": 2, "isolate_after": 100,
                                                      "cooldown_seconds": 60}})
        for _ in range(2):
            job = d.run_job({"algorithm": "t_deadly", "parameters": {"call": "keyctl"}})
            self.assertEqual(job["error"]["code"], "sandbox_violation", job)
        self.assertEqual(self.health(d, "t_deadly")["state"], "degraded")
        ids = [d.submit({"algorithm": "t_deadly", "parameters": {"call": "keyctl", "seconds": 1}}).body["id"]
               for _ in range(2)]
        jobs = sorted((d.wait_final(i, timeout=30) for i in ids), key=lambda j: j["started_at"])
        self.assertLessEqual(harness.parse_time(jobs[0]["finished_at"]), harness.parse_time(jobs[1]["started_at"]),
                             "two jobs of a degraded algorithm ran at once: %s" % jobs)



class HeldClaim(unittest.TestCase):
    """A run is built while its claim's commit is in flight.  When the store
    cannot write (a full state disk) the claim is held, and the build meets
    the same full disk: once the disk has room again the claim goes through,
    and that build's failure must not count as the attempt's (here: a
    breaker's probe job, which would isolate its algorithm again)."""

    def test_build_failed_while_the_claim_was_held_is_not_the_attempts(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-held-")
        self.addCleanup(shutil.rmtree, tmp, True)
        plugins, binary = flaky_plugins(tmp)
        d = Daemon("heldclaim", plugins=plugins, config={
            "workers": 1, "retry": {"max_attempts": 3, "backoff_ms": 50},
            "breaker": {"degrade_after": 1, "isolate_after": 1, "cooldown_seconds": 3}})

        self.addCleanup(harness.unmount_state, d)
        self.addCleanup(d.stop)
        self.addCleanup(harness.cancel_all, d)
        fill = harness.state_on_small_disk(d)
        self.addCleanup(lambda: os.path.exists(fill) and os.unlink(fill))
        d.start()
        flaky = {"algorithm": "t_flaky", "parameters": {}}
        ids = [d.submit(flaky).body["id"] for _ in range(2)]
        first = d.wait_final(ids[0])
        self.assertEqual(first["error"]["code"], "runtime_error", first)   # isolated now
        os.chmod(binary, 0o755)   # mended: the probe would succeed
        harness.fill_disk(fill)
        # A failed insert makes the store notice the full disk.
        for k in range(20):
            if d.submit({"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": k}}).status != 202:
                break
        # The cool-down ends: the queued job is the probe, claimed (and
        # built) while the disk is full.
        time.sleep(5 * slow_factor())
        os.unlink(fill)
        job = d.wait_final(ids[1], timeout=30 * slow_factor())
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(len(job["attempts"]), 1, job["attempts"])


class FailedStarts(unittest.TestCase):

    def test_inputs_of_failed_starts_do_not_fill_the_workspaces(self):
        # The workspaces' tmpfs holds two inputs per worker: the input of a
        # run whose creation failed must not wait there for the cleaner,
        # which lags here (each delete takes a second).  Not runc or crun
        # by name: the container is created, then started (as on youki).
        body = ('case "$op:$id" in\n'
                '  create:edgecd-probe-*|run:edgecd-probe-*) ;;\n'
                '  create:*|run:*) [ -e COUNTER.fail ] && { %s "$@" && echo "injected start failure" >&2; exit 1; } ;;\n'
                '  delete:*) [ -e COUNTER.slow ] && sleep 1 ;;\n'
                'esac' % harness.real_runtime())
        d = wrapped_daemon(self, "failstart", "failstart", body,
                           {"input_ceiling_bytes": "1MiB", "retry": {"max_attempts": 1},
                            "warm": {"max_containers": 0},
                            "breaker": {"degrade_after": 1000, "isolate_after": 1000}})
        counter = os.path.join(os.path.dirname(d.runtime["path"]), "count")
        fail, slow = counter + ".fail", counter + ".slow"
        for path in (fail, slow):
            open(path, "w").close()
        big = dict(ECHO, parameters={"n": 1, "pad": "x" * 900000})
        for _ in range(24):
            job = d.run_job(big)
            self.assertEqual((job["status"], "injected start failure" in (job["error"] or {}).get("message", "")),
                             ("failed", True), job["error"])
        os.unlink(fail)
        job = d.run_job(big)
        os.unlink(slow)
        self.assertEqual(job["status"], "succeeded", job["error"])


class Attached(unittest.TestCase):
    """A cold job's runtime runs in the foreground (runc and crun: a wrapper
    named runc stands in here): its creation is bounded by
    runtime_timeout_seconds and is the runtime's failure, not the job's;
    the job's own time limit counts from when its container ran; and the
    runtime sits in a session of its own, out of reach of signals to the
    daemon's process group, which it would pass on to the container."""

    def daemon(self, name, body, config=None):
        return wrapped_daemon(self, name, "runc", body, dict({"retry": {"max_attempts": 1}}, **(config or {})))

    def test_creation_that_hangs_is_a_runtime_error(self):
        d = self.daemon("atthang", 'case "$op:$id" in run:edgecd-probe-*) ;; run:*) sleep 30 ;; esac',
                        config={"runtime_timeout_seconds": 1})
        t0 = time.monotonic()
        job = d.run_job(dict(ECHO, timeout_seconds=20), timeout=60)
        self.assertLess(time.monotonic() - t0, 15, "the hung runtime was not bounded by runtime_timeout_seconds")
        self.assertEqual(job["error"]["code"], "runtime_error", job)
        self.assertIn("did not start the container within", job["error"]["message"], job)
        d.assert_idle_clean()

    def test_time_limit_counts_from_when_the_container_ran(self):
        # Creating takes 1.5 s; the job may run 1 s and needs half of it.
        d = self.daemon("attslow", 'case "$op:$id" in run:edgecd-probe-*) ;; run:*) sleep 1.5 ;; esac',
                        config={"runtime_timeout_seconds": 10})
        job = d.run_job({"algorithm": "t_sleep", "parameters": {"seconds": 0.5}, "timeout_seconds": 1}, timeout=60)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertGreaterEqual(job["metrics"]["create_ms"], 1400, job)
        self.assertLess(job["metrics"]["run_ms"], 1500, job)
        # And a job past its limit is still stopped, a second after it ran.
        job = d.run_job({"algorithm": "t_sleep", "parameters": {"seconds": 30}, "timeout_seconds": 1}, timeout=60)
        self.assertEqual(job["error"]["code"], "timeout", job)
        self.assertLess(job["metrics"]["run_ms"], 6000 * slow_factor(), job)
        d.assert_idle_clean()

    def test_runtime_in_a_session_of_its_own(self):
        d = Daemon("session")
        self.addCleanup(d.stop)
        d.start()
        jid = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 3}, "timeout_seconds": 10}).body["id"]
        deadline = time.monotonic() + 10
        kids = []
        while not kids and time.monotonic() < deadline:
            kids = harness.children(d.proc.pid)
            time.sleep(0.05)
        # The runtime (runc, crun: in the foreground) or the container's
        # init (youki: run --detach, the init re-parented to the daemon).
        self.assertTrue(kids, "no process under the daemon while a job ran")
        for k in kids:
            try:
                self.assertNotEqual(os.getsid(k), os.getsid(d.proc.pid), "child %d shares the daemon's session" % k)
            except ProcessLookupError:
                pass
        self.assertEqual(d.wait_final(jid, timeout=30)["status"], "succeeded")


class Collector(unittest.TestCase):

    def test_running_jobs_are_not_collected(self):
        d = Daemon("collectlive", config={"sweep_interval_seconds": 1})
        self.addCleanup(d.stop)
        d.start()
        job = d.run_job({"algorithm": "t_sleep", "parameters": {"seconds": 3.5}, "timeout_seconds": 10})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(d.metric("edgecd_leftovers_removed_total", {"kind": "container"}), 0)


class RuntimeChange(unittest.TestCase):
    """Containers a killed daemon left under one runtime are removed with
    that runtime when the next daemon uses another (each runtime has a state
    root of its own)."""

    def test_old_runtimes_containers_are_swept(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-rtchange-")
        self.addCleanup(shutil.rmtree, tmp, True)
        d = Daemon("rtchange", config={"workers": 1})
        self.addCleanup(d.stop)
        d.start()
        first = d.runtime["name"]
        r = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 60}, "timeout_seconds": 120})
        d.wait_status(r.body["id"], "running")
        time.sleep(0.3)
        d.proc.kill()
        d.proc.wait(10)
        root = os.path.join(d.state_dir, "runtime")
        self.assertEqual(harness.runtime_containers(root), ["%s/%s-1" % (first, r.body["id"])])

        w = harness.write_runtime_wrapper(tmp, "other", "")
        d.config["runtime"] = w
        with open(d.config_path, "w") as f:
            f.write("\n".join(harness.yaml_dump(d.config)) + "\n")
        d.logf.close()
        d.start()
        self.assertEqual(d.runtime["name"], "other")
        # The killed run's container is gone from the first runtime's root;
        # the job runs again (run 2) on the new runtime.
        self.assertNotIn("%s/%s-1" % (first, r.body["id"]), harness.runtime_containers(root))
        self.assertEqual(d.req("DELETE", "/v1/jobs/" + r.body["id"]).status, 202)
        d.wait_final(r.body["id"])
        d.wait_cleaned()
        self.assertEqual(harness.runtime_containers(root), [])
        self.assertIn("runtime `%s`: removed 1 container(s) left by a previous run" % first, d.log_text())
        self.assertEqual(d.run_job(ECHO)["status"], "succeeded")


class Orphans(unittest.TestCase):
    """A process the runtime leaves behind becomes the daemon's child (it
    is a subreaper); once it exits nobody waits for it, and the daemon
    reaps it on its one-second tick (no SIGCHLD wakes it for that)."""

    def test_an_orphan_left_by_the_runtime_is_reaped(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-orphan-")
        self.addCleanup(shutil.rmtree, tmp, True)
        pid_file = os.path.join(tmp, "pid")
        # A subshell that is gone before the runtime starts: its sleep is
        # the daemon's child from then on, whatever the runtime does.
        body = ('case "$op:$id" in\n'
                '  create:edgecd-probe-*|run:edgecd-probe-*) ;;\n'
                '  create:*|run:*) (sleep 3 </dev/null >/dev/null 2>&1 & echo $! > %s) ;;\n'
                'esac' % pid_file)
        d = wrapped_daemon(self, "orphans", "leaver", body, {})
        job = d.run_job(ECHO)
        self.assertEqual(job["status"], "succeeded", job)
        with open(pid_file) as f:
            pid = int(f.read())

        def parent():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    return int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                return None
        self.assertEqual(parent(), d.proc.pid, "the leftover is not the daemon's child")
        deadline = time.monotonic() + (3 + 3) * slow_factor()
        while parent() == d.proc.pid and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertNotEqual(parent(), d.proc.pid, "the daemon's orphan %d was not reaped" % pid)
        self.assertEqual(d.run_job(ECHO)["status"], "succeeded")


class CgroupParent(unittest.TestCase):
    """What lives under the cgroup parent and is not edgecd's is left
    alone; a parent that holds the daemon itself is refused."""

    def test_foreign_cgroups_are_left_alone(self):
        d = Daemon("foreigncg", config={"sweep_interval_seconds": 1})
        self.addCleanup(d.stop)
        d.start()
        root = harness.cgroup_roots()[0]
        foreign = os.path.join(root, d.cgroup_parent.strip("/"), "not-edgecd")
        os.makedirs(foreign)
        sleeper = subprocess.Popen(["sleep", "60"])

        def cleanup():
            sleeper.kill()
            sleeper.wait()
            if os.path.isdir(foreign):
                os.rmdir(foreign)
        self.addCleanup(cleanup)
        with open(os.path.join(foreign, "cgroup.procs"), "w") as f:
            f.write(str(sleeper.pid))
        self.assertEqual(d.run_job(ECHO)["status"], "succeeded")
        time.sleep(2.5)         # two collector passes
        self.assertIsNone(sleeper.poll(), "the collector killed a process that is not edgecd's")
        self.assertTrue(os.path.isdir(foreign))
        cleanup()               # before the daemon stops: it checks its parent is gone

    def test_what_a_run_left_in_a_slot_is_swept(self):
        """A run whose runtime ended on its own is checked in the memory
        hierarchy only (one rmdir, not one per hierarchy); what it would
        have left in another hierarchy's slot is the collector's."""
        if harness.cgroup_v2():
            self.skipTest("cgroup v2: a slot serves one run and is removed after it")
        roots = [r for r in harness.cgroup_roots() if not r.endswith(("/memory", "/unified"))]
        d = Daemon("slotsweep", config={"sweep_interval_seconds": 1})
        self.addCleanup(d.stop)
        d.start()
        self.assertEqual(d.run_job(ECHO)["status"], "succeeded")
        slot = os.path.join(roots[0], d.cgroup_parent.strip("/"), "slot-0")
        self.assertTrue(os.path.isdir(slot), "no slot-0 in %s" % roots[0])
        left = os.path.join(slot, "%s-1" % uuid.uuid4())
        foreign = os.path.join(slot, "not-edgecd")
        os.mkdir(left)
        os.mkdir(foreign)

        def cleanup():
            for p in (left, foreign):
                if os.path.isdir(p):
                    os.rmdir(p)
        self.addCleanup(cleanup)
        deadline = time.monotonic() + 5 * slow_factor()
        while os.path.isdir(left) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertFalse(os.path.isdir(left), "the collector left %s" % left)
        self.assertTrue(os.path.isdir(foreign), "the collector removed what is not edgecd's")
        # Said a moment after the rmdir.
        self.assertTrue(d.wait_log(r"collector: removed 1 cgroup\(s\) no run owned", 5), d.log_text())
        self.assertEqual(d.run_job(ECHO)["status"], "succeeded")
        cleanup()               # before the daemon stops: it checks its parent is gone

    def test_parent_holding_the_daemon_is_refused(self):
        root = harness.cgroup_roots()[0]
        name = "edgecd-it-selfcg-%d" % os.getpid()
        cg = os.path.join(root, name)
        os.makedirs(cg)
        self.addCleanup(lambda: os.path.isdir(cg) and os.rmdir(cg))
        shim = ["/bin/sh", "-c", 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', "sh", cg]
        d = Daemon("selfcg", argv0=shim)
        d.config["cgroup_parent"] = "/" + name
        with open(d.config_path, "w") as f:
            f.write("\n".join(harness.yaml_dump(d.config)) + "\n")
        self.addCleanup(d.stop, check=False)
        with self.assertRaises(AssertionError) as cm:
            d.start(timeout=20)
        self.assertIn("cgroup_parent `/%s` holds the daemon's own cgroup" % name, str(cm.exception))
