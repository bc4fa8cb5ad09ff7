#!/usr/bin/python3
"""edgecd under a real systemd: the system test tier.

    /usr/bin/python3 tests/system/run.py [--filter PATTERN] [--keep]

A Debian 12 tree (tests/system/mkroot.sh: systemd, dbus, runc, crun, curl
and the daemon's libraries; built once, cached under build/system/ by its
package list) is copied for the run, edgecd is installed into the copy (the
Debian package build/edgecd_*.deb when it is newer than build/edgecd, else
`make install PREFIX=/usr/local`), and the copy is booted with systemd as PID 1:

    systemd-nspawn -b --register=no --keep-unit --private-network
                   --system-call-filter='add_key keyctl request_key' -D COPY

Commands run inside through `nsenter -t <its systemd> -a` (no host bus, so
no machinectl).  The tree has a oneshot unit that remounts the cgroup v1
controllers read-write (nspawn mounts them read-only) before edgecd starts.
The tests, in order, on one boot: start reaching active only once it
serves; a job on runc and on crun (the config's `runtime`, checked with GET
/readyz) with JOB_ID, ALGORITHM and RUN_ID in the journal; STATUS= with
running and queued counts; `systemctl reload` rescanning plugins with
RELOADING=1 and READY=1; `systemctl stop` draining a running job; socket
activation through edgecd.socket; WatchdogSec= restarting the service when
a worker is wedged (EDGECD_TEST_WEDGE_WORKER_MS); the unit's hardening
measured by `systemd-analyze security`.  All of it under the shipped unit,
so the hardening is shown not to break either runtime.

Ends with "N passed, N failed".  The container is powered off (killed by
its pid if it does not go), and the copy removed, whatever happens;
--keep leaves the copy for a look.  Needs root, systemd-nspawn
(systemd-container) and debootstrap."""

import argparse
import atexit
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import unittest

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(SRC, "build")
PACKAGES = ["runc", "crun", "curl", "libmicrohttpd12", "libjansson4", "libyaml-0-2", "libseccomp2",
            "libcgroup2", "libsystemd0", "libuuid1", "libnettle8", "libyajl2", "libsqlite3-0", "libcurl4"]
# The exposure `systemd-analyze security` gave the shipped unit (9.6 with
# none of its hardening); a change that loosens it fails here.
MAX_EXPOSURE = 5.0
URL = "http://127.0.0.1:8080"
MATRIX = {"algorithm": "matrix_multiplication",
          "parameters": {"matrix_a": [[1, 2], [3, 4]], "matrix_b": [[5, 6], [7, 8]]}}
OPTIONS = {"keep": False}
MACHINE = None

CGROUP_UNIT = """\
[Unit]
Description=cgroup v1 controllers read-write for edgecd (system tests)
DefaultDependencies=no
After=local-fs.target
Before=edgecd.service edgecd.socket

[Service]
Type=oneshot
RemainAfterExit=yes
# nspawn bind-mounts each controller read-only; runc and crun write there.
ExecStart=/bin/sh -c 'for m in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$m" || exit 1; done'
"""
CGROUP_DROPIN = """\
[Unit]
Requires=edgecd-test-cgroups.service
After=edgecd-test-cgroups.service
"""
WEDGE_DROPIN = """\
[Service]
Environment=EDGECD_TEST_WEDGE_WORKER_MS=600000
WatchdogSec=3s
LimitCORE=0
"""


def log(msg):
    print("system: %s" % msg, flush=True)


