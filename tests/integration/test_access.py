"""API access and the HTTP server under abuse: bearer tokens with scopes,
the refusal to serve a non-local address without them, the unix socket's
mode and group, the header and JSON nesting limits, connection limits per
client, and a slowloris attack (Debian's slowhttptest) during which other
clients' jobs still run."""

import grp
import hashlib
import http.client
import os
import shutil
import signal
import re
import socket
import stat
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import Daemon, check_error, quick

ECHO = {"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": 1}}

TOKENS = {
    "reader": ("reader-token-aaaaaaaaaaaaaaaa", ["read"]),
    "submitter": ("submitter-token-bbbbbbbbbbbbbb", ["submit", "read"]),
    "canceller": ("canceller-token-cccccccccccccc", ["cancel"]),
    "root-ops": ("admin-token-dddddddddddddddddd", ["admin"]),
}


def write_tokens(path, tokens):
    with open(path, "w") as f:
        f.write("# written by tests/integration/test_access.py\ntokens:\n")
        for name, (tok, scopes) in tokens.items():
            f.write("  - name: %s\n    sha256: %s\n    scopes: [%s]\n"
                    % (name, hashlib.sha256(tok.encode()).hexdigest(), ", ".join(scopes)))


def bearer(name, tokens=TOKENS):
    return {"Authorization": "Bearer " + tokens[name][0]}


class AuthCase(unittest.TestCase):

    def daemon(self, config=None, tokens=TOKENS, name="auth"):
        self.tmp = tempfile.mkdtemp(prefix="edgecd-it-auth-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.tokens_path = os.path.join(self.tmp, "tokens.yaml")
        write_tokens(self.tokens_path, tokens)
        cfg = {"auth": {"tokens_file": self.tokens_path}}
        for k, v in (config or {}).items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k] = dict(cfg[k], **v)
            else:
                cfg[k] = v
        d = Daemon(name, config=cfg)
        self.addCleanup(d.stop)
        return d


