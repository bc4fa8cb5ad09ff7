"""Callbacks (issue 9): a job submitted with `callback_url` has its final job
object POSTed there, signed (X-Edgecd-Signature: t=..,v1=HMAC-SHA256 of
"<t>.<body>"), retried after a 5xx with backoff, given up after a 4xx,
never sent to a URL outside callbacks.allow (refused at submit, prefix
tricks included), and delivered after a restart (SIGTERM and SIGKILL)
when the receiver was down before.  A dead receiver does not hold up
another job's answer or callback (at most half the slots per receiver,
all but one for those whose last attempt got no answer),
nor does a name lookup that hangs (slowdns_shim.c, LD_PRELOADed) or a 2xx
body that never ends; Retry-After is honoured; retention keeps a job whose
callback is pending.

The receivers are real HTTP servers in this process (http.server on
127.0.0.1, one thread each); their behaviour is set per path."""

import contextlib
import email.utils
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import tempfile
import threading
import time
import unittest

import jsonschema

import harness
import test_ctl
import test_openapi
from harness import Daemon, check_error, quick, slow_factor

SECRET = b"test-callback-secret-0123456789abcdef"


def echo(i):
    return {"algorithm": "t_echo", "version": "1.0.0", "parameters": {"i": i}}


class Receiver:
    """An HTTP server that records every POST (path, headers, body) and
    answers each path with the statuses queued for it (then `default`).
    A plan entry is a status, (status, {header: value}), "stream": 200
    and a chunked body that never ends (until the client goes), or
    "cut N": status N and a body that breaks off (5 of 100 bytes), or
    "headcut N": status N and a header section that breaks off."""

    def __init__(self):
        self.lock = threading.Condition()
        self.got = []                  # (path, headers dict, body bytes)
        self.times = []                # time.monotonic() of each POST in got
        self.plans = {}                # path -> [status | (status, headers) | "stream", ...]
        self.default = 200
        self.streamed = 0              # bytes of endless bodies written
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                path = self.path
                with rec.lock:
                    rec.got.append((path, {k.lower(): v for k, v in self.headers.items()}, body))
                    rec.times.append(time.monotonic())
                    plan = rec.plans.get(path)
                    status = plan.pop(0) if plan else rec.default
                    rec.lock.notify_all()
                if status == "stream":
                    self.stream()
                    return
                if isinstance(status, str) and status.startswith("headcut "):
                    # A proxy that died while it passed the answer on.
                    self.wfile.write(b"HTTP/1.1 %d OK\r\nContent-Le" % int(status.split()[1]))
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if isinstance(status, str) and status.startswith("cut "):
                    # A status, then a body that breaks off.
                    self.send_response(int(status.split()[1]))
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b"short")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                headers = {}
                if isinstance(status, tuple):
                    status, headers = status
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v() if callable(v) else v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"x" * 1024
                deadline = time.monotonic() + 120
                try:
                    while time.monotonic() < deadline:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                        with rec.lock:
                            rec.streamed += len(chunk)
                        time.sleep(0.01)
                except OSError:
                    pass          # the client closed: what a receiver sees
                self.close_connection = True

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def posts(self, path):
        with self.lock:
            return [g for g in self.got if g[0] == path]

    def post_times(self, path):
        with self.lock:
            return [t for g, t in zip(self.got, self.times) if g[0] == path]

    def wait_posts(self, path, n, timeout=30.0):
        deadline = time.monotonic() + timeout * slow_factor()
        with self.lock:
            while True:
                got = [g for g in self.got if g[0] == path]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("receiver: %d POST(s) to %s, expected %d" % (len(got), path, n))
                self.lock.wait(left)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def check_signature(testcase, headers, body, secret=SECRET):
    sig = headers.get("x-edgecd-signature")
    testcase.assertIsNotNone(sig, "no X-Edgecd-Signature")
    parts = dict(p.split("=", 1) for p in sig.split(","))
    testcase.assertEqual(sorted(parts), ["t", "v1"], sig)
    t = parts["t"]
    testcase.assertTrue(t.isdigit(), sig)
    testcase.assertLess(abs(int(t) - time.time()), 300, "signature time far from now: %s" % sig)
    want = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    testcase.assertTrue(hmac.compare_digest(parts["v1"], want), "signature %s, expected v1=%s" % (sig, want))
    # Another key, or the body changed by one byte, does not verify.
    other = hmac.new(b"not-the-secret-at-all-0123456789", t.encode() + b"." + body, hashlib.sha256).hexdigest()
    testcase.assertNotEqual(parts["v1"], other)
    changed = hmac.new(secret, t.encode() + b"." + body + b" ", hashlib.sha256).hexdigest()
    testcase.assertNotEqual(parts["v1"], changed)


def thread_cpu(pid, name):
    """CPU seconds (user + system) of pid's thread called name."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip() != name:
                    continue
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    raise AssertionError("no thread %s in %d" % (name, pid))


@contextlib.contextmanager
def dead_receivers(n):
    """n receivers that take connections and never answer: listening
    sockets nobody accepts on (closed at the end; closing one early resets
    the connections waiting on it)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            s.listen(64)
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


class CallbackBase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="edgecd-it-callbacks-")
        self.secret_path = os.path.join(self.tmp, "callback.secret")
        fd = os.open(self.secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, SECRET + b"\n")
        os.close(fd)
        self.rx = Receiver()
        self.daemons = []

    def tearDown(self):
        try:
            for d in self.daemons:
                d.stop()
        finally:
            self.rx.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def daemon(self, allow=None, extra=None, env=None, **cb):
        conf = {"allow": allow if allow is not None else [self.rx.url("/hooks")],
                "secret_file": self.secret_path, "backoff_ms": 100, "max_backoff_ms": 400,
                "max_attempts": 5, "connect_timeout_seconds": 2, "timeout_seconds": 5}
        conf.update(cb)
        config = {"callbacks": conf}
        config.update(extra or {})
        d = Daemon("callbacks", config=config, env=env)
        self.daemons.append(d)
        return d.start()

    def wait_callback(self, d, job_id, state, timeout=30.0):
        deadline = time.monotonic() + timeout * slow_factor()
        job = None
        while time.monotonic() < deadline:
            job = d.get_job(job_id)
            if (job.get("callback") or {}).get("state") == state:
                return job
            time.sleep(0.05)
        raise AssertionError("job %s: callback not %s: %s" % (job_id, state, json.dumps(job)[:600]))


