"""Large inputs: a submission over max_body_bytes is spooled to an unnamed
file as it arrives and checked as a stream (never a tree of the whole), up
to what the plugin's max_input_bytes allows (at most the config's
input_ceiling_bytes); the result likewise up to its max_result_bytes.  The
daemon's peak memory stays well under what the parameters would cost as a
tree, the spool leaves nothing behind, and every refusal is clear: over the
plugin's limit, over the ceiling, malformed deep inside, a schema miss far
into an array, a plugin asking more than the ceiling."""

import concurrent.futures
import json
import os
import shutil
import socket
import tempfile
import time
import unittest

import harness
from harness import Daemon

CONFIG = {"max_body_bytes": "64KiB", "input_ceiling_bytes": "48MiB", "result_ceiling_bytes": "48MiB",
          "http": {"max_response_bytes": "128MiB"}}

BIG = """name: t_big
version: 1.0.0
description: Echoes large parameters back.
command: ["/bin/testkit", "echo"]
input_schema:
  type: object
  required: [values]
  additionalProperties: false
  properties:
    values: {type: array, items: {type: integer}}
    label: {type: string, maxLength: 16}
resources: {memory_mb: 256, disk_mb: 64}
max_input_bytes: 32MiB
max_result_bytes: 32MiB
"""

SMALL = BIG.replace("name: t_big", "name: t_small").replace("max_input_bytes: 32MiB\nmax_result_bytes: 32MiB\n", "")
GREEDY = BIG.replace("name: t_big", "name: t_greedy").replace("max_input_bytes: 32MiB", "max_input_bytes: 1GiB")


def plugin(root, name, manifest):
    p = os.path.join(root, name)
    shutil.copytree(os.path.join(harness.OPTIONS["plugins"], "t_echo", "rootfs"), os.path.join(p, "rootfs"),
                    symlinks=True)
    with open(os.path.join(p, "plugin.yaml"), "w") as f:
        f.write(manifest)
    return os.path.join(p, "plugin.yaml")


def plugin_daemon(test, name, plugin_name, manifest, **config):
    """A daemon of its own with one plugin (manifest) in a directory of its
    own, config on top of CONFIG; both gone when the test ends."""
    tmp = tempfile.mkdtemp(prefix="edgecd-it-large-")
    test.addCleanup(shutil.rmtree, tmp, True)
    os.chmod(tmp, 0o755)
    plugin(tmp, plugin_name, manifest)
    d = Daemon(name, plugins=tmp, config=dict(CONFIG, **config)).start()
    test.addCleanup(d.stop)
    return d


def written(test, d, size):
    """The id of a t_writer job that wrote a result of size bytes."""
    r = d.submit({"algorithm": "t_writer", "parameters": {"bytes": size}}, wait="true",
                 timeout=60 * harness.slow_factor())
    test.assertEqual((r.status, r.body["status"]), (200, "succeeded"), str(r)[:300])
    return r.body["id"]


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def post(d, body, timeout=120):
    return d.req("POST", "/v1/jobs?wait=true", body=body, headers={"Content-Type": "application/json"},
                 timeout=timeout * harness.slow_factor())


