"""edgecdctl, the command-line client (ctl/): the real build/edgecdctl
against a real daemon.  Every subcommand, every exit code, --json output,
-p typing, --params from a file and from stdin, a unix socket, a token, and
the progress display on a terminal (a pseudo-terminal) and off one."""

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

import harness
from harness import Daemon

CTL = os.path.join(harness.REPO, "build", "edgecdctl")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def ctl(*args, url=None, input=None, env=None, timeout=60):
    """Runs edgecdctl; url (if given) goes first as --url."""
    argv = [CTL] + (["--url", url] if url else []) + list(args)
    e = dict(os.environ)
    e.pop("EDGECD_URL", None)
    e.pop("EDGECD_TOKEN", None)
    e.update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=e,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)


def url_of(d):
    return "http://127.0.0.1:%d" % d.port


@unittest.skipUnless(os.path.exists(CTL), "skipped: %s not built (make build/edgecdctl)" % CTL)
class Ctl(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon("ctl").start()
        cls.url = url_of(cls.d)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def run_ctl(self, *args, **kw):
        return ctl(*args, url=self.url, **kw)

    def assertExit(self, r, code):
        self.assertEqual(r.returncode, code, "exit %d, wanted %d\nstdout: %s\nstderr: %s"
                         % (r.returncode, code, r.stdout, r.stderr))

    def submit_id(self, *args):
        r = self.run_ctl("submit", *args)
        self.assertExit(r, 0)
        self.assertRegex(r.stdout.strip(), "^%s$" % UUID)
        return r.stdout.strip()

    # -- exit codes 0 and 2, the command line

    def test_version_help_and_usage_errors(self):
        r = ctl("--version")
        self.assertExit(r, 0)
        self.assertRegex(r.stdout, r"^edgecdctl \d+\.\d+\.\d+")
        for args in (["--help"], ["-h"], ["jobs", "--help"]):
            r = ctl(*args)
            self.assertExit(r, 0)
            self.assertIn("usage: edgecdctl", r.stdout)
        for args in ([], ["frobnicate"], ["--no-such-option", "jobs"], ["show"],
                     ["show", "a", "b"], ["jobs", "--wait"], ["jobs", "--limit", "many"],
                     ["submit"], ["submit", "t_echo", "-p", "novalue"],
                     ["submit", "t_echo", "-p", "=1"], ["submit", "t_echo", "--timeout", "x"],
                     ["submit", "t_echo", "--wait-timeout", "-1"],
                     ["show", "x", "--priority", "high"]):
            r = ctl(*args, url="http://127.0.0.1:1")
            self.assertExit(r, 2)
            self.assertIn("edgecdctl:", r.stderr)
            self.assertEqual(r.stdout, "")

    def test_bad_params_file_is_usage(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-ctl-")
        self.addCleanup(shutil.rmtree, tmp, True)
        for text in ("{not json", "[1, 2]"):
            p = os.path.join(tmp, "p.json")
            with open(p, "w") as f:
                f.write(text)
            r = self.run_ctl("submit", "t_echo", "--params", p)
            self.assertExit(r, 2)
        self.assertExit(self.run_ctl("submit", "t_echo", "--params", os.path.join(tmp, "absent")), 2)
        self.assertExit(self.run_ctl("--token-file", os.path.join(tmp, "absent"), "jobs"), 2)

    # -- submit, -p typing, --params

    def test_submit_wait_types_p_values(self):
        r = self.run_ctl("submit", "t_echo", "--version", "1.0.0", "-p", "n=3", "-p", "s=hello",
                         "-p", "arr=[1, 2.5]", "-p", "b=true", "-p", "nul=null",
                         "-p", "o={\"k\": \"v\"}", "-p", "q=\"7\"", "-p", "eq=a=b", "-p", "empty=",
                         "--priority", "high", "--timeout", "30", "--wait")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout), {"n": 3, "s": "hello", "arr": [1, 2.5], "b": True,
                                                "nul": None, "o": {"k": "v"}, "q": "7",
                                                "eq": "a=b", "empty": ""})

    def test_submit_wait_json_is_the_job(self):
        r = self.run_ctl("--json", "submit", "t_echo", "--version", "1.0.0", "-p", "n=1",
                         "--priority", "low", "--timeout", "17", "--wait")
        self.assertExit(r, 0)
        job = json.loads(r.stdout)
        self.assertEqual(job["status"], "succeeded")
        self.assertEqual(job["result"], {"n": 1})
        self.assertEqual(job["version"], "1.0.0")
        self.assertEqual(job["priority"], "low")
        self.assertEqual(job["timeout_seconds"], 17)

    def test_version_range_picks_newest(self):
        r = self.run_ctl("--json", "submit", "t_echo", "--version", "^2", "-p", "n=2", "--wait")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout)["version"], "2.0.0")

    def test_params_from_file_and_stdin(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-ctl-")
        self.addCleanup(shutil.rmtree, tmp, True)
        p = os.path.join(tmp, "params.json")
        with open(p, "w") as f:
            json.dump({"n": 4, "list": [1, 2, 3], "keep": "me"}, f)
        # -p overrides a key of the file's object.
        r = self.run_ctl("submit", "t_echo", "--version", "1.0.0", "--params", p, "-p", "n=5", "--wait")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout), {"n": 5, "list": [1, 2, 3], "keep": "me"})
        r = self.run_ctl("submit", "t_echo", "--version", "1.0.0", "--params", "-", "--wait",
                         input='{"from": "stdin", "n": 6}')
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout), {"from": "stdin", "n": 6})

    # -- exit codes 1, 3, 4, 5

    def test_failed_job_exits_1(self):
        r = self.run_ctl("submit", "t_exit", "--wait")
        self.assertExit(r, 1)
        self.assertIn("failed", r.stderr)
        self.assertIn("algorithm_failed", r.stderr)
        self.assertEqual(r.stdout, "")
        r = self.run_ctl("--json", "submit", "t_exit", "--wait")
        self.assertExit(r, 1)
        job = json.loads(r.stdout)
        self.assertEqual((job["status"], job["error"]["code"], job["exit_code"]),
                         ("failed", "algorithm_failed", 3))

    def test_refused_exits_3_with_code_and_message(self):
        r = self.run_ctl("submit", "no_such_algorithm", "-p", "x=1")
        self.assertExit(r, 3)
        self.assertIn("unknown_algorithm", r.stderr)
        self.assertIn("404", r.stderr)
        r = self.run_ctl("submit", "t_echo", "--version", "1.0.0", "-p", "n=99")
        self.assertExit(r, 3)
        self.assertIn("invalid_parameters", r.stderr)
        self.assertIn("/parameters/n", r.stderr)
        r = self.run_ctl("submit", "t_echo", "--priority", "urgent")
        self.assertExit(r, 3)
        self.assertIn("invalid_request", r.stderr)
        for args in (["show", "00000000-0000-0000-0000-000000000000"], ["logs", "nope"],
                     ["cancel", "00000000-0000-0000-0000-000000000000"], ["algorithms", "nope"],
                     ["jobs", "--status", "bogus"]):
            r = self.run_ctl(*args)
            self.assertExit(r, 3)
            self.assertRegex(r.stderr, r"HTTP 4\d\d \w+: ")

    def test_nothing_listening_exits_4(self):
        url = "http://127.0.0.1:%d" % harness.free_port()
        for args in (["health"], ["jobs"], ["submit", "t_echo", "--wait"], ["show", "x"]):
            r = ctl(*args, url=url)
            self.assertExit(r, 4)
            self.assertIn("cannot reach", r.stderr)
        # EDGECD_URL is the default.
        r = ctl("jobs", env={"EDGECD_URL": url})
        self.assertExit(r, 4)
        self.assertIn(url, r.stderr)

    def test_wait_timeout_exits_5_then_cancel(self):
        r = self.run_ctl("submit", "t_sleep", "-p", "seconds=30", "--wait-timeout", "0.5")
        self.assertExit(r, 5)
        m = re.search(UUID, r.stderr)
        self.assertTrue(m, r.stderr)
        job_id = m.group(0)
        self.assertIn("still", r.stderr)
        r = self.run_ctl("cancel", job_id)
        self.assertExit(r, 0)
        # The running job's end, on disk before the answer.
        self.assertEqual(r.stdout.split(), [job_id, "cancelled"], r.stdout)
        self.assertEqual(self.d.get_job(job_id)["status"], "cancelled")
        # Cancelling a final job: 409 conflict.
        r = self.run_ctl("cancel", job_id)
        self.assertExit(r, 3)
        self.assertIn("conflict", r.stderr)

    def test_cancelled_job_waited_for_exits_1(self):
        p = subprocess.Popen([CTL, "--url", self.url, "--json", "submit", "t_sleep", "-p", "seconds=30",
                              "--wait"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            jobs = []
            while not jobs and time.monotonic() < deadline:
                jobs = self.d.list_jobs(algorithm="t_sleep", status="running")
                time.sleep(0.1)
            self.assertTrue(jobs, "the job never ran")
            self.assertExit(self.run_ctl("cancel", jobs[0]["id"]), 0)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 1, err)
        job = json.loads(out)
        self.assertEqual((job["id"], job["status"]), (jobs[0]["id"], "cancelled"))
        self.assertIn("cancelled", err)

    # -- jobs, show, logs, algorithms, health

    def test_show_logs_jobs(self):
        job_id = self.submit_id("t_exit", "-p", "x=1")
        self.d.wait_final(job_id)
        r = self.run_ctl("show", job_id)
        self.assertExit(r, 0)
        self.assertRegex(r.stdout, r"(?m)^id:\s+%s$" % job_id)
        self.assertRegex(r.stdout, r"(?m)^algorithm:\s+t_exit 1\.0\.0$")
        self.assertRegex(r.stdout, r"(?m)^status:\s+failed$")
        self.assertRegex(r.stdout, r"(?m)^error:\s+algorithm_failed: ")
        self.assertRegex(r.stdout, r"(?m)^exit code:\s+3$")
        r = self.run_ctl("--json", "show", job_id)
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout)["id"], job_id)
        r = self.run_ctl("show", job_id, "--json")      # options after the arguments too
        self.assertEqual(json.loads(r.stdout)["id"], job_id)
        r = self.run_ctl("logs", job_id)
        self.assertExit(r, 0)
        self.assertIn("failing on purpose with status 3", r.stdout)
        r = self.run_ctl("jobs", "--algorithm", "t_exit", "--limit", "50")
        self.assertExit(r, 0)
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^ID\s+ALGORITHM\s+STATUS\s+CREATED$")
        row = [l for l in lines if l.startswith(job_id)]
        self.assertEqual(len(row), 1, r.stdout)
        self.assertRegex(row[0], r"^%s\s+t_exit\s+failed\s+\d{4}-\d\d-\d\dT" % job_id)
        self.assertTrue(all(l.split()[1] == "t_exit" for l in lines[1:]), r.stdout)
        r = self.run_ctl("--json", "jobs", "--status", "failed", "--limit", "1")
        self.assertExit(r, 0)
        page = json.loads(r.stdout)
        self.assertEqual(len(page["jobs"]), 1)
        self.assertEqual(page["jobs"][0]["status"], "failed")

    def test_algorithms(self):
        r = self.run_ctl("algorithms")
        self.assertExit(r, 0)
        self.assertRegex(r.stdout, r"(?m)^NAME\s+VERSIONS$")
        self.assertRegex(r.stdout, r"(?m)^t_echo\s+2\.0\.0, 1\.0\.0$")
        self.assertRegex(r.stdout, r"(?m)^monte_carlo_pi\s+1\.0\.0$")
        r = self.run_ctl("--json", "algorithms")
        names = [a["name"] for a in json.loads(r.stdout)["algorithms"]]
        self.assertIn("t_exit", names)
        r = self.run_ctl("algorithms", "t_echo")
        self.assertExit(r, 0)
        self.assertRegex(r.stdout, r"(?m)^name:\s+t_echo$")
        self.assertRegex(r.stdout, r"(?m)^latest:\s+2\.0\.0$")
        r = self.run_ctl("algorithms", "t_echo", "--json")
        self.assertEqual(json.loads(r.stdout)["versions"], ["2.0.0", "1.0.0"])

    def test_health(self):
        r = self.run_ctl("health")
        self.assertExit(r, 0)
        self.assertRegex(r.stdout, r"(?m)^healthz: ok$")
        self.assertRegex(r.stdout, r"(?m)^readyz:\s+(healthy|degraded) \(runtime ")
        r = self.run_ctl("--json", "health")
        self.assertExit(r, 0)
        h = json.loads(r.stdout)
        self.assertEqual(h["healthz"], {"status": "ok"})
        self.assertIn(h["readyz"]["status"], ("healthy", "degraded"))

    # -- progress

    def test_progress_plain_lines_without_tty(self):
        r = self.run_ctl("submit", "monte_carlo_pi", "-p", "samples=20000000", "-p", "seconds=2",
                         "--wait")
        self.assertExit(r, 0)
        self.assertAlmostEqual(json.loads(r.stdout)["pi"], 3.1416, places=2)
        self.assertNotIn("\r", r.stderr)
        lines = r.stderr.splitlines()
        self.assertRegex(lines[-1], r"^\[\s*\d+\.\ds\] succeeded")
        pct = [l for l in lines if re.search(r"running\s+\d+%  \d+ of 20000000 samples", l)]
        self.assertGreaterEqual(len(pct), 2, r.stderr)
        # A line only when something changed.
        what = [l.split("] ", 1)[1] for l in lines]
        self.assertEqual(len(what), len(set(what)), r.stderr)

    def test_progress_redrawn_on_a_tty(self):
        master, slave = pty.openpty()
        # 60 columns: the ~70-character progress lines are cut to 59.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))
        try:
            p = subprocess.Popen([CTL, "--url", self.url, "submit", "monte_carlo_pi",
                                  "-p", "samples=20000000", "-p", "seconds=2", "--wait"],
                                 stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
            os.close(slave)
            slave = None
            out = b""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 1.0)
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:       # EIO: the child closed the terminal
                        break
                    if not chunk:
                        break
                    out += chunk
                elif p.poll() is not None:
                    break
            self.assertEqual(p.wait(timeout=30), 0, out)
        finally:
            os.close(master)
            if slave is not None:
                os.close(slave)
        text = out.decode(errors="replace")
        draws = text.split("\r\x1b[K")
        pct = [d for d in draws if re.search(r"running\s+\d+%  \d+ of 20000000 samples", d)]
        self.assertGreaterEqual(len(pct), 2, text)
        self.assertIn("succeeded", draws[-1])
        for dr in draws[1:]:
            self.assertLessEqual(len(dr.split("\r\n")[0]), 59, repr(dr))
        self.assertTrue(any(len(dr.split("\r\n")[0]) == 59 for dr in pct), pct)
        self.assertIn('"pi"', text)


