"""The daemon's command line: --version, --help, --check-config, overrides,
and starting with a plugins dir that is missing or holds only broken
manifests."""

import errno
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Daemon, quick


def run_cli(*args, timeout=20, daemon=None):
    return subprocess.run([daemon or harness.OPTIONS["daemon"]] + list(args), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="edgecd-it-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def write(self, name, text):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def assertNoSanitizer(self, r):
        for m in harness.SANITIZER_MARKERS:
            self.assertNotIn(m, r.stderr + r.stdout)

    @quick
    def test_version(self):
        r = run_cli("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.strip(), r"^edgecd \d+\.\d+\.\d+$")
        self.assertNoSanitizer(r)

    def test_help(self):
        r = run_cli("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout + r.stderr
        for opt in ("--config", "--listen", "--plugins-dir", "--templates-dir", "--state-dir",
                    "--log-level", "--check-config", "--version"):
            self.assertIn(opt, text, "--help does not mention %s" % opt)

    def test_unknown_option(self):
        r = run_cli("--no-such-option")
        self.assertNotEqual(r.returncode, 0)
        self.assertNoSanitizer(r)

    @quick
    def test_check_config_default_file(self):
        path = os.path.join(harness.REPO, "config", "edgecd.yaml")
        self.assertTrue(os.path.isfile(path), "config/edgecd.yaml is missing")
        # The file names the installed paths (/usr/share/edgecd/...); a
        # checkout has the templates in oci-templates/, as `make run` says.
        r = run_cli("--config", path, "--templates-dir", harness.OPTIONS["templates"],
                    "--check-config")
        self.assertEqual(r.returncode, 0, "stdout=%r stderr=%r" % (r.stdout, r.stderr))
        self.assertIn("configuration OK", r.stdout + r.stderr)
        self.assertNoSanitizer(r)

    @quick
    def test_check_config_errors(self):
        # Line numbers are part of the contract: count them here.
        text = ("listen: \"127.0.0.1:8080\"\n"    # 1 fine
                "bogus_key: 1\n"                  # 2 unknown key
                "workers: abc\n"                  # 3 wrong type
                "queue_capacity: [1, 2]\n"        # 4 list for a scalar
                "keep_bundles: maybe\n"           # 5 not a bool
                "defaults:\n"                     # 6
                "  memory_mb: lots\n"             # 7 nested wrong type
                "  colour: blue\n")               # 8 nested unknown key
        path = self.write("bad.yaml", text)
        r = run_cli("--config", path, "--check-config")
        self.assertEqual(r.returncode, 2, "stdout=%r stderr=%r" % (r.stdout, r.stderr))
        self.assertNotIn("configuration OK", r.stdout)
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith(path + ":")]
        expect = [(2, "bogus_key"), (3, "workers"), (4, "queue_capacity"), (5, "keep_bundles"),
                  (7, "defaults.memory_mb"), (8, "defaults.colour")]
        for line, key in expect:
            pat = re.compile(r"^%s:%d:\d+: %s: \S" % (re.escape(path), line, re.escape(key)))
            self.assertTrue(any(pat.match(ln) for ln in lines),
                            "no line %s:%d:COL: %s: ... in stderr:\n%s" % (path, line, key, r.stderr))
        for ln in lines:
            self.assertRegex(ln, r"^%s:\d+:\d+: [a-z_.]+: " % re.escape(path))
        self.assertNoSanitizer(r)

    def test_check_config_unknown_key_column(self):
        path = self.write("col.yaml", "workers: 2\n   \nlog_leve: debug\n")
        r = run_cli("--config", path, "--check-config")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, r"(?m)^%s:3:1: log_leve: " % re.escape(path))

    @quick
    def test_check_config_yaml_syntax(self):
        path = self.write("syntax.yaml", "workers: 2\nlisten: [unclosed\nlog_level: info\n")
        r = run_cli("--config", path, "--check-config")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, r"(?m)^%s:\d+:\d+: " % re.escape(path))
        self.assertNoSanitizer(r)

    def test_check_config_out_of_range(self):
        path = self.write("range.yaml", "workers: 0\nuid: -1\n")
        r = run_cli("--config", path, "--check-config")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertRegex(r.stderr, r"(?m)^%s:1:\d+: workers: " % re.escape(path))
        self.assertRegex(r.stderr, r"(?m)^%s:2:\d+: uid: " % re.escape(path))

    def test_check_config_missing_file(self):
        path = os.path.join(self.tmp, "absent.yaml")
        r = run_cli("--config", path, "--check-config")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(path, r.stderr)