class Machine:
    """One booted copy of the cached tree."""

    def __init__(self, tree):
        self.tree = tree
        self.name = "edgecd-sys-%d" % os.getpid()
        self.nspawn = None
        self.leader = None
        self.console = os.path.join(BUILD, "test-logs", "system-console.log")

    # -- the tree

    def prepare(self):
        shutil.rmtree(self.tree, ignore_errors=True)
        subprocess.run(["cp", "-a", "--reflink=auto", CACHED_TREE, self.tree], check=True)
        # A persistent journal, readable from the host (journalctl -D).
        os.makedirs(self.path("/var/log/journal"), exist_ok=True)
        # The package when it is newer than the daemon built (make check
        # builds it in the package tier, before this one).
        debs = sorted(glob.glob(os.path.join(BUILD, "edgecd_*_amd64.deb")), key=os.path.getmtime)
        built = os.path.getmtime(os.path.join(BUILD, "edgecd"))
        self.deb = debs[-1] if debs and os.path.getmtime(debs[-1]) >= built else None
        if self.deb:
            shutil.copy(self.deb, self.path("/root/edgecd.deb"))
        else:
            r = subprocess.run(["make", "-s", "-C", SRC, "install", "DESTDIR=" + self.tree, "PREFIX=/usr/local"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError("make install into the tree failed:\n" + r.stdout + r.stderr)
        # The tier restarts the service more often than systemd's default
        # start limit (5 in 10 s) allows.
        self.write("/etc/systemd/system/edgecd.service.d/20-test-start-limit.conf",
                   "[Unit]\nStartLimitIntervalSec=0\n")
        self.write("/etc/systemd/system/edgecd-test-cgroups.service", CGROUP_UNIT)
        self.write("/etc/systemd/system/edgecd.service.d/10-test-cgroups.conf", CGROUP_DROPIN)
        self.write("/etc/systemd/system/edgecd.socket.d/10-test-cgroups.conf", CGROUP_DROPIN)
        # A plugin that sleeps, for jobs that must be running a while.
        src = os.path.join(BUILD, "test-plugins", "t_sleep")
        self.plugins_dir = "/usr/lib/edgecd/plugins"
        shutil.copytree(src, self.path(self.plugins_dir + "/t_sleep"), symlinks=True)

    def path(self, p):
        return os.path.join(self.tree, p.lstrip("/"))

    def write(self, p, text):
        os.makedirs(os.path.dirname(self.path(p)), exist_ok=True)
        with open(self.path(p), "w") as f:
            f.write(text)

    def config(self, **keys):
        """/etc/edgecd/edgecd.yaml: the embedded defaults but for keys."""
        cfg = {"workers": 1, "watch_plugins": "false", "runtime": "runc"}
        cfg.update(keys)
        self.write("/etc/edgecd/edgecd.yaml", "# written by tests/system/run.py\n" +
                   "".join("%s: %s\n" % kv for kv in cfg.items()))

    # -- boot, commands, poweroff

    def boot(self, timeout=90):
        os.makedirs(os.path.dirname(self.console), exist_ok=True)
        out = open(self.console, "wb")
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-b", "--register=no", "--keep-unit", "--private-network",
             "--system-call-filter=add_key keyctl request_key", "-M", self.name, "-D", self.tree],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.leader is None:
            if self.nspawn.poll() is not None:
                raise RuntimeError("systemd-nspawn exited with %s while booting; see %s"
                                   % (self.nspawn.returncode, self.console))
            self.leader = self._find_leader()
            time.sleep(0.1)
        if self.leader is None:
            raise RuntimeError("no systemd inside the container within %d s; see %s" % (timeout, self.console))
        state = ""
        while time.monotonic() < deadline:
            r = self.sh("systemctl is-system-running", check=False, timeout=10)
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.2)
        if state not in ("running", "degraded"):
            raise RuntimeError("the container's systemd did not finish booting (%s); see %s" % (state, self.console))
        if state == "degraded":
            log("booted degraded: " + self.sh("systemctl --failed --no-legend", check=False).stdout.strip())

    def _find_leader(self):
        """The container's PID 1: the nspawn process's child running systemd."""
        pid = self.nspawn.pid
        try:
            kids = []
            for t in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                    kids += f.read().split()
            for k in kids:
                with open("/proc/%s/comm" % k) as f:
                    if f.read().strip() == "systemd":
                        return int(k)
        except OSError:
            pass
        return None

    def sh(self, cmd, check=True, timeout=120):
        r = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "/bin/sh", "-c", cmd],
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("inside: `%s` exited %d\n%s%s" % (cmd, r.returncode, r.stdout, r.stderr))
        return r

    def curl(self, method, path, body=None, timeout=120):
        """(HTTP status, parsed body) from inside the container."""
        cmd = "curl -s -m %d -o /tmp/body -w '%%{http_code}' -X %s" % (timeout, method)
        if body is not None:
            cmd += " -H 'content-type: application/json' --data-binary %s" % shlex.quote(json.dumps(body))
        cmd += " %s; echo; cat /tmp/body" % shlex.quote(URL + path)
        r = self.sh(cmd, check=False, timeout=timeout + 10)
        status, _, text = r.stdout.partition("\n")
        try:
            return int(status), json.loads(text) if text.strip() else None
        except ValueError:
            return int(status or 0), text

    def show(self, unit, prop):
        return self.sh("systemctl show -p %s --value %s" % (prop, unit)).stdout.strip()

    def journal(self, args):
        return self.sh("journalctl --no-pager " + args, check=False).stdout

    def poweroff(self):
        if self.nspawn is None:
            return
        if self.nspawn.poll() is None:
            # nspawn turns SIGTERM into an orderly poweroff of the container.
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(60)
            except subprocess.TimeoutExpired:
                log("the container did not power off within 60 s: killed")
                self.nspawn.kill()
                self.nspawn.wait(10)
        self.nspawn = None

    def remove(self):
        if OPTIONS["keep"]:
            log("kept " + self.tree)
            return
        shutil.rmtree(self.tree, ignore_errors=True)


