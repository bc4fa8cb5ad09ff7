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
  6. GET /v1/jobs/{id} and GET /healthz against nginx serving files of the
     same bytes, wrk -t2 -c64 -d10s each, alternated A/B;
  7. durable submissions per second (2xx answers): wrk -t2 -c64 -d5s
     POSTing a trivial job while the one worker is held by a long one, with
     the fsyncs each submission cost (from /metrics);
  8. the daemon's resident memory: idle, with 10,000 queued jobs of 100 KB
     parameters each, and before/after 100,000 submitted-and-cancelled jobs;
  9. a cold job against the raw runtime (`RUNTIME --root TMP run`) of the
     same config.json, alternated pairs, for the trivial job and the
     reference job, with the daemon's own sequence (`run` in the
     foreground in a cgroup of the run's own) driven directly as a third arm;
 10. `workers` concurrent clients against as many parallel raw loops:
     jobs per second;
 11. CPU per job: the daemon's own (its threads' schedstat, in ns, and
     /proc/PID/stat's ticks) and its children's (/proc/PID/stat) against
     one raw run's (wait4 rusage);
 12. a warm job (manifest `warm: 2`) against the raw run of 9; skipped when
     the daemon has no warm pool;
 13. the matrix product's GFLOP/s at 256, 1,024 and 2,048 per side (doubles):
     inside the container through the daemon, counted from the plugin's own
     kernel_ms ("timing": true: the time of cblas_dgemm alone, not parsing
     or writing; the best of a few jobs), against the same Debian OpenBLAS
     (libopenblas.a, serial: one core) run directly on the host by
     bench/matmul_host.c, numpy's dot on the host (Debian's numpy reaches
     OpenBLAS through libblas.so.3), and matmul_host.c's naive i-j-k triple
     loop (256 and 1,024 only: 2,048 would take minutes).  matmul_host.c is
     compiled into a temp dir on the fly.
Prints the figures and the targets; no pass/fail: the reader compares.

Sections 1-6 run on the example plugins (build/plugins).  Sections 7
and 8 need a job that holds the single worker for the whole measurement,
and no example plugin sleeps (matrix_multiplication, statistics and
word_count all finish in milliseconds), so they run on the test plugins
(build/test-plugins): t_sleep {"seconds": 600} holds the worker, t_echo is
the trivial job.  Sections 9-12 run on a temp plugins dir holding copies of
t_echo 1.0.0 (build/test-plugins: a static binary copying its input to its
output, so the job is all overhead) and matrix_multiplication
(build/plugins).