@unittest.skipUnless(os.path.exists(CTL), "skipped: %s not built" % CTL)
class CtlUnix(unittest.TestCase):

    def test_unix_socket(self):
        d = Daemon("ctlunix")
        self.addCleanup(d.stop)
        sock = os.path.join(d.tmp, "edgecd.sock")
        d.args = ["--listen", "unix:" + sock]
        d.unix_path = sock
        d.start()
        r = ctl("--unix", sock, "health")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("healthz: ok", r.stdout)
        r = ctl("--unix", sock, "submit", "t_echo", "--version", "1.0.0", "-p", "n=7", "--wait")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"n": 7})
        r = ctl("--unix", os.path.join(d.tmp, "absent.sock"), "health")
        self.assertEqual(r.returncode, 4, r.stderr)


@unittest.skipUnless(os.path.exists(CTL), "skipped: %s not built" % CTL)
class CtlUnusualResult(unittest.TestCase):
    """A result is any valid JSON the algorithm wrote, kept as text: a
    \\u0000, an unpaired surrogate escape, a number past a double or past
    64 bits.  jansson holds none of them; edgecdctl must still show the job
    (it once said "the server's answer (HTTP 200) is not JSON" and exited
    4, "no answer or 5xx", for a job that had succeeded)."""

    RAW = '["\\u0000","\\ud800",1e400,123456789012345678901234567890,"\\ud83d\\ude00"]'

    def daemon_writing(self, name, result):
        """A started daemon whose plugin `name` writes result as its
        result.json, byte for byte."""
        tmp = tempfile.mkdtemp(prefix="edgecd-it-%s-" % name)
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        path = harness.copy_plugin("t_invalid", os.path.join(tmp, name), name=name)
        with open(path) as f:
            text = f.read()
        line = "command: [\"/bin/testkit\", \"raw\", '%s']" % result
        text, n = re.subn(r'(?m)^command: .*$', lambda m: line, text)
        self.assertEqual(n, 1, text)
        with open(path, "w") as f:
            f.write(text)
        d = Daemon(name, plugins=tmp)
        self.addCleanup(d.stop)
        return d.start()

    def assert_shown_replaced(self, d, job):
        """job succeeded; `show` shows it, saying what it replaced; the
        answer of `--json show` (returned) is whole."""
        self.assertEqual(job["status"], "succeeded", job)
        r = ctl("show", job["id"], url=url_of(d))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^status:\s+succeeded$")
        self.assertIn("reads them replaced", r.stderr)
        r = ctl("--json", "show", job["id"], url=url_of(d))
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def test_show_and_wait_on_a_result_jansson_cannot_hold(self):
        d = self.daemon_writing("t_raw", self.RAW)
        job = d.run_job({"algorithm": "t_raw"})
        r = self.assert_shown_replaced(d, job)
        # --json prints the daemon's own text, unchanged.
        self.assertEqual(json.loads(r.stdout)["result"],
                         ["\x00", "\ud800", float("inf"), 123456789012345678901234567890, "\U0001F600"])
        r = ctl("submit", "t_raw", "--wait", url=url_of(d))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_show_a_result_nested_deeper_than_jansson_parses(self):
        # The daemon keeps a result nested to any depth (results have no
        # depth cap); jansson refuses past 2048 levels.
        deep = "[" * 2100 + "1" + "]" * 2100
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 10000))    # json.loads of the job, here
        self.addCleanup(sys.setrecursionlimit, limit)
        d = self.daemon_writing("t_deep", deep)
        job = d.run_job({"algorithm": "t_deep"})
        r = self.assert_shown_replaced(d, job)
        self.assertIn(deep, r.stdout)