@quick
class Tokens(AuthCase):

    def test_scopes(self):
        d = self.daemon().start()
        # No token, a wrong one: 401 with a challenge.
        r = d.req("GET", "/v1/jobs")
        check_error(r, 401, "unauthorized")
        self.assertTrue(r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers)
        r = d.req("GET", "/v1/jobs", headers={"Authorization": "Bearer not-a-token-at-all-xxxx"})
        check_error(r, 401, "unauthorized")
        self.assertIn("invalid_token", r.headers.get("WWW-Authenticate", ""))
        r = d.req("GET", "/v1/jobs", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        check_error(r, 401, "unauthorized")
        # A token without the scope: 403 naming it.
        r = d.submit(ECHO, headers=bearer("reader"))
        e = check_error(r, 403, "forbidden")
        self.assertIn("`reader`", e["message"])
        self.assertIn("`submit`", e["message"])
        # The right ones.
        r = d.submit(ECHO, wait="true", headers=bearer("submitter"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["submitted_by"], "submitter", r.body)
        jid = r.body["id"]
        self.assertEqual(d.req("GET", "/v1/jobs/" + jid, headers=bearer("reader")).status, 200)
        self.assertEqual(d.req("GET", "/v1/jobs/%s/logs" % jid, headers=bearer("reader")).status, 200)
        check_error(d.req("DELETE", "/v1/jobs/" + jid, headers=bearer("reader")), 403, "forbidden")
        check_error(d.req("DELETE", "/v1/jobs/" + jid, headers=bearer("canceller")), 409, "conflict")
        check_error(d.req("GET", "/v1/jobs/" + jid, headers=bearer("canceller")), 403, "forbidden")
        # admin may do all; "bearer" in any case, spaces around.
        hdr = {"Authorization": "  bEaReR   " + TOKENS["root-ops"][0] + "  "}
        r = d.submit(ECHO, wait="true", headers=hdr)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["submitted_by"], "root-ops")
        self.assertEqual(d.req("GET", "/v1/algorithms", headers=hdr).status, 200)
        # Open: liveness and readiness.
        self.assertEqual(d.req("GET", "/healthz").status, 200)
        self.assertEqual(d.req("GET", "/readyz").status, 200)
        # /metrics needs read unless the config says otherwise.
        check_error(d.req("GET", "/metrics"), 401, "unauthorized")
        self.assertEqual(d.req("GET", "/metrics", headers=bearer("reader")).status, 200)
        self.assertGreaterEqual(d.metric("edgecd_http_rejected_total", {"reason": "unauthorized"},
                                         headers=bearer("reader")), 4)
        self.assertGreaterEqual(d.metric("edgecd_http_rejected_total", {"reason": "forbidden"},
                                         headers=bearer("reader")), 3)

    def test_idempotency_keys_are_per_token(self):
        d = self.daemon().start()
        key = {"Idempotency-Key": "order-42"}
        mine = d.submit(ECHO, headers=dict(bearer("submitter"), **key))
        self.assertEqual(mine.status, 202, mine)
        # Another client's "order-42" is another job, with this body or another.
        other_body = dict(ECHO, parameters={"n": 2})
        theirs = d.submit(other_body, headers=dict(bearer("root-ops"), **key))
        self.assertEqual(theirs.status, 202, theirs)
        self.assertNotEqual(theirs.body["id"], mine.body["id"])
        self.assertEqual(theirs.body["submitted_by"], "root-ops")
        same = d.submit(ECHO, headers=dict(bearer("root-ops"), **{"Idempotency-Key": "order-43"}))
        self.assertEqual(same.status, 202, same)
        again = d.submit(ECHO, headers=dict(bearer("submitter"), **{"Idempotency-Key": "order-43"}))
        self.assertEqual(again.status, 202, again)
        self.assertNotEqual(again.body["id"], same.body["id"])
        # Each one's own retry is its own job; a changed body is a conflict.
        r = d.submit(ECHO, headers=dict(bearer("submitter"), **key))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("Idempotent-Replayed"), "true")
        self.assertEqual(r.body["id"], mine.body["id"])
        r = d.submit(other_body, headers=dict(bearer("root-ops"), **key))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["id"], theirs.body["id"])
        e = check_error(d.submit(other_body, headers=dict(bearer("submitter"), **key)), 409, "idempotency_conflict")
        self.assertIn("`order-42`", e["message"])
        self.assertIn(mine.body["id"], e["message"])

    def test_refused_before_the_body_is_read(self):
        d = self.daemon().start()
        head = ("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 100000000\r\n\r\n").encode()
        status, hdrs, body, secs = harness.raw_exchange(d.port, head, [b"x" * 65536] * 4)
        self.assertEqual(status, 401, body)

    def test_refusals_keep_the_connection(self):
        """401 and 403 to requests without a body leave a kept-alive
        connection open for the next request."""
        d = self.daemon().start()
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        self.addCleanup(c.close)
        sock = None
        for headers, status in (({}, 401), (bearer("canceller"), 403), (bearer("reader"), 200)):
            c.request("GET", "/v1/jobs", headers=headers)
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, status)
            self.assertFalse(r.will_close, (status, r.getheaders()))
            sock = sock or c.sock
            self.assertIs(c.sock, sock, "a new connection for the request after a %d" % status)

    def test_metrics_public(self):
        d = self.daemon(config={"auth": {"metrics_public": True}}).start()
        self.assertEqual(d.req("GET", "/metrics").status, 200)
        check_error(d.req("GET", "/v1/jobs"), 401, "unauthorized")

    def test_sighup_reloads_tokens(self):
        d = self.daemon().start()
        late = dict(TOKENS, late=("late-token-eeeeeeeeeeeeeeeeee", ["read"]))
        write_tokens(self.tokens_path, late)
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5 * harness.slow_factor()
        while d.req("GET", "/v1/jobs", headers=bearer("late", late)).status != 200:
            self.assertLess(time.monotonic(), deadline, "the new token never worked")
            time.sleep(0.1)
        # A broken file at the next reload: the tokens in force stay.
        with open(self.tokens_path, "w") as f:
            f.write("tokens:\n  - name: x\n    sha256: nothex\n    scopes: [read]\n")
        d.proc.send_signal(signal.SIGHUP)
        # The reload rescans every plugin before it reads the tokens: wait
        # for it to have tried (a fixed 0.5 s could end before on a loaded
        # ASan run, and then looked at the tokens before the reload).
        self.assertTrue(d.wait_log("tokens not reloaded"), d.log_tail(20))
        self.assertEqual(d.req("GET", "/v1/jobs", headers=bearer("late", late)).status, 200)
        self.assertIn("tokens[0].sha256", d.log_text())