The raw runs of 9-12 use the runtime binary the daemon reports in GET
/readyz and the config.json the daemon itself wrote for the same job (one
job each with keep_bundles: true), rewritten only where a run must differ:
the container id, linux.cgroupsPath (under the compared daemon's cgroup
parent) and the sources of the /input and /output bind mounts (plain
directories).  Each raw run's result.json must equal the job's result.
Their containers, cgroups and directories are removed after each run and
again at the end, failure or not.

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
import select
import shutil
import signal
import socket
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

    def run(self, url, script=None, duration=None):
        cmd = [self.path] + WRK_ARGS + ["--latency"]
        if duration:
            cmd = [a if not a.startswith("-d") else "-d" + duration for a in cmd]
        if script:
            cmd += ["-s", script]
        cmd.append(url)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        out = p.stdout
        if p.returncode != 0 or "Requests/sec" not in out:
            raise AssertionError("%s: exit %s\n%s%s" % (" ".join(cmd), p.returncode, out, p.stderr))
        m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
        reqs = int(m.group(1))
        secs = float(m.group(2)) * {"s": 1.0, "ms": 0.001, "m": 60.0}[m.group(3)]
        r = {
            "seconds": secs,
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
    row("  rest (workspace, bundle, store)", other)
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
        os.makedirs(os.path.dirname(f), mode=0o755, exist_ok=True)
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
    """GET /v1/jobs/{id} and GET /healthz on edgecd against nginx serving
    the same bytes.

    Method: the job is a finished reference job (a result in the durable
    store).  Its GET body, and the /healthz body, are written to files
    served by nginx (daemon off, worker_processes 2, access_log off,
    keepalive_requests unlimited) under the same paths, so both answer the
    same body bytes (nginx adds a few headers).  `wrk -t2 -c64 -d10s`
    (plain GET, no script) runs against edgecd, then nginx, for the job
    path, then the same for /healthz, alternated so `rounds` times;
    reported per path: both medians of requests/s and edgecd/nginx.  Both
    servers and wrk share the 2 cores; edgecd answers on its one
    libmicrohttpd thread, nginx on 2 workers."""
    targets = []
    for key, path in (("GET /v1/jobs/{id}", "/v1/jobs/%s" % job_id), ("GET /healthz", "/healthz")):
        r = d.req("GET", path)
        if r.status != 200:
            raise AssertionError("GET %s: %s" % (path, r))
        targets.append((key, path, r.raw))
    ng = Nginx()
    runs = {key: ([], []) for key, _, _ in targets}
    try:
        for _, path, raw in targets:
            ng.serve(path, raw)
        ng.start()
        for _, path, raw in targets:
            st, body = ng.get(path)
            if st != 200 or body != raw:
                raise AssertionError("nginx does not serve the same bytes for %s: %s %r" % (path, st, body[:200]))
        for _ in range(rounds):
            for key, path, _ in targets:
                runs[key][0].append(wrk.run("http://127.0.0.1:%d%s" % (d.port, path)))
                runs[key][1].append(wrk.run("http://127.0.0.1:%d%s" % (ng.port, path)))
    finally:
        ng.stop()
    print("6. GET against nginx serving a static file of the same bytes, wrk -t2 -c64 -d10s each, "
          "alternated x%d" % rounds)
    for key, path, raw in targets:
        ed_runs, ng_runs = runs[key]
        ed_bad = sum(x["non2xx"] + x["socket_errors"] for x in ed_runs)
        ng_bad = sum(x["non2xx"] + x["socket_errors"] for x in ng_runs)
        ed = statistics.median(x["rps"] for x in ed_runs)
        nx = statistics.median(x["rps"] for x in ng_runs)
        print("  %s (%d body bytes)" % (key, len(raw)))
        print("    edgecd requests/s: %s  median %.0f  (p50 latency %.2f ms; %d non-2xx/socket errors)"
              % (" ".join("%.0f" % x["rps"] for x in ed_runs), ed,
                 statistics.median(x["p50"] for x in ed_runs), ed_bad))
        print("    nginx  requests/s: %s  median %.0f  (p50 latency %.2f ms; %d non-2xx/socket errors)"
              % (" ".join("%.0f" % x["rps"] for x in ng_runs), nx,
                 statistics.median(x["p50"] for x in ng_runs), ng_bad))
        print("    edgecd / nginx = %.2f (of the medians; per round: %s)"
              % (ed / nx, " ".join("%.2f" % (x["rps"] / y["rps"]) for x, y in zip(ed_runs, ng_runs))))
        note("6. %s, wrk -t2 -c64 -d10s, median of %d" % (key, rounds), "%.0f/s" % ed)
        note("6.   the same bytes from nginx (static file), same wrk", "%.0f/s" % nx)
        note("6. %s: edgecd / nginx" % key, "%.2f" % (ed / nx), ">= 1.00")


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
    `wrk -t2 -c64 -d5s -s post.lua http://.../v1/jobs`, the script setting
    method POST, Content-Type application/json and the body
    {"algorithm":"t_echo","parameters":{"n":1}}.  Reported: accepted
    submissions per second (wrk's 2xx count over its run time: a 503 of a
    full queue costs next to nothing and is not a durable submission, so
    wrk's own requests/s is shown but is not the figure), the 2xx share,
    the jobs the daemon accepted (delta edgecd_jobs_submitted_total: the
    2xx count plus the at most 64 requests in flight when wrk stops
    counting), the disk bytes the daemon wrote (delta write_bytes of
    /proc/PID/io), and fsyncs per submission =
    delta(edgecd_store_commits_total) / delta(edgecd_jobs_submitted_total)
    over the run.  Five seconds, not ten, so that a fast hour does not fill
    the 200,000 places (it did once at ten: 44.9 % 2xx); when the queue
    fills anyway the figure is a lower bound and says so.  wrk shares the
    2 cores with the daemon."""
    d = bench_daemon("bench-submit", TEST_PLUGINS, {"workers": 1, "queue_capacity": 200000})
    d.start()
    try:
        hold_worker(d)
        script = wrk.script("post.lua", "POST", json.dumps(TRIVIAL, separators=(",", ":")))
        c0, s0, w0 = (metric(d, "edgecd_store_commits_total"), metric(d, "edgecd_jobs_submitted_total"),
                      metric(d, "edgecd_store_writes_total"))
        b0 = write_bytes(d.proc.pid)
        r = wrk.run("http://127.0.0.1:%d/v1/jobs" % d.port, script, duration="5s")
        c1, s1, w1 = (metric(d, "edgecd_store_commits_total"), metric(d, "edgecd_jobs_submitted_total"),
                      metric(d, "edgecd_store_writes_total"))
        disk = write_bytes(d.proc.pid) - b0
        commits, subs, writes = c1 - c0, s1 - s0, w1 - w0
        ok = r["requests"] - r["non2xx"]
        share = 100.0 * ok / r["requests"] if r["requests"] else 0.0
        per = commits / subs if subs else float("nan")
        rss, hwm = proc_status(d.proc.pid)
        accepted_rate = ok / r["seconds"] if r["seconds"] > 0 else 0.0
        queued = d.metric("edgecd_queue_length")
        full = queued is not None and queued >= 200000
        print("7. durable submits: wrk -t2 -c64 -d5s POST /v1/jobs t_echo {\"n\":1}, workers: 1 held by "
              "t_sleep (test plugins), queue_capacity 200000")
        print("  accepted (2xx) per second %.0f%s" % (accepted_rate, " (a lower bound: the queue filled)" if full else ""))
        print("  wrk: requests/s %.0f  (%d requests in %.2f s, %.2f%% 2xx, %d non-2xx, %d socket errors)"
              % (r["rps"], r["requests"], r["seconds"], share, r["non2xx"], r["socket_errors"]))
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
        note("7. durable submits/s (2xx), wrk -t2 -c64 -d5s POST t_echo, worker held", "%.0f/s (%.2f%% 2xx%s)"
             % (accepted_rate, share, ", queue filled" if full else ""), ">= 5000/s")
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


def section_8(n_final=100000, final_budget=240.0, slice_size=20000):
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
        from 16 keep-alive connections, in slices of slice_size; VmRSS and
        VmHWM after each slice.  N is n_final (100,000: about a minute at
        ~2,000 pairs/s here) unless the budget in seconds runs out first (a
        cancel is one synchronous commit each).  The store keeps at most
        store.max_records final records (100,000 by default), pruned by the
        collector every sweep_interval_seconds (60): the records held and
        pruned at the end are shown (edgecd_store_records,
        edgecd_store_records_pruned_total)."""
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
        left = n_final
        while left > 0 and time.monotonic() < deadline:
            part = min(slice_size, left)
            left -= part
            n, err = run_clients(d, 16, submit_cancel(part), deadline)
            if err:
                raise err
            done += min(n, part)
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
        recs, pruned = d.metric("edgecd_store_records"), d.metric("edgecd_store_records_pruned_total")
        if recs is not None:
            print("    the store holds %d records now (edgecd_store_records); %s pruned so far"
                  % (recs, "?" if pruned is None else "%d" % pruned))
        note("8. VmRSS before / after N=%d final (cancelled) jobs" % done,
             "%.1f / %.1f MiB" % (mib(before), mib(after[-1][1][0])), "flat")
        d.req("DELETE", "/v1/jobs/" + blocker)
    finally:
        d.stop()


# ------------------------------------------------- sections 9-12: raw runtime

# The environment the daemon gives its runtime calls (runtime_cli.c): the
# raw runs get the same.
RUNTIME_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
# What sections 9-12 compare, on a plugins dir of their own (copies): the
# trivial job (t_echo 1.0.0 of the test plugins: a static binary that copies
# /input/input.json to /output/result.json, so the job is all overhead) and
# the reference job (MATRIX, matrix_multiplication of the example plugins).
COMPARE = (("t_echo", os.path.join(TEST_PLUGINS, "t_echo"), TRIVIAL),
           ("matrix_multiplication", os.path.join(EXAMPLE_PLUGINS, "matrix_multiplication"), MATRIX))
RAW_PREFIX = "bench-raw-"     # not a name edgecd gives a run: its collector leaves these alone


def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def stats_line(name, values, unit="ms"):
    print("  %-44s median %8.2f  p99 %8.2f  min %8.2f %s (n=%d)"
          % (name, statistics.median(values), pct(values, 99), min(values), unit, len(values)))


def make_plugins_dir(extra_manifest=""):
    """A temp plugins dir holding copies of the COMPARE plugins; extra_manifest
    is appended to each plugin.yaml."""
    tmp = tempfile.mkdtemp(prefix="edgecd-bench-plugins-")
    os.chmod(tmp, 0o755)
    for name, src, _ in COMPARE:
        dst = os.path.join(tmp, name)
        shutil.copytree(src, dst, symlinks=True)
        if extra_manifest:
            with open(os.path.join(dst, "plugin.yaml"), "a") as f:
                f.write("\n# added by bench/bench.py\n" + extra_manifest)
    return tmp


def wait_for_daemon_binary(timeout=180.0):
    """build/edgecd may be briefly missing while someone rebuilds it."""
    deadline = time.monotonic() + timeout
    while not os.access(harness.OPTIONS["daemon"], os.X_OK):
        if time.monotonic() > deadline:
            raise AssertionError("%s is missing" % harness.OPTIONS["daemon"])
        print("  (%s missing: waiting for it)" % harness.OPTIONS["daemon"])
        time.sleep(10)


def server_timing(headers):
    """A Server-Timing header's durations: {name: ms}."""
    out = {}
    for part in (headers.get("Server-Timing") or "").split(","):
        name, _, params = part.strip().partition(";")
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "dur" and name:
                out[name] = float(v)
    return out


def lean_post(d, path, payload, timeout=120, method="POST"):
    """POST payload (bytes, JSON) on a fresh TCP connection, timed as B's
    raw run is (B reads result.json's bytes, and parses them after its
    clock): the request written whole, the answer read to its
    Content-Length, then the clock stopped; parsed after.  (ms, status,
    {header: value}, body bytes).  http.client would charge A its own
    header parsing (email.parser) and the harness's JSON decoding, which
    under QEMU without KVM cost milliseconds that are the client's.  The
    daemon answers with a Content-Length (never chunked), which this
    needs.  method "GET" with payload None: the same for a GET."""
    if payload is None:
        assert method != "POST", "a POST needs a body"
        req = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (method.encode(), path.encode(), d.port)
    else:
        req = (b"%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % (method.encode(), path.encode(), d.port, len(payload))) + payload
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", d.port), timeout=timeout)
    try:
        s.sendall(req)
        chunks, have, head, end, need = [], 0, b"", -1, None
        while need is None or have < need:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("%s %s: connection closed after %d bytes: %r"
                                     % (method, path, have, b"".join(chunks)[:300]))
            chunks.append(chunk)
            have += len(chunk)
            if end < 0:
                head += chunk
                end = head.find(b"\r\n\r\n")
                if end >= 0:
                    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head[:end], re.I)
                    if not m:
                        raise AssertionError("%s %s: no Content-Length in %r" % (method, path, head[:end]))
                    need = end + 4 + int(m.group(1))
        ms = (time.monotonic() - t0) * 1000
        buf = b"".join(chunks)
    finally:
        s.close()
    lines = buf[:end].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().title()] = v.strip()
    return ms, int(lines[0].split()[1]), headers, buf[end + 4:need]


def timed_job(d, payload, timings=None):
    """POST payload (bytes) with ?wait=true (lean_post()): (client latency
    in ms, job).  Only the request is timed; the checks come after.
    timings: a list to append the answer's Server-Timing to
    (server_timing())."""
    ms, status, headers, raw = lean_post(d, "/v1/jobs?wait=true", payload)
    if status != 200:
        raise AssertionError("POST /v1/jobs?wait=true %s: %s %r" % (payload[:120], status, raw[:500]))
    body = json.loads(raw)
    if not isinstance(body, dict) or body.get("status") != "succeeded":
        raise AssertionError("POST /v1/jobs?wait=true %s: %s %r" % (payload[:120], status, raw[:500]))
    if timings is not None:
        timings.append(server_timing(headers))
    return ms, body


def capture_bundles(plugins):
    """The daemon's own config.json for one job of each COMPARE plugin.

    A daemon with keep_bundles: true (otherwise the config of the measured
    daemons) runs one job of each; the bundle it keeps is
    STATE/workspaces/RUN_ID/bundle/config.json (workspace.c: only input/ and
    output/ are removed), read through /proc/PID/root (the daemon's mount
    namespace).  Returns {algorithm: {"config", "input",
    "result"}}: the config as the daemon wrote it, the bytes it put in
    /input/input.json (the parameters as api.c stores them: jansson's
    JSON_COMPACT, i.e. separators "," and ":", key order kept) and the job's
    result.  The kept workspaces are removed before the daemon stops."""
    d = bench_daemon("bench-capture", plugins, {"workers": 2, "queue_capacity": 256, "keep_bundles": True})
    d.start()
    out = {}
    # The workspaces' tmpfs is in the daemon's own mount namespace.
    ws = d.view(os.path.join(d.state_dir, "workspaces"))
    runs = []
    try:
        for name, _, body in COMPARE:
            _, job = timed_job(d, compact(body))
            run_id = job["attempts"][-1]["run_id"]
            runs.append(run_id)
            with open(os.path.join(ws, run_id, "bundle", "config.json")) as f:
                cfg = json.load(f)
            out[name] = {"config": cfg, "input": compact(body["parameters"]), "result": job["result"]}
    finally:
        # The reply may come before the daemon has cleaned the workspace
        # up (input/ and output/ removed, the bundle kept): wait for that
        # before removing the rest.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
                os.path.exists(os.path.join(ws, r, x)) for r in runs for x in ("input", "output")):
            time.sleep(0.02)
        shutil.rmtree(ws, ignore_errors=True)
        d.stop()
    return out


