"""Progress: an algorithm writes /output/progress.json ({"fraction",
"message"}); while the job runs GET /v1/jobs/{id} shows the latest valid
one, read safely (no links followed, no FIFO blocking the daemon, size
capped, message cut), and the final job keeps the last.

The plugin is made here: a rootfs of Debian's static busybox and a script,
so its steps are plain shell."""

import json
import os
import shutil
import tempfile
import threading
import time
import unittest

import harness
from harness import Daemon, slow_factor

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "sleep", "mv", "rm", "ln", "mkfifo", "head", "cat", "tr")
STEP_S = 1.5
LONG = "x" * 300

# Each step holds for STEP_S seconds.  Steps 2 to 5 are hostile or invalid
# files, each valid progress if the daemon read it carelessly (a link to a
# host file the test wrote, more than 4 KiB): the progress shown must stay
# that of step 1 throughout.
SCRIPT = r"""#!/bin/sh
set -e
o=/output
put() { printf '%%s' "$1" > $o/p.tmp && mv -f $o/p.tmp $o/progress.json; }
put '{"fraction": 0.25, "message": "a quarter", "extra": [1, 2]}'
sleep %(s)s
put '{"fraction": 7}'
sleep %(s)s
rm -f $o/progress.json && ln -s %(host_file)s $o/progress.json
sleep %(s)s
rm -f $o/progress.json && mkfifo $o/progress.json
sleep %(s)s
rm -f $o/progress.json
printf '{"fraction": 0.5, "message": "big", "pad": "' > $o/p.tmp
head -c 6000 /dev/zero | tr '\0' a >> $o/p.tmp
printf '"}' >> $o/p.tmp && mv $o/p.tmp $o/progress.json
sleep %(s)s
put '{"fraction": 0.75, "message": "%(long)s"}'
sleep %(s)s
put '{"fraction": 1, "message": "done"}'
printf '{"ok": true}' > $o/r.tmp && mv $o/r.tmp $o/result.json
"""

MANIFEST = """name: t_progress
version: 1.0.0
description: Writes progress.json in steps, some of them hostile.
command: ["/bin/sh", "/bin/steps.sh"]
env:
  PATH: /bin
input_schema: {type: object}
resources: {cpu_cores: 1, memory_mb: 64, pids: 16, disk_mb: 16}
timeout_seconds: 60
"""


# Progress, then the end at once: GETs across the end see it throughout.
QUICK_SCRIPT = r"""#!/bin/sh
set -e
printf '{"fraction": 0.5, "message": "half"}' > /output/p.tmp && mv /output/p.tmp /output/progress.json
sleep 0.3
printf '{"ok": true}' > /output/result.json
"""

QUICK_MANIFEST = MANIFEST.replace("name: t_progress", "name: t_progress_end")


def make_plugin(root, name="t_progress", script=None, manifest=MANIFEST):
    """root/<name>: plugin.yaml and a busybox rootfs, root-owned as the
    daemon wants (dirs 0755, /tmp 1777)."""
    p = os.path.join(root, name)
    fs = os.path.join(p, "rootfs")
    for d in ("bin", "proc", "dev", "sys", "tmp", "input", "output"):
        os.makedirs(os.path.join(fs, d), mode=0o755)
    os.chmod(os.path.join(fs, "tmp"), 0o1777)
    shutil.copy(BUSYBOX, os.path.join(fs, "bin", "busybox"))
    os.chmod(os.path.join(fs, "bin", "busybox"), 0o755)
    for a in APPLETS:
        os.symlink("busybox", os.path.join(fs, "bin", a))
    with open(os.path.join(fs, "bin", "steps.sh"), "w") as f:
        f.write(script or SCRIPT % {"s": STEP_S, "long": LONG, "host_file": os.path.join(root, "host.json")})
    os.chmod(os.path.join(fs, "bin", "steps.sh"), 0o755)
    with open(os.path.join(p, "plugin.yaml"), "w") as f:
        f.write(manifest)
    # What the link in step 3 points to, on the host.
    with open(os.path.join(root, "host.json"), "w") as f:
        f.write('{"fraction": 0.5, "message": "a host file"}')
    os.chmod(os.path.join(p, "plugin.yaml"), 0o644)
    for d in (root, p, fs):
        os.chmod(d, 0o755)