class Startup(unittest.TestCase):
    """Daemons that must start even though there is nothing to run."""

    def start(self, name, **kw):
        d = Daemon(name, **kw)
        self.addCleanup(d.stop)
        return d.start()

    @quick
    def test_missing_plugins_dir_and_cli_overrides(self):
        # The config names a good plugins dir and a port nobody listens on;
        # --plugins-dir and --listen on the command line win.
        missing = "/nonexistent/edgecd-it-plugins-%d" % os.getpid()
        d = Daemon("noplugins", config={"listen": "127.0.0.1:1"})
        d.args = ["--plugins-dir", missing, "--listen", "127.0.0.1:%d" % d.port,
                  "--log-level", "debug"]
        self.addCleanup(d.stop)
        d.start()
        r = d.req("GET", "/healthz")
        self.assertEqual((r.status, r.body), (200, {"status": "ok"}))
        r = d.req("GET", "/readyz")
        self.assertIn(r.status, (200, 503), r)
        self.assertIn(r.body.get("status"), ("degraded", "unhealthy"), r)
        self.assertEqual(r.status, 503 if r.body["status"] == "unhealthy" else 200, r)
        self.assertEqual(r.body["plugins"]["loaded"], 0, r)
        self.assertTrue(r.body["reasons"], "readyz must explain: %s" % (r,))
        self.assertIn(missing, " ".join(r.body["reasons"]), r)
        r = d.req("GET", "/v1/algorithms")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["algorithms"], [])
        r = d.submit({"algorithm": "t_echo"})
        harness.check_error(r, 404, "unknown_algorithm")

    @quick
    def test_only_broken_manifests(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-broken-")
        self.addCleanup(shutil.rmtree, tmp, True)
        for name in ("t_broken_yaml", "t_broken_key"):
            src = os.path.join(harness.OPTIONS["plugins"], name)
            self.assertTrue(os.path.isdir(src), "%s missing from the test plugins" % src)
            shutil.copytree(src, os.path.join(tmp, name), symlinks=True)
        d = self.start("brokenonly", plugins=tmp)
        self.assertTrue(d.healthz_ok())
        r = d.req("GET", "/readyz")
        self.assertIn(r.body.get("status"), ("degraded", "unhealthy"), r)
        self.assertEqual(r.status, 503 if r.body["status"] == "unhealthy" else 200, r)
        self.assertEqual(r.body["plugins"], {"loaded": 0, "broken": 2}, r)
        why = " ".join(r.body["reasons"])
        self.assertIn("t_broken_yaml", why, r)
        self.assertIn("t_broken_key", why, r)
        r = d.req("GET", "/v1/algorithms")
        self.assertEqual(len(r.body["broken"]), 2, r)


@quick
class NoRuntime(unittest.TestCase):
    """No OCI runtime at all (all three hidden in a private mount namespace):
    the daemon refuses to start, says why for each, and exits non-zero."""

    def test_no_runtime_is_a_clear_startup_error(self):
        # The harness's config: a cgroup parent and job ids of the test's
        # own (the default /edgecd was made, and left, by this start), and
        # d.stop() checks that nothing is left under them.
        d = Daemon("nort")
        self.addCleanup(d.stop)
        daemon = os.path.abspath(harness.OPTIONS["daemon"])
        script = ("mount -t tmpfs none /usr/sbin && mount -t tmpfs none /usr/local/sbin && "
                  "mount -t tmpfs none /usr/local/bin && mount -t tmpfs none /usr/bin && "
                  "exec %s --config %s" % (daemon, d.config_path))
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot start: no usable OCI runtime: youki: not found; crun: not found; "
                      "runc: not found", r.stderr)
        self.assertFalse([ln for ln in r.stderr.splitlines()
                          if any(m in ln for m in harness.SANITIZER_MARKERS)], r.stderr)


