"""test_v2vm.py - what only a cgroup v2 host shows, run inside the test VM
(tests/system/vm: make check-v2) by tests/integration/run.py beside the
integration tests it is copied next to, once per runtime (EDGECD_RUNTIME).

  - V2Daemon: a daemon the harness starts (not delegated: its cgroup_parent
    is at the top of the hierarchy, as on v1): memory, pids and cpu enabled
    by the daemon in the parent and in each run's cgroup; the container's
    limits in memory.max, pids.max, cpu.max; accounting in the job object;
    nothing new left in /sys/fs/cgroup once it stops.
  - Delegated: the packaged edgecd.service under the VM's systemd
    (Delegate=yes): the daemon in a leaf of its own, job cgroups inside its
    delegated cgroup, controllers enabled by the daemon, a job's accounting,
    nothing left after `systemctl stop`.
"""

import errno
import json
import os
import re
import shutil
import subprocess
import time
import unittest
import urllib.request

import harness
from harness import Daemon

CG = "/sys/fs/cgroup"
NEEDED = {"memory", "pids", "cpu"}


def v2():
    return os.path.exists(os.path.join(CG, "cgroup.controllers"))


def words(path):
    with open(path) as f:
        return set(f.read().split())


def all_cgroups():
    out = set()
    for dirpath, dirnames, _ in os.walk(CG):
        for d in dirnames:
            out.add(os.path.join(dirpath, d))
    return out


def ours(paths):
    """Cgroups a daemon could have made: not systemd's own slices and units
    (which come and go with the VM's services), except edgecd.service's."""
    out = []
    for p in sorted(paths):
        rel = p[len(CG):]
        if rel.startswith(("/system.slice/", "/user.slice", "/init.scope")) and \
                not rel.startswith("/system.slice/edgecd.service"):
            continue
        out.append(p)
    return out


def container_cgroup(parent, rid, timeout=20):
    """The slot (parent/slot-N, the run's cgroup) that holds run rid's
    container's cgroup, once the runtime made it: (slot, container's)."""
    deadline = time.monotonic() + timeout
    while True:
        for e in os.listdir(parent):
            if harness.SLOT_RE.match(e) and os.path.isdir(os.path.join(parent, e, rid)):
                return os.path.join(parent, e), os.path.join(parent, e, rid)
        if time.monotonic() > deadline:
            raise AssertionError("no slot under %s holds %s: %s" % (parent, rid, os.listdir(parent)))
        time.sleep(0.05)


def slots_hold_nothing(parent):
    """Every cgroup right under parent is a slot with nothing in it."""
    out = []
    for e in os.listdir(parent):
        p = os.path.join(parent, e)
        if os.path.isdir(p) and (not harness.SLOT_RE.match(e) or harness.subdirs(p)):
            out.append(e)
    return out


SMALL = {"algorithm": "matrix_multiplication", "parameters": {"matrix_a": [[1, 2]], "matrix_b": [[3], [4]]}}


def cpu_usec(cgroup):
    with open(os.path.join(cgroup, "cpu.stat")) as f:
        for line in f:
            k, v = line.split()
            if k == "usage_usec":
                return int(v)
    raise AssertionError("no usage_usec in %s/cpu.stat" % cgroup)