@unittest.skipUnless(os.path.exists(BUSYBOX), "skipped: %s absent (busybox-static)" % BUSYBOX)
class Progress(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="edgecd-it-progress-")
        make_plugin(cls.tmp)
        make_plugin(cls.tmp, "t_progress_end", QUICK_SCRIPT, QUICK_MANIFEST)
        cls.d = Daemon("Progress", plugins=cls.tmp).start()

    @classmethod
    def tearDownClass(cls):
        try:
            harness.cancel_all(cls.d)
            cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_progress_seen_mid_run_and_kept_when_final(self):
        r = self.d.submit({"algorithm": "t_progress", "parameters": {}})
        self.assertEqual(r.status, 202, r)
        job_id = r.body["id"]
        self.assertIsNone(r.body["progress"])
        self.addCleanup(harness.cancel_quietly, self.d, job_id)

        allowed = {None: "none yet", (0.25, "a quarter"): "step 1",
                   (0.75, "x" * 256): "step 6 (message cut to 256 bytes)", (1.0, "done"): "step 7"}
        seen, slowest = [], 0.0
        deadline = time.monotonic() + 60 * slow_factor()
        while time.monotonic() < deadline:
            g = self.d.req("GET", "/v1/jobs/" + job_id, timeout=10)
            slowest = max(slowest, g.elapsed)
            self.assertIn(g.status, (200, 202), g)
            job = g.body
            p = job["progress"]
            key = None if p is None else (p["fraction"], p["message"])
            if p is not None:
                self.assertEqual(sorted(p), ["fraction", "message"], p)
            self.assertIn(key, allowed, "progress shown that no valid file said: %s" % json.dumps(p))
            # Once shown, never gone again (until the job ends: kept then too).
            self.assertFalse(key is None and any(k is not None for k in seen),
                             "progress went back to null (%s): %s" % (job["status"], seen))
            if not seen or seen[-1] != key:
                seen.append(key)
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(0.1)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"], {"ok": True})
        # The hostile files (out of range, a link to a host file, a FIFO,
        # 6,000 bytes) in between changed nothing, and never held a GET up.
        self.assertIn((0.25, "a quarter"), seen, seen)
        self.assertIn((0.75, "x" * 256), seen, seen)
        order = [k for k in seen if k is not None]
        self.assertEqual(order, [k for k in [(0.25, "a quarter"), (0.75, "x" * 256), (1.0, "done")]
                                 if k in order], "progress went backwards: %s" % seen)
        self.assertLess(slowest, 2.0, "a GET took %.2f s while the algorithm played tricks" % slowest)
        # The final job keeps the last, in the store: after a restart too.
        self.assertEqual(job["progress"], {"fraction": 1.0, "message": "done"})
        self.terminate_and_restart(job_id)

    def terminate_and_restart(self, job_id):
        rc, _ = self.d.terminate()
        self.assertEqual(rc, 0)
        self.d.restart()
        self.assertEqual(self.d.get_job(job_id)["progress"], {"fraction": 1.0, "message": "done"})

    def test_progress_kept_across_the_end(self):
        """Between the job's end and its final commit the store still
        says running: a GET then shows the progress, not null (seen in CI
        once, GETs every 0.1 s).  Two threads GET without pause across
        the end of each job."""
        for _ in range(6):
            r = self.d.submit({"algorithm": "t_progress_end", "parameters": {}})
            self.assertEqual(r.status, 202, r)
            job_id = r.body["id"]
            self.addCleanup(harness.cancel_quietly, self.d, job_id)
            faults, finals = [], []

            def poll():
                shown = False
                deadline = time.monotonic() + 30 * slow_factor()
                while time.monotonic() < deadline:
                    job = self.d.req("GET", "/v1/jobs/" + job_id, timeout=10).body
                    if job["progress"] is not None:
                        shown = True
                    elif shown:
                        faults.append(job["status"])
                    if job["status"] not in ("queued", "running"):
                        finals.append(job)
                        return

            threads = [threading.Thread(target=poll) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(len(finals), 2, "a poller never saw the job end")
            self.assertEqual(faults, [], "progress went back to null after it was shown")
            for job in finals:
                self.assertEqual(job["status"], "succeeded", job)
                self.assertEqual(job["progress"], {"fraction": 0.5, "message": "half"})


if __name__ == "__main__":
    unittest.main()
