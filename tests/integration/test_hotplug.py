"""Plugins dropped in, changed and removed while the daemon runs: the
plugins directory is watched (inotify), a plugin is taken once nothing in
its directory has been written for a second, running jobs keep the version
they started with, every change is logged and counted, a broken manifest
shows under `broken` and is taken once repaired, and SIGHUP still rescans
(alone, when watch_plugins is off)."""

import os
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest

import harness
from harness import Daemon, check_error, check_job, slow_factor

PICKUP_S = 8      # a generous bound: a settle second, the debounce, the retry


copy_plugin = harness.copy_plugin
rewrite = harness.rewrite_manifest


class HotPlug(unittest.TestCase):

    def daemon(self, name, config=None):
        self.tmp = tempfile.mkdtemp(prefix="edgecd-it-hotplug-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        for p in ("t_echo", "t_sleep"):
            copy_plugin(p, os.path.join(self.tmp, p))
        d = Daemon(name, plugins=self.tmp, config=config)
        self.addCleanup(d.stop)
        self.addCleanup(harness.cancel_all, d)
        d.start()
        return d

    def test_sighup_says_what_it_does_with_a_changed_config(self):
        """SIGHUP does not apply edgecd.yaml: a file changed since the start
        is said to wait for a restart, a broken one names its file, line and
        key, and the daemon goes on with what it started with."""
        d = self.daemon("cfgreload")
        with open(d.config_path) as f:
            good = f.read()
        with open(d.config_path, "a") as f:
            f.write("no_such_key: 1\n")
        line = good.count("\n") + 1
        d.proc.send_signal(signal.SIGHUP)
        want = "%s:%d:" % (d.config_path, line)
        self.until(lambda: "the running configuration stays" in d.log_text(), "the broken file reported", 10)
        text = d.log_text()
        self.assertIn(want, text)
        self.assertIn("no_such_key", text)
        self.assertEqual(d.req("GET", "/healthz").status, 200)
        with open(d.config_path, "w") as f:
            f.write(good + "# edited\n")
        d.proc.send_signal(signal.SIGHUP)
        self.until(lambda: "restart to take it" in d.log_text(), "the changed file reported", 10)

    def queued_behind(self, name, seconds, echoes, config=None):
        """A daemon of one worker, held by t_sleep for `seconds`, with a
        t_echo job {"n": k} queued behind it for each k of echoes: the
        daemon, the sleeper's id and the queued ids."""
        d = self.daemon(name, config=dict(config or {}, workers=1))
        blocker = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": seconds},
                            "timeout_seconds": max(30, 10 * seconds)})
        self.assertEqual(blocker.status, 202, blocker)
        d.wait_status(blocker.body["id"], "running")
        queued = []
        for n in echoes:
            r = d.submit({"algorithm": "t_echo", "parameters": {"n": n}})
            self.assertEqual(r.status, 202, r)
            queued.append(r.body["id"])
        return d, blocker.body["id"], queued

    def algorithm(self, d, name):
        r = d.req("GET", "/v1/algorithms/" + name)
        return r.body if r.status == 200 else None

    def broken(self, d):
        return d.req("GET", "/v1/algorithms").body["broken"]

    def until(self, fn, what, timeout=PICKUP_S):
        deadline = time.monotonic() + timeout * slow_factor()
        t0 = time.monotonic()
        while True:
            v = fn()
            if v:
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                raise AssertionError("not within %.0f s: %s" % (timeout * slow_factor(), what))
            time.sleep(0.05)

    def test_drop_change_remove_with_jobs_in_flight(self):
        d = self.daemon("hotplug")
        # A job of t_sleep 1.0.0 in flight across its plugin's change.
        running = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 1.5}, "timeout_seconds": 30})
        self.assertEqual(running.status, 202, running)

        copy_plugin("t_echo", os.path.join(self.tmp, "t_new"), name="t_new")
        took = self.until(lambda: self.algorithm(d, "t_new"), "t_new loaded")
        print("  dropped-in plugin served after %.2f s" % took)
        job = d.run_job({"algorithm": "t_new", "parameters": {"n": 3}})
        self.assertEqual((job["status"], job["result"]), ("succeeded", {"n": 3}), job)

        rewrite(os.path.join(self.tmp, "t_sleep", "plugin.yaml"), version="1.0.1")
        self.until(lambda: (self.algorithm(d, "t_sleep") or {}).get("versions") == ["1.0.1"], "t_sleep 1.0.1")
        first = check_job(d.wait_final(running.body["id"], timeout=30), final=True)
        self.assertEqual((first["status"], first["version"]), ("succeeded", "1.0.0"), first)
        after = d.run_job({"algorithm": "t_sleep", "parameters": {"seconds": 0}})
        self.assertEqual((after["status"], after["version"]), ("succeeded", "1.0.1"), after)

        # The same version rewritten: changed in place.
        rewrite(os.path.join(self.tmp, "t_echo", "plugin.yaml"), extra="timeout_seconds: 7\n")
        self.until(lambda: (self.algorithm(d, "t_echo") or {}).get("timeout_seconds") == 7, "t_echo changed")

        shutil.rmtree(os.path.join(self.tmp, "t_new"))
        self.until(lambda: self.algorithm(d, "t_new") is None, "t_new gone")
        r = d.submit({"algorithm": "t_new"})
        self.assertEqual(r.status, 404, r)

        for change in ("added", "changed", "removed"):
            self.assertGreaterEqual(d.metric("edgecd_plugin_changes_total", {"change": change}), 1, change)
        self.assertGreaterEqual(d.metric("edgecd_plugin_rescans_total", {"trigger": "watch"}), 3)
        log = d.log_text()
        self.assertIn("plugin added: t_new 1.0.0", log)
        self.assertIn("plugin removed: t_new 1.0.0", log)
        self.assertIn("plugin added: t_sleep 1.0.1", log)     # another version: added
        self.assertIn("plugin removed: t_sleep 1.0.0", log)
        self.assertIn("plugin changed: t_echo 1.0.0", log)
        d.assert_idle_clean()

    def test_plugin_removed_with_jobs_queued(self):
        """Jobs queued for a plugin removed before they run fail (the first
        after waiting PLUGIN_BACK_WAIT_MS for it to come back), saying so,
        and count nothing against the algorithm's breaker: each used to
        run retry.max_attempts times into the runtime's "invalid
        rootfs", and two such jobs isolated the name, so the plugin put
        back got 503 algorithm_unavailable."""
        d, _, queued = self.queued_behind("removedq", 3, range(2))
        saved = self.tmp + ".t_echo"
        self.addCleanup(shutil.rmtree, saved, True)
        os.rename(os.path.join(self.tmp, "t_echo"), saved)
        self.until(lambda: self.algorithm(d, "t_echo") is None, "t_echo gone")
        for jid in queued:
            job = check_job(d.wait_final(jid, timeout=60), final=True)
            self.assertEqual((job["status"], job["error"]["code"]), ("failed", "runtime_error"), job)
            self.assertIn("t_echo 1.0.0 is no longer installed", job["error"]["message"])
            self.assertEqual(job.get("attempts") or [], [], job)
        self.assertEqual(d.metric("edgecd_job_retries_total"), 0)
        # Put back: served at once, not isolated by the runs that never were.
        os.rename(saved, os.path.join(self.tmp, "t_echo"))
        self.until(lambda: self.algorithm(d, "t_echo"), "t_echo back")
        job = d.run_job({"algorithm": "t_echo", "parameters": {"n": 5}})
        self.assertEqual((job["status"], job["result"]), ("succeeded", {"n": 5}), job)
        d.assert_idle_clean()

    def test_jobs_that_never_ran_leave_retry_after_alone(self):
        """A full queue's Retry-After learns how long jobs hold their worker
        from those that began a run: ten that failed without one (their
        plugin removed while they were queued) leave it where the 3 s jobs
        put it.  Counted, they took it to 1 or 2 seconds."""
        d = self.daemon("retryafterq", config={"workers": 1, "queue_capacity": 10})

        def refused():
            r = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 0}})
            check_error(r, 429, "queue_full")
            self.assertRegex(r.headers.get("Retry-After") or "", r"^\d+$", r.headers)
            return int(r.headers["Retry-After"])

        job = d.run_job({"algorithm": "t_sleep", "parameters": {"seconds": 3.2}, "timeout_seconds": 30})
        self.assertEqual(job["status"], "succeeded", job)
        # A 6 s blocker: t_echo must be gone before it frees the worker.
        blocker = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 6}, "timeout_seconds": 60})
        self.assertEqual(blocker.status, 202, blocker)
        d.wait_status(blocker.body["id"], "running")
        queued = []
        for n in range(10):
            r = d.submit({"algorithm": "t_echo", "parameters": {"n": n}})
            self.assertEqual(r.status, 202, r)
            queued.append(r.body["id"])
        before = refused()
        self.assertGreaterEqual(before, 3, "after a 3.2 s job")
        saved = self.tmp + ".t_echo"
        self.addCleanup(shutil.rmtree, saved, True)
        os.rename(os.path.join(self.tmp, "t_echo"), saved)
        self.until(lambda: self.algorithm(d, "t_echo") is None, "t_echo gone")
        self.assertEqual(d.wait_final(blocker.body["id"], timeout=60)["status"], "succeeded")
        for jid in queued:
            job = check_job(d.wait_final(jid, timeout=60), final=True)
            self.assertEqual((job["status"], job.get("attempts") or []), ("failed", []), job)
        # The worker and the queue full again, of jobs that would run.
        long = {"algorithm": "t_sleep", "parameters": {"seconds": 60}, "timeout_seconds": 120}
        first = d.submit(long)
        self.assertEqual(first.status, 202, first)
        d.wait_status(first.body["id"], "running")
        for _ in range(10):
            self.assertEqual(d.submit(long).status, 202)
        after = refused()
        self.assertGreaterEqual(after, 3, "ten jobs that never ran brought it from %d to %d" % (before, after))
        self.assertLessEqual(after, before + 1)

    def test_plugin_reinstalled_with_a_job_queued(self):
        """A plugin reinstalled as a shell does it (rm -rf, then cp -r) is
        missing for a moment: the job a worker takes then waits for the
        same version to be served again, and runs (it failed "no longer
        installed")."""
        # A 3 s blocker: the plugin must be gone (copied away, removed)
        # before it frees the worker; 1 s from its container's start was
        # little margin for that on a loaded host.
        d, blocker, (q,) = self.queued_behind("reinstalledq", 3, [3])
        where = os.path.join(self.tmp, "t_echo")
        saved = self.tmp + ".t_echo"
        self.addCleanup(shutil.rmtree, saved, True)
        shutil.copytree(where, saved, symlinks=True)
        shutil.rmtree(where)
        self.assertEqual(d.wait_final(blocker, timeout=30)["status"], "succeeded")
        self.assertTrue(d.wait_log(r"t_echo 1\.0\.0 is missing \(its rootfs `%s/rootfs` is gone\): waiting"
                                   % re.escape(where)), "the worker did not find t_echo missing")
        shutil.copytree(saved, where, symlinks=True)
        job = check_job(d.wait_final(q, timeout=60), final=True)
        self.assertEqual((job["status"], job["result"]), ("succeeded", {"n": 3}), job)
        self.assertEqual(len(job["attempts"]), 1, job)
        self.assertEqual(d.metric("edgecd_job_retries_total"), 0)
        d.assert_idle_clean()

    def test_a_second_removal_is_waited_for_too(self):
        """A plugin missing past PLUGIN_BACK_WAIT_MS, then back (a job runs
        from it), then missing again for a moment: the job that finds it
        missing the second time waits for it as the first did (it failed at
        once: the first removal's time was kept)."""
        d = self.daemon("secondremoval", config={"workers": 1, "watch_plugins": False})
        rootfs = os.path.join(self.tmp, "t_echo", "rootfs")
        saved = self.tmp + ".rootfs"
        self.addCleanup(shutil.rmtree, saved, True)
        spec = {"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": 1}}
        os.rename(rootfs, saved)
        job = d.wait_final(d.submit(spec).body["id"], timeout=30)
        self.assertEqual(job["status"], "failed", job)
        os.rename(saved, rootfs)
        time.sleep(6)
        os.rename(rootfs, saved)
        put_back = threading.Timer(1.5, os.rename, (saved, rootfs))
        put_back.start()
        self.addCleanup(put_back.join)
        job = d.wait_final(d.submit(spec).body["id"], timeout=30)
        self.assertEqual((job["status"], job["result"]), ("succeeded", {"n": 1}), job)
        d.assert_idle_clean()

    def test_rootfs_replaced_by_a_link_out_of_the_plugin_is_not_run(self):
        """A rootfs checked inside its plugin at load, then renamed away and
        a link put in its place to a directory elsewhere (watch_plugins off:
        no reload to see it): the job fails naming it, and no container
        runs from the link's target (a runtime that follows the link ran it
        with the files out there; runc refused it, in its own words)."""
        d = self.daemon("rootfslink", config={"workers": 1, "watch_plugins": False})
        rootfs = os.path.join(self.tmp, "t_echo", "rootfs")
        spec = {"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": 1}}
        self.assertEqual(d.run_job(spec)["result"], {"n": 1})
        outside = tempfile.mkdtemp(prefix="edgecd-it-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        elsewhere = os.path.join(outside, "rootfs")
        os.rename(rootfs, elsewhere)

        def put_back():
            if os.path.islink(rootfs):
                os.unlink(rootfs)
            if not os.path.exists(rootfs):
                os.rename(elsewhere, rootfs)
        self.addCleanup(put_back)
        os.symlink(elsewhere, rootfs)
        job = check_job(d.wait_final(d.submit(spec).body["id"], timeout=30), final=True)
        self.assertEqual((job["status"], job["error"]["code"]), ("failed", "runtime_error"), job)
        self.assertIn("its rootfs `%s` was replaced by a link" % rootfs, job["error"]["message"])
        self.assertFalse(job.get("attempts"), job)
        put_back()
        self.assertEqual(d.run_job(spec)["result"], {"n": 1})
        d.assert_idle_clean()

    def test_a_plugin_moved_out_is_no_longer_watched(self):
        """A plugin directory moved out of plugins_dir, or renamed to a
        dot-name, or a link to one elsewhere removed: the plugin is dropped,
        and what is written in that directory afterwards wakes no rescan
        (its watch stayed, and every write there woke a rescan)."""
        d = self.daemon("movedout")
        outside = tempfile.mkdtemp(prefix="edgecd-it-movedout-")
        self.addCleanup(shutil.rmtree, outside, True)
        linked = os.path.join(outside, "t_linked")
        copy_plugin("t_echo", linked, name="t_linked")
        os.symlink(linked, os.path.join(self.tmp, "t_linked"))
        self.until(lambda: self.algorithm(d, "t_linked") is not None, "t_linked loaded")

        def move(name, where):
            return lambda: os.rename(os.path.join(self.tmp, name), where)
        for name, gone, where in (
                ("t_echo", move("t_echo", os.path.join(outside, "t_echo")), os.path.join(outside, "t_echo")),
                ("t_sleep", move("t_sleep", os.path.join(self.tmp, ".t_sleep.old")),
                 os.path.join(self.tmp, ".t_sleep.old")),
                ("t_linked", lambda: os.unlink(os.path.join(self.tmp, "t_linked")), linked)):
            gone()
            self.until(lambda: self.algorithm(d, name) is None, "%s dropped" % name)
            time.sleep(0.6)   # past the watch's quiet time: its rescan is done
            before = d.metric("edgecd_plugin_rescans_total", {"trigger": "watch"})
            for i in range(5):
                with open(os.path.join(where, "note-%d" % i), "w") as f:
                    f.write("x")
                time.sleep(0.1)
            time.sleep(0.6 * slow_factor())
            self.assertEqual(d.metric("edgecd_plugin_rescans_total", {"trigger": "watch"}), before,
                             "writes in %s, no longer a plugin, woke rescans" % where)

    def test_plugin_replaced_with_jobs_queued(self):
        """A job queued for t_echo 1.0.0 whose directory is then replaced
        by a copy of 2.0.0 (renamed over it) is not run: it ran 1.0.0's
        manifest on 2.0.0's files under 1.0.0's name (here 2.0.0 moved
        its binary, so three runs failed into runc's "exec: /bin/testkit:
        no such file", each counted by the breaker)."""
        d, _, (q,) = self.queued_behind("replacedq", 3, [1])
        new = os.path.join(self.tmp, ".new")
        yaml = copy_plugin("t_echo", new, version="2.0.0")
        os.rename(os.path.join(new, "rootfs", "bin", "testkit"), os.path.join(new, "rootfs", "bin", "testkit2"))
        with open(yaml) as f:
            text = f.read().replace("/bin/testkit", "/bin/testkit2")
        with open(yaml, "w") as f:
            f.write(text)
        old = self.tmp + ".old"
        self.addCleanup(shutil.rmtree, old, True)
        os.rename(os.path.join(self.tmp, "t_echo"), old)
        os.rename(new, os.path.join(self.tmp, "t_echo"))
        self.until(lambda: (self.algorithm(d, "t_echo") or {}).get("versions") == ["2.0.0"], "t_echo 2.0.0")
        job = check_job(d.wait_final(q, timeout=60), final=True)
        self.assertEqual((job["status"], job["version"], job["error"]["code"]),
                         ("failed", "1.0.0", "runtime_error"), job)
        self.assertIn("t_echo 1.0.0 is no longer installed: `%s` now holds t_echo 2.0.0"
                      % os.path.join(self.tmp, "t_echo", "plugin.yaml"), job["error"]["message"])
        self.assertEqual(job.get("attempts") or [], [], job)
        job = d.run_job({"algorithm": "t_echo", "parameters": {"n": 2}})
        self.assertEqual((job["status"], job["version"], job["result"]), ("succeeded", "2.0.0", {"n": 2}), job)
        d.assert_idle_clean()

    def test_manifest_broken_while_stopped(self):
        """A plugin whose manifest was broken (not removed) while the
        daemon was stopped: its queued jobs fail at the next start with
        `interrupted`, saying the manifest is broken and naming its file,
        line and key (they said "no longer installed", as if it were
        gone); the plugin is listed under `broken`, the other plugins'
        jobs run."""
        d, blocker, (echo,) = self.queued_behind("brokenstop", 6, [1], {"drain_seconds": 1})
        rc, _ = d.terminate()
        self.assertEqual(rc, 0)
        yaml = os.path.join(self.tmp, "t_echo", "plugin.yaml")
        with open(yaml) as f:
            lines = f.read().count("\n")
        with open(yaml, "a") as f:
            f.write("memroy_mb: 64\n")
        d.restart()
        where = "%s:%d:1: memroy_mb: unknown key" % (yaml, lines + 1)
        self.assertTrue([x for x in self.broken(d) if where in x["error"]], self.broken(d))
        job = check_job(d.wait_final(echo, timeout=30), final=True)
        self.assertEqual((job["status"], job["error"]["code"]), ("failed", "interrupted"), job)
        self.assertIn("t_echo 1.0.0 is not loaded: its manifest is broken: ", job["error"]["message"])
        self.assertIn(where, job["error"]["message"])
        self.assertIn(where, d.log_text().split("--- harness: restart 1")[1])
        # The job that was running runs again, its plugin loaded.
        first = check_job(d.wait_final(blocker, timeout=60), final=True)
        self.assertEqual(first["status"], "succeeded", first)

    def test_slow_copy_is_taken_only_when_complete(self):
        d = self.daemon("slowcopy")
        src = os.path.join(harness.OPTIONS["plugins"], "t_echo")
        dst = os.path.join(self.tmp, "t_slow")
        # The manifest first, then the rootfs a piece at a time, the command
        # last and in chunks: never quiet for a second until it is whole.
        os.mkdir(dst)
        shutil.copy(os.path.join(src, "plugin.yaml"), os.path.join(dst, "plugin.yaml"))
        rewrite(os.path.join(dst, "plugin.yaml"), name="t_slow")
        seen = []

        def look():
            a = self.algorithm(d, "t_slow")
            b = [x for x in self.broken(d) if "t_slow" in x["path"]]
            if a or b:
                seen.append((a, b))

        for sub in sorted(os.listdir(os.path.join(src, "rootfs"))):
            os.makedirs(os.path.join(dst, "rootfs", sub))
            time.sleep(0.3)
            look()
        with open(os.path.join(src, "rootfs", "bin", "testkit"), "rb") as f:
            data = f.read()
        exe = os.path.join(dst, "rootfs", "bin", "testkit")
        with open(exe, "wb") as f:
            step = len(data) // 4 + 1
            for i in range(0, len(data), step):
                f.write(data[i:i + step])
                f.flush()
                time.sleep(0.4)
                look()
        os.chmod(exe, 0o755)
        look()
        self.assertEqual(seen, [], "t_slow was taken (or reported broken) half copied")
        took = self.until(lambda: self.algorithm(d, "t_slow"), "t_slow loaded once whole")
        print("  slowly copied plugin served %.2f s after the copy ended" % took)
        self.assertEqual([x for x in self.broken(d) if "t_slow" in x["path"]], [])
        job = d.run_job({"algorithm": "t_slow", "parameters": {"n": 1}})
        self.assertEqual((job["status"], job["result"]), ("succeeded", {"n": 1}), job)

    def test_broken_manifest_and_its_repair(self):
        d = self.daemon("repair")
        dst = os.path.join(self.tmp, "t_bad")
        copy_plugin("t_echo", dst, name="t_bad")
        yaml = os.path.join(dst, "plugin.yaml")
        with open(yaml) as f:
            good = f.read()
        lines = good.count("\n")
        with open(yaml, "a") as f:
            f.write("memroy_mb: 64\n")
        self.until(lambda: [x for x in self.broken(d) if x["path"] == yaml], "t_bad under broken")
        (b,) = [x for x in self.broken(d) if x["path"] == yaml]
        self.assertIn("%s:%d:1: memroy_mb: unknown key" % (yaml, lines + 1), b["error"])
        self.assertEqual(d.req("GET", "/readyz").body["status"], "degraded")
        self.assertIsNone(self.algorithm(d, "t_bad"))
        self.assertEqual(d.metric("edgecd_plugin_changes_total", {"change": "broken"}), 1)
        # Reported once, not at every look while it stays broken.
        time.sleep(3)
        self.assertEqual(d.log_text().count("memroy_mb: unknown key"), 1, d.log_tail(20))

        with open(yaml, "w") as f:
            f.write(good)
        self.until(lambda: self.algorithm(d, "t_bad"), "t_bad loaded once repaired")
        self.assertEqual(self.broken(d), [])
        self.assertEqual(d.req("GET", "/readyz").body["status"], "healthy")
        job = d.run_job({"algorithm": "t_bad", "parameters": {"n": 2}})
        self.assertEqual(job["status"], "succeeded", job)

    def test_plugins_dir_replaced(self):
        # The whole directory moved away and a new one put in its place: the
        # watch follows the name, not the old directory.
        d = self.daemon("replaced")
        old = self.tmp + ".old"
        os.rename(self.tmp, old)
        self.addCleanup(shutil.rmtree, old, True)
        os.mkdir(self.tmp)
        copy_plugin("t_echo", os.path.join(self.tmp, "t_echo"))
        self.until(lambda: self.algorithm(d, "t_sleep") is None and self.algorithm(d, "t_echo"),
                   "the new directory's plugins")
        copy_plugin("t_echo", os.path.join(self.tmp, "t_new"), name="t_new")
        self.until(lambda: self.algorithm(d, "t_new"), "a plugin dropped into the new directory")
        # The old directory is no longer watched: what happens there is not served.
        copy_plugin("t_echo", os.path.join(old, "t_ghost"), name="t_ghost")
        time.sleep(2.5)
        self.assertIsNone(self.algorithm(d, "t_ghost"))
        job = d.run_job({"algorithm": "t_new", "parameters": {"n": 4}})
        self.assertEqual((job["status"], job["result"]), ("succeeded", {"n": 4}), job)

    def test_sighup_alone_when_the_watch_is_off(self):
        d = self.daemon("nowatch", config={"watch_plugins": False})
        copy_plugin("t_echo", os.path.join(self.tmp, "t_new"), name="t_new")
        time.sleep(2.5)
        self.assertIsNone(self.algorithm(d, "t_new"), "picked up with watch_plugins: false")
        d.proc.send_signal(signal.SIGHUP)
        self.until(lambda: self.algorithm(d, "t_new"), "t_new after SIGHUP", timeout=10)
        self.assertEqual(d.metric("edgecd_plugin_rescans_total", {"trigger": "watch"}), 0)
        self.assertEqual(d.metric("edgecd_plugin_rescans_total", {"trigger": "sighup"}), 1)
        self.assertIn("plugin added: t_new 1.0.0", d.log_text())
