"""bench.py - figures for edgecd on this host (make bench).

Starts build/edgecd on build/plugins with the integration harness, then:
  1. the reference job (3x3 matrix product) one at a time with ?wait=true:
     client latency and the job's own phase timings;
  2. 100 of them from 8 client threads: throughput with `workers` containers;
  3. GET /healthz over one keep-alive connection: the HTTP floor;
  4. submits that fail schema validation: the daemon's own per-call cost
     (parse, registry lookup, schema check, JSON reply), no container;
  5. the daemon's peak resident memory (VmHWM).
Prints a table; no pass/fail: targets are compared by the reader.
"""
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import harness  # noqa: E402

REPO = harness.REPO
MATRIX = {"algorithm": "matrix_multiplication",
          "parameters": {"matrix_a": [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
                         "matrix_b": [[9, 8, 7], [6, 5, 4], [3, 2, 1]]}}
BAD = {"algorithm": "matrix_multiplication", "parameters": {"matrix_a": [[1, "x"]], "matrix_b": [[1]]}}


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def row(name, values, unit="ms"):
    print("  %-38s p50 %8.2f  p95 %8.2f  max %8.2f %s (n=%d)"
          % (name, pct(values, 50), pct(values, 95), max(values), unit, len(values)))


def main():
    harness.OPTIONS["plugins"] = os.path.join(REPO, "build", "plugins")
    d = harness.Daemon("bench", config={"log_level": "info", "workers": 2, "queue_capacity": 256})
    d.start()
    try:
        for _ in range(3):
            d.run_job(MATRIX)
        print("edgecd bench: runtime %s, %d cores" % (d.req("GET", "/readyz").body["runtime"]["name"],
                                                      os.cpu_count()))

        lat, total, create, run, collect, other = [], [], [], [], [], []
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
        print("1. reference job, sequential, ?wait=true")
        row("client latency", lat)
        row("job total_ms", total)
        row("  create_ms (runtime create+start)", create)
        row("  run_ms (algorithm)", run)
        row("  collect_ms (result checks)", collect)
        row("  rest (workspace, bundle, delete)", other)

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

        with open("/proc/%d/status" % d.proc.pid) as f:
            hwm = [line.split()[1] for line in f if line.startswith("VmHWM")][0]
        print("5. daemon peak resident memory (VmHWM): %.1f MiB" % (int(hwm) / 1024.0))
    finally:
        d.stop()


if __name__ == "__main__":
    main()