class LargeInputs(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="edgecd-it-large-")
        os.chmod(cls.tmp, 0o755)
        plugin(cls.tmp, "t_big", BIG)
        plugin(cls.tmp, "t_small", SMALL)
        cls.greedy = plugin(cls.tmp, "t_greedy", GREEDY)
        cls.d = Daemon("LargeInputs", plugins=cls.tmp, config=CONFIG).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_a_large_job_round_trip_in_bounded_memory(self):
        n = 2500000
        body = json.dumps({"algorithm": "t_big", "parameters": {"values": list(range(n)), "label": "big"}},
                          separators=(",", ":")).encode()
        self.assertGreater(len(body), 16 << 20)
        before = vm_hwm_kib(self.d.proc.pid)
        r = post(self.d, body)
        self.assertEqual(r.status, 200, str(r)[:300])
        job = r.body
        self.assertEqual(job["status"], "succeeded", {k: job[k] for k in ("status", "error")})
        self.assertEqual(job["result"]["values"], list(range(n)))
        self.assertEqual(job["result"]["label"], "big")
        peak = vm_hwm_kib(self.d.proc.pid)
        # As a jansson tree the parameters alone would take over 150 MiB;
        # what the daemon holds is the result's copies (read, answered).
        # ASan's shadow and quarantine make its figures meaningless.
        if "asan" not in os.path.basename(harness.OPTIONS["daemon"]):
            self.assertLess(peak - before, 5 * len(body) // 1024 + 16 * 1024,
                            "peak memory grew by %d KiB for a %d-byte body" % (peak - before, len(body)))
        # Nothing of the spool kept: no file, no mapping, no descriptor.
        pid = self.d.proc.pid
        self.assertEqual(os.listdir(os.path.join(self.d.state_dir, "spool")), [])
        with open("/proc/%d/maps" % pid) as f:
            unnamed = [l for l in f if self.d.state_dir in l and "(deleted)" in l]
        self.assertEqual(unnamed, [])
        fds = [os.readlink("/proc/%d/fd/%s" % (pid, n)) for n in os.listdir("/proc/%d/fd" % pid)]
        self.assertFalse([t for t in fds if t.startswith(os.path.join(self.d.state_dir, "spool"))], fds)

    def test_over_the_plugins_limit(self):
        body = json.dumps({"algorithm": "t_small", "parameters": {"values": list(range(30000))}}).encode()
        self.assertGreater(len(body), 64 << 10)
        r = post(self.d, body)
        self.assertEqual(r.status, 413, r)
        self.assertEqual(r.body["error"]["code"], "payload_too_large")
        self.assertIn("over the limit of 65536 for `t_small` 1.0.0", r.body["error"]["message"])
        self.assertEqual(r.body["error"]["field"], "/parameters")

    def test_over_the_ceiling_refused_before_reading(self):
        r = self.d.req("POST", "/v1/jobs", body=None,
                       headers={"Content-Type": "application/json", "Content-Length": str(64 << 20)}, timeout=10)
        self.assertEqual(r.status, 413, r)
        self.assertIn("input_ceiling_bytes", r.body["error"]["message"])

    def test_a_miss_deep_in_a_large_array(self):
        values = list(range(200000))
        body = json.dumps({"algorithm": "t_big", "parameters": {"values": values}}).encode()
        bad = body.replace(b" 123456,", b" 123456.5,", 1)
        self.assertNotEqual(bad, body)
        r = post(self.d, bad)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.body["error"]["code"], "invalid_parameters")
        self.assertEqual(r.body["error"]["field"], "/parameters/values/123456")
        extra = body.replace(b'"values"', b'"label": "x", "oops": 1, "values"', 1)
        r = post(self.d, extra)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.body["error"]["field"], "/parameters/oops")

    def test_malformed_deep_inside(self):
        body = json.dumps({"algorithm": "t_big", "parameters": {"values": list(range(100000))}}).encode()
        for broken in (body[:-5], body.replace(b"99999", b"99x99", 1),
                       body.replace(b'{"values"', b'{"values": [1], "values"', 1),
                       body.replace(b"77777", b"77777777777777777777777", 1)):
            r = post(self.d, broken)
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.body["error"]["code"], "invalid_json", r.body)
        self.assertTrue(self.d.healthz_ok())

    def test_a_member_key_refused_in_memory_is_refused_spooled(self):
        # The same submission, small (parsed in memory) and padded past
        # max_body_bytes (spooled): both refused, none queued.
        small = b'{"algorithm":"t_big","parameters":{"values":[1]},"\\u0000x":1}'
        spooled = small[:-1] + b" " * (70 << 10) + b"}"
        before = len(self.d.list_jobs())
        for body in (small, spooled):
            r = post(self.d, body)
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.body["error"]["code"], "invalid_json", r.body)
        self.assertEqual(len(self.d.list_jobs()), before)

    def test_a_plugin_over_the_ceiling_gets_the_ceiling(self):
        self.assertEqual(self.d.req("GET", "/v1/algorithms/t_greedy").status, 200)
        # 40 MiB of parameters: under its own 1 GiB, under the 48 MiB ceiling.
        values = list(range(4400000))
        body = json.dumps({"algorithm": "t_greedy", "parameters": {"values": values}}, separators=(",", ":")).encode()
        self.assertGreater(len(body), 32 << 20)
        r = self.d.req("POST", "/v1/jobs", body=body, headers={"Content-Type": "application/json"}, timeout=120)
        self.assertEqual(r.status, 202, str(r)[:300])
        harness.cancel_quietly(self.d, r.body["id"])