TOKEN = "ctl-test-token-0123456789abcdef"
READER = "ctl-reader-token-0123456789abcd"


@unittest.skipUnless(os.path.exists(CTL), "skipped: %s not built" % CTL)
class CtlToken(unittest.TestCase):

    def test_token_file_and_env(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-ctltok-")
        self.addCleanup(shutil.rmtree, tmp, True)
        tokens = os.path.join(tmp, "tokens.yaml")
        with open(tokens, "w") as f:
            f.write("tokens:\n")
            for name, tok, scopes in (("ctl", TOKEN, "admin"), ("reader", READER, "read")):
                f.write("  - name: %s\n    sha256: %s\n    scopes: [%s]\n"
                        % (name, hashlib.sha256(tok.encode()).hexdigest(), scopes))
        tokfile = os.path.join(tmp, "token")
        with open(tokfile, "w") as f:
            f.write(TOKEN + "\n")
        d = Daemon("ctltoken", config={"auth": {"tokens_file": tokens}})
        self.addCleanup(d.stop)
        d.start()
        url = url_of(d)
        r = ctl("jobs", url=url)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("401 unauthorized", r.stderr)
        r = ctl("--token-file", tokfile, "--json", "submit", "t_echo", "--version", "1.0.0",
                "-p", "n=1", "--wait", url=url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["submitted_by"], "ctl")
        r = ctl("jobs", url=url, env={"EDGECD_TOKEN": READER})
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ctl("submit", "t_echo", url=url, env={"EDGECD_TOKEN": READER})
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("403 forbidden", r.stderr)
        # --token-file wins over the environment.
        r = ctl("--token-file", tokfile, "submit", "t_echo", "--version", "1.0.0", "-p", "n=2",
                url=url, env={"EDGECD_TOKEN": READER})
        self.assertEqual(r.returncode, 0, r.stderr)


class FakeDaemon:
    """A scripted HTTP server standing in for a hostile or broken daemon:
    routes[(method, path)] is a list of (status, body) answers, the last
    one repeated; "stall" answers nothing.  Paths seen are kept."""

    def __init__(self, test, routes):
        import http.server
        import threading
        fake = self
        self.routes = {k: list(v) for k, v in routes.items()}
        self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self):
                fake.seen.append((self.command, self.path, self.headers.get("Authorization")))
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                answers = fake.routes.get((self.command, self.path)) or [(404, {"error": {"code": "not_found",
                                                                                        "message": "no"}})]
                status, body = answers.pop(0) if len(answers) > 1 else answers[0]
                if status == "stall":
                    time.sleep(30)
                    return
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        test.addCleanup(self.close)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


