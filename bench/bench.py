"""bench.py - figures for edgecd on this host (make bench).

Starts build/edgecd with the integration harness and prints every figure of
one run side by side, each label saying how it was measured:
  1. the reference job (3x3 matrix product) one at a time with ?wait=true:
     client latency and the job's own phase timings;
  2. 100 of them from 8 client threads: throughput with `workers` containers;
  3. GET /healthz over one keep-alive connection: the HTTP floor;
  4. submits that fail schema validation: the daemon's own per-call cost
     (parse, registry lookup, schema check, JSON reply), no container;
  5. the daemon's peak resident memory (VmHWM) over 1-4;
  6. GET /v1/jobs/{id} against nginx serving a file of the same bytes,
     wrk -t2 -c64 -d10s each, alternated A/B;
  7. durable submissions per second: wrk -t2 -c64 -d10s POSTing a trivial
     job while the one worker is held by a long one, with the fsyncs each
     submission cost (from /metrics);
  8. the daemon's resident memory: idle, with 10,000 queued jobs of 100 KB
     parameters each, and before/after N submitted-and-cancelled jobs.
Prints the figures and the targets; no pass/fail: the reader compares.

Sections 1-6 run on the example plugins (build/plugins).  Sections 7
and 8 need a job that holds the single worker for the whole measurement,
and no example plugin sleeps (matrix_multiplication, statistics and
word_count all finish in milliseconds), so they run on the test plugins
(build/test-plugins): t_sleep {"seconds": 600} holds the worker, t_echo is
the trivial job.

Every daemon runs with its state dir in a temp dir under /tmp (the
harness's), and stop() removes it and checks that no container, cgroup,
mount or workspace is left.  nginx and wrk are started here and stopped by
their own pids.  `bench.py --only 7,8` runs some sections (1-5 go together).
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import harness  # noqa: E402

REPO = harness.REPO
EXAMPLE_PLUGINS = os.path.join(REPO, "build", "plugins")
TEST_PLUGINS = os.path.join(REPO, "build", "test-plugins")
MATRIX = {"algorithm": "matrix_multiplication",
          "parameters": {"matrix_a": [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
                         "matrix_b": [[9, 8, 7], [6, 5, 4], [3, 2, 1]]}}
BAD = {"algorithm": "matrix_multiplication", "parameters": {"matrix_a": [[1, "x"]], "matrix_b": [[1]]}}
# Holds the one worker for the whole measurement (the test plugin's own
# timeout is 2 s; a request may ask up to max_timeout_seconds, 600).
BLOCKER = {"algorithm": "t_sleep", "parameters": {"seconds": 600}, "timeout_seconds": 600}
TRIVIAL = {"algorithm": "t_echo", "parameters": {"n": 1}}
# wrk's connections all come from 127.0.0.1: the per-client cap (default 32)
# must let 64 in, else half of them are closed at once.
HTTP_BENCH = {"max_connections_per_client": 256}

WRK_ARGS = ["-t2", "-c64", "-d10s"]
RESULTS = []          # (label, figure, target) for the summary


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def row(name, values, unit="ms"):
    print("  %-38s p50 %8.2f  p95 %8.2f  max %8.2f %s (n=%d)"
          % (name, pct(values, 50), pct(values, 95), max(values), unit, len(values)))


def note(label, figure, target=""):
    RESULTS.append((label, figure, target))


def proc_status(pid, keys=("VmRSS", "VmHWM")):
    """Fields of /proc/PID/status in KiB (VmRSS and VmHWM by default)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in keys:
                out[k] = int(v.split()[0])
    return tuple(out[k] for k in keys)