class OneLargeAnswer(unittest.TestCase):
    """A result larger than http.max_response_bytes is still readable: one
    answer over the cap goes when it is the only one."""

    def daemon(self, name):
        """t_big alone, large answers held at once capped at 1 MiB."""
        return plugin_daemon(self, name, "t_big", BIG, http={"max_response_bytes": "1MiB"})

    def test_alone_it_goes(self):
        d = self.daemon("OneLargeAnswer")
        body = json.dumps({"algorithm": "t_big", "parameters": {"values": list(range(300000))}}).encode()
        self.assertGreater(len(body), 2 << 20)
        r = post(d, body)
        self.assertEqual(r.status, 200, str(r)[:300])
        self.assertEqual(len(r.body["result"]["values"]), 300000)
        g = d.req("GET", "/v1/jobs/" + r.body["id"])
        self.assertEqual(g.status, 200, str(g)[:300])

    def test_a_submits_answer_over_the_cap_sends_the_client_to_its_job(self):
        # A large answer held for a client that does not read, then a
        # submit whose answer is large too: not 503 (a retry would submit
        # it again) but 303 to its job.
        d = self.daemon("SeeOther")
        body = json.dumps({"algorithm": "t_big", "parameters": {"values": list(range(1000000))}}).encode()
        first = post(d, body)
        self.assertEqual(first.status, 200, str(first)[:300])
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", d.port))
        self.addCleanup(slow.close)
        slow.sendall(("GET /v1/jobs/%s HTTP/1.1\r\nHost: x\r\n\r\n" % first.body["id"]).encode())
        # Its answer is held once its status line comes.  A fixed 0.5 s
        # could end before the daemon had read and rendered the result (a
        # loaded ASan run): the submit's answer then went alone, 200.
        slow.settimeout(10 * harness.slow_factor())
        self.assertIn(b" 200 ", slow.recv(16))
        r = post(d, body)
        self.assertEqual(r.status, 303, str(r)[:300])
        self.assertEqual(r.body["error"]["code"], "see_other", r.body)
        where = r.headers.get("location") or r.headers.get("Location")
        self.assertTrue(where and where.startswith("/v1/jobs/"), r.headers)
        self.assertNotIn("retry-after", {k.lower() for k in r.headers})
        slow.close()
        # Until the daemon sees the close, the held answer still fills
        # the cap and the GET is rightly 503 busy.
        seen = []

        def fetched():
            g = d.req("GET", where)
            seen.append(g)
            if g.status == 503:
                self.assertEqual(g.body["error"]["code"], "busy", str(g)[:300])
                return None
            return g
        g = harness.wait_for(fetched, 5, lambda: str(seen[-1])[:300])
        self.assertEqual((g.status, g.body.get("status")), (200, "succeeded"), str(g)[:300])
        self.assertEqual(len(g.body["result"]["values"]), 1000000)
        self.assertEqual(len(d.list_jobs()), 2)


# Writes a result of parameters.bytes (a JSON string of x's).
WRITER = """name: t_writer
version: 1.0.0
description: Writes a large result.
command: ["/bin/testkit", "big"]
input_schema: {type: object}
resources: {memory_mb: 128, disk_mb: 48}
max_result_bytes: 32MiB
"""

# Writes parameters.bytes to stdout (and 1000 lines to stderr).
SPAM = """name: t_spam
version: 1.0.0
description: Floods its log.
command: ["/bin/testkit", "spam"]
input_schema: {type: object}
"""


class MemoryGoesBack(unittest.TestCase):
    """Large results read, stored and answered, several at once: once the
    answers are sent, the daemon is back near where it was, not holding
    what glibc kept of the largest blocks it freed."""

    def test_after_large_answers(self):
        d = plugin_daemon(self, "MemoryGoesBack", "t_writer", WRITER)
        before = d.rss_kib()
        size = 16 << 20
        ids = [written(self, d, size) for _ in range(2)]

        def get(job_id):
            g = d.req("GET", "/v1/jobs/" + job_id, timeout=60 * harness.slow_factor())
            return g.status, len(g.body["result"][0])

        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            for _ in range(3):
                self.assertEqual(list(ex.map(get, ids * 2)), [(200, size - 4)] * 4)
        # 70 MiB stayed before (two results' worth and more); ASan's
        # allocator and quarantine are its own.  An answer is freed once
        # the daemon has seen its connection end, a moment after the
        # client read it (a fixed 0.5 s could be short on a loaded host).
        if "asan" not in os.path.basename(harness.OPTIONS["daemon"]):
            grown = []

            def back():
                grown.append(d.rss_kib() - before)
                return grown[-1] < 24 * 1024
            harness.wait_for(back, 5, lambda: "the daemon kept %d KiB after sending its answers" % grown[-1])