def cleanup():
    m = MACHINE
    if m is None:
        return
    m.poweroff()
    m.remove()


def setUpModule():
    global MACHINE
    MACHINE = Machine(os.path.join(BUILD, "system", "run-%d" % os.getpid()))
    t0 = time.monotonic()
    MACHINE.prepare()
    MACHINE.config()
    MACHINE.boot()
    if MACHINE.deb:
        MACHINE.sh("DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold /root/edgecd.deb")
        MACHINE.sh("systemctl stop edgecd.service edgecd.socket", check=False)
        MACHINE.config()
    MACHINE.sh("systemctl daemon-reload")
    # systemd's notifications (RELOADING=1, STOPPING=1...) in its journal.
    MACHINE.sh("systemd-analyze log-level debug")
    log("booted %s in %.1f s (edgecd from %s)" % (MACHINE.name, time.monotonic() - t0,
                                                  os.path.basename(MACHINE.deb) if MACHINE.deb else "make install"))


def tearDownModule():
    # main() powers off after reading the journal of a failed run.
    pass


class SystemdTier(unittest.TestCase):
    """In order, on one boot (the names say the order)."""

    m = property(lambda self: MACHINE)

    def restart(self, **config):
        self.m.config(**config)
        self.m.sh("systemctl restart edgecd")

    def notifications(self, since):
        """What systemd logged receiving from the daemon since a cursor time,
        and the daemon's own lines.  Those are taken by SYSLOG_IDENTIFIER, not
        by unit: with systemd's debug log on (this tier turns it on), the
        forked child logs its namespace set-up under the same pid before it
        execs the daemon, and journald may go on filing that pid's lines
        under the context it cached then (init.scope) for a while."""
        q = shlex.quote(since)
        # Lines sent just before may not be written yet: journald files
        # them asynchronously.
        self.m.sh("journalctl --sync", check=False)
        return (self.m.journal("-u edgecd --since %s" % q) +
                self.m.journal("SYSLOG_IDENTIFIER=edgecd --since %s" % q))

    def now(self):
        return self.m.sh("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()

    def wait(self, what, fn, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = fn()
            if v:
                return v
            time.sleep(0.2)
        self.fail("%s: not within %d s" % (what, timeout))

    def test_01_start_is_active_once_it_serves(self):
        self.m.sh("systemctl stop edgecd")
        self.m.sh("systemctl start edgecd")
        # No retry: `systemctl start` returned, so READY=1 came, so it serves.
        status, body = self.m.curl("GET", "/readyz")
        self.assertEqual(status, 200, body)
        self.assertEqual(self.m.show("edgecd", "ActiveState"), "active")
        self.assertEqual(self.m.show("edgecd", "NotifyAccess"), "main")
        self.assertEqual(self.m.show("edgecd", "WatchdogUSec"), "30s")
        self.assertEqual(self.m.show("edgecd", "StatusText"), "serving: 0 running, 0 queued")
        # Its job_users claimed in /run/lock under ProtectSystem=strict
        # (ReadWritePaths), not a warning that it could not.
        pid = self.m.show("edgecd", "MainPID")
        self.assertIn("/run/lock/edgecd-job-users", self.m.sh("ls -l /proc/%s/fd" % pid).stdout)
        self.assertNotIn("cannot tell whether another edgecd", self.m.journal("-u edgecd -b"))

    def test_02_a_job_on_runc_and_on_crun_with_journal_fields(self):
        for rt in ("runc", "crun"):
            with self.subTest(runtime=rt):
                self.restart(runtime=rt)
                status, ready = self.m.curl("GET", "/readyz")
                self.assertEqual(status, 200, ready)
                self.assertEqual(ready["runtime"]["name"], rt, ready)
                status, job = self.m.curl("POST", "/v1/jobs?wait=true", MATRIX)
                self.assertEqual(status, 200, job)
                self.assertEqual(job["status"], "succeeded", job)
                self.assertEqual(job["runtime"], rt, job)
                self.assertEqual(job["result"]["product"], [[19, 22], [43, 50]], job)
                # The job's lines carry its fields in the journal.
                def done():
                    lines = [json.loads(ln) for ln in self.m.journal(
                        "-o json SYSLOG_IDENTIFIER=edgecd JOB_ID=%s" % job["id"]).splitlines()]
                    return [ln for ln in lines if "succeeded" in ln.get("MESSAGE", "")]
                # journald takes it in its own time.
                done = self.wait("the job's line in the journal", done, 20)
                self.assertEqual(done[0]["ALGORITHM"], "matrix_multiplication", done[0])
                self.assertEqual(done[0]["RUN_ID"], job["attempts"][0]["run_id"], done[0])
                self.assertEqual(done[0]["PRIORITY"], "6", done[0])
                self.assertEqual(done[0]["SYSLOG_IDENTIFIER"], "edgecd", done[0])
                self.assertIn("CODE_FILE", done[0])

    def test_03_status_shows_running_and_queued(self):
        self.restart(runtime="runc", workers=1)
        ids = []
        for _ in range(3):
            status, job = self.m.curl("POST", "/v1/jobs", {"algorithm": "t_sleep", "parameters": {"seconds": 60},
                                                           "timeout_seconds": 120})
            self.assertEqual(status, 202, job)
            ids.append(job["id"])
        self.wait("StatusText 1 running, 2 queued",
                  lambda: self.m.show("edgecd", "StatusText") == "serving: 1 running, 2 queued", 20)
        for i in ids:
            self.m.curl("DELETE", "/v1/jobs/%s" % i)
        self.wait("StatusText back to 0, 0",
                  lambda: self.m.show("edgecd", "StatusText") == "serving: 0 running, 0 queued", 30)

    def test_04_reload_rescans_plugins(self):
        self.restart(runtime="runc")
        names = lambda: [a["name"] for a in self.m.curl("GET", "/v1/algorithms")[1]["algorithms"]]  # noqa: E731
        self.assertNotIn("t_reloaded", names())
        dst = self.m.path(self.m.plugins_dir + "/t_reloaded")
        shutil.copytree(self.m.path(self.m.plugins_dir + "/t_sleep"), dst, symlinks=True)
        manifest = os.path.join(dst, "plugin.yaml")
        with open(manifest) as f:
            text = re.sub(r"(?m)^name: .*$", "name: t_reloaded", f.read())
        with open(manifest, "w") as f:
            f.write(text)
        since = self.now()
        # watch_plugins is off: only the reload can find it.
        self.m.sh("systemctl reload edgecd")
        self.wait("t_reloaded listed after the reload", lambda: "t_reloaded" in names(), 20)
        self.wait("active again", lambda: self.m.show("edgecd", "ActiveState") == "active", 20)
        j = self.notifications(since)
        self.assertRegex(j, r"plugins reloaded \(sighup\): 1 added")
        self.assertRegex(j, r"notification message from PID \d+ \(RELOADING=1, MONOTONIC_USEC=\d+")
        self.assertRegex(j, r"notification message from PID \d+ \(READY=1, STATUS=serving: ")
        shutil.rmtree(dst)

    def test_05_stop_drains_a_running_job(self):
        self.restart(runtime="runc", drain_seconds=30)
        status, job = self.m.curl("POST", "/v1/jobs", {"algorithm": "t_sleep", "parameters": {"seconds": 3},
                                                       "timeout_seconds": 60})
        self.assertEqual(status, 202, job)
        self.wait("the job running", lambda: self.m.curl("GET", "/v1/jobs/" + job["id"])[1]["status"] == "running",
                  20)
        since = self.now()
        self.m.sh("systemctl stop edgecd", timeout=90)
        j = self.notifications(since)
        self.assertIn("draining: 1 running job(s)", j)
        self.assertRegex(j, r"notification message from PID \d+ \(STOPPING=1")
        self.m.sh("systemctl start edgecd")
        status, after = self.m.curl("GET", "/v1/jobs/" + job["id"])
        # It finished during the drain: not interrupted, not run again.
        self.assertEqual(after["status"], "succeeded", after)
        self.assertEqual(after["result"], {"slept": 3}, after)
        self.assertEqual(len(after["attempts"]), 1, after)

    def test_05b_a_drain_longer_than_timeout_stop_sec(self):
        # drain_seconds may be up to a day, TimeoutStopSec= is the unit's:
        # the daemon asks for the time its drain takes (EXTEND_TIMEOUT_USEC).
        # Before, systemd killed it mid-drain and the job's container (in
        # the daemon's cgroups, outside the unit's) went on running.
        self.m.write("/etc/systemd/system/edgecd.service.d/50-short-stop.conf", "[Service]\nTimeoutStopSec=4\n")
        self.addCleanup(self.drop_dropin, "50-short-stop.conf")
        self.m.sh("systemctl daemon-reload")
        self.restart(runtime="runc", drain_seconds=8)
        status, job = self.m.curl("POST", "/v1/jobs", {"algorithm": "t_sleep", "parameters": {"seconds": 60},
                                                       "timeout_seconds": 120})
        self.assertEqual(status, 202, job)
        self.addCleanup(self.m.curl, "DELETE", "/v1/jobs/" + job["id"])
        self.wait("the job running", lambda: self.m.curl("GET", "/v1/jobs/" + job["id"])[1]["status"] == "running",
                  20)
        since = self.now()
        self.m.sh("systemctl stop edgecd", check=False, timeout=90)
        j = self.notifications(since)
        self.assertIn("drain time over: stopping 1 running job(s)", j)
        self.assertNotIn("timed out", j)
        self.assertEqual(self.m.show("edgecd", "Result"), "success", j)
        # Nothing of the job is left on the host.
        self.assertEqual(self.m.sh("runc --root /var/lib/edgecd/runtime/runc list -q").stdout.strip(), "")
        self.assertEqual(self.m.sh("ls -d /sys/fs/cgroup/*/edgecd 2>/dev/null", check=False).stdout.strip(), "")
        self.m.sh("systemctl start edgecd")
        status, after = self.m.curl("GET", "/v1/jobs/" + job["id"])
        # Stopped by the drain's end: interrupted once, queued, run again.
        self.assertIn(after["status"], ("queued", "running"), after)
        self.assertEqual(after["attempts"][0]["error"]["code"], "interrupted", after)

    def drop_dropin(self, name):
        os.unlink(self.m.path("/etc/systemd/system/edgecd.service.d/" + name))
        self.m.sh("systemctl daemon-reload")

    def test_06_socket_activation(self):
        self.m.config(runtime="crun")
        self.m.sh("systemctl stop edgecd")
        self.m.sh("systemctl start edgecd.socket")
        self.assertEqual(self.m.show("edgecd", "ActiveState"), "inactive")
        since = self.now()
        status, job = self.m.curl("POST", "/v1/jobs?wait=true", MATRIX)
        self.assertEqual(status, 200, job)
        self.assertEqual(job["result"]["product"], [[19, 22], [43, 50]], job)
        self.assertEqual(self.m.show("edgecd", "ActiveState"), "active")
        self.assertTrue(re.search(r"edgecd\.service: Passing 1 fds to service", self.notifications(since)),
                        "systemd did not pass the socket")
        self.m.sh("systemctl stop edgecd.socket edgecd")

    def test_07_watchdog_restarts_a_wedged_daemon(self):
        self.m.write("/etc/systemd/system/edgecd.service.d/50-wedge.conf", WEDGE_DROPIN)
        self.addCleanup(self.unwedge)
        self.m.sh("systemctl daemon-reload")
        # No drain: the wedged worker would hold the stop for all of it.
        self.restart(runtime="runc", drain_seconds=0)
        pid = self.m.show("edgecd", "MainPID")
        self.assertEqual(self.m.show("edgecd", "WatchdogUSec"), "3s")
        # Healthy: WATCHDOG=1 keeps it up past several intervals.
        time.sleep(8)
        self.assertEqual(self.m.show("edgecd", "MainPID"), pid)
        self.assertEqual(self.m.show("edgecd", "NRestarts"), "0")
        since = self.now()
        status, job = self.m.curl("POST", "/v1/jobs", {"algorithm": "t_sleep", "parameters": {"seconds": 1}})
        self.assertEqual(status, 202, job)
        self.wait("a restart by the watchdog", lambda: int(self.m.show("edgecd", "NRestarts")) >= 1, 60)
        j = self.notifications(since)
        self.assertRegex(j, r"worker 0 wedged")
        self.assertRegex(j, r"watchdog: worker 0 has had no heartbeat")
        self.assertIn("Watchdog timeout", j)

    def unwedge(self):
        os.unlink(self.m.path("/etc/systemd/system/edgecd.service.d/50-wedge.conf"))
        self.m.sh("systemctl daemon-reload")
        self.m.sh("systemctl restart edgecd", check=False)

    def test_08_hardening_measured(self):
        out = self.m.sh("systemd-analyze security --no-pager edgecd.service").stdout
        m = re.search(r"Overall exposure level for edgecd\.service: (\d+\.\d+)", out)
        self.assertTrue(m, out)
        log("systemd-analyze security: exposure %s" % m.group(1))
        self.assertLessEqual(float(m.group(1)), MAX_EXPOSURE, out)
        for option in ("ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges", "ProtectClock",
                       "ProtectKernelModules", "ProtectKernelTunables", "LockPersonality",
                       "RestrictRealtime", "SystemCallArchitectures"):
            self.assertRegex(out, r"✓ %s=" % option)
        self.assertEqual(sorted(self.m.show("edgecd", "RestrictAddressFamilies").split()),
                         ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"])

    def test_09_package_upgrade_keeps_the_socket_and_remove_stops_it(self):
        # Last: it removes the package.
        if not self.m.deb:
            self.skipTest("edgecd is installed by make install here, not by the package (make deb first)")
        active = lambda u: self.m.sh("systemctl is-active " + u, check=False).stdout.strip()  # noqa: E731
        upgrade = "DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold /root/edgecd.deb"
        self.m.config(runtime="runc")
        # The README's way to socket activation.
        self.m.sh("systemctl disable --now edgecd.service")
        self.m.sh("systemctl enable --now edgecd.socket")
        self.assertEqual(self.m.curl("GET", "/healthz")[0], 200)
        self.assertEqual(active("edgecd.service"), "active")
        # An upgrade with the service started by the socket...
        self.m.sh(upgrade)
        self.assertEqual(active("edgecd.socket"), "active")
        self.assertEqual(self.m.curl("GET", "/healthz")[0], 200)
        # ...and one with only the socket listening.
        self.m.sh("systemctl stop edgecd.service")
        self.m.sh(upgrade)
        self.assertEqual(active("edgecd.socket"), "active")
        self.assertEqual(self.m.curl("GET", "/healthz")[0], 200)
        self.assertEqual(active("edgecd.service"), "active")
        # A remove stops both: no unit left active with its file gone.
        self.m.sh("dpkg -r edgecd")
        self.assertNotEqual(active("edgecd.socket"), "active")
        self.assertNotEqual(active("edgecd.service"), "active")


CACHED_TREE = None


def main():
    global CACHED_TREE
    ap = argparse.ArgumentParser()
    ap.add_argument("--filter", default="")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    OPTIONS["keep"] = args.keep
    problems = []
    if os.geteuid() != 0:
        problems.append("needs root")
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if not shutil.which(tool):
            problems.append("%s is not installed (scripts/install-deps.sh)" % tool)
    if not os.path.exists(os.path.join(BUILD, "edgecd")):
        problems.append("build/edgecd is not built (make)")
    if problems:
        print("system: cannot run: " + "; ".join(problems))
        print("0 passed, 1 failed")
        return 1
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(SRC, "tests", "system", "mkroot.sh"),
                        os.path.join(BUILD, "system", "root")] + PACKAGES, capture_output=True, text=True)
    if r.returncode != 0:
        print("system: cannot build the Debian tree:\n" + r.stderr)
        print("0 passed, 1 failed")
        return 1
    CACHED_TREE = r.stdout.strip().splitlines()[-1]
    log("tree %s ready in %.1f s" % (CACHED_TREE, time.monotonic() - t0))
    atexit.register(cleanup)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *a: sys.exit(130))
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    if args.filter:
        def keep(s):
            out = unittest.TestSuite()
            for t in s:
                if isinstance(t, unittest.TestSuite):
                    out.addTests(keep(t))
                elif args.filter in t.id():
                    out.addTest(t)
            return out
        suite = keep(suite)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - len(result.failures) - len(result.errors) - len(result.skipped)
    if failed and MACHINE and MACHINE.nspawn and MACHINE.leader:
        print("--- the daemon's journal (last 40 lines) ---")
        print(MACHINE.journal("-u edgecd -n 40"))
    cleanup()
    print("(%.0f s)" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
