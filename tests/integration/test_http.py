"""The HTTP error matrix: every malformed request gets the documented status
and JSON error, never a 5xx or a hang, and the daemon keeps serving
/healthz after each one.  Also the JSONTestSuite corpus sent as bodies."""

import fcntl
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import termios
import time
import unittest
import uuid

import harness
from harness import DaemonCase, check_error, check_job, quick, raw_exchange, wait_for

MAX_BODY = 65536
# POST /v1/jobs takes up to input_ceiling_bytes + 64 KiB, spooled past MAX_BODY.
INPUT_CEILING = 2 * MAX_BODY
SPOOL_MAX = INPUT_CEILING + 65536
CORPUS = os.path.join(harness.REPO, "..", "shared", "corpora", "jsontestsuite", "test_parsing")


@quick
class HttpErrors(DaemonCase):
    CONFIG = {"max_body_bytes": MAX_BODY, "input_ceiling_bytes": INPUT_CEILING, "max_timeout_seconds": 300}

    def bad(self, method, path, body=None, headers=None, status=400, code=None, field=None):
        r = self.d.req(method, path, body, headers)
        try:
            e = check_error(r, status, code, field)
        except AssertionError as ex:
            raise AssertionError("%s %s body=%r: %s" % (method, path, body if not isinstance(
                body, (bytes, str)) or len(body) < 200 else "(%d bytes)" % len(body), ex)) from None
        self.assertHealthy()
        return r, e

    def post(self, body, **kw):
        return self.bad("POST", "/v1/jobs", body, **kw)

    # -- liveness and readiness

    def test_healthz(self):
        r = self.d.req("GET", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, {"status": "ok"})
        self.assertEqual(r.headers["Content-Type"].split(";")[0], "application/json")

    # -- bodies that are not JSON

    def test_malformed_json(self):
        for body in (b'{"algorithm": ', b"{algorithm: 1}", b"{'a': 1}", b'{"a":1,}', b"nul",
                     b'{"algorithm":"t_echo"} trailing', b"\xff\xfe{}", b'{"a":"\xc3\x28"}',
                     b'{"a":"x\x00y"}', b"[" * 30000 + b"]" * 30000, b"{" * 60000,
                     b"   ", b'{"a":1e999999999999}', b'"\\ud800"'):
            r, e = self.post(body, headers={"Content-Type": "application/json"})
            self.assertIn(e["code"], ("invalid_json", "invalid_request"), (body[:40], r))
        # a syntax error on line 3: the message says where
        r, e = self.post(b'{"algorithm":\n  "t_echo",\n  oops}',
                         headers={"Content-Type": "application/json"}, code="invalid_json")
        self.assertTrue(re.search(r"line\D{0,3}3\b", e["message"], re.I)
                        or re.search(r"\b3:\d+\b", e["message"]),
                        "invalid_json message should name line 3: %r" % e["message"])
        self.assertTrue(re.search(r"col(umn)?\D{0,3}\d+", e["message"], re.I)
                        or re.search(r"\b3:\d+\b", e["message"]),
                        "invalid_json message should name the column: %r" % e["message"])

    def test_a_long_non_ascii_field_is_named(self):
        # A field path past the error's room, cut where a character was
        # split: still named (valid UTF-8), with its message.
        key = "a" + "\u00e9" * 600
        body = json.dumps({"algorithm": "word_count", "parameters": {"text": "x", key: 1}}, ensure_ascii=False)
        r = self.d.req("POST", "/v1/jobs", body.encode(), {"Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)
        e = r.body["error"]
        self.assertEqual(e["code"], "invalid_parameters", e)
        self.assertNotEqual(e["message"], "invalid_parameters", e)
        self.assertTrue(e.get("field", "").startswith("/parameters/a\u00e9\u00e9"), e)

    def test_an_unknown_non_ascii_member_is_named_whole(self):
        # Named by its first 64 bytes at most, cut between characters (the
        # 64th byte is the first half of one).
        key = "a" + "\u00e9" * 100
        body = json.dumps({"algorithm": "word_count", "parameters": {"text": "x"}, key: 1}, ensure_ascii=False)
        r = self.d.req("POST", "/v1/jobs", body.encode(), {"Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.body["error"]["field"], "/a" + "\u00e9" * 31, r.body)
        self.assertIn("unknown field", r.body["error"]["message"])

    def test_empty_body(self):
        self.post(b"", headers={"Content-Type": "application/json"}, code="invalid_json")

    # -- request fields

    def test_body_not_an_object(self):
        for body in ([], [{"algorithm": "t_echo"}], "t_echo", 42, None, True):
            raw = json.dumps(body).encode()
            self.post(raw, headers={"Content-Type": "application/json"}, code="invalid_request")

    def test_algorithm_missing_or_ill_formed(self):
        self.post({}, code="invalid_request", field="/algorithm")
        self.post({"parameters": {}}, code="invalid_request", field="/algorithm")
        for alg in (42, None, "", [], {}, True, "../etc/passwd", "a/b", "has space",
                    "x" * 300, "t_echo\n"):
            self.post({"algorithm": alg}, code="invalid_request", field="/algorithm")

    def test_bad_priority(self):
        for p in ("urgent", "", "HIGHEST", 1, [], {}, True):
            self.post({"algorithm": "t_echo", "priority": p}, code="invalid_request",
                      field="/priority")

    def test_bad_timeout_seconds(self):
        for t in (0, -1, 301, 10 ** 12, "5", 1.5, True, [], {}):
            self.post({"algorithm": "t_echo", "timeout_seconds": t}, code="invalid_request",
                      field="/timeout_seconds")

    def test_unknown_top_level_field(self):
        for k in ("id", "bogus", "Algorithm", "status", "result"):
            self.post({"algorithm": "t_echo", k: "x"}, code="invalid_request", field="/" + k)

    def test_bad_version(self):
        for v in (1, 1.0, [], {}, True):
            self.post({"algorithm": "t_echo", "version": v}, code="invalid_request",
                      field="/version")
        for v in ("latest", "01.0.0", "1.2.3.4", "^^1", ""):
            r = self.d.submit({"algorithm": "t_echo", "version": v})
            check_error(r, 400, "invalid_request", "/version")
            self.assertHealthy()
        # Ranges: "1" and "1.0" are 1.x and 1.0.x.
        for v in ("1", "1.0"):
            r = self.d.submit({"algorithm": "t_echo", "version": v})
            self.assertEqual((r.status, r.body.get("version")), (202, "1.0.0"), r)
        check_error(self.d.submit({"algorithm": "t_echo", "version": "3"}), 404, "unknown_algorithm", "/version")

    def test_parameters_not_an_object(self):
        for p in ([1], "x", 5, True):
            r, e = self.post({"algorithm": "t_echo", "parameters": p})
            self.assertIn(e["code"], ("invalid_request", "invalid_parameters"), r)
            self.assertEqual(e.get("field"), "/parameters", r)

    def test_parameters_fail_schema(self):
        for n in ("x", 11, -1, 2.5, None, [], {}):
            self.post({"algorithm": "t_echo", "version": "1.0.0", "parameters": {"n": n}},
                      code="invalid_parameters", field="/parameters/n")
        self.post({"algorithm": "t_echo", "parameters": {"n": 11}},      # latest (2.0.0) too
                  code="invalid_parameters", field="/parameters/n")
        mm = "matrix_multiplication"
        r, e = self.post({"algorithm": mm, "parameters": {"matrix_a": [[1]]}},
                         code="invalid_parameters")
        self.assertTrue(e["field"].startswith("/parameters"), e)
        self.assertIn("matrix_b", e["field"] + e["message"], e)
        self.post({"algorithm": mm, "parameters": {"matrix_a": [[1, "x"]], "matrix_b": [[1]]}},
                  code="invalid_parameters", field="/parameters/matrix_a/0/1")
        self.post({"algorithm": mm, "parameters": {"matrix_a": [[1]], "matrix_b": [[1], [True]]}},
                  code="invalid_parameters", field="/parameters/matrix_b/1/0")
        self.post({"algorithm": mm, "parameters": {"matrix_a": [], "matrix_b": [[1]]}},
                  code="invalid_parameters", field="/parameters/matrix_a")
        self.post({"algorithm": mm, "parameters": {"matrix_a": 7, "matrix_b": [[1]]}},
                  code="invalid_parameters", field="/parameters/matrix_a")

    def test_unknown_algorithm_and_version(self):
        self.post({"algorithm": "no_such_algorithm"}, status=404, code="unknown_algorithm")
        self.post({"algorithm": "t_echo", "version": "9.9.9"}, status=404,
                  code="unknown_algorithm")
        self.post({"algorithm": "t_broken_key"}, status=404, code="unknown_algorithm")

    # -- media type

    def test_wrong_content_type(self):
        body = json.dumps({"algorithm": "t_echo"}).encode()
        for ct in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx",
                   "multipart/form-data; boundary=x", "json", None):
            headers = {"Content-Type": ct} if ct else {}
            self.post(body, headers=headers, status=415, code="unsupported_media_type")

    def test_charset_parameter_allowed(self):
        for ct in ("application/json; charset=utf-8", "application/json;charset=UTF-8"):
            r = self.d.submit(json.dumps({"algorithm": "t_echo", "parameters": {"ct": ct}}).encode(),
                              headers={"Content-Type": ct}, wait="true")
            self.assertEqual(r.status, 200, r)
            check_job(r.body, final=True)
            self.assertEqual(r.body["status"], "succeeded", r)

    # -- size limits

    def padded(self, size):
        b = b'{"algorithm":"no_such_algorithm"}'
        return b + b" " * (size - len(b))

    def test_body_at_limit_and_over(self):
        r = self.d.submit(self.padded(MAX_BODY), headers={"Content-Type": "application/json"})
        check_error(r, 404, "unknown_algorithm")
        # Past max_body_bytes a submission is spooled and judged by what it says.
        r = self.d.submit(self.padded(MAX_BODY + 1), headers={"Content-Type": "application/json"})
        check_error(r, 404, "unknown_algorithm")
        r = self.d.submit(self.padded(SPOOL_MAX), headers={"Content-Type": "application/json"})
        check_error(r, 404, "unknown_algorithm")
        self.post(self.padded(SPOOL_MAX + 1), headers={"Content-Type": "application/json"},
                  status=413, code="payload_too_large")
        self.post(self.padded(MAX_BODY * 8), headers={"Content-Type": "application/json"},
                  status=413, code="payload_too_large")
        # Other routes are not spooled: max_body_bytes is their limit.
        r = self.d.req("POST", "/v1/jobs/batch", self.padded(MAX_BODY + 1), {"Content-Type": "application/json"})
        check_error(r, 413, "payload_too_large")

    def test_huge_content_length_is_refused_promptly(self):
        # 2^63 and 2^64 - 2: libmicrohttpd takes them; past int64 they were
        # not refused before the body was read.
        for value in (b"10000000000", b"9223372036854775808", b"18446744073709551614"):
            head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: " + value + b"\r\n\r\n"
                    b'{"algorithm":')
            st, hdrs, body, secs = raw_exchange(self.d.port, head, timeout=10)
            self.assertEqual(st, 413, (value, body))
            self.assertLess(secs, 3.0 * harness.slow_factor(), "413 took %.1f s" % secs)
            self.assertEqual(json.loads(body)["error"]["code"], "payload_too_large", value)
        self.assertHealthy()

    def test_a_content_length_that_is_no_number_is_refused(self):
        # libmicrohttpd answers these itself, before our handler (HTML, and
        # 0.9.75 sends its status line and headers twice: README says so):
        # the status and the close are what a client can count on.
        for value, status in ((b"abc", 400), (b"-1", 400), (b"+5", 400), (b"99999999999999999999999", 413)):
            head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: " + value + b"\r\n\r\n{}")
            st, hdrs, body, secs = raw_exchange(self.d.port, head, timeout=10)
            self.assertEqual(st, status, (value, body))
            self.assertEqual(hdrs.get("connection"), "close", (value, hdrs))
        self.assertHealthy()

    def test_chunked_over_limit(self):
        chunk = b"a" * 16384
        chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (SPOOL_MAX * 2 // len(chunk))
        chunks.append(b"0\r\n\r\n")
        head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        st, hdrs, body, secs = raw_exchange(self.d.port, head, chunks, timeout=10)
        self.assertEqual(st, 413, body)
        self.assertEqual(json.loads(body)["error"]["code"], "payload_too_large")
        self.assertHealthy()

    def chunked(self, payload, size=4096):
        return [b"%x\r\n%s\r\n" % (len(payload[i:i + size]), payload[i:i + size])
                for i in range(0, len(payload), size)] + [b"0\r\n\r\n"]

    def test_chunked_exactly_at_the_limit(self):
        # Without a Content-Length the limit is counted as the body comes:
        # the spool's limit is read, one byte more is refused.
        head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        st, hdrs, body, secs = raw_exchange(self.d.port, head, self.chunked(self.padded(SPOOL_MAX)), timeout=10)
        self.assertEqual(st, 404, body)
        self.assertEqual(json.loads(body)["error"]["code"], "unknown_algorithm")
        st, hdrs, body, secs = raw_exchange(self.d.port, head, self.chunked(self.padded(SPOOL_MAX + 1)), timeout=10)
        self.assertEqual(st, 413, body)
        self.assertEqual(json.loads(body)["error"]["code"], "payload_too_large")
        self.assertHealthy()

    def test_chunked_within_limit_accepted(self):
        payload = json.dumps({"algorithm": "t_echo", "parameters": {"chunked": True}}).encode()
        chunks = [b"%x\r\n%s\r\n" % (len(payload[i:i + 7]), payload[i:i + 7])
                  for i in range(0, len(payload), 7)] + [b"0\r\n\r\n"]
        head = (b"POST /v1/jobs?wait=true HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        st, hdrs, body, secs = raw_exchange(self.d.port, head, chunks, timeout=60)
        self.assertEqual(st, 200, body)
        job = check_job(json.loads(body), final=True)
        self.assertEqual(job["result"], {"version": 2, "input": {"chunked": True}})

    def refused_and_closed(self, head, field):
        """head sent raw: one JSON 400 invalid_request naming field, and the
        connection closed at once (what followed is not read as a request).
        The error."""
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        s.sendall(head)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break       # closed: nothing after the refusal is read as a request
            got += chunk
        s.close()
        hd, _, body = got.partition(b"\r\n\r\n")
        self.assertTrue(hd.startswith(b"HTTP/1.1 400 "), (head[:200], got[:300]))
        self.assertIn(b"connection: close", hd.lower())
        self.assertEqual(got.count(b"HTTP/1.1 "), 1, got)
        e = json.loads(body)["error"]
        self.assertEqual((e["code"], e.get("field")), ("invalid_request", field), (head[:200], e))
        return e

    def test_bodyless_refusals_keep_the_connection(self):
        """A request without a body refused before its handler runs (no
        such route, a method the route lacks, a bad query) is answered and
        its kept-alive connection serves the next request, as after a
        handler's own 404; one refused so with a body still unread is
        answered and closed."""
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        self.addCleanup(s.close)
        f = s.makefile("rb")

        def exchange(request, head=False):
            s.sendall(request)
            line = f.readline()
            self.assertTrue(line.startswith(b"HTTP/1.1 "), (request, line))
            hdrs = {}
            while True:
                h = f.readline()
                if h in (b"\r\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                hdrs[k.strip().lower()] = v.strip().lower()
            body = b"" if head else f.read(int(hdrs.get("content-length", "0")))
            return int(line.split()[1]), hdrs, body

        missing = "/v1/jobs/" + str(uuid.uuid4())
        for line, status in (("GET /v1/no-such-route", 404), ("DELETE /healthz", 405),
                             ("GET /v1/jobs?limt=5", 400), ("GET /v1/jobs?limit=1&limit=2", 400),
                             ("HEAD /v1/no-such-route", 404), ("POST /v1/nowhere", 404),
                             ("GET /v1/jobs?limit=x", 400), ("GET " + missing, 404), ("GET /healthz", 200)):
            extra = "Content-Length: 0\r\n" if line.startswith("POST") else ""
            st, hdrs, body = exchange(("%s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (line, extra)).encode(),
                                      head=line.startswith("HEAD"))
            self.assertEqual(st, status, (line, body))
            self.assertNotIn("close", hdrs.get("connection", ""), (line, hdrs))
            if status != 200 and body:
                check_error(harness.Response(st, {"Content-Type": hdrs.get("content-type", "")}, json.loads(body)),
                            status)
        # A body the refusal leaves unread: the connection goes.
        st, hdrs, _ = exchange(b"POST /v1/nowhere HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 2\r\n\r\n{}")
        self.assertEqual(st, 404)
        self.assertIn("close", hdrs.get("connection", ""), hdrs)
        self.assertEqual(f.read(1), b"", "the connection stayed open")

    def test_codings_other_than_chunked_are_refused(self):
        # libmicrohttpd framed these as "read until the client closes": no
        # answer until the idle timeout, and a request after it swallowed.
        smuggled = b"GET /v1/jobs/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        body = b'{"algorithm":"t_echo","parameters":{}}'
        for te in (b"gzip", b"identity", b"chunked, chunked", b"chunked, gzip", b"gzip, chunked", b"chunked ",
                   b"chunked\r\nTransfer-Encoding: chunked"):
            head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: " + te + b"\r\n\r\n" + body + smuggled)
            e = self.refused_and_closed(head, "Transfer-Encoding")
            self.assertIn("not supported", e["message"])
        # Chunked in any case is chunked.
        head = (b"POST /v1/jobs?wait=true HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: Chunked\r\nConnection: close\r\n\r\n")
        st, hdrs, got, secs = raw_exchange(self.d.port, head, self.chunked(body))
        self.assertEqual(st, 200, got)
        self.assertHealthy()

    def test_headers_read_one_way_only(self):
        # Of a header given twice the daemon took the first, a proxy
        # perhaps the last; a %00 in the target cut the path
        # ("/v1/jobs/ID%00/logs" was served as the job).
        jid = self.d.run_job({"algorithm": "t_echo", "parameters": {"n": 1}})["id"]
        cases = (
            (b"GET /v1/jobs/" + jid.encode() + b"%00/logs HTTP/1.1\r\nHost: x\r\n\r\n", None),
            (b"GET /healthz%00/../v1/jobs HTTP/1.1\r\nHost: x\r\n\r\n", None),
            (b"GET /v1/jobs?after=" + jid.encode() + b"%00zz HTTP/1.1\r\nHost: x\r\n\r\n", None),
            (b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n",
             "Authorization"),
            (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: a1\r\n"
             b"idempotency-key: b2\r\nContent-Length: 2\r\n\r\n{}", "Idempotency-Key"),
            (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}", "Content-Type"),
        )
        for head, field in cases:
            self.refused_and_closed(head, field)
        # The same job through the same target without the NUL: its log.
        r = self.d.req("GET", "/v1/jobs/%s/logs" % jid)
        self.assertEqual(r.status, 200, r)
        self.assertHealthy()

    def test_a_nul_in_a_target_never_answered_by_the_handler(self):
        """A target with a %00 whose request never reached the handler (the
        client gone before its headers ended; libmicrohttpd's own 400 for a
        bad Content-Length, or 431 for headers over its pool): the daemon
        freed on_uri()'s static marker as a request and aborted."""
        for head in (b"GET /v1/jobs/x%00 HTTP/1.1\r\nHost: x\r\n",
                     b"GET /v1/jobs/x%00 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                     b"GET /v1/jobs/x%00 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"):
            s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
            try:
                s.sendall(head)
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
            except OSError:
                pass        # reset by a server that answered and closed
            finally:
                s.close()
            self.assertHealthy()

    def test_head_is_get_without_a_body(self):
        jid = self.d.run_job({"algorithm": "t_echo", "parameters": {"n": 1}})["id"]
        for path in ("/healthz", "/readyz", "/metrics", "/v1/openapi.json", "/v1/algorithms",
                     "/v1/algorithms/t_echo", "/v1/jobs", "/v1/jobs/" + jid, "/v1/jobs/%s/logs" % jid,
                     "/v1/jobs/" + str(uuid.uuid4())):
            got = self.d.req("GET", path)
            conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=10)
            conn.request("HEAD", path)
            r = conn.getresponse()
            body = r.read()
            conn.close()
            self.assertEqual((r.status, body), (got.status, b""), path)
            self.assertEqual(r.getheader("Content-Type"), got.headers.get("Content-Type"), path)
        # And it is listed where GET is.
        r, e = self.bad("POST", "/healthz", status=405, code="method_not_allowed")
        self.assertEqual(r.headers.get("Allow"), "GET, HEAD")

    def test_ambiguous_framing_is_refused(self):
        # Two lengths, or a length and chunked: which one a proxy in front
        # would take is anybody's guess, and the rest of the body could be
        # read as another request (smuggling).  Refused, and the connection
        # closed; the same length twice is one length.
        smuggled = b"GET /v1/jobs/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        before = self.d.metric("edgecd_http_rejected_total", {"reason": "bad_framing"})
        for extra, field in ((b"Content-Length: 2\r\nContent-Length: %d\r\n" % (2 + len(smuggled)), "Content-Length"),
                             (b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", "Transfer-Encoding"),
                             (b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n", "Transfer-Encoding"),
                             # libmicrohttpd frames without a name spelled
                             # with whitespace; a proxy may trim it and not.
                             (b"Content-Length: 2\r\nContent-Length : %d\r\n" % (2 + len(smuggled)), None),
                             (b"Content-Length\t: %d\r\n" % (2 + len(smuggled)), None),
                             (b"Content-Length: %d\r\nTransfer-Encoding : chunked\r\n" % (2 + len(smuggled)), None)):
            head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + extra +
                    b"\r\n{}" + smuggled)
            self.refused_and_closed(head, field)
        self.assertEqual(self.d.metric("edgecd_http_rejected_total", {"reason": "bad_framing"}), before + 6)
        head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}")
        st, hdrs, body, secs = raw_exchange(self.d.port, head)
        self.assertEqual((st, json.loads(body)["error"]["field"]), (400, "/algorithm"), body)
        self.assertHealthy()

    # -- methods and paths

    def test_method_not_allowed(self):
        jid = str(uuid.uuid4())
        cases = [("PUT", "/v1/jobs", {"GET", "POST"}), ("DELETE", "/v1/jobs", {"GET", "POST"}),
                 ("PATCH", "/v1/jobs", {"GET", "POST"}), ("POST", "/healthz", {"GET"}),
                 ("DELETE", "/healthz", {"GET"}), ("POST", "/readyz", {"GET"}),
                 ("PUT", "/v1/algorithms", {"GET"}), ("POST", "/v1/algorithms/t_echo", {"GET"}),
                 ("PUT", "/v1/jobs/" + jid, {"GET", "DELETE"}),
                 ("POST", "/v1/jobs/" + jid, {"GET", "DELETE"}),
                 ("POST", "/v1/jobs/%s/logs" % jid, {"GET"}),
                 # A literal path wins over a template: batch is no job id.
                 ("GET", "/v1/jobs/batch", {"POST"}), ("DELETE", "/v1/jobs/batch", {"POST"})]
        for method, path, allow in cases:
            r, e = self.bad(method, path, status=405, code="method_not_allowed")
            got = {m.strip().upper() for m in (r.headers.get("Allow") or "").split(",") if m.strip()}
            self.assertTrue(allow <= got, "%s %s: Allow %r should list %s" % (method, path, got, allow))
            self.assertNotIn(method, got, "%s %s: Allow lists the refused method" % (method, path))
            if path == "/v1/jobs/batch":
                self.assertEqual(got, allow, "%s %s: Allow %r" % (method, path, got))

    def test_unknown_path(self):
        for path in ("/", "/nope", "/v1", "/v1/", "/v1/nope", "/v2/jobs", "/healthz/x",
                     "/v1/jobs/%s/logs/x" % uuid.uuid4(), "/v1/algorithms/t_echo/versions",
                     "/v1/jobs/../healthz/x", "/" + "a" * 8000):
            self.bad("GET", path, status=404, code="not_found")

    def test_unknown_job(self):
        for jid in (str(uuid.uuid4()), "not-a-uuid", "x" * 300, "..",
                    str(uuid.uuid4()).upper()):
            self.bad("GET", "/v1/jobs/" + jid, status=404)
            self.bad("DELETE", "/v1/jobs/" + jid, status=404)
            self.bad("GET", "/v1/jobs/%s/logs" % jid, status=404)

    def test_unknown_algorithm_lookup(self):
        self.bad("GET", "/v1/algorithms/no_such_algorithm", status=404)
        self.bad("GET", "/v1/algorithms/t_broken_key", status=404)

    def test_delete_final_job_conflicts(self):
        job = self.d.run_job({"algorithm": "t_echo", "parameters": {}})
        self.assertEqual(job["status"], "succeeded")
        self.bad("DELETE", "/v1/jobs/" + job["id"], status=409)
        self.assertEqual(self.d.get_job(job["id"])["status"], "succeeded")

    def test_query_of_many_parameters_is_answered(self):
        # Each query parameter took libmicrohttpd's connection pool: 800
        # of them (3 KiB) closed the connection without an answer.
        for q in ("a=1&" * 800, "&" * 3000, "a&" * 3000, "a&" * 65):
            r = self.d.req("GET", "/v1/jobs?" + q, timeout=10)
            e = check_error(r, 431, "header_too_large")
            self.assertIn("more than 64 parameters", e["message"])
        # 64 are read (and answered: none of these is the route's).
        q = "&".join("x%d=1" % i for i in range(64))
        e = check_error(self.d.req("GET", "/v1/jobs?" + q), 400, "invalid_request")
        self.assertEqual(e.get("field"), "?x0", e)
        r = self.d.req("GET", "/v1/jobs?status=queued&limit=1")
        self.assertEqual(r.status, 200, r)
        self.assertHealthy()

    def test_query_parameters_a_route_does_not_read_are_refused(self):
        """A query parameter a route does not read was ignored (?limt=5
        listed 20 jobs), and of one given twice the first was read (a
        proxy may read the other); a number took a leading space or plus."""
        cases = [("GET", "/v1/jobs?limt=5", "?limt", "GET /v1/jobs takes status algorithm limit after result"),
                 ("GET", "/v1/jobs?limit=1&limit=2", "?limit", "`limit` is given twice"),
                 ("GET", "/v1/jobs?status=queued&status=running", "?status", "given twice"),
                 ("POST", "/v1/jobs/batch?wait=true", "?wait", "POST /v1/jobs/batch takes none"),
                 ("POST", "/v1/jobs?wiat=true", "?wiat", "POST /v1/jobs takes wait"),
                 ("GET", "/healthz?verbose=1", "?verbose", "takes none"),
                 ("GET", "/v1/jobs/%s?wait=10" % uuid.uuid4(), "?wait", "takes none"),
                 ("GET", "/v1/jobs?limit=%205", "?limit", "integer"),
                 ("GET", "/v1/jobs?limit=+5", "?limit", "integer"),
                 ("POST", "/v1/jobs?wait=%2010", "?wait", None),
                 ("GET", "/v1/jobs?=5", "?", "unknown query parameter ``")]
        for method, path, field, words in cases:
            body = {"algorithm": "t_echo"} if method == "POST" else None
            if path.startswith("/v1/jobs/batch"):
                body = {"jobs": [{"algorithm": "t_echo"}]}
            r, e = self.bad(method, path, body=body, status=400, code="invalid_request")
            self.assertEqual(e.get("field"), field, "%s %s: %s" % (method, path, e))
            if words:
                self.assertIn(words, e["message"], "%s %s" % (method, path))
        # An empty piece is nothing, as a trailing '&' is; an empty name with a value is not.
        for ok in ("/v1/jobs?status=succeeded&algorithm=t_echo&limit=2&result=true", "/healthz",
                   "/v1/jobs?&limit=5", "/v1/jobs?limit=1&&status=queued", "/v1/jobs?limit=1&", "/healthz?&"):
            self.assertEqual(self.d.req("GET", ok).status, 200, ok)
        self.assertHealthy()

    def test_hostile_queries_never_5xx(self):
        paths = ["/v1/jobs?limit=abc", "/v1/jobs?limit=-1", "/v1/jobs?limit=0",
                 "/v1/jobs?limit=99999999999999999999", "/v1/jobs?status=bogus",
                 "/v1/jobs?after=garbage", "/v1/jobs?after=%s" % uuid.uuid4(),
                 "/v1/jobs?algorithm=%00", "/v1/jobs?" + "a=1&" * 500, "/v1/jobs?%zz",
                 "/healthz?x=%ff"]
        for p in paths:
            try:
                r = self.d.req("GET", p, timeout=10)
            except OSError as ex:
                raise AssertionError("GET %s (%d bytes): no answer: %r" % (p[:60], len(p), ex))
            self.assertLess(r.status, 500, "GET %s: %s" % (p, r))
            if r.status >= 400 and r.status not in (414, 431):   # libmicrohttpd's own
                check_error(r, r.status)
            self.assertHealthy()
        for q in ("wait=abc", "wait=-5", "wait=99999999999999999999", "wait=", "wait=1e3"):
            r = self.d.req("POST", "/v1/jobs?" + q, {"algorithm": "no_such_algorithm"})
            self.assertIn(r.status, (400, 404), "POST ?%s: %s" % (q, r))
            check_error(r, r.status)
            self.assertHealthy()

    def test_keep_alive_through_errors(self):
        s = self.d.session()
        self.addCleanup(s.close)
        for i in range(30):
            r = s.req("POST", "/v1/jobs", b"{bad", {"Content-Type": "application/json"})
            check_error(r, 400, "invalid_json")
            r = s.req("GET", "/nope")
            check_error(r, 404, "not_found")
            r = s.req("GET", "/healthz")
            self.assertEqual(r.status, 200)
        self.assertLess(s.reconnects, 30, "the daemon closes the connection after every error")

    # -- the JSONTestSuite corpus as request bodies

    def test_jsontestsuite_bodies(self):
        # CI has the corpus beside the checkout; a user's clone does not.
        if not os.path.isdir(CORPUS):
            self.skipTest("skipped: corpus absent (%s)" % os.path.normpath(CORPUS))
        files = sorted(f for f in os.listdir(CORPUS) if f.endswith(".json"))
        self.assertGreater(len(files), 300)
        s = self.d.session(timeout=10)
        self.addCleanup(s.close)
        problems = []
        t0 = time.monotonic()
        for i, name in enumerate(files):
            with open(os.path.join(CORPUS, name), "rb") as f:
                data = f.read()
            try:
                r = s.req("POST", "/v1/jobs", data, {"Content-Type": "application/json"})
            except Exception as ex:  # noqa: BLE001 - a hang or reset is the finding
                problems.append("%s: %r" % (name, ex))
                if not self.d.alive():
                    break
                continue
            if r.status >= 500:
                problems.append("%s: %s" % (name, r))
            elif len(data) > SPOOL_MAX and r.status == 413:
                pass        # bigger than this daemon takes at all: 413 is right
            elif name.startswith("n_") and r.status != 400:
                problems.append("%s (must be rejected): %s" % (name, r))
            elif name.startswith("y_") and r.status not in (400, 404):
                problems.append("%s: expected 400 or 404, got %s" % (name, r))
            elif r.status >= 400:
                try:
                    check_error(r, r.status)
                except AssertionError as ex:
                    problems.append("%s: %s" % (name, ex))
            if i % 50 == 0 and not self.d.healthz_ok():
                problems.append("healthz failed after %s" % name)
        secs = time.monotonic() - t0
        self.assertTrue(self.d.alive(), "daemon died during the corpus")
        self.assertHealthy()
        self.assertEqual(problems, [], "\n".join(problems))
        self.assertLess(secs, 20 * harness.slow_factor(), "corpus took %.1f s" % secs)



class WaitersOfClientsGone(unittest.TestCase):
    """A ?wait submit whose client hangs up before its answer: resumed at
    its deadline, libmicrohttpd ends the request without calling the
    handler again.  Its waiter must come off the job then, not stay on it
    (with the request's state) until the job ends: here the job is still
    queued at the stop, so the sanitizer build reports what stayed."""

    def test_waiters_of_gone_clients_are_not_kept(self):
        d = harness.busy_daemon(self, "gonewait", {"drain_seconds": 1})
        body = json.dumps({"algorithm": "t_echo", "parameters": {"n": 1}}).encode()
        key = "gone-%s" % uuid.uuid4()
        first = d.req("POST", "/v1/jobs", body, {"Content-Type": "application/json", "Idempotency-Key": key})
        self.assertEqual(first.status, 202, first)
        head = ("POST /v1/jobs?wait=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Idempotency-Key: %s\r\nContent-Length: %d\r\n\r\n" % (key, len(body))).encode() + body
        socks = []
        for _ in range(20):
            c = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            c.sendall(head)
            socks.append(c)
        time.sleep(0.3)
        for c in socks:
            c.close()           # gone before the deadline resumes them
        time.sleep(1.5 * harness.slow_factor())
        # The job is still queued; a replay of its key names it.
        again = d.req("POST", "/v1/jobs", body, {"Content-Type": "application/json", "Idempotency-Key": key})
        self.assertEqual((again.status, again.body["id"]), (200, first.body["id"]), again)
        self.assertEqual(d.get_job(first.body["id"])["status"], "queued")
        d.stop()                # fails on a sanitizer report (what stayed)


class ConnectionsOfClientsGone(unittest.TestCase):
    """A ?wait submit whose client hung up no longer holds a connection
    against the client's http.max_connections_per_client until its job
    ends (libmicrohttpd does not watch a suspended connection): a client
    that comes back after a network break is served, its jobs go on."""

    def test_gone_waiters_free_their_connections(self):
        d = harness.busy_daemon(self, "goneconn", {"http": {"max_connections_per_client": 4}})
        body = json.dumps({"algorithm": "t_echo", "parameters": {"n": 1}}).encode()
        head = ("POST /v1/jobs?wait=600 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode() + body
        socks = []
        for _ in range(3):       # one under the limit (the harness's last may not be closed yet)
            c = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            c.sendall(head)
            socks.append(c)
        # Their jobs are taken, and they wait (from the log: a request
        # would take a connection).  0.5 s was short on a loaded ASan run.
        wait_for(lambda: d.log_text().count("t_echo 2.0.0 accepted") >= 3, 10,
                 lambda: "3 waiting submits not accepted: %s" % d.log_tail(10))
        for c in socks:
            c.close()
        deadline = time.monotonic() + 10 * harness.slow_factor()

        def served(path):
            while True:
                try:
                    return d.req("GET", path, timeout=5)
                except OSError as e:  # refused at the limit: reset
                    if time.monotonic() > deadline:
                        self.fail("the client is still at its connection limit: %s" % e)
                    time.sleep(0.2)
        # Three at once: the gone ones hold none of the four.
        held = [socket.create_connection(("127.0.0.1", d.port), timeout=5) for _ in range(2)]
        try:
            r = served("/healthz")
            self.assertEqual(r.status, 200, r)
        finally:
            for c in held:
                c.close()
        queued = served("/v1/jobs?status=queued&algorithm=t_echo")
        self.assertEqual(queued.status, 200, queued)
        self.assertEqual(len(queued.body["jobs"]), 3, queued.body)


class SpoolBudgetOfWaitingSubmits(unittest.TestCase):
    """A spooled submit's share of the spool budget goes once its job is on
    disk (its file is gone then), not when its request ends: submits that
    wait for their jobs must not refuse every other large one meanwhile."""

    def test_waiting_submits_do_not_hold_the_spool_budget(self):
        d = harness.busy_daemon(self, "spoolwait", {"max_body_bytes": "1KiB", "input_ceiling_bytes": "1KiB"})
        # 60,000 bytes each, spooled: two fill most of the budget (twice
        # input_ceiling_bytes and the other members' 64 KiB: 130 KiB).
        body = b'{"algorithm":"t_echo","parameters":{"n":1}' + b" " * 60000 + b"}"
        head = ("POST /v1/jobs?wait=30 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(body)).encode()
        socks = []
        for _ in range(2):
            c = socket.create_connection(("127.0.0.1", d.port), timeout=30)
            self.addCleanup(c.close)
            c.sendall(head + body)
            socks.append(c)
        deadline = time.monotonic() + 10 * harness.slow_factor()
        while len(d.list_jobs()) < 3:
            self.assertLess(time.monotonic(), deadline, "the two waiting submits were never committed")
            time.sleep(0.05)
        # Both wait for their jobs (queued behind the sleeper); a third
        # large submit is taken.
        for _ in range(2):
            r3 = d.req("POST", "/v1/jobs", body, {"Content-Type": "application/json"})
            self.assertEqual(r3.status, 202, r3)


class BatchAnswerOverTheCap(unittest.TestCase):
    """A batch's answer names jobs already committed and queued: past
    http.max_response_bytes it is sent all the same, never 503 "retry"
    (a retry would submit every job again)."""

    def test_batch_answer_is_sent_past_the_in_flight_cap(self):
        d = harness.busy_daemon(self, "batchcap", {"max_batch": 10000, "queue_capacity": 30000,
                                           "http": {"max_response_bytes": "1MiB"}})
        item = {"algorithm": "t_echo", "parameters": {"n": 1}, "priority": "low"}
        body = json.dumps({"jobs": [item] * 10000}).encode()
        # A first batch whose answer (3.5 MB) a client does not read.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", d.port))
        self.addCleanup(slow.close)
        slow.sendall(("POST /v1/jobs/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n" % len(body)).encode() + body)
        deadline = time.monotonic() + 30 * harness.slow_factor()
        while d.metric("edgecd_queue_length") < 10000:
            self.assertLess(time.monotonic(), deadline, "the first batch was never queued")
            time.sleep(0.1)
        time.sleep(0.5)
        second = d.req("POST", "/v1/jobs/batch", body, {"Content-Type": "application/json"})
        self.assertEqual(second.status, 200, str(second)[:300])
        self.assertEqual(len(second.body["jobs"]), 10000)
        self.assertEqual({j["status"] for j in second.body["jobs"]}, {202})
        self.assertEqual(d.metric("edgecd_queue_length"), 20000)


def send_queue_bytes(port):
    """Bytes waiting in the send queues of the IPv4 TCP connections whose
    local port is `port` (the daemon's ends), from /proc/net/tcp."""
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":   # ESTABLISHED
                total += int(fields[4].split(":")[0], 16)
    return total


class SlowReadersOfLargeAnswers(unittest.TestCase):
    """Clients that never read a 1 MB answer: what they hold, in the
    daemon and in its sockets' send buffers, is bounded by
    http.max_response_bytes, and past it they get 503 busy.  Left to
    autotuning, each socket took its whole answer from the daemon (and the
    cap never counted it): 1 MB of kernel memory per client."""

    LIMITS = {"http": {"max_response_bytes": "2MiB", "max_connections": 32, "max_connections_per_client": 32}}

    def test_the_kernel_does_not_take_what_the_cap_refuses(self):
        d = harness.Daemon("slowreaders", config=self.LIMITS).start()
        self.addCleanup(d.stop)
        self.slow_readers(d)

    def test_the_same_on_a_socket_systemd_passed(self):
        # The daemon's own TCP socket hands its send buffer to each
        # connection; a passed one is set connection by connection.
        d = harness.socket_activated(self, "slowreaders-act", config=self.LIMITS)
        d.start()
        self.assertIn("socket-activated fd 3", d.log_text())
        self.slow_readers(d)

    def test_the_same_on_a_unix_socket(self):
        # A unix connection does not inherit its listening socket's send
        # buffer: each is set as it comes.  What a unix socket's sender has
        # sent waits in its peer's receive queue (charged to the sender's
        # send buffer), so the clients count it themselves.
        tmp = tempfile.mkdtemp(prefix="edgecd-it-slowunix-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "api.sock")
        d = harness.Daemon("slowreaders-unix", config=dict(self.LIMITS, listen="unix:" + path))
        d.unix_path = path
        self.addCleanup(d.stop)
        d.start()

        def connect():
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(path)
            return c

        sndbufs = []

        sndbufs, lines = [], []

        def queued(socks):
            # The daemon's ends, as ss(8) shows them: tb is SO_SNDBUF,
            # which the kernel doubles (socket(7)).
            out = subprocess.run(["ss", "-x", "-m", "-n", "-H", "state", "established", "src", path],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
            lines.extend(x for x in out.splitlines() if x.strip())
            for mem in re.findall(r"skmem:\(([^)]*)\)", out):
                sndbufs.extend(int(x) for x in re.findall(r"(?:^|,)tb(\d+)", mem))
            return sum(struct.unpack("i", fcntl.ioctl(c.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
                       for c in socks)
        self.slow_readers(d, connect, queued)
        if lines and not sndbufs:
            self.skipTest("ss shows no socket memory here (no unix_diag): %r" % lines[:2])
        # The bound on what the clients hold cannot fail on a unix socket
        # (no autotuning: the kernel's default buffer is 208 KiB); this
        # does: 2 MiB / 32 connections, doubled.
        self.assertGreaterEqual(len(sndbufs), 2, lines)
        self.assertLessEqual(max(sndbufs), 2 * (2 << 20) // 32, sndbufs)

    def slow_readers(self, d, connect=None, queued_bytes=None):
        job = d.run_job({"algorithm": "t_big", "parameters": {"bytes": 1000000}})
        self.assertEqual(job["status"], "succeeded", job)
        socks = []
        for _ in range(24):
            if connect:
                c = connect()
            else:
                c = socket.socket()
                c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                c.connect(("127.0.0.1", d.port))
            self.addCleanup(c.close)
            c.sendall(("GET /v1/jobs/%s HTTP/1.1\r\nHost: x\r\n\r\n" % job["id"]).encode())
            socks.append(c)
        time.sleep(1.5 * harness.slow_factor())
        queued = queued_bytes(socks) if queued_bytes else send_queue_bytes(d.port)
        statuses = []
        for c in socks:
            c.settimeout(10)
            statuses.append(c.recv(12)[9:12])
        # Each socket's buffer is max_response_bytes / max_connections
        # (64 KiB), doubled by the kernel: 24 x 128 KiB = 3 MiB at most.
        self.assertLess(queued, 4 << 20, "%d bytes of answers waiting in the sockets" % queued)
        self.assertIn(b"503", statuses, statuses)
        self.assertIn(b"200", statuses, statuses)
        self.assertTrue(d.healthz_ok())