class Listening(unittest.TestCase):
    """Where the API listens, and rescanning plugins without a restart."""

    @quick
    def test_unix_socket(self):
        d = Daemon("unix")
        self.addCleanup(d.stop)
        sock = os.path.join(d.tmp, "edgecd.sock")
        d.args = ["--listen", "unix:" + sock]
        d.unix_path = sock
        d.start()
        st = os.stat(sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode), "not a socket: %s" % sock)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        job = d.run_job({"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": 3}})
        self.assertEqual(job["result"], {"n": 3}, job)
        d.stop()
        self.assertFalse(os.path.exists(sock), "the socket file must go with the daemon")

    @quick
    def test_port_in_use_refuses_the_start(self):
        # Tried again for 2 s (a killed predecessor's last child may hold
        # it a moment: test_durable), then a clear error.
        d = Daemon("portinuse")
        self.addCleanup(d.stop, check=False)
        holder = harness.hold_port(d.port)
        self.addCleanup(holder.close)
        t0 = time.monotonic()
        with self.assertRaises(AssertionError) as cm:
            d.start(timeout=20)
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)
        self.assertIn("cannot start: listen on `127.0.0.1:%d`: %s" % (d.port, os.strerror(errno.EADDRINUSE)),
                      str(cm.exception))

    def test_sighup_rescans_plugins(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-hup-")
        self.addCleanup(shutil.rmtree, tmp, True)
        src = harness.OPTIONS["plugins"]
        shutil.copytree(os.path.join(src, "t_echo"), os.path.join(tmp, "t_echo"), symlinks=True)
        d = Daemon("hup", plugins=tmp)
        self.addCleanup(d.stop)
        d.start()
        names = [a["name"] for a in d.req("GET", "/v1/algorithms").body["algorithms"]]
        self.assertEqual(names, ["t_echo"])
        shutil.copytree(os.path.join(src, "t_sleep"), os.path.join(tmp, "t_sleep"), symlinks=True)
        shutil.copytree(os.path.join(src, "t_broken_key"), os.path.join(tmp, "t_broken_key"), symlinks=True)
        shutil.rmtree(os.path.join(tmp, "t_echo"))
        os.kill(d.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            body = d.req("GET", "/v1/algorithms").body
            if [a["name"] for a in body["algorithms"]] == ["t_sleep"]:
                break
            time.sleep(0.1)
        self.assertEqual([a["name"] for a in body["algorithms"]], ["t_sleep"], body)
        self.assertEqual(len(body["broken"]), 1, body)
        harness.check_error(d.submit({"algorithm": "t_echo"}), 404, "unknown_algorithm")
        job = d.run_job({"algorithm": "t_sleep", "parameters": {"seconds": 0}})
        self.assertEqual(job["status"], "succeeded", job)

    @quick
    def test_relative_directories(self):
        # `make run` passes build/plugins and build/state: relative to the
        # daemon's working directory (the harness runs it in its temp dir).
        d = Daemon("relative")
        self.addCleanup(d.stop)
        d.args = ["--plugins-dir", os.path.relpath(harness.OPTIONS["plugins"], d.tmp),
                  "--templates-dir", os.path.relpath(harness.OPTIONS["templates"], d.tmp),
                  "--state-dir", "state"]
        d.start()
        job = d.run_job({"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": 2}})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"], {"n": 2}, job)


class Install(unittest.TestCase):
    """`make install DESTDIR=...` lays out what the systemd unit and the
    default config expect, and the installed daemon runs the reference job."""

    def test_installed_layout_runs_the_reference_job(self):
        dest = tempfile.mkdtemp(prefix="edgecd-it-install-")
        self.addCleanup(shutil.rmtree, dest, True)
        r = subprocess.run(["make", "-s", "install", "DESTDIR=" + dest], cwd=harness.REPO,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        binary = os.path.join(dest, "usr/local/bin/edgecd")
        templates = os.path.join(dest, "usr/share/edgecd/oci-templates")
        plugins = os.path.join(dest, "usr/lib/edgecd/plugins")
        conf = os.path.join(dest, "etc/edgecd/edgecd.yaml")
        for path in (binary, conf, os.path.join(templates, "default.json"),
                     os.path.join(templates, "seccomp.allow"),
                     os.path.join(plugins, "matrix_multiplication", "plugin.yaml"),
                     os.path.join(dest, "etc/systemd/system/edgecd.service")):
            self.assertTrue(os.path.exists(path), path)
        with open(os.path.join(dest, "etc/systemd/system/edgecd.service")) as f:
            self.assertIn("ExecStart=/usr/local/bin/edgecd --config /etc/edgecd/edgecd.yaml", f.read())
        # The installed config names /usr/...: point the dirs into DESTDIR.
        r = run_cli("--config", conf, "--templates-dir", templates, "--plugins-dir", plugins,
                    "--check-config", daemon=binary)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("plugins: 6 loaded, 0 broken", r.stdout)
        saved = dict(harness.OPTIONS)
        self.addCleanup(harness.OPTIONS.update, saved)
        harness.OPTIONS.update(daemon=binary, templates=templates, plugins=plugins)
        d = Daemon("installed")
        self.addCleanup(d.stop)
        d.start()
        job = d.run_job({"algorithm": "matrix_multiplication",
                         "parameters": {"matrix_a": [[1, 2], [3, 4]], "matrix_b": [[5], [6]]}})
        self.assertEqual(job["result"], {"product": [[17], [39]], "rows": 2, "cols": 1}, job)


class Refusals(unittest.TestCase):
    """Configurations that would weaken the sandbox are refused at start,
    each naming what and where."""

    def refused(self, name, config=None, templates=None):
        d = Daemon(name, config=config or {})
        if templates:
            d.config["templates_dir"] = templates
            with open(d.config_path, "w") as f:
                f.write("\n".join(harness.yaml_dump(d.config)) + "\n")
        self.addCleanup(d.stop, check=False)
        with self.assertRaises(AssertionError) as cm:
            d.start(timeout=20)
        return str(cm.exception)

    def test_template_with_hooks_or_host_mounts(self):
        src = harness.OPTIONS["templates"]
        cases = (
            ("hooks", lambda t: t.update(hooks={"prestart": [{"path": "/bin/sh"}]}), "/hooks"),
            ("bind", lambda t: t["mounts"].append({"destination": "/host", "type": "bind", "source": "/",
                                                    "options": ["rbind"]}), "/mounts/7/type"),
            ("sysctl", lambda t: t["linux"].update(sysctl={"kernel.shmmax": "1"}), "/linux/sysctl"),
            ("devices", lambda t: t["linux"].update(devices=[{"path": "/dev/kmsg", "type": "c", "major": 1,
                                                             "minor": 11}]), "/linux/devices"),
            # crun would load this BPF instead of the seccomp policy.
            ("annotations", lambda t: t.update(annotations={"run.oci.seccomp_bpf_data": "AAAA"}), "/annotations"),
            ("nproc", lambda t: t["process"]["rlimits"].append({"type": "RLIMIT_NPROC", "hard": 99999,
                                                                "soft": 99999}), "/process/rlimits/2"),
        )
        for what, edit, pointer in cases:
            with self.subTest(what=what):
                tmp = tempfile.mkdtemp(prefix="edgecd-it-tmpl-")
                self.addCleanup(shutil.rmtree, tmp, True)
                shutil.copy(os.path.join(src, "seccomp.allow"), tmp)
                with open(os.path.join(src, "default.json")) as f:
                    t = json.load(f)
                edit(t)
                with open(os.path.join(tmp, "default.json"), "w") as f:
                    json.dump(t, f)
                log = self.refused("tmpl-" + what, templates=tmp)
                self.assertIn("template `%s/default.json`: %s" % (tmp, pointer), log)
                r = subprocess.run([harness.OPTIONS["daemon"], "--check-config", "--templates-dir", tmp],
                                   capture_output=True, text=True, timeout=20)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn(pointer, r.stderr)

    def test_check_config_reads_tokens_and_job_users(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-chk-")
        self.addCleanup(shutil.rmtree, tmp, True)
        tokens = os.path.join(tmp, "tokens.yaml")
        with open(tokens, "w") as f:
            f.write("tokens:\n  - name: a\n    sha256: xyz\n    scopes: [read]\n")
        cfg = os.path.join(tmp, "edgecd.yaml")
        with open(cfg, "w") as f:
            f.write("templates_dir: %s\nauth:\n  tokens_file: %s\njob_users:\n  first_uid: 1\n"
                    "  first_gid: 2100000000\n  count: 5\n" % (harness.OPTIONS["templates"], tokens))
        r = subprocess.run([harness.OPTIONS["daemon"], "--config", cfg, "--check-config"], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("%s:3:13: tokens[0].sha256: expected 64 hex digits" % tokens, r.stderr)
        self.assertIn("job_users: the job uid range 1-5 holds host user", r.stderr)

    def test_job_users_overlapping_a_host_account(self):
        import pwd
        name = pwd.getpwuid(1).pw_name           # "daemon" on Debian
        log = self.refused("jobusers", config={"job_users": {"first_uid": 1, "first_gid": 2100000000, "count": 10}})
        self.assertIn("job_users: the job uid range 1-10 holds host user `%s` (uid 1)" % name, log)