def write_bytes(pid):
    """Bytes pid caused to be written to storage (/proc/PID/io write_bytes)."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def mib(kib):
    return kib / 1024.0


def metric(d, name):
    v = d.metric(name)
    if v is None:
        raise AssertionError("GET /metrics has no %s" % name)
    return v


def bench_daemon(name, plugins, config):
    harness.OPTIONS["plugins"] = plugins
    cfg = {"log_level": "info", "http": dict(HTTP_BENCH)}
    cfg.update(config)
    return harness.Daemon(name, config=cfg)


# ----------------------------------------------------------------- wrk

class Wrk:
    """wrk runs from a temp dir of ours (its Lua scripts); run() starts one
    wrk process, waits for it and parses its report."""

    def __init__(self):
        self.path = shutil.which("wrk")
        self.tmp = tempfile.mkdtemp(prefix="edgecd-bench-wrk-")

    def script(self, name, method, body=None):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write('wrk.method = "%s"\n' % method)
            if body is not None:
                f.write("wrk.body = %s\n" % json.dumps(body))   # a JSON string is a Lua string here
                f.write('wrk.headers["Content-Type"] = "application/json"\n')
        return path

    def run(self, url, script=None):
        cmd = [self.path] + WRK_ARGS + ["--latency"]
        if script:
            cmd += ["-s", script]
        cmd.append(url)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        out = p.stdout
        if p.returncode != 0 or "Requests/sec" not in out:
            raise AssertionError("%s: exit %s\n%s%s" % (" ".join(cmd), p.returncode, out, p.stderr))
        m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
        reqs = int(m.group(1))
        r = {
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": reqs,
            "non2xx": int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1]),
            "socket_errors": 0,
            "p50": _wrk_ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
            "p99": _wrk_ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
            "raw": out,
        }
        se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if se:
            r["socket_errors"] = sum(int(x) for x in se.groups())
        return r

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def _wrk_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    v, u = float(m.group(1)), m.group(2)
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]


# ------------------------------------------------------ sections 1..5

def sections_1_to_5(d):
    for _ in range(3):
        d.run_job(MATRIX)

    lat, total, create, run, collect, other = [], [], [], [], [], []
    last = None
    for _ in range(50):
        t0 = time.monotonic()
        job = d.run_job(MATRIX)
        lat.append((time.monotonic() - t0) * 1000)
        m = job["metrics"]
        total.append(m["total_ms"])
        create.append(m["create_ms"])
        run.append(m["run_ms"])
        collect.append(m["collect_ms"])
        other.append(m["total_ms"] - m["create_ms"] - m["run_ms"] - m["collect_ms"] - m["queue_ms"])
        last = job
    print("1. reference job, sequential, ?wait=true")
    row("client latency", lat)
    row("job total_ms", total)
    row("  create_ms (runtime create+start)", create)
    row("  run_ms (algorithm)", run)
    row("  collect_ms (result checks)", collect)
    row("  rest (workspace, bundle, delete)", other)
    note("1. reference job, sequential, ?wait=true, p50 client latency", "%.0f ms" % pct(lat, 50))

    n, threads = 100, 8
    done = []
    lock = threading.Lock()

    def client(k):
        for _ in range(k):
            job = d.run_job(MATRIX, timeout=120)
            with lock:
                done.append(job["status"])
    t0 = time.monotonic()
    ts = [threading.Thread(target=client, args=(n // threads + (1 if i < n % threads else 0),))
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    el = time.monotonic() - t0
    ok = sum(1 for s in done if s == "succeeded")
    print("2. %d reference jobs from %d clients: %.2f s, %.1f jobs/s, %d/%d succeeded"
          % (n, threads, el, n / el, ok, n))
    note("2. 100 reference jobs, 8 clients, 2 workers", "%.1f jobs/s" % (n / el))

    s = d.session()
    hz = []
    for _ in range(2000):
        t0 = time.monotonic()
        r = s.req("GET", "/healthz")
        hz.append((time.monotonic() - t0) * 1000)
        assert r.status == 200
    s.close()
    print("3. GET /healthz, one keep-alive connection")
    row("latency", hz)
    note("3. GET /healthz, one keep-alive connection, p50", "%.2f ms" % pct(hz, 50))

    s = d.session()
    bad = []
    for _ in range(500):
        t0 = time.monotonic()
        r = s.req("POST", "/v1/jobs", BAD)
        bad.append((time.monotonic() - t0) * 1000)
        assert r.status == 400, r
    s.close()
    print("4. submit refused by schema validation (daemon work only, no container)")
    row("latency", bad)
    note("4. submit refused by schema validation, p50", "%.2f ms" % pct(bad, 50))

    _, hwm = proc_status(d.proc.pid)
    print("5. daemon peak resident memory (VmHWM) over 1-4: %.1f MiB" % mib(hwm))
    note("5. daemon VmHWM over 1-4", "%.1f MiB" % mib(hwm))
    return last


# ------------------------------------------------------------ section 6

NGINX_CONF = """\
# written by bench/bench.py: a static file server to compare GETs with.
daemon off;
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/json;
    # wrk holds its 64 connections for the whole run, as on edgecd (which
    # never closes a keep-alive connection by count).
    keepalive_requests 100000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
    }}
}}
"""


class Nginx:
    """nginx in the foreground (daemon off) on a free port, from a temp dir
    of ours; stop() signals the master by its pid (SIGQUIT: the workers
    finish and exit with it)."""

    def __init__(self):
        self.path = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
        self.tmp = tempfile.mkdtemp(prefix="edgecd-bench-nginx-")
        os.chmod(self.tmp, 0o755)        # the workers run as nobody
        self.port = harness.free_port()
        self.proc = None

    def serve(self, url_path, body):
        f = os.path.join(self.tmp, "www", url_path.lstrip("/"))
        os.makedirs(os.path.dirname(f), mode=0o755)
        with open(f, "wb") as out:
            out.write(body)
        os.chmod(f, 0o644)
        for d in (os.path.join(self.tmp, "www"), os.path.join(self.tmp, "www", "v1"),
                  os.path.join(self.tmp, "www", "v1", "jobs")):
            if os.path.isdir(d):
                os.chmod(d, 0o755)

    def start(self):
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, port=self.port))
        self.proc = subprocess.Popen([self.path, "-p", self.tmp, "-e", os.path.join(self.tmp, "error.log"),
                                      "-c", conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited with %s: %s" % (self.proc.returncode,
                                                                   self.proc.stderr.read().decode()))
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/")
                c.getresponse().read()
                c.close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not answer on port %d" % self.port)

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.tmp, ignore_errors=True)


def section_6_get(d, wrk, job_id, rounds=3):
    """GET /v1/jobs/{id} on edgecd against nginx serving the same bytes.

    Method: the job is a finished reference job (a result in the durable
    store).  Its GET body is written to a file served by nginx (daemon off,
    worker_processes 2, access_log off, keepalive_requests unlimited) under
    the same path, so both answer the same body bytes (nginx adds a few
    headers).  `wrk -t2 -c64 -d10s` (plain GET, no script) runs against
    edgecd, then nginx, alternated `rounds` times; reported: both medians of
    requests/s and edgecd/nginx.  Both servers and wrk share the 2 cores;
    edgecd answers on its one libmicrohttpd thread, nginx on 2 workers."""
    path = "/v1/jobs/%s" % job_id
    r = d.req("GET", path)
    if r.status != 200:
        raise AssertionError("GET %s: %s" % (path, r))
    ng = Nginx()
    try:
        ng.serve(path, r.raw)
        ng.start()
        st, body = ng.get(path)
        if st != 200 or body != r.raw:
            raise AssertionError("nginx does not serve the same bytes: %s %r" % (st, body[:200]))
        ed_runs, ng_runs = [], []
        ed_bad = ng_bad = 0
        for _ in range(rounds):
            a = wrk.run("http://127.0.0.1:%d%s" % (d.port, path))
            b = wrk.run("http://127.0.0.1:%d%s" % (ng.port, path))
            ed_runs.append(a)
            ng_runs.append(b)
            ed_bad += a["non2xx"] + a["socket_errors"]
            ng_bad += b["non2xx"] + b["socket_errors"]
    finally:
        ng.stop()
    ed = statistics.median(x["rps"] for x in ed_runs)
    nx = statistics.median(x["rps"] for x in ng_runs)
    print("6. GET /v1/jobs/{id} (%d body bytes) vs nginx static file of the same bytes, "
          "wrk -t2 -c64 -d10s each, A/B x%d" % (len(r.raw), rounds))
    print("  edgecd requests/s: %s  median %.0f  (p50 latency %.2f ms; %d non-2xx/socket errors)"
          % (" ".join("%.0f" % x["rps"] for x in ed_runs), ed,
             statistics.median(x["p50"] for x in ed_runs), ed_bad))
    print("  nginx  requests/s: %s  median %.0f  (p50 latency %.2f ms; %d non-2xx/socket errors)"
          % (" ".join("%.0f" % x["rps"] for x in ng_runs), nx,
             statistics.median(x["p50"] for x in ng_runs), ng_bad))
    print("  edgecd / nginx = %.2f" % (ed / nx))
    note("6. GET /v1/jobs/{id}, wrk -t2 -c64 -d10s, median of %d" % rounds, "%.0f/s" % ed)
    note("6. nginx static file, same bytes, same wrk, median of %d" % rounds, "%.0f/s" % nx)
    note("6. edgecd / nginx", "%.2f" % (ed / nx), ">= 1.00")


# ------------------------------------------------------------ section 7

def hold_worker(d):
    """Submit BLOCKER and wait until it runs: the single worker is busy and
    every later job stays queued.  Returns its id."""
    r = d.submit(BLOCKER)
    if r.status != 202:
        raise AssertionError("submit t_sleep: %s" % (r,))
    d.wait_status(r.body["id"], "running", timeout=30)
    return r.body["id"]


def section_7_submits(wrk):
    """Durable submissions per second from 64 concurrent clients.

    Method: a daemon with workers: 1, queue_capacity: 200000 on the test
    plugins; t_sleep {"seconds": 600} holds the worker, so nothing but the
    submit path (parse, schema, store insert committed to the WAL with
    synchronous=FULL, queue, 202 reply) is measured.  Then
    `wrk -t2 -c64 -d10s -s post.lua http://.../v1/jobs`, the script setting
    method POST, Content-Type application/json and the body
    {"algorithm":"t_echo","parameters":{"n":1}}.  Reported: wrk's requests/s,
    the 2xx share (wrk counts non-2xx/3xx), the jobs the daemon accepted
    (delta edgecd_jobs_submitted_total: the 2xx count plus the at most 64
    requests in flight when wrk stops counting), the disk bytes the daemon
    wrote (delta write_bytes of /proc/PID/io), and
    fsyncs per submission = delta(edgecd_store_commits_total) /
    delta(edgecd_jobs_submitted_total) over the run.  wrk shares the 2 cores
    with the daemon."""
    d = bench_daemon("bench-submit", TEST_PLUGINS, {"workers": 1, "queue_capacity": 200000})
    d.start()
    try:
        hold_worker(d)
        script = wrk.script("post.lua", "POST", json.dumps(TRIVIAL, separators=(",", ":")))
        c0, s0, w0 = (metric(d, "edgecd_store_commits_total"), metric(d, "edgecd_jobs_submitted_total"),
                      metric(d, "edgecd_store_writes_total"))
        b0 = write_bytes(d.proc.pid)
        r = wrk.run("http://127.0.0.1:%d/v1/jobs" % d.port, script)
        c1, s1, w1 = (metric(d, "edgecd_store_commits_total"), metric(d, "edgecd_jobs_submitted_total"),
                      metric(d, "edgecd_store_writes_total"))
        disk = write_bytes(d.proc.pid) - b0
        commits, subs, writes = c1 - c0, s1 - s0, w1 - w0
        ok = r["requests"] - r["non2xx"]
        share = 100.0 * ok / r["requests"] if r["requests"] else 0.0
        per = commits / subs if subs else float("nan")
        rss, hwm = proc_status(d.proc.pid)
        print("7. durable submits: wrk -t2 -c64 -d10s POST /v1/jobs t_echo {\"n\":1}, workers: 1 held by "
              "t_sleep (test plugins), queue_capacity 200000")
        print("  requests/s %.0f  (%d requests, %.2f%% 2xx, %d non-2xx, %d socket errors)"
              % (r["rps"], r["requests"], share, r["non2xx"], r["socket_errors"]))
        print("  latency p50 %.2f ms  p99 %.2f ms (wrk)" % (r["p50"], r["p99"]))
        print("  accepted (delta edgecd_jobs_submitted_total) %d; commits %d; store writes %d"
              % (subs, commits, writes))
        print("  fsyncs per submission = delta(commits)/delta(submitted) = %.4f (%.1f submissions per commit)"
              % (per, subs / commits if commits else float("nan")))
        print("  disk writes (delta write_bytes of /proc/PID/io, WAL and checkpoints) %.1f MB = %.1f KB per "
              "submission" % (disk / 1e6, disk / 1e3 / subs if subs else 0))
        print("  daemon VmRSS %.1f MiB, VmHWM %.1f MiB with %d jobs queued" % (mib(rss), mib(hwm), subs))
        # wrk stops counting at its deadline: the requests then in flight
        # (at most one per connection) are accepted but not in its count.
        if not 0 <= subs - ok <= 64:
            print("  NOTE: accepted jobs (%d) differ from 2xx responses (%d) by more than the 64 in flight"
                  % (subs, ok))
        note("7. durable submits/s, wrk -t2 -c64 -d10s POST t_echo, worker held", "%.0f/s (%.2f%% 2xx)"
             % (r["rps"], share), ">= 5000/s")
        note("7. fsyncs per submission, delta commits / delta submitted", "%.4f" % per)
        note("7. disk bytes written per submission (/proc/PID/io)", "%.1f KB" % (disk / 1e3 / subs if subs else 0))
    finally:
        d.stop()


# ------------------------------------------------------------ section 8

def run_clients(d, nthreads, work, deadline=None):
    """work(session, i) for i = 0, 1, ... on nthreads keep-alive
    connections until work returns False or deadline (monotonic) passes.
    Returns the number of calls made and the first exception, if any."""
    lock = threading.Lock()
    state = {"next": 0, "stop": False, "error": None}

    def client():
        s = d.session(timeout=120)
        try:
            while True:
                with lock:
                    if state["stop"] or (deadline is not None and time.monotonic() > deadline):
                        return
                    i = state["next"]
                    state["next"] += 1
                if work(s, i) is False:
                    with lock:
                        state["stop"] = True
                    return
        except Exception as e:  # noqa: BLE001 - reported by the caller
            with lock:
                state["stop"] = True
                state["error"] = state["error"] or e
        finally:
            s.close()
    ts = [threading.Thread(target=client) for _ in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return state["next"], state["error"]


def section_8(n_final=20000, final_budget=100.0):
    """The daemon's resident memory (VmRSS and VmHWM of /proc/PID/status).

    Method: a daemon with workers: 1 on the test plugins.
      idle: 1 s after it answers /readyz, before any job.
      10,000 queued: t_sleep holds the worker; 10,000 t_echo jobs whose
        parameters are {"pad": "<100,000 bytes>"} are POSTed from 16
        keep-alive connections (all 202, queued); VmRSS and VmHWM then.
        1,000 of them are then cancelled (16 connections) to time a cancel
        of a queued job with a large record, and the daemon is stopped with
        the rest queued (drain_seconds: 0; its state dir is removed).
      many finished jobs: a second daemon, the same way; t_sleep holds the
        worker; VmRSS after a warm-up of 1,000 jobs, then N small t_echo
        jobs, each POSTed and at once DELETEd (a cancelled, final record)
        from 16 keep-alive connections, in two halves; VmRSS after each half.
        N is n_final unless the budget in seconds runs out first (a cancel
        is one synchronous commit each)."""
    print("8. daemon resident memory (VmRSS/VmHWM from /proc/PID/status), workers: 1, test plugins")
    big = json.dumps({"algorithm": "t_echo", "parameters": {"pad": "x" * 100000}}).encode()
    json_hdr = {"Content-Type": "application/json"}

    d = bench_daemon("bench-mem", TEST_PLUGINS, {"workers": 1, "queue_capacity": 20000})
    d.start()
    try:
        time.sleep(1.0)
        idle, idle_hwm, anon, files = proc_status(d.proc.pid, ("VmRSS", "VmHWM", "RssAnon", "RssFile"))
        print("  idle (started, no job yet)                 VmRSS %6.1f MiB  VmHWM %6.1f MiB  "
              "(RssAnon %.1f MiB, RssFile %.1f MiB: mapped binary and shared libraries)"
              % (mib(idle), mib(idle_hwm), mib(anon), mib(files)))
        note("8. VmRSS idle (RssAnon + RssFile)", "%.1f MiB (%.1f + %.1f)" % (mib(idle), mib(anon), mib(files)),
             "< 8 MB")
        blocker = hold_worker(d)
        ids = []
        lock = threading.Lock()

        def submit_big(s, i):
            if i >= 10000:
                return False
            r = s.req("POST", "/v1/jobs", big, json_hdr)
            if r.status != 202:
                raise AssertionError("submit 100 KB job #%d: %s" % (i, r))
            with lock:
                ids.append(r.body["id"])
            return True
        t0 = time.monotonic()
        n, err = run_clients(d, 16, submit_big)
        el = time.monotonic() - t0
        if err:
            raise err
        time.sleep(0.5)
        rss, hwm = proc_status(d.proc.pid)
        queued = d.metric("edgecd_queue_length")
        print("  10,000 queued x 100 KB params (%.1f s to submit, %.0f/s, %.0f MB/s)  VmRSS %6.1f MiB  "
              "VmHWM %6.1f MiB%s" % (el, len(ids) / el, len(ids) * len(big) / el / 1e6, mib(rss), mib(hwm),
                                     "" if queued is None else " (edgecd_queue_length %d)" % queued))
        note("8. VmRSS with 10,000 queued jobs x 100 KB", "%.1f MiB (HWM %.1f)" % (mib(rss), mib(hwm)),
             "< 40 MB")

        ncancel = min(1000, len(ids))

        def cancel(s, i):
            if i >= ncancel:
                return False
            r = s.req("DELETE", "/v1/jobs/" + ids[i])
            if r.status != 202:
                raise AssertionError("cancel %s: %s" % (ids[i], r))
            return True
        c0, b0 = metric(d, "edgecd_store_commits_total"), write_bytes(d.proc.pid)
        t0 = time.monotonic()
        n, err = run_clients(d, 16, cancel)
        el = time.monotonic() - t0
        if err:
            raise err
        c1, b1 = metric(d, "edgecd_store_commits_total"), write_bytes(d.proc.pid)
        print("  cancelled %d of them from 16 connections: %.1f s, %.0f cancels/s, %.2f commits and %.0f KB "
              "written per cancel" % (ncancel, el, ncancel / el, (c1 - c0) / ncancel, (b1 - b0) / 1e3 / ncancel))
        note("8. DELETE of a queued job with 100 KB params, 16 connections", "%.0f/s (%.2f commits, %.0f KB each)"
             % (ncancel / el, (c1 - c0) / ncancel, (b1 - b0) / 1e3 / ncancel))
        d.req("DELETE", "/v1/jobs/" + blocker)
    finally:
        d.stop()

    d = bench_daemon("bench-final", TEST_PLUGINS, {"workers": 1, "queue_capacity": 20000})
    d.start()
    try:
        blocker = hold_worker(d)
        small = json.dumps(TRIVIAL).encode()

        def submit_cancel(limit):
            def work(s, i):
                if i >= limit:
                    return False
                r = s.req("POST", "/v1/jobs", small, json_hdr)
                if r.status != 202:
                    raise AssertionError("submit: %s" % (r,))
                c = s.req("DELETE", "/v1/jobs/" + r.body["id"])
                if c.status != 202:
                    raise AssertionError("cancel: %s" % (c,))
                return True
            return work
        run_clients(d, 16, submit_cancel(1000))
        time.sleep(0.5)
        before, _ = proc_status(d.proc.pid)
        c0, b0 = metric(d, "edgecd_store_commits_total"), write_bytes(d.proc.pid)
        t0 = time.monotonic()
        deadline = t0 + final_budget
        done, after = 0, []
        for half in (n_final // 2, n_final - n_final // 2):
            n, err = run_clients(d, 16, submit_cancel(half), deadline)
            if err:
                raise err
            done += min(n, half)
            time.sleep(0.5)
            after.append((done, proc_status(d.proc.pid)))
        el = time.monotonic() - t0
        c1, b1 = metric(d, "edgecd_store_commits_total"), write_bytes(d.proc.pid)
        print("  many finished jobs: after 1,000 warm-up     VmRSS %6.1f MiB" % mib(before))
        for k, (rss, hwm) in after:
            print("    after %6d more submitted+cancelled     VmRSS %6.1f MiB  VmHWM %6.1f MiB"
                  % (k, mib(rss), mib(hwm)))
        print("    (%d jobs in %.1f s, %.0f submit+cancel pairs/s, 16 connections, %.2f commits and %.1f KB "
              "written per pair%s)" % (done, el, done / el, (c1 - c0) / done, (b1 - b0) / 1e3 / done,
                                       "; time budget hit before N=%d" % n_final if done < n_final else ""))
        note("8. VmRSS before / after N=%d final (cancelled) jobs" % done,
             "%.1f / %.1f MiB" % (mib(before), mib(after[-1][1][0])), "flat")
        d.req("DELETE", "/v1/jobs/" + blocker)
    finally:
        d.stop()


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated sections (1 = 1-5, 6, 7, 8)")
    args = ap.parse_args()
    only = set(x.strip() for x in args.only.split(",") if x.strip())

    def want(k):
        return not only or k in only

    wrk = Wrk() if shutil.which("wrk") else None
    if wrk is None and (want("6") or want("7")):
        print("wrk not found (scripts/install-deps.sh installs it): sections 6 and 7 skipped")
    t_start = time.monotonic()
    try:
        if want("1") or want("6"):
            d = bench_daemon("bench", EXAMPLE_PLUGINS, {"workers": 2, "queue_capacity": 256})
            d.start()
            try:
                print("edgecd bench: runtime %s, %d cores" % (d.req("GET", "/readyz").body["runtime"]["name"],
                                                              os.cpu_count()))
                if want("1"):
                    job = sections_1_to_5(d)
                else:
                    job = d.run_job(MATRIX)
                if want("6") and wrk:
                    if shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin"):
                        section_6_get(d, wrk, job["id"])
                    else:
                        print("nginx not found (scripts/install-deps.sh installs it): section 6 skipped")
            finally:
                d.stop()
        if want("7") and wrk:
            section_7_submits(wrk)
        if want("8"):
            section_8()
    finally:
        if wrk:
            wrk.close()
    print()
    print("summary (one run, %.0f s; targets from the issue, compare yourself):" % (time.monotonic() - t_start))
    for label, fig, target in RESULTS:
        print("  %-68s %-26s %s" % (label, fig, ("target " + target) if target else ""))


if __name__ == "__main__":
    main()