class Startup(AuthCase):

    def test_no_auth_on_a_public_address_is_refused(self):
        d = Daemon("public", config={"listen": "0.0.0.0:%d" % harness.free_port()})
        self.addCleanup(d.stop, check=False)
        with self.assertRaises(AssertionError) as cm:
            d.start(timeout=20)
        log = str(cm.exception)   # the message carries the log's tail
        self.assertIn("exited with status 1 during startup", log)
        self.assertIn("refusing to serve", log)
        self.assertIn("auth.tokens_file", log)

    def test_auth_on_a_public_address_serves(self):
        d = self.daemon(config={"listen": "0.0.0.0:%d" % harness.free_port()}, name="public-auth")
        d.port = int(d.config["listen"].rsplit(":", 1)[1])
        d.start()
        r = d.submit(ECHO, wait="true", headers=bearer("submitter"))
        self.assertEqual(r.status, 200, r)

    def test_an_address_not_up_yet_is_served_once_it_comes(self):
        # TEST-NET-1: on no host; put on lo for the second half.
        addr = "192.0.2.77"
        if subprocess.run(["ip", "-4", "-o", "addr", "show", "to", addr], capture_output=True,
                          text=True).stdout.strip():
            self.skipTest("%s is on this host already" % addr)
        port = harness.free_port()
        d = self.daemon(config={"listen": "%s:%d" % (addr, port)}, name="notup")
        d.port, d.host = port, addr
        started = []
        t = threading.Thread(target=lambda: started.append(d.start(timeout=60)))
        t.start()
        try:
            harness.wait_for(lambda: "is not on this host (yet)" in harness.tail(d.log_path), 20,
                             "the warning for an address not up")
            time.sleep(1)
            self.assertIsNone(d.proc.poll(), "the daemon exited: %s" % harness.tail(d.log_path))
            subprocess.run(["ip", "addr", "add", addr + "/32", "dev", "lo"], check=True)
            self.addCleanup(subprocess.run, ["ip", "addr", "del", addr + "/32", "dev", "lo"],
                            capture_output=True)
            t.join(60)
            self.assertTrue(started, "the daemon did not answer once %s came up" % addr)
            r = d.submit(ECHO, wait="true", headers=bearer("submitter"))
            self.assertEqual(r.status, 200, r)
        finally:
            t.join(70)

    def test_broken_tokens_file_names_file_line_key(self):
        d = self.daemon(name="badtokens")
        with open(self.tokens_path, "w") as f:
            f.write("tokens:\n  - name: ok\n    sha256: %s\n    scopes: [read, fly]\n" % ("0" * 64))
        with self.assertRaises(AssertionError) as cm:
            d.start(timeout=20)
        log = str(cm.exception)
        self.assertIn("%s:4:" % self.tokens_path, log)
        self.assertIn("tokens[0].scopes", log)
        self.assertIn("unknown scope `fly`", log)

    def test_hash_token(self):
        r = subprocess.run([harness.OPTIONS["daemon"], "--hash-token"], input="a-fine-long-token-123\n",
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("sha256: " + hashlib.sha256(b"a-fine-long-token-123").hexdigest(), r.stdout)
        # Spaces around the token are not part of it, as a request's
        # `Authorization: Bearer` token is read: `echo "$T "` gives the
        # entry T matches.
        r = subprocess.run([harness.OPTIONS["daemon"], "--hash-token"], input=" a-fine-long-token-123  \n",
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("sha256: " + hashlib.sha256(b"a-fine-long-token-123").hexdigest(), r.stdout)
        for short in ("short\n", "  short" + " " * 12 + "\n"):
            r = subprocess.run([harness.OPTIONS["daemon"], "--hash-token"], input=short,
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2)
            self.assertIn("at least 16 characters", r.stderr)


class UnixSocket(unittest.TestCase):

    def test_mode_and_group(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-unixmode-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "api.sock")
        group = grp.getgrgid(1).gr_name      # "daemon" on Debian: any group but root's
        d = Daemon("unixmode", config={"listen": "unix:" + path,
                                       "http": {"unix_mode": "0640", "unix_group": group}})
        d.unix_path = path
        self.addCleanup(d.stop)
        d.start()
        st = os.stat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        self.assertEqual(st.st_gid, 1)
        self.assertEqual(d.run_job(ECHO)["status"], "succeeded")

    def test_unknown_group_is_a_startup_error(self):
        tmp = tempfile.mkdtemp(prefix="edgecd-it-unixgrp-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "api.sock")
        d = Daemon("unixgrp", config={"listen": "unix:" + path, "http": {"unix_group": "no-such-group-x"}})
        d.unix_path = path
        self.addCleanup(d.stop, check=False)
        with self.assertRaises(AssertionError) as cm:
            d.start(timeout=20)
        self.assertIn("no group `no-such-group-x`", str(cm.exception))


def connect_from(source, port, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def served(s):
    """One keep-alive GET /healthz on s, answered: the server has accepted
    and counted s (several HTTP threads accept in parallel, so connections
    opened together are not counted in the order they were opened)."""
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?i)content-length: *(\d+)", head)
            if m and len(body) >= int(m.group(1)):
                return s
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError("closed before answering: %r" % data)
        data += chunk


def get_from(source, port, path, timeout=10.0):
    """GET path over a connection from the given source address."""
    s = connect_from(source, port, timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return int(data.split(b" ", 2)[1]) if data else None
    finally:
        s.close()


def closed_soon(s, within):
    """Does the server close s (recv gives EOF) within `within` seconds?"""
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


@quick
class Limits(unittest.TestCase):

    def test_header_size_and_json_depth(self):
        d = Daemon("limits", config={"http": {"max_header_bytes": "8KiB", "max_json_depth": 16}})
        self.addCleanup(d.stop)
        d.start()
        r = d.req("GET", "/healthz", headers={"X-Big": "x" * 9000})
        e = check_error(r, 431, "header_too_large")
        self.assertIn("limit of 8192", e["message"])
        self.assertEqual(d.req("GET", "/healthz", headers={"X-Small": "x" * 7000}).status, 200)
        # The query string counts too.
        check_error(d.req("GET", "/v1/jobs?limit=1&pad=" + "x" * 9000), 431, "header_too_large")
        deep = {"algorithm": "t_echo", "version": "1.0.0", "parameters": {"a": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}}
        e = check_error(d.submit(deep), 400, "invalid_json")
        self.assertIn("nesting deeper than 16", e["message"])
        ok = {"algorithm": "t_echo", "version": "1.0.0", "parameters": {"a": [[[[[[[[[[[[[[1]]]]]]]]]]]]]]}}
        self.assertEqual(d.submit(ok, wait="true").status, 200)
        self.assertEqual(d.metric("edgecd_http_rejected_total", {"reason": "header_too_large"}), 2)
        self.assertEqual(d.metric("edgecd_http_rejected_total", {"reason": "json_too_deep"}), 1)

    def test_connections_per_client(self):
        # A long idle timeout: the fifth connection is closed for the limit,
        # not for being idle.
        d = Daemon("conns", config={"http": {"max_connections_per_client": 4, "connection_timeout_seconds": 30}})
        self.addCleanup(d.stop)
        d.start()
        # From an address of their own: the harness's own connections from
        # 127.0.0.1 (start-up checks) may still be counted for a moment.
        held = [served(connect_from("127.0.0.3", d.port)) for _ in range(4)]
        self.addCleanup(lambda: [s.close() for s in held])
        extra = connect_from("127.0.0.3", d.port)
        # Closed as the daemon accepts it: 1 s, unscaled, was tight for an
        # ASan daemon on a loaded host; 15 s is still half the idle timeout.
        self.assertTrue(closed_soon(extra, 5 * harness.slow_factor()), "a fifth connection from one client was kept")
        extra.close()
        # Another client is served meanwhile.
        self.assertEqual(get_from("127.0.0.2", d.port, "/healthz"), 200)
        self.assertTrue(all(not closed_soon(s, 0.2) for s in held), "the four held connections were closed")

    def test_idle_timeout(self):
        d = Daemon("idle", config={"http": {"max_connections_per_client": 4, "connection_timeout_seconds": 2}})
        self.addCleanup(d.stop)
        d.start()
        held = [connect_from("127.0.0.1", d.port) for _ in range(4)]
        self.addCleanup(lambda: [s.close() for s in held])
        # Idle connections are closed after the timeout...
        self.assertTrue(all(closed_soon(s, 6) for s in held), "idle connections were not closed")
        # ...and the client may connect again (once the server has counted
        # them out, which may trail the close by a moment).
        deadline = time.monotonic() + 5
        while True:
            try:
                self.assertEqual(get_from("127.0.0.1", d.port, "/healthz"), 200)
                break
            except (ConnectionResetError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


class Slowloris(unittest.TestCase):
    """1,000 connections sending their headers slowly from one address
    (slowhttptest -H): jobs from another address still run promptly."""

    def test_jobs_run_during_slowloris(self):
        if not shutil.which("slowhttptest"):
            self.fail("slowhttptest is missing: scripts/install-deps.sh installs it")
        d = Daemon("slowloris", config={"workers": 2})
        self.addCleanup(d.stop)
        d.start()
        attack = subprocess.Popen(["slowhttptest", "-H", "-c", "1000", "-r", "250", "-i", "5", "-x", "16",
                                   "-l", "40", "-p", "3", "-u", "http://127.0.0.1:%d/healthz" % d.port],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.addCleanup(lambda: attack.poll() is None and (attack.kill(), attack.wait(10)))
        time.sleep(5)          # the attack is at full strength
        self.assertIsNone(attack.poll(), "slowhttptest ended early")
        for i in range(5):
            t0 = time.monotonic()
            c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10, source_address=("127.0.0.2", 0))
            body = '{"algorithm": "t_echo", "version": "1.0.0", "parameters": {"i": %d}}' % i
            c.request("POST", "/v1/jobs?wait=true", body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            c.close()
            self.assertEqual(r.status, 200, data)
            self.assertIn(b'"status":"succeeded"', data)
            self.assertLess(time.monotonic() - t0, 10, "job %d took %.1f s under attack" % (i, time.monotonic() - t0))
        self.assertEqual(get_from("127.0.0.2", d.port, "/healthz"), 200)
        attack.kill()
        attack.wait(10)