JOB_ID = "0b9c3a2e-4f5d-4e6f-8a7b-9c0d1e2f3a4b"


def job(status, **kw):
    j = {"id": JOB_ID, "algorithm": "alg", "version": "1.0.0", "status": status, "priority": "normal",
         "created_at": "2026-12-02T00:00:00.000Z", "started_at": None, "finished_at": None,
         "error": None, "exit_code": None, "result": None, "progress": None}
    j.update(kw)
    return j


@unittest.skipUnless(os.path.exists(CTL), "skipped: %s not built (make build/edgecdctl)" % CTL)
class CtlAgainstAHostileServer(unittest.TestCase):
    """What a server or an algorithm says is never a terminal escape, a
    silent server never hangs the client, a redirect is not followed,
    "." and ".." stay names, a token cannot smuggle a header, a proxy
    never sees the token, a poll that fails once does not end a wait, and
    a full disk is not success."""

    ESC = "\u001b]0;PWNED\u0007\u001b[2J\u001b[31m\r\u009b"

    def test_no_escape_reaches_the_terminal(self):
        f = FakeDaemon(self, {("GET", "/v1/jobs/" + JOB_ID): [(200, job(
            "failed", error={"code": "x" + self.ESC, "message": "m" + self.ESC},
            progress={"fraction": 0.5, "message": self.ESC}))]})
        r = ctl("show", JOB_ID, url=f.url)
        self.assertEqual(r.returncode, 0, r.stderr)
        for ch in ("\x1b", "\x07", "\r", "\u009b"):
            self.assertNotIn(ch, r.stdout + r.stderr)
        f2 = FakeDaemon(self, {("POST", "/v1/jobs"): [(404, {"error": {"code": "e" + self.ESC,
                                                                     "message": self.ESC}})]})
        r = ctl("submit", "alg", url=f2.url)
        self.assertEqual(r.returncode, 3)
        self.assertNotIn("\x1b", r.stderr)

    def run_on_a_terminal(self, f, *args):
        """edgecdctl against f with its stdout and stderr on a
        pseudo-terminal: what the terminal got."""
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen([CTL, "--url", f.url] + list(args), stdin=subprocess.DEVNULL,
                                 stdout=slave, stderr=slave)
            os.close(slave)
            slave = None
            out = b""
            while True:
                ready, _, _ = select.select([master], [], [], 10.0)
                if not ready:
                    break
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            self.assertEqual(p.wait(timeout=30), 0, out)
        finally:
            os.close(master)
            if slave is not None:
                os.close(slave)
        return out

    def test_logs_on_a_terminal_carry_no_escape(self):
        """A job's own output is the algorithm's: on a terminal its control
        characters (but newline and tab) are '?'; piped, it is as it is."""
        body = ("line 1\tx\n" + self.ESC + "\n").encode()
        f = FakeDaemon(self, {("GET", "/v1/jobs/%s/logs" % JOB_ID): [(200, body)]})
        r = subprocess.run([CTL, "--url", f.url, "logs", JOB_ID], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, body)
        out = self.run_on_a_terminal(f, "logs", JOB_ID)
        self.assertIn(b"line 1\tx", out)
        for ch in (b"\x1b", b"\x07", b"\xc2\x9b"):
            self.assertNotIn(ch, out)

    def test_json_on_a_terminal_carries_no_c1_control(self):
        """--json prints the server's JSON, which may hold C1 controls
        unescaped (CSI as C2 9B): on a terminal they are '?'."""
        job = {"id": JOB_ID, "status": "failed", "error": {"code": "algorithm_failed",
                                                          "message": "x\u009b2J\u009d0;t\u0007y"}}
        body = json.dumps(job, ensure_ascii=False).encode()
        self.assertIn(b"\xc2\x9b", body)
        f = FakeDaemon(self, {("GET", "/v1/jobs/" + JOB_ID): [(200, body)]})
        out = self.run_on_a_terminal(f, "show", "--json", JOB_ID)
        self.assertIn(JOB_ID.encode(), out)
        for ch in (b"\xc2\x9b", b"\xc2\x9d"):
            self.assertNotIn(ch, out)

    def test_a_non_json_error_carries_no_c1_control(self):
        """A refusal that is not JSON is printed cut and cleaned: C1 controls
        (CSI as UTF-8 C2 9B, or a bare 9B byte) go as well as C0 ones."""
        f = FakeDaemon(self, {("GET", "/v1/jobs/" + JOB_ID): [(500, "oops \u00e9 ".encode() + b"\x1b[2J \xc2\x9b2J \x9b2J")]})
        r = subprocess.run([CTL, "--url", f.url, "show", JOB_ID], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("oops \u00e9".encode(), r.stderr)
        for ch in (b"\x1b", b"\xc2\x9b", b"\x9b"):
            self.assertNotIn(ch, r.stderr)

    def test_a_silent_server_does_not_hang_a_wait(self):
        f = FakeDaemon(self, {("POST", "/v1/jobs"): [(202, job("queued"))],
                              ("GET", "/v1/jobs/" + JOB_ID): [("stall", None)]})
        t0 = time.monotonic()
        r = ctl("submit", "alg", "--wait", "--wait-timeout", "2", url=f.url, timeout=30)
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn(JOB_ID, r.stderr)

    def test_one_failed_poll_does_not_end_a_wait(self):
        f = FakeDaemon(self, {("POST", "/v1/jobs"): [(202, job("queued"))],
                              ("GET", "/v1/jobs/" + JOB_ID): [(503, {"error": {"code": "unavailable",
                                                                               "message": "restarting"}}),
                                                              (200, job("succeeded", result={"ok": 1}))]})
        r = ctl("submit", "alg", "--wait", url=f.url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"ok": 1})

    def test_interrupted_wait_names_the_job(self):
        import signal as sig
        f = FakeDaemon(self, {("POST", "/v1/jobs"): [(202, job("queued"))],
                              ("GET", "/v1/jobs/" + JOB_ID): [(200, job("running"))]})
        p = subprocess.Popen([CTL, "--url", f.url, "submit", "alg", "--wait"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.communicate()))
        # Its wait has begun (the Ctrl-C handler is set, the id known) once
        # it polls the job; a fixed second could end before on a loaded host.
        harness.wait_for(lambda: ("GET", "/v1/jobs/" + JOB_ID) in [s[:2] for s in f.seen], 10,
                         lambda: "the wait never polled: %s" % f.seen)
        p.send_signal(sig.SIGINT)
        out, err = p.communicate(timeout=10)
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("stopped waiting; job %s goes on" % JOB_ID, err)

    def test_dot_segments_stay_names_and_redirects_are_not_followed(self):
        f = FakeDaemon(self, {("GET", "/v1/jobs/x"): [(301, b"")]})
        for name in ("..", "."):
            r = ctl("show", name, url=f.url)
            self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual([p for _, p, _ in f.seen], ["/v1/jobs/..", "/v1/jobs/."])
        r = ctl("show", "x", url=f.url)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("redirect", r.stderr)

    def test_tokens_are_checked_and_never_go_to_a_proxy(self):
        f = FakeDaemon(self, {("GET", "/healthz"): [(200, {"status": "ok"})],
                              ("GET", "/readyz"): [(200, {"status": "ready"})]})
        r = ctl("health", url=f.url, env={"EDGECD_TOKEN": "abc\r\nX-Evil: 1"})
        self.assertEqual(r.returncode, 2, r.stderr)
        r = ctl("health", url=f.url, env={"EDGECD_TOKEN": "  tok  ", "http_proxy": "http://127.0.0.1:1",
                                          "HTTP_PROXY": "http://127.0.0.1:1"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(f.seen and all(a == "Bearer tok" for _, _, a in f.seen), f.seen)

    def test_answers_without_a_job_and_a_full_disk(self):
        f = FakeDaemon(self, {("POST", "/v1/jobs"): [(202, {"status": "queued"})],
                              ("GET", "/v1/jobs/" + JOB_ID): [(200, job("queued"))]})
        r = ctl("submit", "alg", url=f.url)
        self.assertEqual(r.returncode, 4, r.stderr)
        with open("/dev/full", "w") as full:
            r = subprocess.run([CTL, "--url", f.url, "--json", "show", JOB_ID], stdout=full,
                               stderr=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(r.returncode, 6, r.stderr)
