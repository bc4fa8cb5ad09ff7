"""Wall-clock steps while the daemon runs (an edge box without an RTC: NTP
steps the clock by hours or years, forward or back, after boot).  The
daemon's wall clock alone is stepped, by an LD_PRELOAD shim
(clockstep_shim.c: CLOCK_REALTIME, time(), gettimeofday() plus the seconds
in a file; CLOCK_MONOTONIC untouched).  A step loses no record, kills no
job early, and makes no timer fire a step late or early."""

import json
import os
import shutil
import tempfile
import time
import unittest

import harness
import test_callbacks
import test_resilience
from harness import Daemon, slow_factor

YEAR = 366 * 86400


class StepCase(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="edgecd-clockstep-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.step_file = os.path.join(self.tmp, "step")

    def shim_env(self):
        env = harness.preload_shim("clockstep_shim", self.tmp)
        env["CLOCKSTEP_FILE"] = self.step_file
        return env

    def step(self, seconds):
        """Step the daemon's wall clock to `seconds` from the real one (the
        shim reads its file again within 20 ms)."""
        with open(self.step_file + ".new", "w") as f:
            f.write("%d\n" % seconds)
        os.rename(self.step_file + ".new", self.step_file)
        time.sleep(0.1)

    def daemon(self, config):
        d = Daemon("clockstep", config=config, env=self.shim_env())
        self.addCleanup(d.stop)
        self.addCleanup(harness.cancel_all, d)
        return d.start()


class Retention(StepCase):

    def test_a_forward_step_prunes_no_fresh_record(self):
        """A job that ended a second ago is a second old after the wall
        clock steps a year ahead: retention (4 s here) keeps it, and its
        Idempotency-Key still answers with it, until it is 4 s old; a job
        that ends after the step goes 4 s later too.  (The cutoff was the
        wall clock less the retention: the step made every record a year
        old, and the next sweep deleted them all with their keys.)"""
        d = self.daemon({"store": {"retention_seconds": 4, "max_records": 1000},
                         "sweep_interval_seconds": 1})
        body = {"algorithm": "t_echo", "version": "1.0.0", "parameters": {"i": 1}}
        r = d.submit(body, headers={"Idempotency-Key": "clockstep-1"})
        self.assertEqual(r.status, 202, r)
        job = d.wait_final(r.body["id"])
        self.assertEqual(job["status"], "succeeded", job)
        self.step(YEAR)
        t0 = time.monotonic()
        time.sleep(1.2)         # a sweep and more
        r = d.req("GET", "/v1/jobs/" + job["id"])
        self.assertEqual(r.status, 200, "a record one second old was pruned after a step ahead: %s" % (r,))
        r = d.submit(body, headers={"Idempotency-Key": "clockstep-1"})
        self.assertIn(r.status, (200, 202), r)
        self.assertEqual(r.body["id"], job["id"], "the Idempotency-Key made a second job after a step ahead")
        after = d.run_job(dict(body, parameters={"i": 2}))
        t1 = time.monotonic()
        self.assertEqual([j["id"] for j in d.list_jobs()], [after["id"], job["id"]])
        # Both still expire, each about 4 s after it ended.
        for j, since in ((job, t0), (after, t1)):
            deadline = since + 8 * slow_factor()
            while d.req("GET", "/v1/jobs/" + j["id"]).status != 404:
                self.assertLess(time.monotonic(), deadline, "a record outlived retention after a step")
                time.sleep(0.2)
            self.assertGreater(time.monotonic() - since, 2, "a record went early")


class Callbacks(test_callbacks.CallbackBase):

    def step_env(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-clockstep-")
        self.addCleanup(shutil.rmtree, tmp, True)
        self.step_file = os.path.join(tmp, "step")
        env = harness.preload_shim("clockstep_shim", tmp)
        env["CLOCKSTEP_FILE"] = self.step_file
        return env

    def step(self, seconds):
        with open(self.step_file + ".new", "w") as f:
            f.write("%d\n" % seconds)
        os.rename(self.step_file + ".new", self.step_file)

    def retry_after_step(self, seconds, then=None, backoff_ms=3000):
        """A callback answered 503 once (its retry due in backoff_ms / 2 to
        backoff_ms), the wall clock stepped `seconds` right after; the
        seconds between its two POSTs."""
        d = self.daemon(env=self.step_env(), backoff_ms=backoff_ms, max_backoff_ms=2 * backoff_ms)
        url = self.rx.url("/hooks/step")
        self.rx.plans["/hooks/step"] = [503]
        r = d.submit(dict(test_callbacks.echo(1), callback_url=url))
        self.assertEqual(r.status, 202, r)
        self.rx.wait_posts("/hooks/step", 1)
        self.step(seconds)
        if then:
            then(d)
        job = self.wait_callback(d, r.body["id"], "delivered", timeout=15)
        self.assertEqual(job["callback"]["attempts"], 2, job)
        t = self.rx.post_times("/hooks/step")
        return t[1] - t[0]

    def test_a_backward_step_holds_up_no_retry(self):
        """A callback retry due in 1.5-3 s is tried again then though the
        wall clock stepped a year back meanwhile.  (Its due time was a
        wall-clock label compared with the wall clock: the retry waited a
        year.)"""
        took = self.retry_after_step(-YEAR)
        self.assertGreater(took, 1.4, "a retry went early after a step back")
        self.assertLess(took, 3.5 * slow_factor(), "a retry went late after a step back")

    def test_a_forward_step_hastens_no_retry(self):
        """A callback retry due in 3-6 s waits that long though the
        wall clock stepped a year ahead meanwhile.  (It went at once: the
        step made its wall-clock time long past.)"""
        # 3-6 s, not 1.5-3 s: the other job (a cold run, then its first
        # attempt) must come before the retry, and on a loaded host it
        # could take longer than 1.5 s and come after it for that alone.
        took = self.retry_after_step(YEAR, then=lambda d: self.other(d), backoff_ms=6000)
        self.assertGreater(took, 2.9, "a retry went early after a step ahead")
        self.assertLess(took, 6.5 * slow_factor(), "a retry went late after a step ahead")
        # A job that ended after the step is recorded as ending a year
        # after that retry's time: its first attempt is not held behind it.
        t = self.rx.post_times("/hooks/other")
        self.assertEqual(len(t), 1, t)
        self.assertLess(t[0], self.rx.post_times("/hooks/step")[1], "a first attempt waited for a retry")

    def other(self, d):
        r = d.submit(dict(test_callbacks.echo(2), callback_url=self.rx.url("/hooks/other")))
        self.assertEqual(r.status, 202, r)


class Jobs(StepCase):

    def wait_final(self, d, job_id, timeout=15.0):
        """The final job (harness.wait_final's check that finished_at is
        not before created_at does not hold across a step back: the wall
        clock labels, and it went back)."""
        deadline = time.monotonic() + timeout * slow_factor()
        while time.monotonic() < deadline:
            job = d.get_job(job_id)
            if job["status"] in harness.FINAL:
                return job
            time.sleep(0.05)
        self.fail("job %s not final: %s" % (job_id, job))

    def check_durations(self, job):
        self.assertIsNotNone(job.get("metrics"), "a final job without metrics: %s" % json.dumps(job)[:1000])
        for k, v in (job.get("metrics") or {}).items():
            if k.endswith("_ms") and v is not None:
                self.assertGreaterEqual(v, 0, "metrics.%s: %s" % (k, job))

    def test_steps_neither_kill_nor_extend_a_run(self):
        """A 2 s run with a 4 s timeout succeeds through steps of a year
        ahead and a year back; a 30 s run with a 2 s timeout times out
        after about 2 s though the clock steps back a year meanwhile."""
        d = self.daemon({"workers": 2})
        r = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 2}, "timeout_seconds": 4})
        self.assertEqual(r.status, 202, r)
        ok = r.body["id"]
        d.wait_status(ok, "running")
        self.step(YEAR)
        time.sleep(0.5)
        self.step(-YEAR)
        job = self.wait_final(d, ok)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertGreaterEqual(job["metrics"]["run_ms"], 1900, job)
        self.check_durations(job)

        self.step(0)
        r = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 30}, "timeout_seconds": 2})
        self.assertEqual(r.status, 202, r)
        d.wait_status(r.body["id"], "running")
        t0 = time.monotonic()
        self.step(-YEAR)
        job = self.wait_final(d, r.body["id"])
        self.assertEqual((job.get("error") or {}).get("code"), "timeout", job)
        self.assertLess(time.monotonic() - t0, 8 * slow_factor())
        self.check_durations(job)

    def test_wait_deadline_ignores_steps(self):
        """POST ?wait=2 answers after about 2 s though the clock steps a
        year back, then ahead, meanwhile."""
        d = self.daemon({"workers": 1})
        self.step(-YEAR)
        t0 = time.monotonic()
        r = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 30}, "timeout_seconds": 60}, wait=2)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 202, r)
        self.assertLess(took, 6 * slow_factor(), r)
        self.assertGreater(took, 1.5, r)

    def test_recovered_jobs_keep_their_metrics_after_a_step_back(self):
        """Jobs recovered by a start whose clock is a year behind their
        records (killed, then started again after a step back) end with
        their metrics, none negative.  (Their time queued was the wall
        clock less the recorded creation: a year below zero, and a
        negative total is stored as none: "metrics": null.)"""
        d = self.daemon({"workers": 1})
        r = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 4}, "timeout_seconds": 30})
        self.assertEqual(r.status, 202, r)
        run = r.body["id"]
        r = d.submit({"algorithm": "t_echo", "version": "1.0.0", "parameters": {"i": 1}})
        self.assertEqual(r.status, 202, r)
        queued = r.body["id"]
        d.wait_status(run, "running")
        d.kill()
        self.step(-YEAR)
        d.restart()
        job = self.wait_final(d, queued, timeout=40)
        self.check_durations(job)
        harness.cancel_all(d)
        job = self.wait_final(d, run)
        self.check_durations(job)