def rmdir_soon(path):
    """rmdir of a cgroup whose last process just ended: the kernel may
    take a moment to unlink it (EBUSY)."""
    deadline = time.monotonic() + 5 * harness.slow_factor()
    while True:
        try:
            os.rmdir(path)
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@unittest.skipUnless(v2(), "cgroup v2 only (the test VM)")
class V2Daemon(unittest.TestCase):

    def setUp(self):
        self.before = all_cgroups()
        self.d = Daemon("v2")
        self.addCleanup(self.d.stop)
        self.d.start()

    def test_a_leftover_under_a_slots_name_is_never_used(self):
        """A cgroup found under the next slot's name (made here after the
        start's sweep, with a cgroup in it) is neither used nor touched by
        a take: the run goes on to the next number and the leftover waits
        for the collector (runcgroup.c, fresh_failed)."""
        d = self.d
        parent = CG + d.cgroup_parent
        left = os.path.join(parent, "slot-0")
        kid = os.path.join(left, "x")

        def remove():
            for p in (kid, left):
                if os.path.isdir(p):
                    os.rmdir(p)
        self.addCleanup(remove)      # before the daemon's stop checks for leftovers
        os.mkdir(left)
        os.mkdir(kid)
        ino = os.stat(left).st_ino
        job = d.run_job({"algorithm": "matrix_multiplication",
                         "parameters": {"matrix_a": [[1, 2]], "matrix_b": [[3], [4]]}})
        self.assertEqual(job["result"]["product"], [[11]], job)
        self.assertEqual(os.stat(left).st_ino, ino)
        self.assertTrue(os.path.isdir(kid), "the leftover's content was touched")
        d.wait_cleaned()
        # The run's slot, made again for the next run; the leftover not counted.
        self.assertTrue(os.path.isdir(os.path.join(parent, "slot-1")), os.listdir(parent))
        self.assertEqual(harness.subdirs(os.path.join(parent, "slot-1")), [])
        self.assertEqual(d.metric("edgecd_run_cgroup_slots"), 1)
        self.assertIn("slot-0`: already there", d.log_text())
        # A second job takes the slot made ahead, not the leftover.
        job = d.run_job({"algorithm": "matrix_multiplication",
                         "parameters": {"matrix_a": [[2]], "matrix_b": [[3]]}})
        self.assertEqual(job["result"]["product"], [[6]], job)
        self.assertEqual(os.stat(left).st_ino, ino)

    def slot_made_ahead(self):
        """After one job, the cgroup parent, its slot-0 made ahead for the
        next run, and that slot's inode."""
        d = self.d
        parent = CG + d.cgroup_parent
        slot = os.path.join(parent, "slot-0")
        self.assertEqual(d.run_job(SMALL)["result"]["product"], [[11]])
        d.wait_cleaned()
        return parent, slot, os.stat(slot).st_ino

    def intrude(self, stays):
        """A run cgroup made ahead (after the run before it) that a process
        entered since, through a cgroup below it, is not taken: while the
        process is there (cgroup.events `populated 1`), or after it left
        (memory.peak no longer 0): either would count in the run's figures.
        The run goes on to another number; the slot is left to the
        collector (runcgroup.c, fresh_take)."""
        d = self.d
        parent, slot, ino = self.slot_made_ahead()
        peak = os.path.exists(os.path.join(slot, "memory.peak"))   # Linux 5.19
        self.assertEqual(cpu_usec(slot), 0, "made ahead: nothing ran in it yet")
        kid = os.path.join(slot, "intruder")
        os.mkdir(kid)

        def enter():
            with open(os.path.join(kid, "cgroup.procs"), "w") as f:
                f.write("0")
        p = subprocess.Popen(["sleep", "60"] if stays else ["true"], preexec_fn=enter)

        def end():
            p.kill()
            p.wait()
            for path in (kid, slot):
                try:
                    # The slot is ours to remove only while it is the one entered.
                    if path == kid or os.stat(slot).st_ino == ino:
                        rmdir_soon(path)
                except FileNotFoundError:
                    pass   # the collector removed it
                except OSError as e:
                    if os.path.isdir(path):
                        raise AssertionError("cannot remove %s: %s" % (path, e))
        self.addCleanup(end)      # before the daemon's stop checks for leftovers
        if not stays:
            p.wait()
            rmdir_soon(kid)
            self.assertGreater(cpu_usec(slot), 0)
            if peak:
                with open(os.path.join(slot, "memory.peak")) as f:
                    self.assertGreater(int(f.read()), 0)
        why = "slot-0`: something ran in it, or runs in it, after it was made"
        job = d.run_job(SMALL)
        self.assertEqual(job["result"]["product"], [[11]], job)
        self.assertIn(why, d.log_text())
        try:
            self.assertEqual(os.stat(slot).st_ino, ino, "the take touched it")
        except FileNotFoundError:
            pass   # the collector removed it meanwhile
        # The run's slot was made ahead again and serves the next job.
        d.wait_cleaned()
        job = d.run_job(SMALL)
        self.assertEqual(job["result"]["product"], [[11]], job)
        self.assertEqual(d.log_text().count(why), 1, d.log_text()[-2000:])
        # Each slot made ahead keeps its counter files open, no other:
        # not the one left to the collector's, nor those of runs gone.
        d.wait_cleaned()
        def entered():
            try:
                return os.stat(slot).st_ino == ino
            except FileNotFoundError:
                return False   # the collector removed it
        def held():
            ahead = [e for e in os.listdir(parent) if harness.SLOT_RE.match(e) and
                     not (e == "slot-0" and entered())]
            fds = []
            for fd in os.listdir("/proc/%d/fd" % d.proc.pid):
                try:
                    target = os.readlink("/proc/%d/fd/%s" % (d.proc.pid, fd))
                except FileNotFoundError:
                    continue
                if target.startswith(parent + "/"):
                    fds.append(target)
            return sorted(fds), ahead
        # The collector's sweep opens a slot's directory for a moment:
        # looked at again then.
        for _ in range(10):
            fds, ahead = held()
            if len(fds) == (4 if peak else 3) * len(ahead):
                break
            time.sleep(0.2)
        self.assertEqual(len(fds), (4 if peak else 3) * len(ahead), (fds, ahead))

    def test_a_slot_a_process_entered_after_it_was_made_is_not_used(self):
        self.intrude(stays=True)

    def test_a_slot_a_process_ran_in_after_it_was_made_is_not_used(self):
        self.intrude(stays=False)

    def test_every_slot_made_ahead_a_process_ran_in_is_passed_over(self):
        """Two run cgroups made ahead that processes ran in since: the take
        passes over both (each left to the collector) and makes one for
        the run (it used to give up at the second, and the run started
        over)."""
        d = self.d
        parent = CG + d.cgroup_parent
        # Two jobs at once: two numbers, each made ahead again after its run.
        ids = [d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 1}}).body["id"] for _ in range(2)]
        for jid in ids:
            self.assertEqual(d.wait_final(jid, timeout=60)["status"], "succeeded")
        d.wait_cleaned()
        slots = [os.path.join(parent, "slot-%d" % i) for i in range(2)]
        inos = {}
        for slot in slots:
            self.assertEqual(cpu_usec(slot), 0, "made ahead: nothing ran in it yet")
            inos[slot] = os.stat(slot).st_ino

        def end(slot, kid):
            for path in (kid, slot):
                try:
                    # The slot is ours to remove only while it is the one entered.
                    if path == kid or os.stat(slot).st_ino == inos[slot]:
                        rmdir_soon(path)
                except FileNotFoundError:
                    pass   # removed already, or by the collector
        for slot in slots:
            kid = os.path.join(slot, "intruder")
            self.addCleanup(end, slot, kid)
            os.mkdir(kid)

            def enter(kid=kid):
                with open(os.path.join(kid, "cgroup.procs"), "w") as f:
                    f.write("0")
            subprocess.run(["true"], preexec_fn=enter, check=True)
            rmdir_soon(kid)
            self.assertGreater(cpu_usec(slot), 0)
        job = d.run_job(SMALL)
        self.assertEqual(job["result"]["product"], [[11]], job)
        self.assertEqual(len(job["attempts"]), 1, job["attempts"])
        for slot in slots:
            self.assertIn("%s`: something ran in it, or runs in it, after it was made (trying another)"
                          % os.path.basename(slot), d.log_text())
            try:
                self.assertEqual(os.stat(slot).st_ino, inos[slot], "the take touched it")
            except FileNotFoundError:
                pass   # the collector removed it meanwhile

    def test_a_slot_removed_from_under_the_daemon_is_made_anew(self):
        """A run cgroup made ahead that is gone when taken (removed by
        someone else: its kept files say ENODEV) is made again under its
        number at the take, and the job runs in it."""
        d = self.d
        parent, slot, ino = self.slot_made_ahead()
        os.rmdir(slot)
        job = d.run_job(SMALL)
        self.assertEqual(job["result"]["product"], [[11]], job)
        self.assertIn("slot-0`: read its counters", d.log_text())
        d.wait_cleaned()
        self.assertEqual([e for e in os.listdir(parent) if harness.SLOT_RE.match(e)], ["slot-0"])
        self.assertNotEqual(os.stat(slot).st_ino, ino)
        self.assertEqual(d.metric("edgecd_run_cgroup_slots"), 1)
        # Removed, and another cgroup made under its name by someone else:
        # that one is neither used nor removed; the run takes another number.
        os.rmdir(slot)
        os.mkdir(slot)
        foreign = os.stat(slot).st_ino

        def remove():
            try:
                if os.stat(slot).st_ino == foreign:
                    os.rmdir(slot)
            except FileNotFoundError:
                pass   # the collector removed it
        self.addCleanup(remove)
        job = d.run_job(SMALL)
        self.assertEqual(job["result"]["product"], [[11]], job)
        self.assertIn("slot-0`: already there", d.log_text())
        try:
            self.assertEqual(os.stat(slot).st_ino, foreign, "the take removed what was not its own")
        except FileNotFoundError:
            self.fail("the take removed what was not its own (or the collector did, within the job)")

    def test_controllers_limits_and_accounting(self):
        d = self.d
        parent = CG + d.cgroup_parent
        self.assertTrue(NEEDED <= words(os.path.join(parent, "cgroup.subtree_control")),
                        "the daemon enables memory, pids and cpu in its parent")
        r = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 30}, "timeout_seconds": 60})
        self.assertEqual(r.status, 202, r)
        jid = r.body["id"]
        d.wait_status(jid, "running")
        run, job_cg = container_cgroup(parent, jid + "-1")
        self.assertTrue(NEEDED <= words(os.path.join(run, "cgroup.subtree_control")))
        run_ino = os.stat(run).st_ino
        # The runtime makes the cgroup, then writes the limits, one file
        # after another (runc's cpu.max was seen still "max" after its
        # memory.max was written).
        def read(name):
            with open(os.path.join(job_cg, name)) as f:
                return f.read().strip()
        deadline = time.monotonic() + 20 * harness.slow_factor()
        while any(read(n).startswith("max") for n in ("memory.max", "pids.max", "cpu.max")) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(read("memory.max"), str(256 * 1024 * 1024))    # defaults.memory_mb
        self.assertEqual(read("memory.swap.max"), "0")                   # memory+swap = memory
        with open(os.path.join(job_cg, "pids.max")) as f:
            self.assertEqual(int(f.read()), 64)                   # defaults.pids
        with open(os.path.join(job_cg, "cpu.max")) as f:
            quota, period = f.read().split()
            self.assertEqual(int(quota), int(period))             # defaults.cpu_cores 1.0
        # The daemon itself is not in the tree it sweeps.
        with open("/proc/%d/cgroup" % d.proc.pid) as f:
            self.assertNotIn(d.cgroup_parent, f.read())
        self.assertEqual(d.req("DELETE", "/v1/jobs/" + jid).status, 202)
        job = d.wait_final(jid)
        self.assertEqual(job["status"], "cancelled", job)
        d.wait_cleaned()
        self.assertEqual(harness.cgroup_children(d.cgroup_parent), [])
        # Its slot was made again for the next run (a new cgroup, never one
        # a run used: v2 cannot restart memory.peak), ready with its
        # controllers, and the daemon counts it.
        def made_again():
            try:
                return os.stat(run).st_ino != run_ino
            except FileNotFoundError:
                return False
        deadline = time.monotonic() + 10
        while not made_again() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(made_again(), "%s not made again after the run" % run)
        self.assertTrue(NEEDED <= words(os.path.join(run, "cgroup.subtree_control")))
        self.assertEqual(harness.subdirs(run), [])
        slots = [e for e in os.listdir(parent) if harness.SLOT_RE.match(e)]
        self.assertEqual(d.metric("edgecd_run_cgroup_slots"), len(slots), slots)

        # Accounting: a job that touches 20 MiB has a peak of at least that.
        job = d.run_job({"algorithm": "t_memory", "parameters": {"mb": 20}})
        self.assertEqual(job["status"], "succeeded", job)
        m = job["metrics"]
        self.assertIsInstance(m["peak_memory_bytes"], int, m)
        self.assertGreaterEqual(m["peak_memory_bytes"], 20 * 1024 * 1024, m)
        self.assertLess(m["peak_memory_bytes"], 32 * 1024 * 1024, m)
        self.assertIsInstance(m["cpu_ms"], int, m)
        self.assertGreaterEqual(m["cpu_ms"], 0, m)
        job = d.run_job({"algorithm": "matrix_multiplication",
                         "parameters": {"matrix_a": [[1, 2, 3], [4, 5, 6]],
                                        "matrix_b": [[7, 8], [9, 10], [11, 12]]}})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"]["product"], [[58, 64], [139, 154]])
        self.assertGreater(job["metrics"]["peak_memory_bytes"], 0, job)

        d.stop()
        left = ours(all_cgroups() - self.before)
        self.assertEqual(left, [], "nothing new left in /sys/fs/cgroup")


