"""The OpenAPI document (daemon/http/openapi.json, served at GET /v1/openapi.json):
served byte for byte as the file in the repo, valid by a real OpenAPI
validator (Perl's JSON::Validator, Debian libjson-validator-perl, through
tests/tools/openapi-validate.pl) which is shown to refuse broken copies,
complete against the routes the daemon serves (every documented operation
is routed; every method the daemon allows on a documented path, as its 405
`Allow` says, is documented; tests/unit/test-openapi.c checks the route
table itself), and true to real answers: each answer's status is documented
for its operation and its body validates against the documented schema
(python3-jsonschema, the document's $refs resolved in place)."""

import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse

import jsonschema

import harness
from harness import Daemon, quick

DOC_PATH = os.path.join(harness.REPO, "daemon", "http", "openapi.json")
VALIDATOR = os.path.join(harness.REPO, "tests", "tools", "openapi-validate.pl")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
TOKEN = "openapi-test-token-0123456789abcdef"


def load_doc():
    with open(DOC_PATH, "rb") as f:
        return f.read()


def json_schema(node):
    """An OpenAPI 3.0 Schema Object as JSON Schema (draft 4): `nullable: true`
    becomes "or null"; the rest is the same language."""
    if isinstance(node, list):
        return [json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: json_schema(v) for k, v in node.items()}
    if out.pop("nullable", False):
        out = {"anyOf": [{"type": "null"}, out]}
    return out


def validate_doc(*paths):
    """(exit status, output) of the OpenAPI validator on files."""
    p = subprocess.run(["perl", VALIDATOR] + list(paths), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace")


class Spec:
    """The document, its operations by (method, path template), and
    answers checked against it."""

    def __init__(self, doc):
        self.doc = doc
        self.converted = json_schema(doc)
        self.resolver = jsonschema.RefResolver.from_schema(self.converted)
        self.templates = []
        for path in doc["paths"]:
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"
            self.templates.append((re.compile(rx), path))

    def template(self, path):
        path = path.split("?")[0]
        # A literal path wins over a template (/v1/jobs/batch, not {id}).
        if path in self.doc["paths"]:
            return path
        for rx, t in self.templates:
            if rx.match(path):
                return t
        return None

    def operation(self, method, path):
        t = self.template(path)
        return t, (self.doc["paths"].get(t) or {}).get(method.lower())

    def deref(self, node):
        while isinstance(node, dict) and "$ref" in node:
            node = self.resolver.resolve(node["$ref"])[1]
        return node

    def check(self, tc, method, path, resp, request=None):
        """Assert resp is documented for method path: its status, content
        type and body (by the schema).  The query parameters sent are
        documented ones; a request body the daemon took (2xx) meets the
        documented request schema."""
        t, op = self.operation(method, path)
        tc.assertIsNotNone(op, "%s %s: no documented operation" % (method, path))
        params = [self.deref(p) for p in self.doc["paths"][t].get("parameters", []) + op.get("parameters", [])]
        query = {p["name"] for p in params if p["in"] == "query"}
        for kv in urllib.parse.urlsplit(path).query.split("&"):
            if kv:
                tc.assertIn(kv.split("=")[0], query, "%s %s: an undocumented query parameter" % (method, path))
        if isinstance(request, (dict, list)) and 200 <= resp.status < 300 and resp.status != 304:
            rschema = json_schema(op["requestBody"]["content"]["application/json"]["schema"])
            errors = list(jsonschema.Draft4Validator(rschema, resolver=self.resolver).iter_errors(request))
            tc.assertEqual([], [e.message for e in errors][:5],
                           "%s %s took a body the document refuses: %r" % (method, path, request))
        responses = op["responses"]
        tc.assertIn(str(resp.status), responses,
                    "%s %s answered %s, not documented for %s %s (documented: %s): %s"
                    % (method, path, resp.status, method, t, sorted(responses), resp))
        doc_resp = self.deref(responses[str(resp.status)])
        content = doc_resp.get("content")
        ctype = resp.headers.get("Content-Type") or ""
        if not content:
            tc.assertEqual(resp.raw, b"", "%s %s %s: a body where none is documented" % (method, path, resp.status))
            return
        tc.assertIn(ctype, content, "%s %s %s: Content-Type %r not documented (%s)"
                    % (method, path, resp.status, ctype, sorted(content)))
        schema = self.converted_schema(content[ctype]["schema"])
        body = resp.body if ctype.startswith("application/json") else resp.raw.decode()
        if ctype.startswith("application/json"):
            tc.assertNotIsInstance(body, str, "%s %s: not JSON: %s" % (method, path, resp))
        errors = sorted(jsonschema.Draft4Validator(schema, resolver=self.resolver).iter_errors(body),
                        key=lambda e: list(e.absolute_path))
        tc.assertEqual([], ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message) for e in errors][:5],
                       "%s %s %s: the body does not match the documented schema" % (method, path, resp.status))
        return body

    def converted_schema(self, schema):
        return json_schema(schema)

    def headers_of(self, method, path, status):
        _, op = self.operation(method, path)
        return self.deref(op["responses"][str(status)]).get("headers", {})