class TestCallbacks(CallbackBase):
    @quick
    def test_delivered_and_signed(self):
        d = self.daemon()
        url = self.rx.url("/hooks/done?tenant=7")
        r = d.submit(dict(echo(1), callback_url=url))
        self.assertEqual(r.status, 202, r)
        cb = r.body["callback"]
        self.assertEqual(cb["url"], url)
        self.assertEqual(cb["state"], "pending")
        self.assertEqual(cb["attempts"], 0)
        job_id = r.body["id"]
        (path, headers, body), = self.rx.wait_posts("/hooks/done?tenant=7", 1)
        check_signature(self, headers, body)
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertEqual(headers.get("x-edgecd-job-id"), job_id)
        self.assertEqual(headers.get("x-edgecd-delivery"), cb["delivery_id"])
        self.assertEqual(headers.get("x-edgecd-attempt"), "1")
        sent = json.loads(body)
        self.assertEqual(sent["id"], job_id)
        self.assertEqual(sent["status"], "succeeded")
        self.assertEqual(sent["result"], {"i": 1})
        job = self.wait_callback(d, job_id, "delivered")
        c = job["callback"]
        self.assertEqual((c["attempts"], c["last_status"], c["last_error"]), (1, 200, None))
        self.assertIsNotNone(c["delivered_at"])
        harness.parse_time(c["delivered_at"])
        self.assertEqual(d.metric("edgecd_callback_attempts_total", {"outcome": "delivered"}), 1)
        self.assertEqual(d.metric("edgecd_callback_attempts_total", {"outcome": "retried"}), 0)
        self.assertEqual(d.metric("edgecd_callbacks_in_flight"), 0)
        # A job without a callback shows null and sends nothing.
        plain = d.run_job(echo(2))
        self.assertIsNone(plain["callback"])
        time.sleep(0.3)
        self.assertEqual(len(self.rx.got), 1)

    @quick
    def test_retried_after_500(self):
        d = self.daemon()
        self.rx.plans["/hooks/flaky"] = [500, 503]
        r = d.submit(dict(echo(3), callback_url=self.rx.url("/hooks/flaky")))
        self.assertEqual(r.status, 202, r)
        got = self.rx.wait_posts("/hooks/flaky", 3)
        self.assertEqual([h.get("x-edgecd-attempt") for _, h, _ in got], ["1", "2", "3"])
        self.assertEqual(len({h.get("x-edgecd-delivery") for _, h, _ in got}), 1, "one delivery id on every attempt")
        for _, h, b in got:
            check_signature(self, h, b)
        job = self.wait_callback(d, r.body["id"], "delivered")
        c = job["callback"]
        self.assertEqual((c["attempts"], c["last_status"]), (3, 200))
        self.assertEqual(d.metric("edgecd_callback_attempts_total", {"outcome": "retried"}), 2)
        self.assertEqual(d.metric("edgecd_callback_attempts_total", {"outcome": "delivered"}), 1)
        time.sleep(0.5)
        self.assertEqual(len(self.rx.posts("/hooks/flaky")), 3, "nothing sent after the delivery")

    def test_gives_up(self):
        d = self.daemon(max_attempts=3)
        # A 4xx (not 408/429) is final at once; 5xx until max_attempts.
        self.rx.plans["/hooks/gone"] = [404]
        self.rx.plans["/hooks/down"] = [500] * 10
        r1 = d.submit(dict(echo(4), callback_url=self.rx.url("/hooks/gone")))
        r2 = d.submit(dict(echo(5), callback_url=self.rx.url("/hooks/down")))
        j1 = self.wait_callback(d, r1.body["id"], "failed")
        self.assertEqual((j1["callback"]["attempts"], j1["callback"]["last_status"]), (1, 404))
        self.assertIn("404", j1["callback"]["last_error"])
        j2 = self.wait_callback(d, r2.body["id"], "failed")
        self.assertEqual((j2["callback"]["attempts"], j2["callback"]["last_status"]), (3, 500))
        time.sleep(0.6)
        self.assertEqual(len(self.rx.posts("/hooks/gone")), 1)
        self.assertEqual(len(self.rx.posts("/hooks/down")), 3)
        self.assertEqual(d.metric("edgecd_callback_attempts_total", {"outcome": "failed"}), 2)

    def test_a_3xx_or_4xx_whose_body_breaks_off_fails_for_good(self):
        d = self.daemon()
        for status in (404, 302):
            path = "/hooks/cut%d" % status
            self.rx.plans[path] = ["cut %d" % status] * 10
            r = d.submit(dict(echo(status), callback_url=self.rx.url(path)))
            self.assertEqual(r.status, 202, r)
            job = self.wait_callback(d, r.body["id"], "failed")
            c = job["callback"]
            self.assertEqual((c["attempts"], c["last_status"]), (1, status), c)
            self.assertIn("answered %d" % status, c["last_error"])
            time.sleep(0.5)
            self.assertEqual(len(self.rx.posts(path)), 1)

    def test_a_2xx_whose_headers_break_off_is_no_answer(self):
        # The status line alone was taken as the receiver's yes: the job
        # was "delivered" though its answer broke off in the headers.
        d = self.daemon(max_attempts=2)
        path = "/hooks/headcut"
        self.rx.plans[path] = ["headcut 200"]
        r = d.submit(dict(echo(7), callback_url=self.rx.url(path)))
        self.assertEqual(r.status, 202, r)
        job = self.wait_callback(d, r.body["id"], "delivered")
        c = job["callback"]
        self.assertEqual((c["attempts"], c["last_status"]), (2, 200), c)
        self.assertEqual(len(self.rx.posts(path)), 2)
        self.assertTrue(d.wait_log(r"callback attempt 1 failed \(the answer broke off in its headers, after "
                                   r"HTTP 200: the receiver closed the connection\)"), "the broken-off answer was not said")

    def test_answers_match_the_openapi_document(self):
        # The job object's callback member and the submission's
        # callback_url, checked against GET /v1/openapi.json's document.
        d = self.daemon()
        spec = test_openapi.Spec(json.loads(test_openapi.load_doc()))
        self.rx.plans["/hooks/no"] = [410]
        body = dict(echo(30), callback_url=self.rx.url("/hooks/oa"))
        r = d.submit(body)
        spec.check(self, "POST", "/v1/jobs", r, request=body)
        ok = r.body["id"]
        r = d.submit(dict(echo(31), callback_url=self.rx.url("/hooks/no")), wait="true")
        spec.check(self, "POST", "/v1/jobs?wait=true", r,
                   request=dict(echo(31), callback_url=self.rx.url("/hooks/no")))
        no = r.body["id"]
        self.wait_callback(d, ok, "delivered")
        self.wait_callback(d, no, "failed")
        for jid in (ok, no):
            r = d.req("GET", "/v1/jobs/" + jid)
            spec.check(self, "GET", "/v1/jobs/" + jid, r)
            self.assertIsNotNone(r.body["callback"])
        r = d.req("GET", "/v1/jobs?result=true")
        spec.check(self, "GET", "/v1/jobs?result=true", r)
        r = d.submit(dict(echo(32), callback_url="http://elsewhere.example/"))
        spec.check(self, "POST", "/v1/jobs", r)
        check_error(r, 400, "invalid_request", "/callback_url")
        # And the receiver got the same object (its callback as it was
        # before the attempt).
        _, _, sent = self.rx.wait_posts("/hooks/oa", 1)[0]
        sent = json.loads(sent)
        jsonschema.validate(sent, spec.converted_schema({"$ref": "#/components/schemas/Job"}),
                            resolver=spec.resolver)
        self.assertEqual((sent["callback"]["state"], sent["callback"]["attempts"]), ("pending", 0))

    def test_edgecdctl_callback(self):
        d = self.daemon()
        url = "http://127.0.0.1:%d" % d.port
        r = test_ctl.ctl("submit", "t_echo", "--version", "1.0.0", "-p", "i=40", "--callback",
                         self.rx.url("/hooks/ctl"), "--wait", url=url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"i": 40})
        (_, h, b), = self.rx.wait_posts("/hooks/ctl", 1)
        job_id = h["x-edgecd-job-id"]
        self.wait_callback(d, job_id, "delivered")
        r = test_ctl.ctl("show", job_id, url=url)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^callback:\s+%s$" % re.escape(self.rx.url("/hooks/ctl")))
        self.assertRegex(r.stdout, r"(?m)^delivery:\s+delivered after 1 attempt\(s\)$")
        # Outside the allowlist: refused by the daemon, exit 3 naming the field.
        r = test_ctl.ctl("submit", "t_echo", "--callback", "http://elsewhere.example/", url=url)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("/callback_url", r.stderr)

    def test_never_outside_the_allowlist(self):
        d = self.daemon()
        p = self.rx.port
        bad = [
            "http://127.0.0.1:%d.evil.org/hooks" % p,
            "http://127.0.0.1.evil.org:%d/hooks" % p,
            "http://127.0.0.1:%d@evil.org/hooks" % p,
            "http://user:pw@127.0.0.1:%d/hooks" % p,
            "http://127.0.0.1:%d/hooksmith" % p,
            "http://127.0.0.1:%d/hook" % p,
            "http://127.0.0.1:%d/" % p,
            "http://127.0.0.1:%d/hooks/../admin" % p,
            "http://127.0.0.1:%d/hooks/%%2e%%2e/admin" % p,
            "http://127.0.0.1:%d/hooks%%2f..%%2fadmin" % p,
            "http://127.0.0.1:%d/hooks/..;/admin" % p,
            "http://127.0.0.1:%d/hooks/%%2e%%2e;/admin" % p,
            "http://127.0.0.1:%d/hooks/..%%3b/admin" % p,
            "http://127.0.0.1:%d/hooks/..%%3B/admin" % p,
            "http://127.0.0.1:%d/hooks/.;/x" % p,
            "http://127.0.0.1:%d/hooks/%%252e%%252e/admin" % p,
            "http://127.0.0.1:%d/hooks\\..\\admin" % p,
            "http://127.0.0.1:%d/hooks#frag" % p,
            "http://127.0.0.1:%d/hooks/a b" % p,
            "https://127.0.0.1:%d/hooks" % p,
            "http://127.0.0.1:%d/hooks" % (p + 1 if p < 65535 else p - 1),
            "http://127.0.0.1/hooks",
            "http://localhost:%d/hooks" % p,
            "ftp://127.0.0.1:%d/hooks" % p,
            "file:///etc/passwd",
            "//127.0.0.1:%d/hooks" % p,
            "",
            "http://127.0.0.1:%d/hooks/" % p + "a" * 3000,
            "http://127.0.0.1:%d/hooks/\u00e9" % p,
        ]
        for url in bad:
            r = d.submit(dict(echo(6), callback_url=url))
            check_error(r, 400, "invalid_request", "/callback_url")
        for v in (7, True, ["http://x"], {"url": "x"}):
            r = d.submit(dict(echo(6), callback_url=v))
            check_error(r, 400, "invalid_request", "/callback_url")
        # Also in a batch, item by item.
        r = d.req("POST", "/v1/jobs/batch", {"jobs": [dict(echo(7), callback_url=bad[0]), echo(8)]})
        self.assertIn(r.status, (200, 207), r)
        self.assertEqual(self.rx.got, [])
        # What matches, in other spellings: scheme and host case, the
        # path under the prefix, a query.
        ok = ["HTTP://127.0.0.1:%d/hooks" % p, "http://127.0.0.1:%d/hooks/x/y?z=1" % p]
        ids = []
        for url in ok:
            r = d.submit(dict(echo(9), callback_url=url))
            self.assertEqual(r.status, 202, "%s: %s" % (url, r))
            ids.append(r.body["id"])
        for i in ids:
            self.wait_callback(d, i, "delivered")
        self.assertEqual(sorted(g[0] for g in self.rx.got), ["/hooks", "/hooks/x/y?z=1"])

    def test_off_without_allowlist(self):
        d = self.daemon(allow=[])
        r = d.submit(dict(echo(1), callback_url=self.rx.url("/hooks")))
        e = check_error(r, 400, "invalid_request", "/callback_url")
        self.assertIn("callbacks.allow", e["message"])
        # null is no callback.
        r = d.submit(dict(echo(1), callback_url=None))
        self.assertEqual(r.status, 202, r)
        # Off, the daemon does not carry libcurl (and its libraries).
        self.assertNotIn("libcurl", self.mapped(d))

    def mapped(self, d):
        with open("/proc/%d/maps" % d.proc.pid) as f:
            return f.read()

    def test_libcurl_loaded_when_on(self):
        d = self.daemon()
        self.assertIn("libcurl.so.4", self.mapped(d))

    def test_no_redirects(self):
        d = self.daemon()
        self.rx.plans["/hooks/moved"] = [307]
        r = d.submit(dict(echo(1), callback_url=self.rx.url("/hooks/moved")))
        job = self.wait_callback(d, r.body["id"], "failed")
        self.assertEqual(job["callback"]["last_status"], 307)
        self.assertIn("redirect", job["callback"]["last_error"])
        self.assertEqual([g[0] for g in self.rx.got], ["/hooks/moved"])

    def test_dead_receiver_does_not_delay_others(self):
        # A receiver that takes connections and never answers.
        with dead_receivers(1) as (dead,):
            dport = dead.getsockname()[1]
            d = self.daemon(allow=[self.rx.url("/hooks"), "http://127.0.0.1:%d/" % dport],
                            timeout_seconds=600, concurrency=2)
            stuck = [d.submit(dict(echo(10), callback_url="http://127.0.0.1:%d/x" % dport)) for _ in range(3)]
            for r in stuck:
                self.assertEqual(r.status, 202, r)
            for r in stuck:
                d.wait_final(r.body["id"])
            # The dead receiver holds its share of the delivery slots
            # (one of two) for up to timeout_seconds; a new job still runs
            # and answers: a run never waits for a callback.
            job = d.run_job(dict(echo(11)))
            self.assertEqual(job["result"], {"i": 11})
            for r in stuck:
                c = d.get_job(r.body["id"])["callback"]
                self.assertEqual((c["state"], c["attempts"]), ("pending", 0), c)

    def test_dead_receiver_does_not_delay_other_callbacks(self):
        # Two delivery slots, two callbacks to a receiver that accepts and
        # never answers (each could hold a slot for timeout_seconds), then
        # one to a healthy receiver: it goes at once, in the slot the dead
        # receiver may not take.
        with dead_receivers(1) as (dead,):
            dport = dead.getsockname()[1]
            d = self.daemon(allow=[self.rx.url("/hooks"), "http://127.0.0.1:%d/" % dport],
                            timeout_seconds=600, concurrency=2)
            stuck = [d.submit(dict(echo(12), callback_url="http://127.0.0.1:%d/x" % dport)) for _ in range(2)]
            for r in stuck:
                self.assertEqual(r.status, 202, r)
                d.wait_final(r.body["id"])
            r = d.submit(dict(echo(13), callback_url=self.rx.url("/hooks/live")), wait="true")
            self.assertEqual(r.status, 200, r)
            self.rx.wait_posts("/hooks/live", 1)
            self.wait_callback(d, r.body["id"], "delivered")
            for s in stuck:
                c = d.get_job(s.body["id"])["callback"]
                self.assertEqual((c["state"], c["attempts"]), ("pending", 0), "the dead ones wait: %s" % c)
            # One of them in flight, the other held back by the cap.
            self.assertEqual(d.metric("edgecd_callbacks_in_flight"), 1)
            # A stop does not wait for them (they stay pending on disk).
            rc, _ = d.terminate()
            self.assertEqual(rc, 0)

    def test_two_dead_receivers_do_not_hold_every_slot(self):
        # Four delivery slots, two receivers that accept and never answer,
        # three callbacks each: at half the slots each they held all four
        # for timeout_seconds, and a healthy receiver waited that long.
        # The last free slot is kept from a receiver with one in flight.
        with dead_receivers(2) as deads:
            ports = [s.getsockname()[1] for s in deads]
            d = self.daemon(allow=[self.rx.url("/hooks")] + ["http://127.0.0.1:%d/" % p for p in ports],
                            timeout_seconds=600, concurrency=4)
            stuck = [d.submit(dict(echo(20 + i), callback_url="http://127.0.0.1:%d/x" % p))
                     for p in ports for i in range(3)]
            for r in stuck:
                self.assertEqual(r.status, 202, r)
            for r in stuck:
                d.wait_final(r.body["id"])
            deadline = time.monotonic() + 10 * slow_factor()
            while d.metric("edgecd_callbacks_in_flight") < 3:
                self.assertLess(time.monotonic(), deadline, "the dead receivers' POSTs did not start")
                time.sleep(0.05)
            r = d.submit(dict(echo(29), callback_url=self.rx.url("/hooks/live")), wait="true")
            self.assertEqual(r.status, 200, r)
            self.rx.wait_posts("/hooks/live", 1, timeout=10)
            self.wait_callback(d, r.body["id"], "delivered")
            self.assertEqual(d.metric("edgecd_callbacks_in_flight"), 3)
            rc, _ = d.terminate()
            self.assertEqual(rc, 0)

    def test_four_dead_receivers_do_not_hold_every_slot(self):
        # Four delivery slots, four receivers that accept and never answer,
        # one slot each: they held all four for timeout_seconds, round
        # after round, and a healthy receiver waited.  Once their first
        # attempts time out they are unanswering, and those share three
        # slots at most: the fourth is for the healthy one.
        with dead_receivers(4) as deads:
            urls = ["http://127.0.0.1:%d/x" % s.getsockname()[1] for s in deads]
            # Long enough that the healthy callback's wait below is
            # clearly shorter; the backoff keeps retries out of the test.
            timeout = round(5 * slow_factor())
            d = self.daemon(allow=[self.rx.url("/hooks")] + urls, timeout_seconds=timeout, concurrency=4,
                            backoff_ms=600000, max_backoff_ms=600000)
            # One callback each first: every dead receiver has an attempt
            # in the first round (with all at once, one could take two
            # slots and another none, and stay unknown, not unanswering).
            first = [d.submit(dict(echo(30 + i), callback_url=u)) for i, u in enumerate(urls)]
            for r in first:
                self.assertEqual(r.status, 202, r)
                d.wait_final(r.body["id"])
            deadline = time.monotonic() + 10 * slow_factor()
            while d.metric("edgecd_callbacks_in_flight") < 4:
                self.assertLess(time.monotonic(), deadline, "the dead receivers' first POSTs did not start")
                time.sleep(0.05)
            more = [d.submit(dict(echo(40 + 4 * i + j), callback_url=u))
                    for i in range(2) for j, u in enumerate(urls)]
            for r in more:
                self.assertEqual(r.status, 202, r)
                d.wait_final(r.body["id"])
            stuck = first + more
            # The first round times out: all four are unanswering, and
            # their next callbacks start.
            deadline = time.monotonic() + timeout + 10 * slow_factor()
            while any(d.get_job(r.body["id"])["callback"]["attempts"] < 1 for r in first):
                self.assertLess(time.monotonic(), deadline, "the first attempts did not time out")
                time.sleep(0.05)
            while d.metric("edgecd_callbacks_in_flight") < 3:
                self.assertLess(time.monotonic(), deadline, "the dead receivers' retries did not start")
                time.sleep(0.05)
            r = d.submit(dict(echo(49), callback_url=self.rx.url("/hooks/live")), wait="true")
            self.assertEqual(r.status, 200, r)
            self.rx.wait_posts("/hooks/live", 1, timeout=2)         # times slow_factor()
            self.wait_callback(d, r.body["id"], "delivered")
            # ...while the dead ones' second round is still in flight.
            self.assertEqual(d.metric("edgecd_callbacks_in_flight"), 3)
            attempts = [d.get_job(x.body["id"])["callback"]["attempts"] for x in stuck]
            self.assertEqual(sum(attempts), 4, attempts)
            rc, _ = d.terminate()
            self.assertEqual(rc, 0)

    def test_a_receiver_that_missed_once_is_not_queued_behind_a_dead_ones_backlog(self):
        # Two slots: one dead receiver with a backlog holds the unanswering
        # share (one slot).  A live receiver whose one attempt broke off
        # (no whole answer: unanswering) must get its retry into the other
        # slot, which is free; it was kept from it and queued behind every
        # row of the dead receiver's due before its retry, timeout_seconds
        # each, while that slot sat idle.
        with dead_receivers(1) as (dead,):
            durl = "http://127.0.0.1:%d/x" % dead.getsockname()[1]
            timeout = round(5 * slow_factor())
            d = self.daemon(allow=[self.rx.url("/hooks"), durl], timeout_seconds=timeout, concurrency=2,
                            backoff_ms=100, max_backoff_ms=100)
            backlog = [d.submit(dict(echo(60 + i), callback_url=durl)) for i in range(4)]
            for r in backlog:
                self.assertEqual(r.status, 202, r)
                d.wait_final(r.body["id"])
            # The dead receiver's first attempt times out: it is unanswering,
            # and its next callback holds its share (the one slot).
            deadline = time.monotonic() + timeout + 10 * slow_factor()
            while sum(d.get_job(r.body["id"])["callback"]["attempts"] for r in backlog) < 1:
                self.assertLess(time.monotonic(), deadline, "the dead receiver's first attempt did not time out")
                time.sleep(0.05)
            while d.metric("edgecd_callbacks_in_flight") < 1:
                self.assertLess(time.monotonic(), deadline, "the dead receiver's next attempt did not start")
                time.sleep(0.05)
            self.rx.plans["/hooks/blip"] = ["headcut 200"]
            r = d.submit(dict(echo(69), callback_url=self.rx.url("/hooks/blip")), wait="true")
            self.assertEqual(r.status, 200, r)
            self.rx.wait_posts("/hooks/blip", 1, timeout=2)          # times slow_factor()
            # Its retry is due 100 ms later (at most), the other slot is free.
            self.rx.wait_posts("/hooks/blip", 2, timeout=2)          # times slow_factor()
            self.wait_callback(d, r.body["id"], "delivered", timeout=2)
            rc, _ = d.terminate()
            self.assertEqual(rc, 0)

    def test_dead_receivers_backlog_does_not_delay_others(self):
        # Forty callbacks to a receiver that accepts and never answers: one
        # in flight, the rest held back by its cap, more of them than one
        # look at the queue reads page by page.  Then one to a healthy
        # receiver, whose job ended last: it goes at once all the same.
        with dead_receivers(1) as (dead,):
            dport = dead.getsockname()[1]
            d = self.daemon(allow=[self.rx.url("/hooks"), "http://127.0.0.1:%d/" % dport],
                            timeout_seconds=600, concurrency=2)
            stuck = [d.submit(dict(echo(i), callback_url="http://127.0.0.1:%d/x" % dport)) for i in range(40)]
            for r in stuck:
                self.assertEqual(r.status, 202, r)
            for r in stuck:
                d.wait_final(r.body["id"])
            r = d.submit(dict(echo(99), callback_url=self.rx.url("/hooks/live")), wait="true")
            self.assertEqual(r.status, 200, r)
            self.rx.wait_posts("/hooks/live", 1, timeout=10)
            self.wait_callback(d, r.body["id"], "delivered")
            self.assertEqual(d.metric("edgecd_callbacks_in_flight"), 1)
            pending = [d.get_job(s.body["id"])["callback"] for s in stuck]
            self.assertEqual({(c["state"], c["attempts"]) for c in pending}, {("pending", 0)})
            rc, _ = d.terminate()
            self.assertEqual(rc, 0)

    def test_a_dead_receivers_backlog_is_capped(self):
        # A job whose callback is pending is never pruned: a receiver that
        # never answers grew the store without end.  At max_pending
        # callbacks pending to one receiver (queued, running or ended),
        # a submit with a callback to it is 429; others go on, and once
        # its callbacks fail it is taken again.
        with dead_receivers(1) as (dead,):
            durl = "http://127.0.0.1:%d/x" % dead.getsockname()[1]
            d = self.daemon(allow=[self.rx.url("/hooks"), durl], timeout_seconds=600, max_attempts=1,
                            max_pending=3)
            stuck = [d.submit(dict(echo(i), callback_url=durl)) for i in range(3)]
            for r in stuck:
                self.assertEqual(r.status, 202, r)
            r = d.submit(dict(echo(3), callback_url=durl))
            e = check_error(r, 429, "callback_backlog")
            self.assertEqual(e["field"], "/callback_url", r)
            self.assertIn("127.0.0.1:%d" % dead.getsockname()[1], e["message"], r)
            self.assertIn("callbacks.max_pending", e["message"], r)
            self.assertTrue(r.headers.get("Retry-After"), r)
            # The same receiver spelled another way is the same receiver.
            r = d.submit(dict(echo(4), callback_url=durl + "/deeper?again=1"))
            check_error(r, 429, "callback_backlog")
            # A batch: that item is refused, the rest accepted.
            r = d.req("POST", "/v1/jobs/batch", {"jobs": [dict(echo(5), callback_url=durl),
                                                          dict(echo(6), callback_url=self.rx.url("/hooks/b")),
                                                          echo(7)]})
            self.assertEqual(r.status, 200, r)
            items = r.body["jobs"]
            self.assertEqual([x["status"] for x in items], [429, 202, 202], r)
            self.assertEqual(items[0]["error"]["code"], "callback_backlog", r)
            self.assertEqual(items[0]["error"]["field"], "/jobs/0/callback_url", r)
            self.assertRegex(r.headers.get("Retry-After") or "", r"^\d+$")
            # Other receivers and jobs without a callback go on.
            r = d.submit(dict(echo(8), callback_url=self.rx.url("/hooks/live")), wait="true")
            self.assertEqual(r.status, 200, r)
            self.wait_callback(d, r.body["id"], "delivered")
            self.assertEqual(d.metric("edgecd_jobs_rejected_total", {"reason": "callback_backlog"}), 3)
            # The receiver goes away: its callbacks fail (one attempt
            # each), and it is taken again.
            dead.close()
            for s in stuck:
                self.wait_callback(d, s.body["id"], "failed")
            r = d.submit(dict(echo(9), callback_url=durl))
            self.assertEqual(r.status, 202, r)
            rc, _ = d.terminate()
            self.assertEqual(rc, 0)

    def test_a_batch_stops_at_the_cap_by_its_own_items(self):
        # A batch's items are not in the store before it is committed:
        # counted there alone, every item to a receiver under its cap was
        # accepted (20 of 20 with max_pending 3).  Its own items taken
        # before count: 2 pending, 1 more is taken, the rest 429; other
        # receivers' items are not held back by them, and an item refused
        # for another reason does not count.
        with dead_receivers(1) as (dead,):
            durl = "http://127.0.0.1:%d/x" % dead.getsockname()[1]
            d = self.daemon(allow=[self.rx.url("/hooks"), durl], timeout_seconds=600, max_attempts=1,
                            max_pending=3)
            for i in range(2):
                r = d.submit(dict(echo(i), callback_url=durl))
                self.assertEqual(r.status, 202, r)
            bad = dict(echo(2), callback_url=durl, priority="urgent")
            jobs = [bad] + [dict(echo(3 + i), callback_url=durl) for i in range(20)]
            jobs.insert(5, dict(echo(40), callback_url=self.rx.url("/hooks/b")))
            r = d.req("POST", "/v1/jobs/batch", {"jobs": jobs})
            self.assertEqual(r.status, 200, r)
            got = [x["status"] for x in r.body["jobs"]]
            self.assertEqual(got, [400, 202] + [429] * 3 + [202] + [429] * 16, r)
            self.assertEqual({x["error"]["code"] for x in r.body["jobs"] if x["status"] == 429},
                             {"callback_backlog"}, r)
            self.assertEqual(d.metric("edgecd_jobs_rejected_total", {"reason": "callback_backlog"}), 19)
            r = d.submit(dict(echo(99), callback_url=durl))
            check_error(r, 429, "callback_backlog")
            rc, _ = d.terminate()
            self.assertEqual(rc, 0)

    def test_dead_receivers_long_backlog_costs_little_cpu(self):
        # 100,000 callbacks pending to a receiver that accepts and never
        # answers (one in flight, at its cap).  A look at the queue passes
        # over their index entries (~10-20 ms here): jobs ending with
        # callbacks to that receiver do not look (theirs cannot start),
        # and those to a live receiver look at most a tenth of the time.
        with dead_receivers(1) as (dead,):
            durl = "http://127.0.0.1:%d/x" % dead.getsockname()[1]
            d = self.daemon(allow=[self.rx.url("/hooks"), durl], timeout_seconds=600, concurrency=2,
                            max_pending=200000)
            r = d.submit(dict(echo(0), callback_url=durl))
            self.assertEqual(r.status, 202, r)
            d.wait_final(r.body["id"])
            rc, _ = d.terminate()
            self.assertEqual(rc, 0)
            db = sqlite3.connect(d.db_path)
            db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
                       "INSERT INTO jobs (id, algorithm, version, status, priority, timeout_seconds, created_ms, "
                       "started_ms, finished_ms, callback_url, cb_delivery, cb_state, cb_attempts, cb_next_ms, "
                       "cb_dest) "
                       "SELECT printf('%08x-0000-4000-8000-%012x', i, i), algorithm, version, status, priority, "
                       "timeout_seconds, created_ms, started_ms, finished_ms - i, callback_url, cb_delivery || i, "
                       "0, 0, 0, cb_dest FROM jobs, n WHERE id = ?", (r.body["id"],))
            db.commit()
            db.close()
            d.restart()
            deadline = time.monotonic() + 10 * slow_factor()
            while d.metric("edgecd_callbacks_in_flight") != 1:
                self.assertLess(time.monotonic(), deadline, "no attempt in flight to the dead receiver")
                time.sleep(0.05)

            def run(url, n):
                c0, t0 = thread_cpu(d.proc.pid, "edgecd-callback"), time.monotonic()
                for i in range(n):
                    x = d.submit(dict(echo(i), callback_url=url), wait="true")
                    self.assertEqual(x.status, 200, x)
                return thread_cpu(d.proc.pid, "edgecd-callback") - c0, time.monotonic() - t0

            cpu, _ = run(durl, 30)
            self.assertLess(cpu / 30, 0.003, "CPU per job ending with a callback to the capped receiver")
            cpu, secs = run(self.rx.url("/hooks/live"), 30)
            self.rx.wait_posts("/hooks/live", 30, timeout=20)
            self.assertLess(cpu / secs, 0.25, "share of a CPU for looks past the dead receiver's backlog")
            rc, _ = d.terminate()
            self.assertEqual(rc, 0)

    def test_slow_name_lookup_blocks_nothing(self):
        # A name whose lookup hangs (an LD_PRELOAD shim makes getaddrinfo
        # of slowdns.test sleep 60 s): its attempt times out on
        # connect_timeout_seconds, another job's callback goes meanwhile,
        # and SIGTERM stops the daemon without waiting for the lookup.
        env = harness.preload_shim("slowdns_shim", self.tmp)
        env["SLOWDNS_SECONDS"] = "60"
        d = self.daemon(allow=[self.rx.url("/hooks"), "http://slowdns.test:9/"], env=env,
                        connect_timeout_seconds=1, backoff_ms=100, max_backoff_ms=100, max_attempts=100)
        slow = d.submit(dict(echo(14), callback_url="http://slowdns.test:9/x"))
        self.assertEqual(slow.status, 202, slow)
        # Its first attempt ends (the lookup left behind) and is recorded:
        # the delivery thread did not wait for the lookup.
        deadline = time.monotonic() + 20 * slow_factor()
        while True:
            c = d.get_job(slow.body["id"])["callback"]
            if c["attempts"] >= 1:
                break
            self.assertLess(time.monotonic(), deadline, "the slow lookup's attempt never ended: %s" % c)
            time.sleep(0.1)
        self.assertEqual(c["state"], "pending", c)
        live = d.submit(dict(echo(15), callback_url=self.rx.url("/hooks/live")))
        self.assertEqual(live.status, 202, live)
        self.rx.wait_posts("/hooks/live", 1, timeout=15)
        self.wait_callback(d, live.body["id"], "delivered", timeout=15)
        # A lookup is in flight again (the retries go on); the stop does
        # not wait for it (the shim holds it for 60 s).
        rc, secs = d.terminate(timeout=30)
        self.assertEqual(rc, 0)
        self.assertLess(secs, 20, "the stop waited for the name lookup")

    def test_endless_2xx_body(self):
        # 200, then a body that never ends: delivered, once; the daemon
        # stops reading after a few KiB.
        d = self.daemon(timeout_seconds=3)
        self.rx.plans["/hooks/stream"] = ["stream"] * 10
        r = d.submit(dict(echo(16), callback_url=self.rx.url("/hooks/stream")))
        self.assertEqual(r.status, 202, r)
        self.rx.wait_posts("/hooks/stream", 1)
        job = self.wait_callback(d, r.body["id"], "delivered")
        c = job["callback"]
        self.assertEqual((c["attempts"], c["last_status"], c["last_error"]), (1, 200, None))
        time.sleep(1.0)
        self.assertEqual(len(self.rx.posts("/hooks/stream")), 1)
        self.assertEqual(d.metric("edgecd_callback_attempts_total", {"outcome": "delivered"}), 1)
        self.assertEqual(d.metric("edgecd_callback_attempts_total", {"outcome": "retried"}), 0)

    def test_secret_reloaded_on_sighup(self):
        """The secret rotated: SIGHUP reads the file again and the next
        callback is signed with the new one; a file that fails the checks
        at a reload leaves the one in force."""
        d = self.daemon()
        r = d.submit(dict(echo(21), callback_url=self.rx.url("/hooks/one")))
        (_, h, b), = self.rx.wait_posts("/hooks/one", 1)
        check_signature(self, h, b)

        rotated = b"the-rotated-callback-secret-42424242"
        with open(self.secret_path, "wb") as f:
            f.write(rotated + b"\n")
        os.kill(d.proc.pid, signal.SIGHUP)
        self.assertTrue(d.wait_log(r"callbacks: secret reloaded from"), d.log_tail())
        r = d.submit(dict(echo(22), callback_url=self.rx.url("/hooks/two")))
        (_, h, b), = self.rx.wait_posts("/hooks/two", 1)
        check_signature(self, h, b, rotated)

        # Open to others: refused at the reload, the rotated one stays.
        with open(self.secret_path, "wb") as f:
            f.write(b"a-secret-anybody-could-read-0000000\n")
        os.chmod(self.secret_path, 0o644)
        os.kill(d.proc.pid, signal.SIGHUP)
        self.assertTrue(d.wait_log(r"SIGHUP: the callbacks' secret not reloaded, the old one stays: "
                                   r"callbacks.secret_file: .* open to group or others"), d.log_tail())
        r = d.submit(dict(echo(23), callback_url=self.rx.url("/hooks/three")))
        (_, h, b), = self.rx.wait_posts("/hooks/three", 1)
        check_signature(self, h, b, rotated)
        self.wait_callback(d, r.body["id"], "delivered")

    def test_retry_after(self):
        # 503 with Retry-After: 1 waits a second (the backoff would be
        # 100 ms); Retry-After: 3600 is capped by max_backoff_ms; the date
        # form (two seconds ahead, to the second) waits until that date.
        d = self.daemon(backoff_ms=100, max_backoff_ms=2000)
        self.rx.plans["/hooks/later"] = [(503, {"Retry-After": "1"})]
        self.rx.plans["/hooks/capped"] = [(429, {"Retry-After": "3600"})]
        r1 = d.submit(dict(echo(17), callback_url=self.rx.url("/hooks/later")))
        r2 = d.submit(dict(echo(18), callback_url=self.rx.url("/hooks/capped")))
        self.rx.wait_posts("/hooks/later", 2)
        self.rx.wait_posts("/hooks/capped", 2)
        self.wait_callback(d, r1.body["id"], "delivered")
        self.wait_callback(d, r2.body["id"], "delivered")
        # Made as it is sent: 2 to 3 s ahead (to the second), past the cap.
        self.rx.plans["/hooks/dated"] = [(503, {"Retry-After": lambda: email.utils.formatdate(
            time.time() + 3, usegmt=True)})]
        r3 = d.submit(dict(echo(20), callback_url=self.rx.url("/hooks/dated")))
        self.rx.wait_posts("/hooks/dated", 2)
        self.wait_callback(d, r3.body["id"], "delivered")
        t = self.rx.post_times("/hooks/dated")
        self.assertGreaterEqual(t[1] - t[0], 0.9, "Retry-After as a date not honoured")
        t = self.rx.post_times("/hooks/later")
        self.assertGreaterEqual(t[1] - t[0], 0.9, "Retry-After: 1 not honoured")
        t = self.rx.post_times("/hooks/capped")
        self.assertGreaterEqual(t[1] - t[0], 0.9, "max_backoff_ms 2000 with Retry-After: 3600")

    def test_pending_callback_outlives_retention(self):
        # Retention (max_records 1, retention_seconds 1, a sweep a second)
        # takes other final jobs, not one whose callback is still pending.
        d = self.daemon(extra={"store": {"retention_seconds": 1, "max_records": 1}, "sweep_interval_seconds": 1},
                        backoff_ms=300, max_backoff_ms=300, max_attempts=100)
        self.rx.plans["/hooks/keep"] = [500] * 1000
        r = d.submit(dict(echo(19), callback_url=self.rx.url("/hooks/keep")))
        self.assertEqual(r.status, 202, r)
        kept = r.body["id"]
        others = [d.run_job(echo(20 + i)) for i in range(2)]
        deadline = time.monotonic() + 20 * slow_factor()
        while any(d.req("GET", "/v1/jobs/" + j["id"]).status != 404 for j in others):
            self.assertLess(time.monotonic(), deadline, "retention deleted nothing")
            time.sleep(0.2)
        n = len(self.rx.posts("/hooks/keep"))
        time.sleep(2.5)           # more sweeps
        job = d.get_job(kept)
        self.assertEqual(job["callback"]["state"], "pending", job["callback"])
        self.rx.wait_posts("/hooks/keep", n + 2)
        # Healthy again: delivered, and then retention takes it too.
        self.rx.plans["/hooks/keep"] = []
        self.wait_callback(d, kept, "delivered")
        deadline = time.monotonic() + 20 * slow_factor()
        while d.req("GET", "/v1/jobs/" + kept).status != 404:
            self.assertLess(time.monotonic(), deadline, "a delivered job outlived retention")
            time.sleep(0.2)


