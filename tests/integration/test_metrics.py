"""GET /metrics as Prometheus sees it: the live text passes `promtool check
metrics` (Debian's prometheus package), and its counters and histograms
move by exactly the jobs and requests a test made: jobs by outcome, the
duration histograms by phase and by algorithm, HTTP requests by route and
status, rejections by reason, runtime calls by verb; the process_* family
is there."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness
from harness import Daemon

PROMTOOL = shutil.which("promtool")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(d):
    r = d.req("GET", "/metrics")
    if r.status != 200:
        raise AssertionError("GET /metrics: %s" % (r,))
    text = r.raw.decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return text, samples


def delta(before, after, key):
    return after.get(key, 0.0) - before.get(key, 0.0)


class Metrics(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        # Only cold plugins: no warm pool refilling behind the test's back.
        cls.tmp = tempfile.mkdtemp(prefix="edgecd-it-metrics-")
        os.chmod(cls.tmp, 0o755)
        for p in ("t_echo", "t_exit"):
            harness.copy_plugin(p, os.path.join(cls.tmp, p))
        cls.d = Daemon("Metrics", plugins=cls.tmp).start()
        cls.fresh = scrape(cls.d)[1]

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_promtool_accepts_the_live_text(self):
        self.assertTrue(PROMTOOL, "promtool is not installed: scripts/install-deps.sh installs prometheus")
        self.d.run_job({"algorithm": "t_echo", "parameters": {"n": 1}})
        text, _ = scrape(self.d)
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "promtool: %s%s" % (p.stdout, p.stderr))
        self.assertEqual(p.stdout + p.stderr, "", "promtool has remarks")

    def test_counters_move_by_exactly_what_was_done(self):
        _, before = scrape(self.d)
        for i in range(3):
            self.assertEqual(self.d.run_job({"algorithm": "t_echo", "parameters": {"n": i}})["status"], "succeeded")
        self.assertEqual(self.d.run_job({"algorithm": "t_exit", "parameters": {}})["status"], "failed")
        bad_json = self.d.req("POST", "/v1/jobs", body=b'{"algorithm": ', headers={"Content-Type": "application/json"})
        self.assertEqual(bad_json.status, 400)
        text_plain = self.d.req("POST", "/v1/jobs", body=b"{}", headers={"Content-Type": "text/plain"})
        self.assertEqual(text_plain.status, 415)
        unknown = self.d.submit({"algorithm": "nosuch", "parameters": {}})
        self.assertEqual(unknown.status, 404)
        _, after = scrape(self.d)

        want = {
            'edgecd_jobs_finished_total{status="succeeded",error=""}': 3,
            'edgecd_jobs_finished_total{status="failed",error="algorithm_failed"}': 1,
            'edgecd_algorithm_job_duration_seconds_count{algorithm="t_echo"}': 3,
            'edgecd_algorithm_job_duration_seconds_count{algorithm="t_exit"}': 1,
            'edgecd_http_requests_total{route="/v1/jobs",method="POST",status="200"}': 4,
            'edgecd_http_requests_total{route="/v1/jobs",method="POST",status="400"}': 1,
            'edgecd_http_requests_total{route="/v1/jobs",method="POST",status="415"}': 1,
            'edgecd_http_requests_total{route="/v1/jobs",method="POST",status="404"}': 1,
            'edgecd_http_rejected_total{reason="invalid_json"}': 1,
            'edgecd_http_rejected_total{reason="unsupported_media_type"}': 1,
            'edgecd_jobs_rejected_total{reason="invalid"}': 1,
            'edgecd_jobs_submitted_total': 4,
            # One runtime `run` per cold job, foreground or detached alike.
            'edgecd_runtime_calls_total{verb="run"}': 4,
            'edgecd_runtime_failures_total{verb="run"}': 0,
        }
        for phase in ("queue", "create", "run", "collect", "total"):
            want['edgecd_job_duration_seconds_count{phase="%s"}' % phase] = 4
            want['edgecd_job_duration_seconds_bucket{phase="%s",le="+Inf"}' % phase] = 4
        got = {k: delta(before, after, k) for k in want}
        self.assertEqual(got, want)
        # The runs took some time, and the phases add up to no more than the total.
        total = delta(before, after, 'edgecd_job_duration_seconds_sum{phase="total"}')
        self.assertGreater(total, 0)
        parts = sum(delta(before, after, 'edgecd_job_duration_seconds_sum{phase="%s"}' % p)
                    for p in ("queue", "create", "run", "collect"))
        self.assertLessEqual(parts, total + 0.01)
        # Buckets are cumulative and end at the count.
        for phase in ("queue", "total"):
            les = [(float(m.group(1)) if m.group(1) != "+Inf" else float("inf"), v) for k, v in after.items()
                   for m in [re.match(r'edgecd_job_duration_seconds_bucket\{phase="%s",le="([^"]+)"\}$' % phase, k)]
                   if m]
            values = [v for _, v in sorted(les)]
            self.assertEqual(values, sorted(values))
            self.assertEqual(values[-1], after['edgecd_job_duration_seconds_count{phase="%s"}' % phase])

    def test_the_grafana_dashboard_names_only_metrics_that_exist(self):
        path = os.path.join(harness.REPO, "packaging", "grafana-dashboard.json")
        with open(path) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        self.assertGreater(len(exprs), 10)
        text, _ = scrape(self.d)
        families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
        functions = {"sum", "by", "rate", "increase", "histogram_quantile", "le", "instance", "status", "error",
                     "phase", "algorithm", "route", "method", "reason", "verb", "state", "kind", "change",
                     "outcome"}
        for e in exprs:
            for name in re.findall(r"\b([a-z_][a-z0-9_]*)(?=\s*[{(\[]|\s*\)|$)", e):
                if name in functions:
                    continue
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                self.assertTrue(name in families or base in families, "%s: %s is not in /metrics" % (e, name))

    def test_the_probe_is_not_counted(self):
        calls = {k: v for k, v in self.fresh.items() if k.startswith("edgecd_runtime_")}
        self.assertTrue(calls)
        self.assertEqual(set(calls.values()), {0.0}, calls)

    def test_a_job_cancelled_in_the_queue_has_no_create_or_run(self):
        blocker = self.d.submit({"algorithm": "t_echo", "parameters": {"n": 1}}).body["id"]
        _, before = scrape(self.d)
        # Two workers and seven jobs: the last one waits in the queue long
        # enough to be cancelled there (skipped in the rare run where not).
        ids = [self.d.submit({"algorithm": "t_echo", "parameters": {"n": 2}}).body["id"] for _ in range(6)]
        r = self.d.req("DELETE", "/v1/jobs/" + ids[-1])
        for i in [blocker] + ids:
            self.d.wait_final(i)
        _, after = scrape(self.d)
        last = self.d.get_job(ids[-1])
        if last["status"] != "cancelled" or last["started_at"] is not None:
            self.skipTest("the job started before the cancel (%s)" % r.status)
        d = {p: delta(before, after, 'edgecd_job_duration_seconds_count{phase="%s"}' % p)
             for p in ("queue", "create", "run", "collect", "total")}
        self.assertEqual(d["queue"], d["total"])
        self.assertEqual(d["create"], d["total"] - 1, d)
        self.assertEqual(d["run"], d["total"] - 1, d)

    def test_process_family(self):
        _, s = scrape(self.d)
        self.assertGreater(s["process_resident_memory_bytes"], 1 << 20)
        self.assertGreater(s["process_open_fds"], 3)
        self.assertLess(s["process_open_fds"], s["process_max_fds"])
        self.assertGreater(s["process_cpu_seconds_total"], 0)
        start = os.stat("/proc/%d" % self.d.proc.pid).st_mtime
        self.assertLess(abs(s["process_start_time_seconds"] - start), 60)


if __name__ == "__main__":
    unittest.main()