def read_chars(pid):
    """Bytes the process has read (rchar of /proc/PID/io: the store's
    preads among them)."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar")


def get_once_released(d, path):
    """GET path once the daemon has noticed a slow reader gone (its answer
    released): 503 busy until then."""
    deadline = time.monotonic() + 10 * harness.slow_factor()
    while True:
        g = d.req("GET", path, timeout=60 * harness.slow_factor())
        if g.status != 503 or time.monotonic() > deadline:
            return g
        time.sleep(0.1)


class DeepPastTheParser(unittest.TestCase):
    def test_a_cap_past_the_parsers_refuses_alike_in_memory_and_spooled(self):
        # http.max_json_depth 5000: jansson refuses past 2048 levels, so the
        # checks cap at 2046.  A body 2048 levels deep was refused in memory
        # (by jansson) but taken spooled (its check let it through).
        d = Daemon("DeepPastTheParser", config={"max_body_bytes": "64KiB", "http": {"max_json_depth": 5000}})
        self.addCleanup(d.stop)
        d.start()
        small = b'{"algorithm":"t_echo","parameters":{"a":' + b"[" * 2046 + b"1" + b"]" * 2046 + b"}}"
        spooled = small[:-1] + b" " * (70 << 10) + b"}"
        for body in (small, spooled):
            r = post(d, body)
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.body["error"]["code"], "invalid_json", r.body)
            self.assertIn("nesting deeper than 2046 levels", r.body["error"]["message"])
        self.assertEqual(d.list_jobs(), [])
        # Within it, alike: taken, and run.
        ok = b'{"algorithm":"t_echo","parameters":{"a":' + b"[" * 100 + b"1" + b"]" * 100 + b"}}"
        for body in (ok, ok[:-1] + b" " * (70 << 10) + b"}"):
            r = post(d, body)
            self.assertEqual(r.status, 200, r)


class RefusedUnread(unittest.TestCase):
    """While large answers wait for a slow reader, GETs past
    http.max_response_bytes are refused (503 busy) without reading and
    rendering their result first: each took two or three copies of it,
    as many at once as HTTP threads, only to throw them away."""

    def slow_reader(self, d, path):
        """A client that GETs path and reads no more than the status line
        of its answer (alone, it goes): the answer waits, held."""
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", d.port))
        self.addCleanup(slow.close)
        slow.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        slow.settimeout(10 * harness.slow_factor())
        self.assertIn(b" 200 ", slow.recv(16))
        return slow

    def assert_refused_unread(self, d, path, size, what):
        """10 GETs of path are refused 503 busy, reading less than size."""
        before = read_chars(d.proc.pid)
        for _ in range(10):
            g = d.req("GET", path)
            self.assertEqual((g.status, g.body["error"]["code"]), (503, "busy"), str(g)[:300])
            self.assertEqual(g.headers.get("Retry-After"), "1", g.headers)
        read = read_chars(d.proc.pid) - before
        self.assertLess(read, size, "%d bytes read for 10 refused %s" % (read, what))

    def test_refused_before_the_result_is_read(self):
        d = plugin_daemon(self, "RefusedUnread", "t_writer", WRITER, http={"max_response_bytes": "16MiB"})
        size = 20 << 20
        r = d.submit({"algorithm": "t_writer", "parameters": {"bytes": size}}, wait="true",
                     timeout=60 * harness.slow_factor())
        self.assertEqual((r.status, r.body["status"]), (200, "succeeded"), str(r)[:300])
        path = "/v1/jobs/" + r.body["id"]
        slow = self.slow_reader(d, path)
        self.assert_refused_unread(d, path, size, "answers")
        slow.close()
        g = get_once_released(d, path)
        self.assertEqual(g.status, 200, str(g)[:300])
        self.assertEqual(len(g.body["result"][0]), size - 4)

    def test_a_log_refused_before_it_is_read(self):
        # max_log_bytes raised: a 12 MiB log is a large answer too.
        d = plugin_daemon(self, "RefusedUnreadLog", "t_spam", SPAM, max_log_bytes="16MiB",
                          http={"max_response_bytes": "8MiB"})
        size = 12 << 20
        job = d.run_job({"algorithm": "t_spam", "parameters": {"bytes": size}})
        self.assertEqual(job["status"], "succeeded", job)
        path = "/v1/jobs/%s/logs" % job["id"]
        slow = self.slow_reader(d, path)
        before = read_chars(d.proc.pid)
        for _ in range(10):
            g = d.req("GET", path)
            self.assertEqual((g.status, g.body["error"]["code"]), (503, "busy"), str(g)[:300])
        read = read_chars(d.proc.pid) - before
        self.assertLess(read, size, "%d bytes read for 10 refused logs" % read)
        slow.close()
        g = get_once_released(d, path)
        self.assertEqual(g.status, 200, str(g)[:300])
        self.assertGreater(len(g.raw), size)

    def test_a_listing_reads_only_the_results_it_sends(self):
        # A listing with results decides from each result's size before
        # reading it: past http.max_response_bytes its first result is
        # refused (503 busy) unread, a later one ends the page (`next`
        # goes on from there).  A page read and rendered every result it
        # listed, and one more, and only then could be refused.
        d = plugin_daemon(self, "ListingUnread", "t_writer", WRITER, http={"max_response_bytes": "16MiB"})
        size = 12 << 20
        ids = [written(self, d, size) for _ in range(2)]
        listing = "/v1/jobs?result=true&limit=10"
        # Alone: one large result per page, the other one not read.
        before = read_chars(d.proc.pid)
        g = d.req("GET", listing, timeout=60 * harness.slow_factor())
        read = read_chars(d.proc.pid) - before
        self.assertEqual(g.status, 200, str(g)[:300])
        self.assertEqual(([j["id"] for j in g.body["jobs"]], g.body["next"]), ([ids[1]], ids[1]))
        self.assertLess(read, size + size // 2, "%d bytes read for a page of one result" % read)
        # Held for a slow reader: refused, none read.
        slow = self.slow_reader(d, "/v1/jobs/" + ids[0])
        self.assert_refused_unread(d, listing, size, "listings")
        slow.close()
        get_once_released(d, listing)
        jobs = d.list_jobs(result="true", limit=10)
        self.assertEqual([j["id"] for j in jobs], ids[::-1])
        self.assertEqual([len(j["result"][0]) for j in jobs], [size - 4] * 2)


class BuildsCounted(unittest.TestCase):
    """Answers being built count against http.max_response_bytes as those
    held do: many GETs of a large result at once read it no more often
    than it is sent, each one past the cap refused before it is read.
    Each HTTP thread read and rendered its copy first, to find at the
    reply that another had taken the cap meanwhile."""

    def test_concurrent_gets_read_only_what_is_sent(self):
        # 40 connections at once from one address: over the default 32.
        d = plugin_daemon(self, "BuildsCounted", "t_writer", WRITER,
                          http={"max_response_bytes": "16MiB", "max_connections_per_client": 64})
        size = 12 << 20
        r = d.submit({"algorithm": "t_writer", "parameters": {"bytes": size}}, wait="true",
                     timeout=60 * harness.slow_factor())
        self.assertEqual((r.status, r.body["status"]), (200, "succeeded"), str(r)[:300])
        path = "/v1/jobs/" + r.body["id"]

        def get(_):
            g = d.req("GET", path, timeout=60 * harness.slow_factor())
            if g.status == 200:
                self.assertEqual(len(g.body["result"][0]), size - 4)
            else:
                self.assertEqual((g.status, g.body["error"]["code"]), (503, "busy"), str(g)[:300])
            return g.status

        before = read_chars(d.proc.pid)
        statuses = []
        with concurrent.futures.ThreadPoolExecutor(40) as ex:
            for _ in range(5):
                statuses.extend(ex.map(get, range(40)))
        read = read_chars(d.proc.pid) - before
        sent = statuses.count(200)
        self.assertGreater(sent, 0)
        # Two 12 MiB answers are past the 16 MiB cap: one at a time.
        self.assertLess(read, sent * size + size // 2,
                        "%d bytes read for %d answers sent (%d refused)" % (read, sent, len(statuses) - sent))


if __name__ == "__main__":
    unittest.main()