class TestCallbacksAcrossRestarts(CallbackBase):
    def pending_after_failure(self, d, path):
        self.rx.plans[path] = [500] * 1000
        r = d.submit(dict(echo(20), callback_url=self.rx.url(path)))
        self.assertEqual(r.status, 202, r)
        job_id = r.body["id"]
        self.rx.wait_posts(path, 1)
        deadline = time.monotonic() + 20 * slow_factor()
        while True:
            c = d.get_job(job_id)["callback"]
            if c["attempts"] >= 1:
                break
            self.assertLess(time.monotonic(), deadline, c)
            time.sleep(0.05)
        self.assertEqual(c["state"], "pending")
        self.assertEqual(c["last_status"], 500)
        return job_id, c["delivery_id"]

    def finish_after_restart(self, d, job_id, delivery, path):
        n = len(self.rx.posts(path))
        self.rx.plans[path] = []      # the receiver is healthy again
        d.restart()
        self.rx.wait_posts(path, n + 1)
        job = self.wait_callback(d, job_id, "delivered")
        self.assertGreaterEqual(job["callback"]["attempts"], 2)
        got = self.rx.posts(path)
        self.assertEqual({h.get("x-edgecd-delivery") for _, h, _ in got}, {delivery})
        _, h, b = got[-1]
        check_signature(self, h, b)
        self.assertEqual(json.loads(b)["id"], job_id)
        time.sleep(0.5)
        self.assertEqual(len(self.rx.posts(path)), len(got), "nothing sent after the delivery")

    @quick
    def test_delivered_after_restart(self):
        d = self.daemon(backoff_ms=200, max_backoff_ms=200, max_attempts=100)
        job_id, delivery = self.pending_after_failure(d, "/hooks/restart")
        rc, _ = d.terminate()
        self.assertEqual(rc, 0)
        self.finish_after_restart(d, job_id, delivery, "/hooks/restart")

    def test_delivered_after_sigkill(self):
        d = self.daemon(backoff_ms=200, max_backoff_ms=200, max_attempts=100)
        job_id, delivery = self.pending_after_failure(d, "/hooks/killed")
        d.kill()
        self.finish_after_restart(d, job_id, delivery, "/hooks/killed")

    def test_job_running_at_sigkill(self):
        # The job itself is interrupted by the crash: it runs again after
        # the restart, and its callback goes once it is final, once.
        d = self.daemon()
        r = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 1}, "timeout_seconds": 30,
                      "callback_url": self.rx.url("/hooks/crashed")})
        self.assertEqual(r.status, 202, r)
        job_id = r.body["id"]
        d.wait_status(job_id, "running")
        d.kill()
        self.assertEqual(self.rx.posts("/hooks/crashed"), [])
        d.restart()
        job = d.wait_final(job_id)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(len(job["attempts"]), 2, job)
        (_, h, b), = self.rx.wait_posts("/hooks/crashed", 1)
        check_signature(self, h, b)
        sent = json.loads(b)
        self.assertEqual((sent["id"], sent["status"], len(sent["attempts"])), (job_id, "succeeded", 2))
        self.wait_callback(d, job_id, "delivered")
        time.sleep(0.5)
        self.assertEqual(len(self.rx.posts("/hooks/crashed")), 1)

    def test_restart_with_narrower_allowlist(self):
        d = self.daemon(backoff_ms=200, max_backoff_ms=200, max_attempts=100)
        job_id, _ = self.pending_after_failure(d, "/hooks/narrowed")
        d.terminate()
        # The operator narrows the allowlist: what waits is not sent.
        n = len(self.rx.posts("/hooks/narrowed"))
        self.rx.plans["/hooks/narrowed"] = []
        d.config["callbacks"]["allow"] = [self.rx.url("/other")]
        self.rewrite_config(d)
        d.restart()
        job = self.wait_callback(d, job_id, "failed")
        self.assertIn("callbacks.allow", job["callback"]["last_error"])
        self.assertEqual(len(self.rx.posts("/hooks/narrowed")), n)
        # No POST: counted apart from the receivers' failures.
        self.assertEqual(d.metric("edgecd_callback_attempts_total", {"outcome": "not_sent"}), 1)
        self.assertEqual(d.metric("edgecd_callback_attempts_total", {"outcome": "failed"}), 0)


    def rewrite_config(self, d):
        with open(d.config_path, "w") as f:
            f.write("\n".join(harness.yaml_dump(d.config)) + "\n")

    def test_restart_with_callbacks_off(self):
        d = self.daemon(backoff_ms=200, max_backoff_ms=200, max_attempts=100)
        job_id, _ = self.pending_after_failure(d, "/hooks/off")
        d.terminate()
        n = len(self.rx.posts("/hooks/off"))
        self.rx.plans["/hooks/off"] = []
        # Callbacks off: what waits fails at the start, and retention may
        # take its job.
        d.config["callbacks"]["allow"] = []
        self.rewrite_config(d)
        d.restart()
        job = self.wait_callback(d, job_id, "failed")
        self.assertIn("callbacks are off", job["callback"]["last_error"])
        self.assertEqual(d.metric("edgecd_callback_attempts_total", {"outcome": "not_sent"}), 1)
        time.sleep(0.5)
        self.assertEqual(len(self.rx.posts("/hooks/off")), n)

    def test_callbacks_off_for_a_job_recovered_from_disk(self):
        # Submitted while callbacks were on, running at a crash; callbacks
        # off at the restart: the job runs again, and its callback fails
        # as it ends instead of staying pending.
        d = self.daemon()
        r = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 1}, "timeout_seconds": 30,
                      "callback_url": self.rx.url("/hooks/offlater")})
        self.assertEqual(r.status, 202, r)
        job_id = r.body["id"]
        d.wait_status(job_id, "running")
        d.kill()
        d.config["callbacks"]["allow"] = []
        self.rewrite_config(d)
        d.restart()
        job = d.wait_final(job_id)
        self.assertEqual(job["status"], "succeeded", job)
        job = self.wait_callback(d, job_id, "failed")
        self.assertIn("callbacks are off", job["callback"]["last_error"])
        self.assertEqual(self.rx.posts("/hooks/offlater"), [])

    def test_restart_with_fewer_attempts_allowed(self):
        d = self.daemon(backoff_ms=200, max_backoff_ms=200, max_attempts=100)
        job_id, _ = self.pending_after_failure(d, "/hooks/fewer")
        d.terminate()
        n = len(self.rx.posts("/hooks/fewer"))
        self.rx.plans["/hooks/fewer"] = []
        d.config["callbacks"]["max_attempts"] = 1
        self.rewrite_config(d)
        d.restart()
        job = self.wait_callback(d, job_id, "failed")
        self.assertIn("callbacks.max_attempts is 1", job["callback"]["last_error"])
        self.assertEqual(d.metric("edgecd_callback_attempts_total", {"outcome": "not_sent"}), 1)
        time.sleep(0.5)
        self.assertEqual(len(self.rx.posts("/hooks/fewer")), n, "no POST past the new max_attempts")


    def test_first_attempt_not_held_behind_a_retry_after_a_clock_step(self):
        # The wall clock was stepped back (NTP correcting an edge box whose
        # clock ran ahead) after job A ended: its end is recorded an hour
        # ahead of now.  Its first attempt is due all the same, and does not
        # wait behind job B's retry, due in 30 s.
        d = self.daemon(backoff_ms=30000, max_backoff_ms=30000, max_attempts=100)
        a = d.submit(dict(echo(1), callback_url=self.rx.url("/hooks/ahead")))
        b = d.submit(dict(echo(2), callback_url=self.rx.url("/hooks/retry")))
        for r in (a, b):
            self.assertEqual(r.status, 202, r)
            self.wait_callback(d, r.body["id"], "delivered")
        rc, _ = d.terminate()
        self.assertEqual(rc, 0)
        now = int(time.time() * 1000)
        db = sqlite3.connect(d.db_path)
        db.execute("UPDATE jobs SET cb_state = 0, cb_attempts = 0, cb_next_ms = 0, finished_ms = ? WHERE id = ?",
                   (now + 3600 * 1000, a.body["id"]))
        db.execute("UPDATE jobs SET cb_state = 0, cb_attempts = 1, cb_next_ms = ? WHERE id = ?",
                   (now + 30 * 1000, b.body["id"]))
        db.commit()
        db.close()
        n_ahead, n_retry = len(self.rx.posts("/hooks/ahead")), len(self.rx.posts("/hooks/retry"))
        d.restart()
        self.rx.wait_posts("/hooks/ahead", n_ahead + 1, timeout=10)
        job = self.wait_callback(d, a.body["id"], "delivered", timeout=10)
        self.assertEqual(job["callback"]["attempts"], 1)
        self.assertEqual(len(self.rx.posts("/hooks/retry")), n_retry, "the retry waits for its time")

class TestCallbackConfig(unittest.TestCase):
    def test_secret_file_checked(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-cbconf-")
        try:
            secret = os.path.join(tmp, "s")
            with open(secret, "wb") as f:
                f.write(SECRET)
            os.chmod(secret, 0o644)
            d = Daemon("cbconf", config={"callbacks": {"allow": ["http://127.0.0.1:9/"], "secret_file": secret}})
            try:
                d.start()
                self.fail("started with a world-readable secret")
            except AssertionError as e:
                self.assertIn("chmod 600", str(e))
            # No secret at all: a config error naming the key.
            d2 = Daemon("cbconf", config={"callbacks": {"allow": ["http://127.0.0.1:9/"]}})
            try:
                d2.start()
                self.fail("started without a secret")
            except AssertionError as e:
                self.assertIn("callbacks.secret_file", str(e))
            # A bad allowlist entry: file, line and key.
            d3 = Daemon("cbconf", config={"callbacks": {"allow": ["http://good.example/", "http://u@x/"],
                                                        "secret_file": secret}})
            try:
                d3.start()
                self.fail("started with a bad allowlist entry")
            except AssertionError as e:
                self.assertIn("callbacks.allow[1]", str(e))
                self.assertIn("user info", str(e))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