class RawRunner:
    """`RUNTIME --root TMP/root run --bundle BUNDLE ID` of a config.json the
    daemon wrote, driven directly.

    prepare() makes one run's directory: input/ (0755) with input.json
    (0644, the daemon's bytes), output/ (0700, owned by the config's
    uid/gid: a plain directory where the daemon mounts a tmpfs), bundle/
    with the config rewritten where it must differ: the container id,
    linux.cgroupsPath (PARENT/bench-raw-PID-N, under the cgroup parent of
    the daemon it is compared with) and the sources of the /input and
    /output mounts.  Everything else (root.path, the plugin's rootfs, the
    limits, seccomp, namespaces, user) is the daemon's.  run() posix_spawns
    the runtime with the daemon's runtime environment (PATH only), stdin
    /dev/null and stdout/stderr to a file, waits for it with os.wait4 (its
    rusage includes the container's processes, which it reaps) and reads
    output/result.json; that is what is timed.  finish() removes the run:
    `delete --force` if the runtime left its state, the cgroup if left, the
    directory.  close() removes whatever is left (containers, cgroups named
    bench-raw-* under the parent, the temp dir), also after a failure."""

    def __init__(self, runtime_path, cgroup_parent):
        self.rt = runtime_path
        self.parent = cgroup_parent
        self.tmp = tempfile.mkdtemp(prefix="edgecd-bench-raw-")
        self.root = os.path.join(self.tmp, "root")
        os.mkdir(self.root, 0o700)
        self.n = 0
        self.lock = threading.Lock()

    def prepare(self, template, input_bytes):
        with self.lock:
            self.n += 1
            cid = "%s%d-%d" % (RAW_PREFIX, os.getpid(), self.n)
        base = os.path.join(self.tmp, cid)
        os.mkdir(base, 0o700)
        inp, outp, bundle = (os.path.join(base, x) for x in ("input", "output", "bundle"))
        os.mkdir(inp)
        os.chmod(inp, 0o755)
        with open(os.path.join(inp, "input.json"), "wb") as f:
            f.write(input_bytes)
        os.chmod(os.path.join(inp, "input.json"), 0o644)
        user = template["process"]["user"]
        os.mkdir(outp)
        os.chmod(outp, 0o700)
        os.chown(outp, user["uid"], user["gid"])
        os.mkdir(bundle, 0o700)
        cfg = json.loads(json.dumps(template))
        cfg["linux"]["cgroupsPath"] = "%s/%s" % (self.parent.rstrip("/"), cid)
        seen = set()
        for m in cfg["mounts"]:
            if m["destination"] == "/input":
                m["source"] = inp
                seen.add("/input")
            elif m["destination"] == "/output":
                m["source"] = outp
                seen.add("/output")
        if seen != {"/input", "/output"}:
            raise AssertionError("the daemon's config.json has no /input or /output bind mount: %s"
                                 % [m["destination"] for m in cfg["mounts"]])
        if not os.path.isabs(cfg["root"]["path"]):
            raise AssertionError("root.path %r is not absolute" % cfg["root"]["path"])
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        return {"id": cid, "dir": base, "bundle": bundle, "output": outp, "cgroup": cfg["linux"]["cgroupsPath"]}

    def _spawn_wait(self, args, fd):
        """RUNTIME --root ROOT ARGS with the daemon's runtime environment,
        stdin /dev/null, stdout and stderr on fd; (exit code, rusage)."""
        pid = os.posix_spawn(self.rt, [self.rt, "--root", self.root] + args, RUNTIME_ENV, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)])
        _, status, ru = os.wait4(pid, 0)
        return os.waitstatus_to_exitcode(status), ru

    @staticmethod
    def _result(r):
        """output/result.json's bytes, or None."""
        try:
            with open(os.path.join(r["output"], "result.json"), "rb") as f:
                return f.read()
        except OSError:
            return None

    def run(self, r):
        """(wall ms, rusage, result.json bytes); raises on a failed run."""
        log = os.path.join(r["dir"], "runtime.log")
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        args = ["run", "--bundle", r["bundle"], r["id"]]
        try:
            t0 = time.monotonic()
            rc, ru = self._spawn_wait(args, fd)
            data = self._result(r)
            ms = (time.monotonic() - t0) * 1000
        finally:
            os.close(fd)
        if rc != 0 or data is None:
            raise AssertionError("%s %s: exit %s, result.json %s\n%s" % (
                self.rt, " ".join(args), rc, "missing" if data is None else "present", harness.tail(log, 20)))
        return ms, ru, data

    def run_split(self, r):
        """The daemon's own runtime sequence of a cold job (runtime_cli.c,
        sandbox.c, runcgroup.c, this build), driven directly: the container
        in a run cgroup that keeps the totals when the runtime deletes the
        container's, `run --bundle B --pid-file P ID` in the foreground,
        read result.json (the daemon answers here).  On cgroup v1 the run
        cgroup is a slot used again round after round (cgroupsPath
        PARENT/bench-raw-slot/ID; nothing to remove); on v2 one made for
        this run before it, untimed, with its controllers (the daemon makes
        it after the answer before: PARENT/ID, the container's PARENT/ID/ID),
        then removed (the daemon does it after the answer).  Returns
        ({phase: ms}, result.json bytes)."""
        log = os.path.join(r["dir"], "runtime.log")
        pid_file = os.path.join(r["bundle"], "container.pid")
        cfg_path = os.path.join(r["bundle"], "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        slots = not harness.cgroup_v2()
        if slots:
            cfg["linux"]["cgroupsPath"] = "%s/%sslot/%s" % (self.parent.rstrip("/"), RAW_PREFIX, r["id"])
        else:
            cfg["linux"]["cgroupsPath"] = "%s/%s" % (r["cgroup"], r["id"])
            d = os.path.join("/sys/fs/cgroup", r["cgroup"].strip("/"))
            os.mkdir(d)
            with open(os.path.join(d, "cgroup.subtree_control"), "w") as f:
                f.write("+memory +pids +cpu")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        ms = {}
        try:
            t0 = time.monotonic()
            rc, ru = self._spawn_wait(["run", "--bundle", r["bundle"], "--pid-file", pid_file, r["id"]], fd)
            data = self._result(r)
            t2 = time.monotonic()
            for d in [] if slots else harness.cgroup_dirs(r["cgroup"]):
                os.rmdir(d)
            t3 = time.monotonic()
        finally:
            os.close(fd)
        if rc != 0 or data is None:
            raise AssertionError("raw run (the daemon's sequence) of %s: exit %s, result.json %s\n%s" % (
                r["id"], rc, "missing" if data is None else "present", harness.tail(log, 20)))
        ms.update(run=(t2 - t0) * 1000, remove=(t3 - t2) * 1000, total=(t3 - t0) * 1000,
                  cpu=(ru.ru_utime + ru.ru_stime) * 1000)
        return ms, data

    def run_tail(self, r, timeout=60.0):
        """A raw `run --pid-file P` (untimed spawn as in run()), watching
        its container: the pid file polled every 0.2 ms, the container's
        process then held by a pidfd.  Returns (the runtime's time from that
        process's end to its own exit, ms; the whole run as watched so, ms),
        or None when the process could not be held while it ran (a short
        job often ends first: the runtime writes the pid file once the
        process runs; held already ended, its end time is not known).  The
        runtime is killed past timeout s."""
        log = os.path.join(r["dir"], "runtime.log")
        pid_file = os.path.join(r["bundle"], "container.pid")
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        pid, status, rtfd, pidfd, late = None, None, -1, -1, False
        try:
            t0 = time.monotonic()
            pid = os.posix_spawn(self.rt, [self.rt, "--root", self.root, "run", "--bundle", r["bundle"],
                                           "--pid-file", pid_file, r["id"]], RUNTIME_ENV, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)])
            rtfd = os.pidfd_open(pid)
            deadline = t0 + timeout
            while pidfd < 0 and time.monotonic() < deadline:
                if select.select([rtfd], [], [], 0)[0]:
                    break   # the runtime has ended
                try:
                    with open(pid_file) as f:
                        pidfd = os.pidfd_open(int(f.read().strip()))
                except (FileNotFoundError, ProcessLookupError, ValueError):
                    time.sleep(0.0002)
            if pidfd >= 0:
                late = bool(select.select([pidfd], [], [], 0)[0])   # ended before it was held
                ready = select.select([pidfd, rtfd], [], [], max(0.0, deadline - time.monotonic()))[0]
                t1 = time.monotonic()
                if pidfd not in ready:
                    late = True   # the runtime ended first, or the time ran out
            if select.select([rtfd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                _, status = os.waitpid(pid, 0)
                pid = None
                t2 = time.monotonic()
        finally:
            os.close(fd)
            for x in (pidfd, rtfd):
                if x >= 0:
                    os.close(x)
            if pid is not None:   # past the deadline, or an exception
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        if status is None:
            raise AssertionError("%s run %s: not ended within %.0f s\n%s" % (self.rt, r["id"], timeout,
                                                                             harness.tail(log, 20)))
        if os.waitstatus_to_exitcode(status) != 0:
            raise AssertionError("%s run %s: exit %s\n%s" % (self.rt, r["id"], os.waitstatus_to_exitcode(status),
                                                              harness.tail(log, 20)))
        if pidfd < 0 or late:
            return None
        return (t2 - t1) * 1000, (t2 - t0) * 1000

    def finish(self, r):
        if os.path.exists(os.path.join(self.root, r["id"])):
            subprocess.run([self.rt, "--root", self.root, "delete", "--force", r["id"]],
                           capture_output=True, timeout=30, env=RUNTIME_ENV)
        harness.force_remove_cgroups(r["cgroup"])
        shutil.rmtree(r["dir"], ignore_errors=True)

    def one(self, template, input_bytes, expect):
        """prepare, run, check the result against the job's, finish."""
        r = self.prepare(template, input_bytes)
        try:
            ms, ru, data = self.run(r)
        finally:
            self.finish(r)
        check_same_result(expect, data, r["id"])
        return ms, ru

    def one_split(self, template, input_bytes, expect):
        """prepare, run_split, check the result against the job's, finish:
        ({phase: ms}, as run_split)."""
        r = self.prepare(template, input_bytes)
        try:
            ph, data = self.run_split(r)
        finally:
            self.finish(r)
        check_same_result(expect, data, r["id"])
        return ph

    def noop_ms(self):
        """One `RUNTIME --root ROOT list` (an empty root): the cost of starting
        the runtime's binary at all, in ms."""
        t0 = time.monotonic()
        subprocess.run([self.rt, "--root", self.root, "list", "-q"], capture_output=True, timeout=30,
                       env=RUNTIME_ENV, check=True)
        return (time.monotonic() - t0) * 1000

    def close(self):
        left = []
        if os.path.isdir(self.root):
            for cid in os.listdir(self.root):
                left.append(cid)
                subprocess.run([self.rt, "--root", self.root, "delete", "--force", cid],
                               capture_output=True, timeout=30, env=RUNTIME_ENV)
        for d in harness.cgroup_dirs(self.parent):
            for name in os.listdir(d):
                if name.startswith(RAW_PREFIX) and os.path.isdir(os.path.join(d, name)):
                    harness.force_remove_cgroups("%s/%s" % (self.parent.rstrip("/"), name))
        shutil.rmtree(self.tmp, ignore_errors=True)
        return left


def check_same_result(expect, data, what):
    try:
        got = json.loads(data)
    except ValueError:
        got = data
    if got != expect:
        raise AssertionError("raw run %s produced a different result than the job: %r, job: %r"
                             % (what, data[:300], json.dumps(expect)[:300]))


class CompareRig:
    """Sections 9-12: one plugins dir of copies and the bundles captured
    from it (start()); for 9-11 also one daemon on it (workers: 2, as in
    sections 1-6) with a RawRunner on its cgroup parent (start_daemon()).
    close() removes all of it, raw runs first (they sit under the daemon's
    cgroup parent, which the daemon removes as it stops)."""

    def __init__(self):
        self.plugins = self.d = self.raw = None
        self.bundles = {}

    def start(self):
        wait_for_daemon_binary()
        self.plugins = make_plugins_dir()
        self.bundles = capture_bundles(self.plugins)
        return self

    def start_daemon(self):
        self.d = bench_daemon("bench-compare", self.plugins, {"workers": 2, "queue_capacity": 256})
        self.d.start()
        self.raw = RawRunner(self.d.runtime["path"], self.d.cgroup_parent)
        rt = self.d.runtime
        print("raw runtime comparisons: the daemon's runtime is %s %s at %s (GET /readyz); each raw run is "
              "`%s --root TMP run --bundle BUNDLE ID`" % (rt.get("name"), rt.get("version"), rt.get("path"),
                                                         rt.get("path")))

    def stop_daemon(self):
        try:
            if self.raw is not None:
                left = self.raw.close()
                if left:
                    print("  NOTE: raw containers were left and have been deleted: %s" % ", ".join(left))
        finally:
            self.raw = None
            if self.d is not None:
                d, self.d = self.d, None
                d.stop()

    def close(self):
        try:
            self.stop_daemon()
        finally:
            if self.plugins:
                shutil.rmtree(self.plugins, ignore_errors=True)


def rounds(fns, n, warmups):
    """warmups of each, then n rounds of one call of each fn, the order
    rotated by one each round (A,B / B,A; A,B,C / B,C,A / C,A,B): a list of
    figures per fn, in round order."""
    for _ in range(warmups):
        for fn in fns:
            fn()
    out = [[] for _ in fns]
    for i in range(n):
        for j in range(len(fns)):
            k = (i + j) % len(fns)
            out[k].append(fns[k]())
    return out


def pairs_ab(a_fn, b_fn, n_pairs, warmups):
    """rounds() of A and B: alternately A,B and B,A."""
    return rounds((a_fn, b_fn), n_pairs, warmups)


def settle(d, algorithm=None, warm=0, timeout=30.0):
    """Wait until the daemon's work after the last answer is done: no
    cleanup pending (edgecd_cleanups_pending 0: the container deleted and
    the workspace removed after the job's answer went out), and, with
    warm, the algorithm's warm pool full again.  So that no arm of a
    comparison runs beside the previous one's leftovers.  A daemon without
    these metrics is settled at once."""
    deadline = time.monotonic() + timeout
    while True:
        pending = metric_value(d, "edgecd_cleanups_pending", None)
        size = metric_value(d, "edgecd_warm_pool_size", algorithm) if warm else None
        if (pending is None or pending == 0) and (not warm or (size is not None and size >= warm)):
            return
        if time.monotonic() > deadline:
            raise AssertionError("daemon not settled after %.0f s: edgecd_cleanups_pending %s, "
                                 "edgecd_warm_pool_size{algorithm=\"%s\"} %s" % (timeout, pending, algorithm, size))
        time.sleep(0.005)


def section_9_cold(rig, n_pairs=80, warmups=3):
    """Cold job against a raw `RUNTIME run` of the same config.json.

    Method: per plugin (t_echo, the trivial job; MATRIX, the reference job),
    3 warm-ups of each, then n_pairs pairs alternately A,B and B,A.
    A = one POST /v1/jobs?wait=true on a fresh connection, client latency
    (lean_post(): the request, and the answer's bytes read; parsed after
    the clock, as B's result.json is).  B = RawRunner.run of the config.json the daemon
    wrote for that plugin (see capture_bundles, RawRunner): spawn, wait,
    read result.json; the run dir's preparation and removal are not timed
    (their own median is shown).  Every job's and every raw run's result is
    checked against the captured job's.  Reported: median of the per-pair
    ratio A/B, medians and p99 of A and B, and the job's own phases.
    To show where A's extra time goes, each round also has C (not in the
    ratio; rounds rotate A,B,C / B,C,A / C,A,B): the same config.json
    through the daemon's own sequence (RawRunner.run_split: `run` in the
    foreground in the run cgroup, on v2 that cgroup removed after, each
    timed); and after the rounds, the
    cost of starting the runtime binary at all (`list` on an empty root,
    x10); the HTTP floor (a GET /healthz on a fresh connection, x30); and
    the runtime's teardown after its container's end (RawRunner.run_tail,
    x20), which A and B both wait for.  Before every A, B and C the daemon
    is settled (settle(): the previous job's cleanup, which runs after its
    answer, is over)."""
    d, raw = rig.d, rig.raw
    print("9. cold job vs raw `%s run` of the daemon's own config.json, %d alternated rounds after %d warm-ups"
          % (d.runtime.get("name"), n_pairs, warmups))
    for name, _, body in COMPARE:
        b = rig.bundles[name]
        payload = compact(body)
        jobs, prep, timings = [], [], []

        def a_fn():
            settle(d)
            ms, job = timed_job(d, payload, timings)
            if job["result"] != b["result"]:
                raise AssertionError("job %s: result %r, expected %r" % (job["id"], job["result"], b["result"]))
            jobs.append(job)
            return ms

        def b_fn():
            settle(d)
            t0 = time.monotonic()
            r = raw.prepare(b["config"], b["input"])
            prep.append((time.monotonic() - t0) * 1000)
            try:
                ms, _, data = raw.run(r)
            finally:
                raw.finish(r)
            check_same_result(b["result"], data, r["id"])
            return ms
        split = []

        def c_fn():
            settle(d)
            split.append(raw.one_split(b["config"], b["input"], b["result"]))
            return split[-1]["total"]
        a, bb, _ = rounds((a_fn, b_fn, c_fn), n_pairs, warmups)
        jobs = jobs[warmups:]
        split = split[warmups:]
        ratio = [x / y for x, y in zip(a, bb)]
        noop = [raw.noop_ms() for _ in range(10)]
        # What any answer on a fresh connection costs this client here.
        floor = []
        for _ in range(30):
            settle(d)
            ms, status, _, _ = lean_post(d, "/healthz", None, method="GET")
            if status != 200:
                raise AssertionError("GET /healthz: %s" % status)
            floor.append(ms)
        # What the runtime does after its container's end, which A and B
        # both wait for (the exit status is the runtime's to reap).
        tails = []
        for _ in range(20):
            settle(d)
            r = raw.prepare(b["config"], b["input"])
            try:
                t = raw.run_tail(r)
            finally:
                raw.finish(r)
            if t:
                tails.append(t)
        sm = lambda k: statistics.median(x[k] for x in split)  # noqa: E731
        m = lambda k: statistics.median(j["metrics"][k] for j in jobs)  # noqa: E731
        rest = statistics.median(j["metrics"]["total_ms"] - j["metrics"]["create_ms"] - j["metrics"]["run_ms"]
                                 - j["metrics"]["collect_ms"] - j["metrics"]["queue_ms"] for j in jobs)
        print("  %s (%s)" % (name, json.dumps(body["parameters"])[:60]))
        stats_line("A  job, client latency", a)
        stats_line("B  raw run (spawn, wait, read result)", bb)
        print("  %-44s median %8.3f  min %.3f  max %.3f" % ("A/B per pair", statistics.median(ratio), min(ratio),
                                                           max(ratio)))
        print("    job phases (medians): total_ms %.0f = queue %.0f + create_ms %.0f + run %.0f + collect %.0f"
              " + rest %.0f (workspace, bundle, store; cleanup comes after the answer)"
              % (m("total_ms"), m("queue_ms"), m("create_ms"), m("run_ms"), m("collect_ms"), rest))
        print("    client latency - total_ms (HTTP, submit commit, reply): median %.1f ms"
              % statistics.median(x - j["metrics"]["total_ms"] for x, j in zip(a, jobs)))
        timing_line(a, timings[warmups:])
        print("    the HTTP floor: a GET /healthz on a fresh connection, the same client, median %.2f ms (n=%d)"
              % (statistics.median(floor), len(floor)))
        if tails:
            print("    the runtime after its container's process ended (its teardown, in A and B alike): median "
                  "%.2f ms of a %.1f ms run watched so (%d of 20 runs held the process while it ran)"
                  % (statistics.median(t[0] for t in tails), statistics.median(t[1] for t in tails), len(tails)))
        else:
            print("    the runtime after its container's process ended: not measured (no process was held while "
                  "it ran: each ended before its pid file could be read)")
        print("    B's untimed preparation (dirs, input.json, config.json): median %.2f ms; one `%s list` "
              "(the runtime binary starting at all): median %.1f ms" % (statistics.median(prep),
                                                                        d.runtime.get("name"),
                                                                        statistics.median(noop)))
        upto = [x["run"] for x in split]
        a_c = statistics.median(x - y for x, y in zip(a, upto))
        c_b = statistics.median(y - z for y, z in zip(upto, bb))
        print("  C  the daemon's sequence driven directly (in the same rounds, not in the ratio):")
        print("    run (foreground, cgroup %s) %.1f + remove %s %.1f ms (medians)"
              % ("PARENT/ID/ID, PARENT/ID made before" if harness.cgroup_v2() else "PARENT/SLOT/ID", sm("run"),
                 "PARENT/ID" if harness.cgroup_v2() else "nothing (a slot)", sm("remove")))
        print("    per round, median of A - C(run) = %.1f ms: the daemon's own work on the job's path (the "
              "cleanup comes after the answer); of C(run) - B = %.1f ms: the container's cgroup "
              "nested in a run cgroup" % (a_c, c_b))
        note("9. cold %s job / raw run, median per-pair A/B" % name, "%.3f (A %.0f / B %.0f ms)"
             % (statistics.median(ratio), statistics.median(a), statistics.median(bb)), "<= 1.05")
        note("9.   %s job p99 / raw run p99" % name, "%.0f / %.0f ms" % (pct(a, 99), pct(bb, 99)))


def timing_line(latency, timings):
    """The answers' Server-Timing (medians): the daemon's clock from the
    request's head to its answer, and what the client saw beyond it."""
    keys = ("admit", "job", "commit", "reply")
    if not timings or any(k not in t for t in timings for k in keys):
        print("    Server-Timing: missing from some answers")
        return
    med = {k: statistics.median(t[k] for t in timings) for k in keys}
    beyond = statistics.median(x - sum(t[k] for k in keys) for x, t in zip(latency, timings))
    print("    Server-Timing (medians, ms): admit %.2f (head in to job made) + job %.1f + commit %.2f (final "
          "to its commit done) + reply %.2f; client latency beyond them %.2f (the connection, the bytes "
          "both ways, the HTTP thread's work outside the handler)" % (med["admit"], med["job"], med["commit"], med["reply"], beyond))


def section_10_concurrent(rig, per_client=12, n_rounds=30):
    """N concurrent clients against N parallel raw loops (N = workers).

    Method: the reference job (MATRIX).  A: N threads, each POSTing
    per_client jobs with ?wait=true one after the other.  B: N threads, each
    running per_client raw runs (RawRunner.run) one after the other, on run
    dirs prepared before the clock starts and removed after it stops; each
    result is checked.  jobs/s = N * per_client / wall time from the
    threads' start to the last join.  Each round starts on a settled
    daemon (settle()).  Rounds alternate A,B then B,A;
    reported: the median of the per-round ratio A/B and both medians.
    Thirty rounds, not four or twelve: this host's speed moves by tens of
    per cent within seconds (one round's ratio 0.73, the next 1.13), and
    the same build's median of four rounds was 0.90 in one run, 1.07 in
    another; of twelve, 0.94 and 1.02 a minute apart."""
    d, raw = rig.d, rig.raw
    n = d.req("GET", "/readyz").body["jobs"]["workers"]
    b = rig.bundles["matrix_multiplication"]
    payload = compact(MATRIX)
    total = n * per_client

    def threaded(work):
        errors = []

        def th(k):
            try:
                work(k)
            except Exception as e:  # noqa: BLE001 - re-raised below
                errors.append(e)
        ts = [threading.Thread(target=th, args=(k,)) for k in range(n)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        el = time.monotonic() - t0
        if errors:
            raise errors[0]
        return total / el

    def a_fn():
        settle(d)

        def work(_):
            for _ in range(per_client):
                _, job = timed_job(d, payload)
                if job["result"] != b["result"]:
                    raise AssertionError("job %s: wrong result" % job["id"])
        return threaded(work)

    def b_fn():
        settle(d)
        runs = [[raw.prepare(b["config"], b["input"]) for _ in range(per_client)] for _ in range(n)]
        outs = []
        try:
            def work(k):
                for r in runs[k]:
                    outs.append((r["id"], raw.run(r)[2]))
            return threaded(work)
        finally:
            for rs in runs:
                for r in rs:
                    raw.finish(r)
            for cid, data in outs:
                check_same_result(b["result"], data, cid)

    a, bb = pairs_ab(a_fn, b_fn, n_rounds, 1)
    ratio = [x / y for x, y in zip(a, bb)]
    print("10. %d concurrent clients vs %d parallel raw loops (workers: %d), %d reference jobs each way per round, "
          "%d rounds alternated after a warm-up" % (n, n, n, total, n_rounds))
    print("  A  daemon jobs/s:   %s  median %.2f" % (" ".join("%.2f" % x for x in a), statistics.median(a)))
    print("  B  raw runs/s:      %s  median %.2f" % (" ".join("%.2f" % x for x in bb), statistics.median(bb)))
    print("  A/B per round:      %s  median %.3f" % (" ".join("%.3f" % x for x in ratio), statistics.median(ratio)))
    note("10. %d clients vs %d raw loops, jobs/s A/B (median of %d rounds)" % (n, n, n_rounds),
         "%.3f (%.1f / %.1f per s)" % (statistics.median(ratio), statistics.median(a), statistics.median(bb)),
         ">= 0.95")


def proc_cpu_ticks(pid):
    """(utime+stime, cutime+cstime) of /proc/PID/stat, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    # fields[0] is field 3 (state): utime is field 14, so fields[11]
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def pid1_cpu_ms():
    """PID 1's CPU time so far in ms (its main thread's schedstat; systemd
    does its work there), or None when /proc/1 cannot be read."""
    try:
        with open("/proc/1/schedstat") as f:
            return int(f.read().split()[0]) / 1e6
    except (OSError, ValueError, IndexError):
        return None


def pid1_name():
    try:
        with open("/proc/1/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def proc_threads_cpu_ns(pid):
    """The CPU time of each of pid's threads now, in ns, by thread id: the
    first field of /proc/PID/task/TID/schedstat (the scheduler's own count,
    what utime+stime are scaled to, without their 10 ms steps).  A kernel
    without schedstat (CONFIG_SCHED_INFO) is an error, not 0 ms."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                ns = int(f.read().split()[0])
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                out[(tid, f.read().strip())] = ns
        except (OSError, ValueError, IndexError):
            pass   # the thread ended meanwhile
    if not out:
        raise RuntimeError("no /proc/%d/task/*/schedstat to read" % pid)
    return out


def threads_cpu_delta_ns(before, after):
    """What the threads used between two proc_threads_cpu_ns() readings (a
    thread that ended meanwhile is not counted: the daemon's live as long
    as it does)."""
    return sum(ns - before.get(tid, 0) for tid, ns in after.items())


def threads_cpu_by_name_ns(before, after):
    """threads_cpu_delta_ns() by thread name (the daemon names each kind)."""
    out = {}
    for (tid, name), ns in after.items():
        out[name] = out.get(name, 0) + ns - before.get((tid, name), 0)
    return out


def section_11_cpu(rig, k=60):
    """CPU per job: the daemon's own, its children's, and one raw run's.

    Method: k reference jobs (MATRIX) one at a time with ?wait=true, each
    on a fresh connection (as in 9 and 10); the daemon's utime+stime (all
    its threads) and cutime+cstime (the children it has waited for: its
    runtime calls and the container's init, which is re-parented to it)
    from /proc/PID/stat before and after, delta / k.  Before each reading
    the daemon is settled (settle()): the last job's cleanup, which runs
    after its answer, counts.  Those figures are in clock ticks (SC_CLK_TCK,
    100 per second here), so their resolution is 10 ms / k; the daemon's
    own is also read in ns from its threads' schedstat, which is the figure
    set against the target.  Then the same
    over one keep-alive connection, and the cost of a connection alone (300
    GET /healthz on fresh connections against 3,000 on one keep-alive
    connection, /proc/PID/stat).  Then k raw runs one after the other:
    ru_utime+ru_stime of os.wait4 of each `run` (the runtime and the
    container it waited for), summed / k; and k more in the daemon's
    cgroup layout (RawRunner.run_split, section 9's C), whose difference
    from the first is what the layout costs the runtime.  And PID 1's CPU
    (/proc/1/schedstat) over the k jobs and over the k raw runs, per job:
    what each makes systemd do, when it is PID 1."""
    d, raw = rig.d, rig.raw
    b = rig.bundles["matrix_multiplication"]
    payload = compact(MATRIX)
    hz = os.sysconf("SC_CLK_TCK")
    for _ in range(3):
        timed_job(d, payload)

    def window(fn, n):
        settle(d)
        own0, kids0 = proc_cpu_ticks(d.proc.pid)
        ns0 = proc_threads_cpu_ns(d.proc.pid)
        t0 = time.monotonic()
        for _ in range(n):
            fn()
        el = time.monotonic() - t0
        settle(d)      # the last job's cleanup (delete, workspace) belongs to it
        own1, kids1 = proc_cpu_ticks(d.proc.pid)
        ns1 = proc_threads_cpu_ns(d.proc.pid)
        by_name.clear()
        by_name.update(threads_cpu_by_name_ns(ns0, ns1))
        return ((own1 - own0) * 1000.0 / hz / n, (kids1 - kids0) * 1000.0 / hz / n, own1 - own0, el,
                threads_cpu_delta_ns(ns0, ns1) / 1e6 / n)

    by_name = {}
    # PID 1 counts too: systemd re-reads the mount table whenever a mount
    # comes or goes in its mount namespace (a job's /output tmpfs did, before
    # the daemon had a namespace of its own: mountns.h).
    p1 = pid1_cpu_ms()
    own, kids, ticks, el_a, own_ns = window(lambda: timed_job(d, payload), k)
    p1_jobs = pid1_cpu_ms()
    p1_jobs = (p1_jobs - p1) / k if p1 is not None and p1_jobs is not None else None
    threads = ", ".join("%s %.3f" % (name, ns / 1e6 / k)
                        for name, ns in sorted(by_name.items(), key=lambda kv: -kv[1]) if ns / 1e6 / k >= 0.005)
    s = d.session(timeout=120)

    def keepalive_job():
        r = s.req("POST", "/v1/jobs?wait=true", payload, {"Content-Type": "application/json"})
        if r.status != 200 or r.body.get("status") != "succeeded":
            raise AssertionError("POST /v1/jobs?wait=true: %s" % (r,))
    try:
        own_ka, kids_ka, ticks_ka, _, own_ns_ka = window(keepalive_job, k)
        hz_ka = window(lambda: s.req("GET", "/healthz"), 3000)[4]
    finally:
        s.close()
    hz_fresh = window(lambda: d.req("GET", "/healthz"), 300)[4]
    raw_cpu = []
    p1 = pid1_cpu_ms()
    for _ in range(k):
        _, ru = raw.one(b["config"], b["input"], b["result"])
        raw_cpu.append((ru.ru_utime + ru.ru_stime) * 1000)
    rawm = sum(raw_cpu) / k
    p1_raw = pid1_cpu_ms()
    p1_raw = (p1_raw - p1) / k if p1 is not None and p1_raw is not None else None
    # The same runs in the daemon's cgroup layout (section 9's C): on v2 a
    # run cgroup with the container's nested in it.
    split_cpu = [raw.one_split(b["config"], b["input"], b["result"])["cpu"] for _ in range(k)]
    splitm = sum(split_cpu) / k
    print("11. CPU per reference job over %d jobs one at a time (%.1f s), /proc/PID/stat at %d Hz, "
          "vs %d raw runs (os.wait4 rusage)" % (k, el_a, hz, k))
    print("  daemon's own (its threads' schedstat)          %7.3f ms per job  (a fresh connection each)" % own_ns)
    print("    by thread (ms per job): %s" % threads)
    print("    the same over one keep-alive connection      %7.3f ms per job" % own_ns_ka)
    print("    utime+stime, all threads (ticks)             %7.2f ms per job  (%d ticks; keep-alive %.2f, %d ticks)"
          % (own, ticks, own_ka, ticks_ka))
    print("    a GET /healthz: %.3f ms on a fresh connection, %.3f ms on a keep-alive one"
          % (hz_fresh, hz_ka))
    print("  daemon's children (cutime+cstime: runtime calls, container)  %7.2f ms per job  (keep-alive run: %.2f)"
          % (kids, kids_ka))
    print("  daemon own + children                          %7.2f ms per job" % (own_ns + kids))
    print("  raw `run` (runtime + container, rusage)        %7.2f ms per run  (median %.2f)"
          % (rawm, statistics.median(raw_cpu)))
    print("  the same in the daemon's cgroup layout (9's C)  %7.2f ms per run  (median %.2f)"
          % (splitm, statistics.median(split_cpu)))
    if p1_jobs is not None and p1_raw is not None:
        # PID 1's namespace may not be ours to look at (a container's
        # sandbox refuses it even to root: EACCES).
        try:
            ns = "in" if os.stat("/proc/self/ns/mnt").st_ino == os.stat("/proc/1/ns/mnt").st_ino else "not in"
            ns += " PID 1's mount namespace"
        except OSError as e:
            ns = "PID 1's mount namespace not known here: %s" % e.strerror
        print("  PID 1 (%s), its CPU per job of the daemon's  %7.2f ms, per raw run %.2f  (%s)"
              % (pid1_name(), p1_jobs, p1_raw, ns))
    note("11. daemon's own CPU per job (threads' schedstat / %d jobs)" % k,
         "%.3f ms (keep-alive %.3f; utime+stime %.2f)" % (own_ns, own_ns_ka, own), "< 1 ms")
    note("11. daemon's children CPU per job / raw run CPU", "%.1f / %.1f ms (in the daemon's cgroup layout %.1f)"
         % (kids, rawm, splitm))
    if p1_jobs is not None and p1_raw is not None:
        note("11. PID 1's (%s) CPU per job / per raw run" % pid1_name(), "%.2f / %.2f ms" % (p1_jobs, p1_raw))


def metric_value(d, name, algorithm):
    """The sum of name's samples that are for algorithm (an algorithm label
    equal to it, or no algorithm label); None when /metrics has none."""
    r = d.req("GET", "/metrics")
    if r.status != 200:
        raise AssertionError("GET /metrics: %s" % (r,))
    total = None
    for line in r.body.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head != name and not head.startswith(name + "{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', head[len(name):]))
        if labels.get("algorithm", algorithm) != algorithm:
            continue
        total = (total or 0.0) + float(value)
    return total


def wait_pool_full(d, algorithm, size, timeout=30.0):
    deadline = time.monotonic() + timeout
    v = None
    while time.monotonic() < deadline:
        v = metric_value(d, "edgecd_warm_pool_size", algorithm)
        if v is not None and v >= size:
            return
        time.sleep(0.01)
    raise AssertionError("edgecd_warm_pool_size{algorithm=\"%s\"} did not reach %d in %.0f s (last %s)"
                         % (algorithm, size, timeout, v))


def section_12_warm(rig, warm=2, n_pairs=30, warmups=2):
    """Warm job against a raw `RUNTIME run` of the cold job's config.json.

    Method: the COMPARE plugins copied into a temp plugins dir with
    `warm: 2` added to each plugin.yaml; a daemon (workers: 2) on it.  When
    a plugin is refused (listed under `broken` by GET /v1/algorithms) or
    /metrics has no edgecd_warm_pool_size, the section is skipped.  Else,
    per plugin: wait until edgecd_warm_pool_size{algorithm} reaches 2
    (polling /metrics every 10 ms), then pairs as in 9 (A,B / B,A): before
    each job the pool is full again, and after it
    edgecd_warm_pool_hits_total (the algorithm's sample, or the unlabelled
    total) must have gone up; a job that was not a hit is left out of the
    figures and counted.  B is the raw run of the cold config.json (9),
    under the warm daemon's cgroup parent."""
    print("12. warm job (manifest `warm: %d`) vs raw run of the same config.json" % warm)
    plugins = make_plugins_dir("warm: %d\n" % warm)
    d = raw = None
    try:
        wait_for_daemon_binary()
        d = bench_daemon("bench-warm", plugins, {"workers": 2, "queue_capacity": 256})
        d.start()
        algs = d.req("GET", "/v1/algorithms").body
        broken = [b for b in algs.get("broken", []) if b.get("path", "").startswith(plugins)]
        if broken:
            print("  skipped: this daemon has no warm pool (it refuses the manifest key: %s)" % broken[0]["error"])
            note("12. warm job vs raw run", "skipped: no warm pool", "<= 0.35")
            return
        if metric_value(d, "edgecd_warm_pool_size", COMPARE[0][0]) is None:
            print("  skipped: this daemon has no warm pool (no edgecd_warm_pool_size in /metrics)")
            note("12. warm job vs raw run", "skipped: no warm pool", "<= 0.35")
            return
        raw = RawRunner(d.runtime["path"], d.cgroup_parent)
        for name, _, body in COMPARE:
            b = rig.bundles[name]
            payload = compact(body)
            misses, jobs, timings = [], [], []
            wait_pool_full(d, name, warm)

            def a_fn():
                settle(d, name, warm)
                h0 = metric_value(d, "edgecd_warm_pool_hits_total", name) or 0
                t = []
                ms, job = timed_job(d, payload, t)
                if job["result"] != b["result"]:
                    raise AssertionError("warm job %s: result %r, expected %r" % (job["id"], job["result"],
                                                                                  b["result"]))
                h1 = metric_value(d, "edgecd_warm_pool_hits_total", name) or 0
                if h1 <= h0:
                    misses.append(job["id"])
                    return None
                jobs.append(job)
                timings.append(t[0])
                return ms

            def b_fn():
                settle(d, name, warm)
                return raw.one(b["config"], b["input"], b["result"])[0]
            a, bb = pairs_ab(a_fn, b_fn, n_pairs, warmups)
            kept = [(x, y) for x, y in zip(a, bb) if x is not None]
            if not kept:
                raise AssertionError("no warm job of %s was a pool hit (edgecd_warm_pool_hits_total did not move)"
                                     % name)
            a = [x for x, _ in kept]
            bb = [y for _, y in kept]
            ratio = [x / y for x, y in kept]
            print("  %s: %d pairs (%d jobs not pool hits, left out)" % (name, len(kept), len(misses)))
            stats_line("A  warm job, client latency", a)
            stats_line("B  raw run (spawn, wait, read result)", bb)
            print("  %-44s median %8.3f  min %.3f  max %.3f" % ("A/B per pair", statistics.median(ratio),
                                                               min(ratio), max(ratio)))
            jobs = jobs[-len(kept):]
            m = lambda k: statistics.median(j["metrics"][k] for j in jobs)  # noqa: E731
            print("    warm job phases (medians): total_ms %.0f = queue %.0f + create_ms %.0f (input placed, "
                  "start) + run %.0f + collect %.0f + rest %.0f" % (
                      m("total_ms"), m("queue_ms"), m("create_ms"), m("run_ms"), m("collect_ms"),
                      statistics.median(j["metrics"]["total_ms"] - j["metrics"]["create_ms"] - j["metrics"]["run_ms"]
                                        - j["metrics"]["collect_ms"] - j["metrics"]["queue_ms"] for j in jobs)))
            print("    client latency - total_ms (HTTP, submit commit, reply): median %.1f ms"
                  % statistics.median(x - j["metrics"]["total_ms"] for x, j in zip(a, jobs)))
            timing_line(a, timings[-len(kept):])
            note("12. warm %s job / raw run, median per-pair A/B" % name, "%.3f (A %.0f / B %.0f ms)"
                 % (statistics.median(ratio), statistics.median(a), statistics.median(bb)), "<= 0.35")
    finally:
        try:
            if raw is not None:
                raw.close()
        finally:
            try:
                if d is not None:
                    d.stop()
            finally:
                shutil.rmtree(plugins, ignore_errors=True)


# ----------------------------------------------------------- section 13

OPENBLAS_SERIAL = "/usr/lib/x86_64-linux-gnu/openblas-serial"


def gflops(n, seconds):
    return 2.0 * n ** 3 / seconds / 1e9


def build_matmul_host(tmp):
    """bench/matmul_host.c against the plugin's libopenblas.a; its path."""
    exe = os.path.join(tmp, "matmul_host")
    src = os.path.join(REPO, "bench", "matmul_host.c")
    cmd = ["gcc", "-std=gnu17", "-O2", "-I/usr/include/x86_64-linux-gnu/openblas-serial", "-o", exe, src,
           os.path.join(OPENBLAS_SERIAL, "libopenblas.a"), "-lm"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError("%s: %s" % (" ".join(cmd), p.stderr))
    return exe


def host_seconds(exe, mode, n, reps):
    p = subprocess.run([exe, mode, str(n), str(reps)], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise AssertionError("matmul_host %s %d: %s" % (mode, n, p.stderr))
    return float(p.stdout)


def section_13_gflops(sizes=(256, 1024, 2048), jobs={256: 5, 1024: 3, 2048: 2}, naive_max=1024):
    print("\n== 13. matrix product GFLOP/s (doubles): plugin in its container vs the host")
    import random
    tmp = tempfile.mkdtemp(prefix="edgecd-bench-gemm-")
    d = bench_daemon("gflops", EXAMPLE_PLUGINS,
                     {"workers": 1, "max_body_bytes": "256MiB", "max_result_bytes": "256MiB",
                      "http": dict(HTTP_BENCH, max_response_bytes="512MiB")})
    try:
        exe = build_matmul_host(tmp)
        try:
            import numpy
        except ImportError:
            numpy = None
            print("  numpy not found (scripts/install-deps.sh installs python3-numpy): its column skipped")
        d.start()
        print("  %-6s %-30s %-24s %-30s %s" % ("n", "container (kernel_ms, best)", "job wall (best, body)",
                                                "host dgemm (best / 1st call)", "numpy / naive"))
        for n in sizes:
            # Quarters in -2..2: short in JSON (about 5 bytes each), exact
            # in binary, and still the double-precision path (fractions).
            rnd = random.Random(n)
            a = [[rnd.randint(-8, 8) / 4.0 for _ in range(n)] for _ in range(n)]
            b = [[rnd.randint(-8, 8) / 4.0 for _ in range(n)] for _ in range(n)]
            body = json.dumps({"algorithm": "matrix_multiplication",
                               "parameters": {"matrix_a": a, "matrix_b": b, "timing": True}},
                              separators=(",", ":")).encode()
            kernel, wall = [], []
            for _ in range(jobs[n]):
                t0 = time.monotonic()
                r = d.submit(body, wait="true", headers={"Content-Type": "application/json"}, timeout=600)
                wall.append(time.monotonic() - t0)
                if r.status != 200 or r.body.get("status") != "succeeded":
                    raise AssertionError("matrix %d: %s" % (n, str(r)[:500]))
                kernel.append(r.body["result"]["timing"]["kernel_ms"] / 1000.0)
            k = min(kernel)
            host = host_seconds(exe, "dgemm", n, 5 if n < 2048 else 3)
            # A job is one process, one call: compare with a first call too
            # (OpenBLAS maps and faults in its buffers on the first).
            cold = host_seconds(exe, "dgemm", n, 1)
            extra = []
            if numpy is not None:
                na, nb = numpy.array(a), numpy.array(b)
                best = 1e300
                for _ in range(3):
                    t0 = time.monotonic()
                    numpy.dot(na, nb)
                    best = min(best, time.monotonic() - t0)
                extra.append("%.1f" % gflops(n, best))
            else:
                extra.append("-")
            naive = host_seconds(exe, "naive", n, 1) if n <= naive_max else None
            extra.append("%.2f" % gflops(n, naive) if naive else "-")
            print("  %-6d %6.1f GFLOP/s (%7.1f ms)     %6.2f s (%5.1f MB)       %6.1f / %6.1f GFLOP/s          %s GFLOP/s"
                  % (n, gflops(n, k), k * 1000, min(wall), len(body) / 1e6, gflops(n, host), gflops(n, cold),
                     " / ".join(extra)))
            note("matrix %d: container dgemm (plugin's kernel_ms)" % n, "%.1f GFLOP/s" % gflops(n, k))
            note("matrix %d: host OpenBLAS dgemm, one core (best / first call)" % n,
                 "%.1f / %.1f GFLOP/s" % (gflops(n, host), gflops(n, cold)))
            if naive:
                note("matrix %d: host naive i-j-k loop" % n, "%.2f GFLOP/s" % gflops(n, naive))
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated sections (1 = 1-5, 6, 7, 8, 9, 10, 11, 12, 13)")
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
        if any(want(k) for k in ("9", "10", "11", "12")):
            rig = CompareRig()
            try:
                rig.start()
                if any(want(k) for k in ("9", "10", "11")):
                    rig.start_daemon()
                    if want("9"):
                        section_9_cold(rig)
                    if want("10"):
                        section_10_concurrent(rig)
                    if want("11"):
                        section_11_cpu(rig)
                    rig.stop_daemon()
                if want("12"):
                    section_12_warm(rig)
            finally:
                rig.close()
        if want("13"):
            section_13_gflops()
    finally:
        if wrk:
            wrk.close()
    print()
    print("summary (one run, %.0f s; targets from the issue, compare yourself):" % (time.monotonic() - t_start))
    for label, fig, target in RESULTS:
        print("  %-68s %-26s %s" % (label, fig, ("target " + target) if target else ""))


if __name__ == "__main__":
    main()