class Plugins(StepCase):

    def test_a_plugin_dropped_in_before_a_step_back_is_taken(self):
        """A plugin copied in just before the wall clock steps an hour back
        is taken as soon as it settles (a second unwritten), not an hour
        later: its files' times are ahead of the clock, not recent."""
        plugins = os.path.join(self.tmp, "plugins")
        os.mkdir(plugins)
        harness.copy_plugin("t_echo", os.path.join(plugins, "t_echo"))
        d = Daemon("clockstep", plugins=plugins, env=self.shim_env())
        self.addCleanup(d.stop)
        self.addCleanup(harness.cancel_all, d)
        d.start()
        harness.copy_plugin("t_echo", os.path.join(plugins, "t_new"), name="t_new")
        self.step(-3600)
        deadline = time.monotonic() + 8 * slow_factor()
        while d.req("GET", "/v1/algorithms/t_new").status != 200:
            self.assertLess(time.monotonic(), deadline, "t_new not taken after a step back")
            time.sleep(0.05)
        job = d.run_job({"algorithm": "t_new", "parameters": {"n": 3}})
        self.assertEqual(job["status"], "succeeded", job)


class Breaker(StepCase):

    def test_cooldown_ends_on_time_through_steps(self):
        """An isolated algorithm (cool-down 2 s) is probing again about
        2 s later though the wall clock steps a year back meanwhile, and
        not before, though it steps a year ahead first."""
        plugins, _ = test_resilience.flaky_plugins(self.tmp)
        d = Daemon("clockstep", plugins=plugins, env=self.shim_env(),
                   config={"retry": {"max_attempts": 1},
                           "breaker": {"degrade_after": 1, "isolate_after": 1, "cooldown_seconds": 2}})
        self.addCleanup(d.stop)
        self.addCleanup(harness.cancel_all, d)
        d.start()
        job = d.run_job({"algorithm": "t_flaky", "parameters": {}})
        self.assertEqual(job["error"]["code"], "runtime_error", job)
        t0 = time.monotonic()

        def health():
            return d.req("GET", "/v1/algorithms/t_flaky").body["health"]["state"]
        self.assertEqual(health(), "isolated")
        self.step(YEAR)
        time.sleep(0.5)
        self.assertEqual(health(), "isolated", "a step ahead ended the cool-down")
        self.step(-YEAR)
        deadline = t0 + 6 * slow_factor()
        while health() == "isolated":
            self.assertLess(time.monotonic(), deadline, "a step back held the cool-down up")
            time.sleep(0.05)
        self.assertGreater(time.monotonic() - t0, 1.8)


if __name__ == "__main__":
    unittest.main()