@quick
class Document(unittest.TestCase):
    """The document itself: served as the file, a valid OpenAPI 3.0
    document by JSON::Validator, which refuses broken ones."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon("OpenAPI-doc").start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_served_as_in_repo(self):
        r = self.d.req("GET", "/v1/openapi.json")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("Content-Type"), "application/json")
        self.assertEqual(r.raw, load_doc(), "the served document is not daemon/http/openapi.json")
        doc = json.loads(r.raw)
        self.assertEqual(doc["openapi"], "3.0.3")
        v = subprocess.run([harness.OPTIONS["daemon"], "--version"], stdout=subprocess.PIPE, text=True).stdout
        self.assertIn(doc["info"]["version"], v, "info.version is not the daemon's version")
        # Cheap revalidation: the ETag names this document; a match is 304.
        etag = r.headers.get("ETag")
        self.assertRegex(etag or "", r'^"[0-9a-f]{64}"$')
        self.assertEqual(r.headers.get("Cache-Control"), "no-cache")
        r2 = self.d.req("GET", "/v1/openapi.json", headers={"If-None-Match": etag})
        self.assertEqual(r2.status, 304, r2)
        self.assertEqual(r2.raw, b"")
        self.assertEqual(r2.headers.get("ETag"), etag)
        r3 = self.d.req("GET", "/v1/openapi.json", headers={"If-None-Match": '"0000"'})
        self.assertEqual(r3.status, 200)
        self.assertEqual(r3.raw, load_doc())
        # Each listed tag whole (RFC 9110 13.1.2), weak ones too; "*" alone.
        for inm, status in (('"0000", %s' % etag, 304), (' W/%s ,"1"' % etag, 304), ("*", 304),
                            ('%sxyz' % etag, 200), ('%s0"' % etag[:-1], 200), ("*x", 200), (etag[:-2] + '"', 200)):
            r4 = self.d.req("GET", "/v1/openapi.json", headers={"If-None-Match": inm})
            self.assertEqual(r4.status, status, inm)
        spec = Spec(doc)
        spec.check(self, "GET", "/v1/openapi.json", r)
        spec.check(self, "GET", "/v1/openapi.json", r2)

    def test_valid_by_openapi_validator(self):
        rc, out = validate_doc(DOC_PATH)
        self.assertEqual(rc, 0, "daemon/http/openapi.json is not a valid OpenAPI 3.0 document:\n" + out)

    def test_validator_refuses_broken_documents(self):
        """The negative control: each broken copy is refused, so the check
        above cannot pass by checking nothing."""
        doc = json.loads(load_doc())
        broken = {}
        d = copy.deepcopy(doc)
        del d["info"]
        broken["no info"] = d
        d = copy.deepcopy(doc)
        d["paths"]["/healthz"]["get"]["responses"]["200"]["description"] = 200
        broken["a description that is a number"] = d
        d = copy.deepcopy(doc)
        d["components"]["schemas"]["Job"]["properties"]["id"]["type"] = "uuid"
        broken["a type that is no type"] = d
        d = copy.deepcopy(doc)
        d["paths"]["/v1/jobs"]["get"]["parameters"][0]["in"] = "body"
        broken["a parameter in the body (OpenAPI 2)"] = d
        d = copy.deepcopy(doc)
        d["paths"]["/v1/jobs/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = \
            {"$ref": "#/components/schemas/NoSuchSchema"}
        broken["a $ref to nothing"] = d
        d = copy.deepcopy(doc)
        del d["paths"]["/v1/jobs/{id}"]["parameters"]
        broken["a path template without its parameter"] = d
        d = copy.deepcopy(doc)
        d["paths"]["/healthz"]["get"]["operationId"] = "getJob"
        broken["two operations with one operationId"] = d
        d = copy.deepcopy(doc)
        d["openapi"] = "2.0"
        broken["not 3.0"] = d
        tmp = tempfile.mkdtemp(prefix="edgecd-it-openapi-")
        try:
            files = {}
            for i, (what, d) in enumerate(broken.items()):
                files[what] = os.path.join(tmp, "broken-%d.json" % i)
                with open(files[what], "w") as f:
                    json.dump(d, f)
            files["not JSON at all"] = os.path.join(tmp, "broken-text.json")
            with open(files["not JSON at all"], "w") as f:
                f.write("{not json")
            # One run for all (the validator takes a second to start).
            rc, out = validate_doc(*files.values())
            self.assertNotEqual(rc, 0, out)
            for what, path in files.items():
                self.assertIn(path + ": ", out, "the validator accepted a document with %s:\n%s" % (what, out))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class Answers(unittest.TestCase):
    """The document against the daemon: its routes and its real answers."""

    @classmethod
    def setUpClass(cls):
        # A small max_body_bytes: a 413 with a body the socket can take
        # before the daemon answers and closes.
        cls.d = Daemon("OpenAPI", config={"max_body_bytes": 16384}).start()
        cls.spec = Spec(json.loads(load_doc()))

    @classmethod
    def tearDownClass(cls):
        try:
            harness.cancel_all(cls.d)
        finally:
            cls.d.stop()

    def check(self, method, path, resp):
        return self.spec.check(self, method, path, resp)

    def req(self, method, path, body=None, headers=None, timeout=60.0):
        r = self.d.req(method, path, body, headers, timeout=timeout * harness.slow_factor())
        self.spec.check(self, method, path, r, request=body)
        return r

    def finished_job(self):
        r = self.req("POST", "/v1/jobs?wait=true", {"algorithm": "t_echo", "parameters": {"n": 1}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["status"], "succeeded", r)
        return r.body

    def test_every_documented_operation_is_routed(self):
        """Each documented path and method reaches a handler: no 404 for the
        path, no 405 for the method; and the methods the daemon allows on
        each documented path (its 405 `Allow`) are exactly the documented
        ones."""
        job = self.finished_job()
        fill = {"{id}": job["id"], "{name}": "t_echo"}
        for path, item in self.spec.doc["paths"].items():
            url = path
            for k, v in fill.items():
                url = url.replace(k, v)
            self.assertNotIn("{", url, "a path parameter this test cannot fill: %s" % path)
            own = sorted(m.upper() for m in item if m in METHODS)
            self.assertTrue(own, path)
            for m in own:
                body = {} if m in ("POST", "PUT", "PATCH") else None
                # Never a second cancel of a real job: its 409 is enough.
                r = self.d.req(m, url, body)
                self.assertNotEqual(r.status, 405, "%s %s: %s" % (m, url, r))
                self.assertFalse(r.status == 404 and "no such resource" in json.dumps(r.body),
                                 "%s %s is documented but not routed: %s" % (m, url, r))
                self.check(m, url, r)
            # A method no route has here: 405, and Allow lists what is
            # served: what the documented path the URL is has (a concrete
            # path is matched before a template, as OpenAPI says:
            # /v1/jobs/batch is not a /v1/jobs/{id}).
            documented = {m.upper() for m in self.spec.doc["paths"][self.spec.template(url)] if m in METHODS}
            # The description's promise: every GET also answers HEAD.
            documented = sorted(documented | ({"HEAD"} if "GET" in documented else set()))
            r = self.d.req("PATCH", url, None)
            self.assertEqual(r.status, 405, "PATCH %s: %s" % (url, r))
            allowed = sorted(x.strip() for x in r.headers.get("Allow", "").split(","))
            self.assertEqual(allowed, documented, "%s: the daemon allows %s, the document has %s"
                             % (path, allowed, documented))

    def test_jobs(self):
        # A succeeded job, waited for: 200 with its result and Location.
        job = self.finished_job()
        self.assertIsNotNone(job["metrics"])
        self.assertTrue(job["attempts"])
        # Not waited for: 202 with Location.
        r = self.req("POST", "/v1/jobs", {"algorithm": "t_echo", "parameters": {"n": 2}, "priority": "high",
                                          "timeout_seconds": 30, "version": "^1.0"})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.headers.get("Location"), "/v1/jobs/" + r.body["id"])
        self.assertIn("Location", self.spec.headers_of("POST", "/v1/jobs", 202))
        queued = r.body["id"]
        # A failing job.
        r = self.req("POST", "/v1/jobs?wait=60", {"algorithm": "t_exit"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body["status"], "failed")
        self.assertEqual(r.body["error"]["code"], "algorithm_failed")
        failed = r.body["id"]
        # A job that times out, and one cancelled while it runs.
        r = self.req("POST", "/v1/jobs?wait=true", {"algorithm": "t_sleep", "timeout_seconds": 1})
        self.assertEqual(r.body["error"]["code"], "timeout", r)
        r = self.req("POST", "/v1/jobs", {"algorithm": "t_sleep", "parameters": {"seconds": 60}})
        sleeper = r.body["id"]
        # A wait that ends first: 202 with the job as it is.
        r = self.req("POST", "/v1/jobs?wait=0", {"algorithm": "t_echo"})
        self.assertEqual(r.status, 202, r)
        self.d.wait_final(queued)
        for jid in (job["id"], queued, failed):
            r = self.req("GET", "/v1/jobs/" + jid)
            self.assertEqual(r.status, 200)
            r = self.req("GET", "/v1/jobs/%s/logs" % jid)
            self.assertEqual(r.status, 200)
        r = self.req("DELETE", "/v1/jobs/" + sleeper)
        self.assertIn(r.status, (200, 202), r)
        self.d.wait_final(sleeper)
        r = self.req("GET", "/v1/jobs/" + sleeper)
        self.assertEqual(r.body["status"], "cancelled", r)
        # Cancelling a final job: 409.
        r = self.req("DELETE", "/v1/jobs/" + failed)
        self.assertEqual(r.status, 409, r)
        # Idempotent replay: 200 with Idempotent-Replayed.
        key = {"Idempotency-Key": "openapi-test-1"}
        first = self.req("POST", "/v1/jobs", {"algorithm": "t_echo"}, headers=key)
        again = self.req("POST", "/v1/jobs", {"algorithm": "t_echo"}, headers=key)
        self.assertEqual(again.status, 200, again)
        self.assertEqual(again.headers.get("Idempotent-Replayed"), "true")
        self.assertEqual(again.body["id"], first.body["id"])
        r = self.req("POST", "/v1/jobs", {"algorithm": "t_echo", "parameters": {"n": 3}}, headers=key)
        self.assertEqual(r.status, 409, r)
        # Lists: a page, with results, a filter, the next page.
        r = self.req("GET", "/v1/jobs?limit=2")
        self.assertEqual(len(r.body["jobs"]), 2)
        self.assertIsNotNone(r.body["next"])
        r = self.req("GET", "/v1/jobs?limit=2&after=%s" % r.body["next"])
        self.assertEqual(r.status, 200)
        r = self.req("GET", "/v1/jobs?status=succeeded&algorithm=t_echo&result=true&limit=1000")
        self.assertTrue(r.body["jobs"])
        self.assertTrue(all(j["result"] is not None for j in r.body["jobs"]))
        r = self.req("GET", "/v1/jobs?status=failed")
        self.assertTrue(r.body["jobs"])
        # A batch: one accepted, one refused.
        r = self.req("POST", "/v1/jobs/batch", {"jobs": [{"algorithm": "t_echo"}, {"algorithm": "no_such"}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual([x["status"] for x in r.body["jobs"]], [202, 404])
        self.d.wait_final(r.body["jobs"][0]["job"]["id"])

    def test_errors(self):
        bad = [
            ("GET", "/v1/jobs/00000000-0000-0000-0000-000000000000", None, None, 404),
            ("GET", "/v1/jobs/00000000-0000-0000-0000-000000000000/logs", None, None, 404),
            ("DELETE", "/v1/jobs/00000000-0000-0000-0000-000000000000", None, None, 404),
            ("GET", "/v1/algorithms/no_such", None, None, 404),
            ("POST", "/v1/jobs", {"algorithm": "no_such"}, None, 404),
            ("POST", "/v1/jobs", {"algorithm": "t_echo", "version": "9.9.9"}, None, 404),
            # A schema error, a malformed body, an unknown member, bad query values.
            ("POST", "/v1/jobs", {"algorithm": "t_echo", "parameters": {"n": "x"}}, None, 400),
            ("POST", "/v1/jobs", b"{not json", {"Content-Type": "application/json"}, 400),
            ("POST", "/v1/jobs", {"algorithm": "t_echo", "colour": "red"}, None, 400),
            ("POST", "/v1/jobs?wait=maybe", {"algorithm": "t_echo"}, None, 400),
            ("POST", "/v1/jobs", {"algorithm": "t_echo"}, {"Idempotency-Key": "\u00e9"}, 400),
            ("POST", "/v1/jobs", b"x=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
            ("POST", "/v1/jobs/batch", {"jobs": []}, None, 400),
            ("POST", "/v1/jobs/batch", b"[]", {"Content-Type": "text/plain"}, 415),
            ("GET", "/v1/jobs?limit=0", None, None, 400),
            ("GET", "/v1/jobs?status=sleeping", None, None, 400),
            ("GET", "/v1/jobs?result=yes", None, None, 400),
            ("GET", "/v1/jobs?after=00000000-0000-0000-0000-000000000000", None, None, 400),
        ]
        for method, path, body, headers, status in bad:
            with self.subTest(method=method, path=path, body=body):
                try:
                    r = self.req(method, path, body, headers)
                except UnicodeEncodeError:
                    continue     # http.client refuses the header itself
                self.assertEqual(r.status, status, r)
        # Headers over http.max_header_bytes (16 KiB): 431, on any operation.
        for method, path in (("GET", "/v1/jobs"), ("GET", "/healthz")):
            r = self.req(method, path, headers={"X-Padding": "p" * 20000})
            self.assertEqual(r.status, 431, r)
        # Too large: 413 before the body is read.
        big = b'{"algorithm":"t_echo","parameters":{"s":"' + b"x" * 20000 + b'"}}'
        r = self.req("POST", "/v1/jobs/batch", big, {"Content-Type": "application/json"})
        self.assertEqual(r.status, 413, r)

    def test_check_catches(self):
        """The answer check is not vacuous: a real answer fails it against
        a document that says something else of it."""
        job = self.d.req("POST", "/v1/jobs?wait=true", {"algorithm": "t_echo"},
                         timeout=60 * harness.slow_factor())
        self.check("POST", "/v1/jobs?wait=true", job)
        wrong = []
        doc = copy.deepcopy(self.spec.doc)
        doc["components"]["schemas"]["Job"]["properties"]["exit_code"]["type"] = "string"
        wrong.append(("exit_code a string", doc))
        doc = copy.deepcopy(self.spec.doc)
        del doc["components"]["schemas"]["Job"]["properties"]["attempts"]
        wrong.append(("attempts undocumented", doc))
        doc = copy.deepcopy(self.spec.doc)
        doc["components"]["schemas"]["Attempt"]["properties"]["warm"]["nullable"] = False
        doc["components"]["schemas"]["Job"]["properties"]["metrics"] = {"type": "integer"}
        wrong.append(("metrics an integer", doc))
        doc = copy.deepcopy(self.spec.doc)
        del doc["paths"]["/v1/jobs"]["post"]["responses"]["200"]
        wrong.append(("no 200", doc))
        doc = copy.deepcopy(self.spec.doc)
        doc["components"]["schemas"]["Job"]["properties"]["finished_at"] = {
            "$ref": "#/components/schemas/Timestamp"}
        doc["components"]["schemas"]["Timestamp"]["pattern"] = "^nope$"
        wrong.append(("timestamps that do not match", doc))
        for what, doc in wrong:
            with self.assertRaises(AssertionError, msg="the check passed with %s" % what):
                Spec(doc).check(self, "POST", "/v1/jobs?wait=true", job)

    def test_registry_and_health(self):
        r = self.req("GET", "/v1/algorithms")
        self.assertTrue(r.body["algorithms"])
        self.assertTrue(r.body["broken"], "the test plugins hold broken manifests")
        r = self.req("GET", "/v1/algorithms/t_echo")
        self.assertEqual(r.body["versions"], ["2.0.0", "1.0.0"])
        r = self.req("GET", "/healthz")
        self.assertEqual(r.body, {"status": "ok"})
        r = self.req("GET", "/readyz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body["status"], "degraded")    # the broken manifests
        r = self.req("GET", "/metrics")
        self.assertEqual(r.status, 200)


class Refusals(unittest.TestCase):
    """A full queue: 429 with Retry-After, as documented."""

    def test_queue_full(self):
        d = Daemon("OpenAPI-full", config={"workers": 1, "queue_capacity": 1})
        self.addCleanup(d.stop)
        self.addCleanup(harness.cancel_all, d)
        d.start()
        spec = Spec(json.loads(load_doc()))
        sleep = {"algorithm": "t_sleep", "parameters": {"seconds": 60}, "timeout_seconds": 60}
        statuses = []
        for _ in range(3):
            r = d.req("POST", "/v1/jobs", sleep)
            spec.check(self, "POST", "/v1/jobs", r, request=sleep)
            statuses.append(r.status)
        self.assertEqual(statuses[-1], 429, statuses)
        self.assertIn("Retry-After", spec.headers_of("POST", "/v1/jobs", 429))
        self.assertRegex(r.headers.get("Retry-After", ""), r"^[0-9]+$")
        r = d.req("POST", "/v1/jobs/batch", {"jobs": [sleep]})
        spec.check(self, "POST", "/v1/jobs/batch", r)
        self.assertEqual(r.body["jobs"][0]["status"], 429, r)
        r = d.req("GET", "/readyz")
        spec.check(self, "GET", "/readyz", r)
        self.assertEqual(r.body["status"], "degraded", r)


class WithAuth(unittest.TestCase):
    """With tokens: the documented security is what the daemon does."""

    def test_security(self):
        import hashlib
        tmp = tempfile.mkdtemp(prefix="edgecd-it-openapi-auth-")
        self.addCleanup(shutil.rmtree, tmp, True)
        tokens = os.path.join(tmp, "tokens.yaml")
        with open(tokens, "w") as f:
            f.write("tokens:\n  - name: reader\n    sha256: %s\n    scopes: [read]\n"
                    % hashlib.sha256(TOKEN.encode()).hexdigest())
        d = Daemon("OpenAPI-auth", config={"auth": {"tokens_file": tokens}})
        self.addCleanup(d.stop)
        d.start()
        spec = Spec(json.loads(load_doc()))
        token = {"Authorization": "Bearer " + TOKEN}
        for path, item in spec.doc["paths"].items():
            url = path.replace("{id}", "00000000-0000-0000-0000-000000000000").replace("{name}", "t_echo")
            for m, op in item.items():
                if m not in METHODS:
                    continue
                public = op.get("security", spec.doc["security"]) == []
                body = {} if m == "post" else None
                r = d.req(m.upper(), url, body)
                spec.check(self, m.upper(), url, r)
                if public:
                    self.assertNotIn(r.status, (401, 403), "%s %s is documented open: %s" % (m, path, r))
                else:
                    self.assertEqual(r.status, 401, "%s %s is documented to need a token: %s" % (m, path, r))
                    self.assertTrue(r.headers.get("WWW-Authenticate", "").startswith("Bearer"))
                    # With a token of the wrong scope: 403; of the right one, through.
                    r = d.req(m.upper(), url, body, headers=token)
                    spec.check(self, m.upper(), url, r)
                    if op["x-edgecd-scope"] == "read":
                        self.assertNotIn(r.status, (401, 403), r)
                    else:
                        self.assertEqual(r.status, 403, r)