def systemctl(*args, check=True):
    p = subprocess.run(["systemctl"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("systemctl %s: exit %d: %s" % (" ".join(args), p.returncode, p.stdout))
    return p.stdout.strip()


def journal(unit):
    p = subprocess.run(["journalctl", "-u", unit, "--no-pager", "-n", "60", "-o", "cat"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    return p.stdout


def http(method, path, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:8080" + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read().decode())


@unittest.skipUnless(v2() and (os.path.exists("/etc/systemd/system/edgecd.service")
                              or os.path.exists("/lib/systemd/system/edgecd.service")),
                     "the installed edgecd.service under the test VM's systemd")
class Delegated(unittest.TestCase):
    CONFIG = "/etc/edgecd/edgecd.yaml"

    def setUp(self):
        systemctl("stop", "edgecd.service")
        self.before = all_cgroups()
        # The installed config, with this pass's runtime.
        with open(self.CONFIG) as f:
            self.saved = f.read()
        self.addCleanup(self.restore)
        text = re.sub(r"(?m)^runtime:.*$", "runtime: %s" % harness.OPTIONS["runtime"], self.saved)
        self.assertIn("runtime: %s\n" % harness.OPTIONS["runtime"], text)
        with open(self.CONFIG, "w") as f:
            f.write(text)

    def restore(self):
        systemctl("stop", "edgecd.service", check=False)
        with open(self.CONFIG, "w") as f:
            f.write(self.saved)
        shutil.rmtree("/var/lib/edgecd", ignore_errors=True)

    def test_packaged_unit_with_delegation(self):
        try:
            systemctl("start", "edgecd.service")
            self._check()
        except BaseException:
            print("journal of edgecd.service:\n" + journal("edgecd.service"))
            raise
        systemctl("stop", "edgecd.service")
        self.assertEqual(systemctl("is-active", "edgecd.service", check=False), "inactive")
        left = ours(all_cgroups() - self.before)
        self.assertEqual(left, [], "nothing left in /sys/fs/cgroup after systemctl stop")

    def _check(self):
        self.assertEqual(systemctl("show", "-p", "Delegate", "--value", "edgecd.service"), "yes")
        unit_cg = systemctl("show", "-p", "ControlGroup", "--value", "edgecd.service")
        self.assertTrue(unit_cg.endswith("/edgecd.service"), unit_cg)
        pid = int(systemctl("show", "-p", "MainPID", "--value", "edgecd.service"))
        self.assertGreater(pid, 0)
        # The daemon moved itself into a leaf of its own ("no internal
        # processes": its cgroup has controllers enabled for its children).
        with open("/proc/%d/cgroup" % pid) as f:
            self.assertEqual(f.read().strip(), "0::%s/daemon" % unit_cg)
        unit = CG + unit_cg
        self.assertEqual(open(os.path.join(unit, "cgroup.procs")).read(), "")
        self.assertTrue(NEEDED <= words(os.path.join(unit, "cgroup.subtree_control")))
        parent = os.path.join(unit, "edgecd")
        self.assertTrue(NEEDED <= words(os.path.join(parent, "cgroup.subtree_control")))
        self.assertFalse(os.path.exists(os.path.join(CG, "edgecd")), "nothing at the top of the hierarchy")
        status, ready = http("GET", "/readyz")
        self.assertEqual(ready["runtime"]["name"], os.path.basename(harness.OPTIONS["runtime"]), ready)

        # A job's cgroups are inside the delegated subtree while it runs.
        status, job = http("POST", "/v1/jobs", {"algorithm": "monte_carlo_pi",
                                                "parameters": {"samples": 10000, "seconds": 30}})
        self.assertEqual(status, 202, job)
        jid = job["id"]
        _, run = container_cgroup(parent, jid + "-1", timeout=30)
        deadline = time.monotonic() + 30
        # The runtime makes the cgroup, then moves the container's process in.
        def pids():
            with open(os.path.join(run, "pids.current")) as f:
                return int(f.read())
        while pids() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreaterEqual(pids(), 1, "the job's process in %s" % run)
        status, _ = http("DELETE", "/v1/jobs/" + jid)
        self.assertEqual(status, 202)

        status, job = http("POST", "/v1/jobs?wait=120", {
            "algorithm": "matrix_multiplication",
            "parameters": {"matrix_a": [[1, 2, 3], [4, 5, 6]], "matrix_b": [[7, 8], [9, 10], [11, 12]]}},
            timeout=150)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"]["product"], [[58, 64], [139, 154]])
        self.assertGreater(job["metrics"]["peak_memory_bytes"], 0, job)
        self.assertIsInstance(job["metrics"]["cpu_ms"], int, job)
        # The cancelled job's and this one's cgroups go once they are done
        # (their slots stay, empty, made again for the next runs).
        deadline = time.monotonic() + 30
        while slots_hold_nothing(parent) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(slots_hold_nothing(parent), [])
