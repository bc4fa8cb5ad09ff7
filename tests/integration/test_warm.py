"""The warm pool (a plugin manifest's `warm: N`: containers created ahead of
their jobs) and the deferred cleanup (a run's container, cgroup and
workspace are taken apart after the job's answer, on the cleaner thread).

Covered, each on a daemon of its own:
  - a warm container serves one job and only one: the job's attempt names
    the warm run id ("<uuid>-0", "warm": true), the container is deleted
    after it and never serves again; its workspace is fresh: /input holds
    that job's input.json and nothing else, /output and /tmp are empty when
    the job starts, no mount below /input and no descriptor of the
    container's making is left to the job (a waiting container has no
    input yet, an empty output tmpfs, its own cgroup and job uid); a warm
    run sees the same mounts, descriptors and files as a cold run;
  - concurrent jobs (workers 2, warm 2, and a burst of 8) never share a
    container, a uid or an output directory;
  - the pool refills to N: the metrics and the runtime's container list
    (N "<uuid>-0" containers of that plugin); another version of the
    plugin has no pool and runs cold; the hit and miss counters match the
    attempts' "warm" flags;
  - SIGHUP with a plugin's version changed drains the old pool (its
    containers, workspaces and cgroups go) and fills the new version's;
    a plugin removed, or its `warm` set to 0, leaves no pool;
  - SIGTERM with full pools (and while a pool is still filling) leaves no
    container, cgroup, mount or workspace (harness stop() checks);
    SIGTERM with a drain: the pool goes first, /metrics still answers,
    the running job finishes;
  - SIGKILL and restart: the killed daemon's warm containers (by id) are
    removed at the next start and the pool is refilled with new ones;
  - a cleanup deferred past the answer (EDGECD_TEST_CLEANUP_DELAY_MS
    widens the window) still happens when the daemon is killed right
    after answering: the next start removes the container, workspace and
    cgroup, and the job's record is final and intact;
  - idle expiry (warm.idle_seconds): the pool empties and stays empty; the
    next job is a miss and re-arms the refill;
  - warm.max_containers caps all pools together; 0 disables the pool;
  - the memory budget (memory_pool_mb): the pool fills only while the
    running jobs' and the warm containers' memory limits fit, does not
    refill while a warm job holds the memory, and gives its container up
    when a cold job needs the memory;
  - a warm container whose process died while it waited does not fail
    the next job, and is removed; nor do more dead ones than a job has
    attempts, and dead ones are replaced without a job, after a pause
    (gates that always die are not made in a loop);
  - a cancelled warm job ends cancelled and leaves nothing; a warm job's
    timeout counts from the job, not from its container's making, and a
    warm job past it is stopped and leaves nothing;
  - the log of a warm run is served by GET /v1/jobs/{id}/logs with
    X-Edgecd-Run-Id the warm run id.

Plugins come from a temporary plugins dir per test: copies of
build/test-plugins/<plugin> with `warm: N` appended to plugin.yaml.
t_workspace (testkit's `workspace` mode) reports what a run finds of its
own workspace before it writes anything, leaves a marker in /output and
/tmp, and can sleep."""

import json
import os
import re
import shutil
import signal
import tempfile
import time
import unittest

import harness
from harness import Daemon, check_job, quick, slow_factor, wait_for

V1 = "1.0.0"
WARM_RUN_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-0$")
METRIC_RE = re.compile(r'^edgecd_warm_pool_(size|target|hits_total|misses_total)'
                       r'\{algorithm="([^"]*)",version="([^"]*)"\} (\S+)$')
# How long the tests watch for something that must not happen: longer than
# the refill thread's 1 s tick.
WINDOW = 1.6


def ws_job(tag, seconds=0, timeout=30):
    return {"algorithm": "t_workspace", "version": V1, "parameters": {"tag": tag, "seconds": seconds},
            "timeout_seconds": timeout}


def echo_job(i, version=V1):
    return {"algorithm": "t_echo", "version": version, "parameters": {"i": i}}


def sleep_job(seconds, timeout=60):
    return {"algorithm": "t_sleep", "version": V1, "parameters": {"seconds": seconds},
            "timeout_seconds": timeout}



def holds(fn, seconds, what):
    """fn() stays true on every poll for `seconds` (a window to catch what
    must not happen; it passes only by nothing happening)."""
    deadline = time.monotonic() + seconds
    while True:
        if not fn():
            raise AssertionError(what())
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)


# ------------------------------------------------------------- host state

def containers(d):
    """Container ids in d's runtime roots."""
    return {c.split("/", 1)[1] for c in harness.runtime_containers(os.path.join(d.state_dir, "runtime"))}


def workspaces(d):
    ws = d.view(os.path.join(d.state_dir, "workspaces"))
    return set(os.listdir(ws)) if os.path.isdir(ws) else set()


def cgroups(d):
    """The runs with a cgroup below d's cgroup parent, in any hierarchy."""
    return harness.run_cgroups(d.cgroup_parent)


def run_mounts(d, rid):
    path = os.path.join(d.state_dir, "workspaces", rid)
    ms = harness.mounts_under(path)
    if d.alive():
        ms += [m for m in harness.mounts_under(path, d.proc.pid) if m not in ms]
    return ms


def traces(d, rid):
    """What of run rid is on the host: its container, workspace, cgroup,
    mounts, and its log while no job has taken it."""
    out = []
    if rid in containers(d):
        out.append("container")
    if os.path.exists(d.view(os.path.join(d.state_dir, "workspaces", rid))):
        out.append("workspace")
    if rid in harness.run_cgroups(d.cgroup_parent):
        out.append("cgroup")
    if run_mounts(d, rid):
        out.append("mounts")
    if os.path.exists(os.path.join(d.state_dir, "warm-logs", rid + ".log")):
        out.append("log")
    return out


def bundle(d, rid):
    """Run rid's OCI config (its bundle), or None when unreadable."""
    try:
        with open(d.view(os.path.join(d.state_dir, "workspaces", rid, "bundle", "config.json"))) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def warm_of(d, plugin):
    """The "<uuid>-0" containers in d's runtime list whose rootfs is plugin's
    (a plugin dir name), plus the count of those whose bundle is unreadable
    (being made or taken apart)."""
    root = os.path.join(d.config["plugins_dir"], plugin, "rootfs")
    mine, unknown = set(), 0
    for rid in containers(d):
        if not WARM_RUN_RE.match(rid):
            continue
        b = bundle(d, rid)
        if b is None:
            unknown += 1
        elif b["root"]["path"] == root:
            mine.add(rid)
    return mine, unknown


def pools(d):
    """{(algorithm, version): {"size", "target", "hits", "misses"}} from
    /metrics; a series printed twice is an error."""
    r = d.req("GET", "/metrics")
    if r.status != 200:
        raise AssertionError("GET /metrics: %s" % (r,))
    out = {}
    for line in r.body.splitlines():
        m = METRIC_RE.match(line)
        if not m:
            continue
        key = m.group(1).replace("_total", "")
        p = out.setdefault((m.group(2), m.group(3)), {})
        if key in p:
            raise AssertionError("metric series printed twice: %s" % line)
        p[key] = float(m.group(4))
    return out


def pool(d, algorithm, version=V1):
    return pools(d).get((algorithm, version), {})


def leftovers_reported(d):
    """Containers the last start said it removed as a previous run's
    leftovers (the runtime-root sweep or the collector's first pass)."""
    text = d.log_text().rpartition("--- harness: restart")[2]
    return sum(int(n) for n in re.findall(r"removed (\d+) container\(s\) (?:left by a previous run|no run owned)",
                                          text))


# ---------------------------------------------------------------- base

class WarmCase(unittest.TestCase):

    def plugins(self, spec):
        """A temporary plugins dir holding a copy of each build/test-plugins
        dir named in spec, with `warm: N` appended to its plugin.yaml (N
        None: the manifest as it is).  "NAME@VERSION": a copy of NAME as
        that version."""
        tmp = tempfile.mkdtemp(prefix="edgecd-warm-plugins-")
        self.addCleanup(shutil.rmtree, tmp, True)
        for name, n in spec.items():
            src, _, version = name.partition("@")
            dst = os.path.join(tmp, name)
            shutil.copytree(os.path.join(harness.OPTIONS["plugins"], src), dst, symlinks=True)
            yaml = os.path.join(dst, "plugin.yaml")
            if version:
                with open(yaml) as f:
                    text, k = re.subn(r"(?m)^version: .*$", "version: %s" % version, f.read())
                self.assertEqual(k, 1, text)
                with open(yaml, "w") as f:
                    f.write(text)
            if n is not None:
                with open(yaml, "a") as f:
                    f.write("warm: %d\n" % n)
        return tmp

    def daemon(self, name, spec, config=None, env=None, start=True):
        plugins = self.plugins(spec)
        # memory_pool_mb's default is 3/4 of the host's memory: 3 warm
        # containers of 256 MiB do not fit a 1 GiB VM's.  Limits, not use.
        cfg = {"workers": 2, "memory_pool_mb": 16384}
        cfg.update(config or {})
        d = Daemon(name, config=cfg, plugins=plugins, env=env)
        self.addCleanup(d.stop)
        # Last in, first out: jobs are cancelled before stop()'s SIGTERM.
        self.addCleanup(harness.cancel_all, d)
        if start:
            d.start()
        return d

    def edit_manifest(self, d, plugin, version=None, warm=None):
        path = os.path.join(d.config["plugins_dir"], plugin, "plugin.yaml")
        with open(path) as f:
            text = f.read()
        if version is not None:
            text, n = re.subn(r"(?m)^version: .*$", "version: %s" % version, text)
            self.assertEqual(n, 1, text)
        if warm is not None:
            text, n = re.subn(r"(?m)^warm: .*$", "warm: %d" % warm, text)
            self.assertEqual(n, 1, text)
        with open(path, "w") as f:
            f.write(text)

    def kill_waiting(self, d, rid):
        """Kill the processes of waiting container rid (by pid: processes
        of this test's daemon's container), as the OOM killer would."""
        pids = set()
        for cg in harness.container_cgroup_dirs(d.cgroup_parent, rid):
            with open(os.path.join(cg, "cgroup.procs")) as f:
                pids.update(int(x) for x in f.read().split())
        self.assertTrue(pids, "no process in the waiting container %s" % rid)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        # Dead, not dying: a SIGKILL is delivered at once but the exit comes
        # a moment later (longer on a loaded host), and until then the
        # daemon rightly takes the container for alive.
        deadline = time.monotonic() + 10 * slow_factor()
        for pid in pids:
            while time.monotonic() < deadline:
                try:
                    with open("/proc/%d/stat" % pid) as f:
                        state = f.read().rsplit(")", 1)[1].split()[0]
                except OSError:
                    break
                if state in ("Z", "X"):
                    break
                time.sleep(0.005)
            else:
                self.fail("process %d of waiting container %s outlived its SIGKILL for 10 s" % (pid, rid))

    def wait_pool(self, d, plugin, n, algorithm=None, version=V1, timeout=40):
        """Wait until plugin's pool reports n ready and the runtime lists
        exactly n warm containers of that plugin; returns their run ids."""
        algorithm = algorithm or plugin
        state = {}

        def full():
            state["metric"] = pool(d, algorithm, version)
            state["warm"], state["unknown"] = warm_of(d, plugin)
            return state["metric"].get("size") == n and len(state["warm"]) == n and not state["unknown"]
        wait_for(full, timeout, lambda: "pool %s %s at %d: metrics %s, runtime lists %s (+%d unreadable)"
                 % (algorithm, version, n, state.get("metric"), sorted(state.get("warm", ())),
                    state.get("unknown", 0)))
        return set(state["warm"])

    def submit_ok(self, d, body):
        r = d.submit(body)
        self.assertEqual(r.status, 202, "submit %s: %s" % (json.dumps(body)[:200], r))
        return r.body["id"]

    def wait_running(self, d, job_id, timeout=30):
        d.wait_status(job_id, "running", timeout=timeout)
        wait_for(lambda: d.get_job(job_id).get("attempts"), 10, lambda: "job %s has no attempt" % job_id)
        return d.get_job(job_id)

    def assertWarm(self, job, pool_ids=None):
        a = job["attempts"][-1]
        self.assertTrue(a["warm"], "expected a warm run: %s" % json.dumps(job)[:1500])
        self.assertRegex(a["run_id"], WARM_RUN_RE)
        if pool_ids is not None:
            self.assertIn(a["run_id"], pool_ids, "the job's warm run is not one the pool held")
        return a["run_id"]

    def assertCold(self, job):
        a = job["attempts"][-1]
        self.assertFalse(a["warm"], "expected a cold run: %s" % json.dumps(job)[:1500])
        self.assertEqual(a["run_id"], "%s-%d" % (job["id"], len(job["attempts"])), job)
        return a["run_id"]

    def assertGone(self, d, rids, timeout=20):
        """Every run of rids has left the host (container, workspace,
        cgroup, mounts)."""
        wait_for(lambda: not any(traces(d, r) for r in rids), timeout,
                 lambda: "still on the host: %s" % {r: traces(d, r) for r in rids if traces(d, r)})

    def assertWorkspace(self, job, body):
        """What t_workspace found: its own input only, empty /output and
        /tmp at the start, its own marker only at the end, its own uid."""
        self.assertEqual(job["status"], "succeeded", job)
        res = job["result"]
        tag = body["parameters"]["tag"]
        self.assertEqual(res["tag"], tag, res)
        self.assertEqual(res["input_files"], ["input.json"], res)
        self.assertEqual(json.loads(res["input_text"]), body["parameters"], res)
        self.assertEqual(res["output_before"], [], "/output was not empty when the job started: %s" % res)
        self.assertEqual(res["tmp_before"], [], "/tmp was not empty when the job started: %s" % res)
        self.assertEqual(res["output_after"], ["mark-" + tag], "another run's output was seen: %s" % res)
        self.assertEqual((res["uid"], res["gid"]), (job["attempts"][-1]["uid"], job["attempts"][-1]["gid"]), res)
        # Nothing of the container's making is left where the job sees it.
        self.assertEqual([m for m in res["mounts"] if m.startswith("/input/")], [], res)
        self.assertEqual([f for f in res["fds"] if ":/input" in f or ":/output" in f], [], res)


# ------------------------------------------------------------- one job each

class OneJobEach(WarmCase):

    @quick
    def test_container_serves_one_job_with_fresh_workspace(self):
        d = self.daemon("WarmOne", {"t_workspace": 2})
        held = self.wait_pool(d, "t_workspace", 2)
        # A waiting container: made, with its own workspace (no input yet,
        # an empty output tmpfs), cgroup and job uid.
        uids = set()
        for rid in held:
            self.assertEqual(traces(d, rid), ["container", "workspace", "cgroup", "mounts"], rid)
            ws = os.path.join(d.state_dir, "workspaces", rid)
            self.assertNotIn("input.json", os.listdir(d.view(os.path.join(ws, "input"))),
                             "a waiting container has input")
            self.assertEqual(os.listdir(d.view(os.path.join(ws, "output"))), [])
            self.assertIn(os.path.join(ws, "output"), run_mounts(d, rid))
            uids.add(bundle(d, rid)["process"]["user"]["uid"])
        self.assertEqual(len(uids), 2, "two waiting containers share a uid")

        served = set()
        for i in range(4):
            before = self.wait_pool(d, "t_workspace", 2)
            self.assertFalse(before & served, "a container that served a job is back in the pool")
            body = ws_job("one%d" % i)
            job = d.run_job(body)
            rid = self.assertWarm(job, before)
            self.assertNotIn(rid, served, "one container served two jobs")
            served.add(rid)
            self.assertWorkspace(job, body)
            # Served: deleted after the answer, and replaced by a new one.
            d.wait_cleaned()
            self.assertGone(d, [rid])
            after = self.wait_pool(d, "t_workspace", 2)
            self.assertNotIn(rid, after)
            self.assertTrue(before - {rid} <= after, "the pool lost a waiting container: %s -> %s"
                            % (sorted(before), sorted(after)))
        p = pool(d, "t_workspace")
        self.assertEqual((p["hits"], p["misses"], p["target"]), (4, 0, 2), p)
        # Nothing but the pool on the host.
        after = self.wait_pool(d, "t_workspace", 2)
        self.assertEqual(containers(d), after)
        self.assertEqual(workspaces(d), after)
        self.assertEqual(cgroups(d), after)

    def test_warm_run_sees_what_a_cold_run_sees(self):
        # The same plugin as two versions: 1.0.0 warm, 1.0.1 cold.
        d = self.daemon("WarmSame", {"t_workspace": 1, "t_workspace@1.0.1": None})
        held = self.wait_pool(d, "t_workspace", 1)
        wb, cb = ws_job("warm"), ws_job("cold")
        cb["version"] = "1.0.1"
        warm, cold = d.run_job(wb), d.run_job(cb)
        self.assertWarm(warm, held)
        self.assertCold(cold)
        self.assertWorkspace(warm, wb)
        self.assertWorkspace(cold, cb)

        def seen(job):
            r = job["result"]
            # stdin is at its end either way: /dev/null, or (a cold run,
            # on a runtime that relays a foreground container's stdio, as
            # runc does) a pipe the runtime fed /dev/null.
            fds = [re.sub(r"\[\d+\]$", "", f) for f in r["fds"]]
            fds = ["0:/dev/null" if f == "0:pipe:" else f for f in fds]
            return {"mounts": r["mounts"], "fds": fds, "stdin_eof": r["stdin_eof"],
                    "input_files": r["input_files"], "output_before": r["output_before"],
                    "tmp_before": r["tmp_before"]}
        self.assertEqual(seen(warm), seen(cold), "a warm run's sandbox differs from a cold run's")
        self.assertTrue(seen(cold)["stdin_eof"], cold)

    @unittest.skipUnless(harness.has_capability(harness.CAP_SYS_RESOURCE),
                         "skipped: no CAP_SYS_RESOURCE here (nothing can set a floor for oom_score_adj)")
    def test_a_job_cannot_lower_its_oom_score(self):
        # A job is at oom_score_adj 1000 (it goes first under memory
        # pressure, not the daemon), and its floor too: the daemon sets it,
        # with privilege, on the runtime it starts, warm or cold, whatever
        # the runtime does with the spec's oomScoreAdj.  Where the daemon
        # lacks CAP_SYS_RESOURCE (this CI's sandbox) no write sets a floor,
        # and the job could write 0: the cgroup v2 VM runs this.
        d = self.daemon("WarmOom", {"t_oomadj": 1, "t_oomadj@1.0.1": None})
        held = self.wait_pool(d, "t_oomadj", 1)
        warm = d.run_job({"algorithm": "t_oomadj", "version": "1.0.0"})
        cold = d.run_job({"algorithm": "t_oomadj", "version": "1.0.1"})
        self.assertWarm(warm, held)
        self.assertCold(cold)
        for job in (warm, cold):
            self.assertEqual(job["status"], "succeeded", job)
            self.assertEqual(job["result"], {"before": 1000, "after": 1000, "refused": True}, job)

    def test_concurrent_jobs_never_share(self):
        d = self.daemon("WarmShare", {"t_workspace": 2}, config={"workers": 2})
        held = self.wait_pool(d, "t_workspace", 2)
        bodies = [ws_job(tag, seconds=3) for tag in ("pa", "pb")]
        ids = [self.submit_ok(d, b) for b in bodies]
        for j in ids:
            self.addCleanup(harness.cancel_quietly, d, j)
        # Both run at once (2 workers); meanwhile the pool refills: every
        # run on the host has a uid and an output tmpfs of its own.
        wait_for(lambda: all(d.get_job(j)["status"] == "running" for j in ids), 30,
                 lambda: "both jobs running: %s" % [d.get_job(j)["status"] for j in ids])
        runs = {}
        for rid in containers(d):
            b = bundle(d, rid)
            if b is not None:
                runs[rid] = b["process"]["user"]["uid"]
        self.assertGreaterEqual(len(runs), 2, runs)
        self.assertEqual(len(set(runs.values())), len(runs), "two runs share a uid: %s" % runs)
        outs = [m for rid in runs for m in run_mounts(d, rid) if m.endswith("/output")]
        self.assertEqual(len(outs), len(set(outs)))
        jobs = [d.wait_final(j, timeout=30) for j in ids]
        rids = [self.assertWarm(j, held) for j in jobs]
        self.assertNotEqual(rids[0], rids[1], "two jobs ran in one container")
        self.assertNotEqual(jobs[0]["attempts"][-1]["uid"], jobs[1]["attempts"][-1]["uid"])
        self.assertNotEqual(jobs[0]["result"]["uid"], jobs[1]["result"]["uid"])
        for job, body in zip(jobs, bodies):
            self.assertWorkspace(job, body)

        # A burst: more jobs than warm containers, hits and misses mixed.
        bodies = [ws_job("b%d" % i, seconds=0.3) for i in range(8)]
        ids = [self.submit_ok(d, b) for b in bodies]
        for j in ids:
            self.addCleanup(harness.cancel_quietly, d, j)
        jobs = [d.wait_final(j, timeout=60) for j in ids]
        for job, body in zip(jobs, bodies):
            self.assertWorkspace(job, body)
        all_runs = [j["attempts"][-1]["run_id"] for j in jobs] + rids
        self.assertEqual(len(set(all_runs)), len(all_runs), "a run id served two jobs: %s" % all_runs)
        for x in jobs:
            for y in jobs:
                if x is y:
                    continue
                ax, ay = x["attempts"][-1], y["attempts"][-1]
                overlap = (harness.parse_time(ax["started_at"]) <= harness.parse_time(ay["finished_at"])
                           and harness.parse_time(ay["started_at"]) <= harness.parse_time(ax["finished_at"]))
                if overlap:
                    self.assertNotEqual(ax["uid"], ay["uid"], "overlapping runs share a uid: %s %s" % (ax, ay))
        warm = sum(1 for j in jobs if j["attempts"][-1]["warm"])
        for j in jobs:
            if not j["attempts"][-1]["warm"]:
                self.assertCold(j)
        p = pool(d, "t_workspace")
        self.assertEqual((p["hits"], p["misses"]), (2 + warm, len(jobs) - warm),
                         "the counters do not match the runs' warm flags: %s" % p)


# ------------------------------------------------------------------ refill

class Refill(WarmCase):

    def test_pool_refills_to_target(self):
        d = self.daemon("WarmRefill", {"t_echo": 3, "t_echo-2.0.0": None})
        held = self.wait_pool(d, "t_echo", 3)
        self.assertEqual(containers(d), held, "only the pool's containers exist")
        p = pool(d, "t_echo")
        self.assertEqual((p["size"], p["target"], p["hits"], p["misses"]), (3, 3, 0, 0), p)
        self.assertNotIn(("t_echo", "2.0.0"), pools(d), "a plugin without warm has a pool")

        # Another version of the plugin has no pool: cold, the pool untouched.
        job = d.run_job(echo_job(7, version="2.0.0"))
        self.assertCold(job)
        self.assertEqual(job["result"], {"version": 2, "input": {"i": 7}})
        p = pool(d, "t_echo")
        self.assertEqual((p["size"], p["hits"], p["misses"]), (3, 0, 0), p)
        self.assertEqual(self.wait_pool(d, "t_echo", 3), held)

        for i in range(3):
            before = self.wait_pool(d, "t_echo", 3)
            job = d.run_job(echo_job(i))
            self.assertEqual(job["result"], {"i": i})
            rid = self.assertWarm(job, before)
            after = self.wait_pool(d, "t_echo", 3)
            self.assertNotIn(rid, after)
            self.assertEqual(len(after - before), 1, "not one new container: %s -> %s"
                             % (sorted(before), sorted(after)))
            d.wait_cleaned()
            self.assertGone(d, [rid])
            self.assertEqual(containers(d), after, "besides the pool: %s" % sorted(containers(d) - after))
        p = pool(d, "t_echo")
        self.assertEqual((p["size"], p["target"], p["hits"], p["misses"]), (3, 3, 3, 0), p)

    def test_failing_create_backs_off(self):
        # A plugin whose containers never start (rootfs/output a file: the
        # runtime cannot mount the output there) is not made again every
        # 5 s for ever: the pauses double (5, 10, 20 s ...), and each
        # failure leaves nothing behind.
        d = self.daemon("WarmBackoff", {"t_echo": 1}, start=False)
        out = os.path.join(d.config["plugins_dir"], "t_echo", "rootfs", "output")
        os.rmdir(out)
        open(out, "w").close()
        d.start()
        t0 = time.monotonic()
        wait_for(lambda: d.metric("edgecd_runtime_failures_total", {"verb": "run"}), 10,
                 lambda: "no failed create: %s" % d.log_tail(20))
        time.sleep(max(0.0, 21 - (time.monotonic() - t0)))
        fails = d.metric("edgecd_runtime_failures_total", {"verb": "run"})
        # Tries at 0, 5 and 15 s; at a fixed 5 s, 5 of them.
        self.assertLessEqual(fails, 3, d.log_tail(30))
        self.assertIn("(next try in 10 s)", d.log_text())
        self.assertEqual(pool(d, "t_echo").get("size"), 0)
        holds(lambda: not containers(d) and not workspaces(d), 0.2,
              lambda: "left behind: %s %s" % (containers(d), workspaces(d)))

    def test_max_containers_caps_all_pools(self):
        d = self.daemon("WarmCap", {"t_echo": 2, "t_workspace": 2}, config={"warm": {"max_containers": 3}})
        state = {}

        def three():
            state["p"] = pools(d)
            state["w"] = warm_of(d, "t_echo")[0] | warm_of(d, "t_workspace")[0]
            sizes = sum(v.get("size", 0) for v in state["p"].values())
            return sizes == 3 and len(state["w"]) == 3
        wait_for(three, 40, lambda: "3 warm containers in all: %s %s" % (state.get("p"), state.get("w")))
        targets = {k: v["target"] for k, v in state["p"].items()}
        self.assertEqual(sum(targets.values()), 3, targets)
        self.assertIn("warm containers it asks for (warm.max_containers 3)", d.log_text())
        holds(lambda: len(warm_of(d, "t_echo")[0] | warm_of(d, "t_workspace")[0]) <= 3
              and sum(v.get("size", 0) for v in pools(d).values()) <= 3, WINDOW,
              lambda: "more than warm.max_containers: %s" % pools(d))

    def test_max_containers_zero_disables(self):
        d = self.daemon("WarmOff", {"t_echo": 2}, config={"warm": {"max_containers": 0}})
        job = d.run_job(echo_job(1))
        self.assertGone(d, [self.assertCold(job)])
        holds(lambda: not containers(d), WINDOW, lambda: "containers with the pool disabled: %s" % containers(d))
        self.assertEqual(pools(d), {})


# ------------------------------------------------------------------ reload

class Reload(WarmCase):

    def test_changed_plugin_drains(self):
        d = self.daemon("WarmChanged", {"t_echo": 2, "t_workspace": 1})
        old = self.wait_pool(d, "t_echo", 2)
        self.wait_pool(d, "t_workspace", 1)
        self.edit_manifest(d, "t_echo", version="1.0.1")
        d.proc.send_signal(signal.SIGHUP)
        new = self.wait_pool(d, "t_echo", 2, version="1.0.1")
        self.assertFalse(old & new, "the changed plugin's pool kept old containers")
        self.assertGone(d, old)
        self.assertEqual(pool(d, "t_echo", V1), {}, "the old version still has a pool: %s" % pools(d))
        self.assertIn("warm pool t_echo 1.0.0: the plugin changed or went; draining", d.log_text())
        # The unchanged plugin's pool is back to full too.
        ws = self.wait_pool(d, "t_workspace", 1)
        job = d.run_job(echo_job(3, version="1.0.1"))
        self.assertEqual(job["result"], {"i": 3})
        self.assertGone(d, [self.assertWarm(job, new)])
        new2 = self.wait_pool(d, "t_echo", 2, version="1.0.1")
        self.assertEqual(containers(d), new2 | ws)
        self.assertEqual(workspaces(d), new2 | ws)
        self.assertEqual(cgroups(d), new2 | ws)

    def test_edited_template_is_not_served_warm(self):
        # The pool fills under the plugin's template; the template is then
        # tightened (RLIMIT_FSIZE 16 bytes), the manifest unchanged.  A cold
        # run gets the template as it stands: the next job must too, and
        # not find a container made under the old one.
        tdir = harness.copy_templates(self, "warmtmpl")
        with open(os.path.join(tdir, "default.json")) as f:
            tpl = json.load(f)

        def fsize(limit):
            tpl["process"]["rlimits"] = [r for r in tpl["process"]["rlimits"] if r["type"] != "RLIMIT_FSIZE"]
            tpl["process"]["rlimits"].append({"type": "RLIMIT_FSIZE", "hard": limit, "soft": limit})
            harness.write_template(tdir, "mine", tpl)

        fsize(1 << 26)
        d = self.daemon("WarmTemplate", {"t_echo": 1}, config={"templates_dir": tdir}, start=False)
        with open(os.path.join(d.config["plugins_dir"], "t_echo", "plugin.yaml"), "a") as f:
            f.write("oci_template: mine\n")
        d.start()
        old = self.wait_pool(d, "t_echo", 1)
        fsize(16)
        job = d.run_job({"algorithm": "t_echo", "version": V1, "parameters": {"n": 1, "pad": "x" * 64}})
        self.assertEqual(job["status"], "failed", "ran under the template as it was: %s" % json.dumps(job)[:800])
        self.assertIn("File too large", job["error"]["message"], job)
        self.assertNotIn(job["attempts"][-1]["run_id"], old, "the job took a container of the old template")
        self.assertGone(d, old)
        # The pool refills under the new template, and serves warm again.
        self.wait_pool(d, "t_echo", 1)
        job = d.run_job({"algorithm": "t_echo", "version": V1, "parameters": {"n": 1, "pad": "x" * 64}})
        self.assertWarm(job)
        self.assertIn("File too large", job["error"]["message"], job)

    def test_counters_survive_a_reload(self):
        # SIGHUP replaces every manifest; the same name and version keep
        # their hit and miss counters (Prometheus counters never go back).
        d = self.daemon("WarmCounters", {"t_echo": 1})
        self.wait_pool(d, "t_echo", 1)
        self.assertWarm(d.run_job(echo_job(1)))
        self.wait_pool(d, "t_echo", 1)
        before = pool(d, "t_echo", V1)
        self.assertEqual(before.get("hits"), 1, before)
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "plugins reloaded (sighup)" in d.log_text(), 20, lambda: d.log_tail(20))
        self.wait_pool(d, "t_echo", 1)
        after = pool(d, "t_echo", V1)
        self.assertEqual((after.get("hits"), after.get("misses")), (before.get("hits"), before.get("misses")), after)
        self.assertWarm(d.run_job(echo_job(2)))
        self.assertEqual(pool(d, "t_echo", V1).get("hits"), 2)

    def test_removed_plugin_and_warm_zero_leave_no_pool(self):
        d = self.daemon("WarmRemoved", {"t_echo": 2, "t_workspace": 1})
        old = self.wait_pool(d, "t_echo", 2) | self.wait_pool(d, "t_workspace", 1)
        shutil.rmtree(os.path.join(d.config["plugins_dir"], "t_echo"))
        self.edit_manifest(d, "t_workspace", warm=0)
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "plugins reloaded (sighup)" in d.log_text(), 20, lambda: d.log_tail(20))
        self.assertGone(d, old)
        p = pools(d)
        self.assertIn(p.get(("t_echo", V1), {}).get("size"), (None, 0), p)
        self.assertIn(p.get(("t_workspace", V1), {}).get("size"), (None, 0), p)
        holds(lambda: not containers(d), WINDOW, lambda: "containers came back: %s" % containers(d))
        d.assert_idle_clean()
        r = d.submit(echo_job(1), wait="true")
        self.assertEqual(r.status, 404, r)
        self.assertCold(d.run_job(ws_job("nowarm")))


# -------------------------------------------------------------------- stop

class Stop(WarmCase):

    @quick
    def test_sigterm_with_full_pools_leaves_nothing(self):
        d = self.daemon("WarmStop", {"t_echo": 3, "t_workspace": 2})
        held = self.wait_pool(d, "t_echo", 3) | self.wait_pool(d, "t_workspace", 2)
        self.assertEqual(containers(d), held)
        self.assertEqual(workspaces(d), held)
        self.assertEqual(cgroups(d), held)
        p = pools(d)
        self.assertEqual((p[("t_echo", V1)]["size"], p[("t_workspace", V1)]["size"]), (3, 2), p)
        d.stop()     # SIGTERM; raises on any container, cgroup, mount or workspace left

    def test_sigterm_while_filling_leaves_nothing(self):
        d = self.daemon("WarmStopFilling", {"t_echo": 8})
        wait_for(lambda: warm_of(d, "t_echo")[0] or warm_of(d, "t_echo")[1], 30,
                 lambda: "no warm container yet: %s" % containers(d))
        self.assertLess(pool(d, "t_echo").get("size", 0), 8)
        d.stop()

    def test_sigterm_drain_deletes_pool_and_finishes_job(self):
        d = self.daemon("WarmDrain", {"t_echo": 2, "t_sleep": None}, config={"drain_seconds": 30})
        held = self.wait_pool(d, "t_echo", 2)
        jid = self.submit_ok(d, sleep_job(4))
        job = self.wait_running(d, jid)
        rid = self.assertCold(job)
        d.proc.send_signal(signal.SIGTERM)
        # The pool goes at once; the API still answers while the job drains.
        wait_for(lambda: not (held & containers(d)), 20,
                 lambda: "warm containers left during the drain: %s" % (held & containers(d)))
        self.assertTrue(d.alive(), "the daemon did not wait for the running job")
        r = d.req("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertIn(rid, containers(d))
        self.assertEqual(d.proc.wait(30 * slow_factor()), 0)
        self.assertIn("job %s: t_sleep succeeded" % jid, d.log_text())
        d.stop()


# ------------------------------------------------------------------- crash

class Crash(WarmCase):

    def test_sigkill_restart_replaces_pool(self):
        d = self.daemon("WarmKill", {"t_echo": 2})
        old = self.wait_pool(d, "t_echo", 2)
        d.kill()
        self.assertTrue(old <= containers(d), "the killed daemon's warm containers vanished by themselves")
        # A waiting container's log exists once it printed (the gate does
        # not): as if one had.
        with open(os.path.join(d.state_dir, "warm-logs", sorted(old)[0] + ".log"), "w") as f:
            f.write("printed while waiting\n")
        d.restart()
        for rid in old:
            self.assertEqual(traces(d, rid), [], "run %s of the killed daemon" % rid)
        self.assertEqual(leftovers_reported(d), 2, d.log_tail(30))
        new = self.wait_pool(d, "t_echo", 2)
        self.assertFalse(old & new)
        self.assertEqual(containers(d), new)
        self.assertEqual(workspaces(d), new)
        self.assertEqual(cgroups(d), new)
        self.assertWarm(d.run_job(echo_job(1)), new)

    def test_deferred_cleanup_done_after_kill(self):
        delay = 30000
        d = self.daemon("WarmDeferred", {"t_echo": 1, "t_sleep": None},
                        env={"EDGECD_TEST_CLEANUP_DELAY_MS": str(delay)})
        self.assertIn("cleanup delayed by %d ms" % delay, d.log_text())
        held = self.wait_pool(d, "t_echo", 1)
        warm = d.run_job(echo_job(5))
        cold = d.run_job(sleep_job(0, timeout=10))
        self.assertEqual(warm["result"], {"i": 5})
        self.assertEqual(cold["status"], "succeeded", cold)
        runs = [self.assertWarm(warm, held), self.assertCold(cold)]
        # Answered, not yet taken apart.  A cold run's runtime deleted its
        # container, and its container's cgroup, before the answer (it runs
        # in the foreground); its workspace, and on v2 its own cgroup, wait
        # for the cleanup (on v1 that is a slot, named for no run).
        self.assertEqual(traces(d, runs[0]), ["container", "workspace", "cgroup", "mounts"], runs[0])
        self.assertEqual(traces(d, runs[1]), ["workspace", "cgroup", "mounts"] if harness.cgroup_v2()
                         else ["workspace", "mounts"], runs[1])
        self.assertGreaterEqual(d.metric("edgecd_cleanups_pending"), 2)
        # The pool made a new one meanwhile (the served one is still listed).
        state = {}

        def refilled():
            state["p"], (state["w"], state["u"]) = pool(d, "t_echo"), warm_of(d, "t_echo")
            return state["p"].get("size") == 1 and len(state["w"] - {runs[0]}) == 1 and not state["u"]
        wait_for(refilled, 30, lambda: "the pool did not refill: %s" % state)
        refill = state["w"] - {runs[0]}
        d.kill()
        d.env.pop("EDGECD_TEST_CLEANUP_DELAY_MS")
        d.restart()
        for rid in runs + list(refill):
            self.assertEqual(traces(d, rid), [], "run %s after the restart" % rid)
        # The warm run's container and the one made after the take.
        self.assertEqual(leftovers_reported(d), 2, d.log_tail(30))
        for before in (warm, cold):
            after = check_job(d.get_job(before["id"]), final=True)
            self.assertEqual(after, before, "the record changed across the crash")
        new = self.wait_pool(d, "t_echo", 1)
        self.assertFalse(new & (held | refill | set(runs)))
        self.assertWarm(d.run_job(echo_job(6)), new)


class Collected(WarmCase):

    def test_a_container_the_run_could_not_delete_is_collected(self):
        # A cold run's runtime deletes its own container; a warm one is
        # deleted after its job, and that delete can fail.
        tmp = tempfile.mkdtemp(prefix="edgecd-it-collect-")
        self.addCleanup(shutil.rmtree, tmp, True)
        # Six failed deletes: more than a run tries (5).
        from test_resilience import fail_first
        w = harness.write_runtime_wrapper(tmp, "sticky", fail_first("delete", 6, os.path.join(tmp, "count")))
        d = self.daemon("WarmSticky", {"t_echo": 1}, config={"runtime": w, "sweep_interval_seconds": 8})
        held = self.wait_pool(d, "t_echo", 1)
        job = d.run_job(echo_job(1))
        self.assertEqual(job["status"], "succeeded", job)
        rid = self.assertWarm(job, held)
        d.wait_cleaned()     # the deletes are tried after the answer
        self.assertEqual(d.metric("edgecd_cleanup_failures_total", {"kind": "container"}), 1)
        # Its container is still there: its user may not go to another run
        # (one more is the pool's new container's).
        wait_for(lambda: d.metric("edgecd_job_users_in_use") == 2, 5,
                 lambda: "job users in use: %s" % d.metric("edgecd_job_users_in_use"))
        wait_for(lambda: d.metric("edgecd_leftovers_removed_total", {"kind": "container"}) >= 1,
                 20, lambda: "the collector did not remove the container")
        # The run's job user was held until its container went, and is back.
        wait_for(lambda: d.metric("edgecd_job_users_in_use") == 1, 10, lambda: "the run's job user was not released")
        self.assertIn("collector: removed 1 container(s) no run owned", d.log_text())
        if not harness.cgroup_v2():
            # The reused cgroup it ran in went with it (in the same sweep,
            # a moment after the container and its user).
            self.assertTrue(d.wait_log(r"collector: removed 1 cgroup\(s\) no run owned", 5), d.log_text())
            left = [p for p in harness.cgroup_children(d.cgroup_parent) if rid in p]
            self.assertEqual(left, [])
        self.assertEqual(d.run_job(echo_job(2))["status"], "succeeded")


# -------------------------------------------------------------------- idle

class Idle(WarmCase):

    def test_idle_pool_empties_and_rearms(self):
        d = self.daemon("WarmIdle", {"t_echo": 1}, config={"warm": {"idle_seconds": 2}})
        msg = "warm pool t_echo 1.0.0: no job for 2 s, emptied until the next one"
        wait_for(lambda: msg in d.log_text(), 30, lambda: d.log_tail(20))
        wait_for(lambda: not containers(d), 20, lambda: "the expired container stays: %s" % containers(d))
        holds(lambda: pool(d, "t_echo").get("size") == 0 and not containers(d), WINDOW,
              lambda: "an idle pool refilled: %s %s" % (pool(d, "t_echo"), containers(d)))
        p = pool(d, "t_echo")
        self.assertEqual((p["target"], p["hits"], p["misses"]), (1, 0, 0), p)
        # The next job is a miss and re-arms the refill: the pool fills and
        # (still no job) empties again.
        job = d.run_job(echo_job(1))
        self.assertCold(job)
        p = pool(d, "t_echo")
        self.assertEqual((p["hits"], p["misses"]), (0, 1), p)
        wait_for(lambda: d.log_text().count(msg) == 2, 30, lambda: d.log_tail(20))
        wait_for(lambda: not containers(d), 20, lambda: "the expired container stays: %s" % containers(d))


# ------------------------------------------------------------------ memory

class Memory(WarmCase):

    def test_pool_fills_within_memory_budget(self):
        # 256 MB per container (defaults.memory_mb): one fits in 300, two do not.
        d = self.daemon("WarmMemory", {"t_sleep": 3, "t_workspace": None},
                        config={"memory_pool_mb": 300, "defaults": {"memory_mb": 256}})
        one = self.wait_pool(d, "t_sleep", 1)
        self.assertEqual(pool(d, "t_sleep")["target"], 3)
        # The operator is told, once, why the pool stays short.
        msg = "warm pool t_sleep 1.0.0: has 1 of its 3 containers; another does not fit in memory_pool_mb (300 MiB;"
        wait_for(lambda: msg in d.log_text(), 10, lambda: d.log_tail(10))
        holds(lambda: pool(d, "t_sleep").get("size") == 1 and warm_of(d, "t_sleep") == (one, 0), WINDOW,
              lambda: "the pool outgrew the memory budget: %s %s" % (pool(d, "t_sleep"), warm_of(d, "t_sleep")))
        self.assertEqual(d.log_text().count(msg), 1, d.log_tail(10))

        # A warm job holds the memory: no refill while it runs.
        jid = self.submit_ok(d, sleep_job(30))
        self.addCleanup(harness.cancel_quietly, d, jid)
        rid = self.assertWarm(self.wait_running(d, jid), one)
        holds(lambda: pool(d, "t_sleep").get("size") == 0 and warm_of(d, "t_sleep") == ({rid}, 0), WINDOW,
              lambda: "refilled beside a running job past the budget: %s %s"
              % (pool(d, "t_sleep"), warm_of(d, "t_sleep")))
        self.assertEqual(d.req("DELETE", "/v1/jobs/" + jid).status, 202)
        self.assertEqual(d.wait_final(jid)["status"], "cancelled")
        again = self.wait_pool(d, "t_sleep", 1)
        self.assertNotIn(rid, again)

        # A cold job of another plugin needs the memory: the warm container
        # is given up (deleted) while it runs, and made again after.
        jid = self.submit_ok(d, ws_job("mem", seconds=30, timeout=60))
        self.addCleanup(harness.cancel_quietly, d, jid)
        self.assertCold(self.wait_running(d, jid))
        self.assertGone(d, again)
        holds(lambda: pool(d, "t_sleep").get("size") == 0 and warm_of(d, "t_sleep")[0] == set(), WINDOW,
              lambda: "refilled beside a running job past the budget: %s" % (pool(d, "t_sleep"),))
        self.assertEqual(d.req("DELETE", "/v1/jobs/" + jid).status, 202)
        self.assertEqual(d.wait_final(jid)["status"], "cancelled")
        self.assertFalse(self.wait_pool(d, "t_sleep", 1) & (one | again))


# --------------------------------------------- timeout, cancel, death, logs

class WarmJobs(WarmCase):

    @quick
    def test_cancelled_warm_job_leaves_nothing(self):
        d = self.daemon("WarmCancel", {"t_sleep": 1})
        held = self.wait_pool(d, "t_sleep", 1)
        jid = self.submit_ok(d, sleep_job(30))
        self.addCleanup(harness.cancel_quietly, d, jid)
        rid = self.assertWarm(self.wait_running(d, jid), held)
        r = d.req("DELETE", "/v1/jobs/" + jid)
        self.assertEqual(r.status, 202, r)
        job = d.wait_final(jid)
        self.assertEqual(job["status"], "cancelled", job)
        self.assertEqual(job["error"]["code"], "cancelled", job)
        self.assertEqual(self.assertWarm(job), rid)
        d.wait_cleaned()
        self.assertGone(d, [rid])
        new = self.wait_pool(d, "t_sleep", 1)
        self.assertNotIn(rid, new)
        self.assertEqual(containers(d), new)
        self.assertEqual(workspaces(d), new)
        self.assertEqual(cgroups(d), new)
        self.assertEqual(pool(d, "t_sleep")["hits"], 1)

    def test_warm_job_timeout_counts_from_the_job(self):
        d = self.daemon("WarmTimeout", {"t_sleep": 1})
        held = self.wait_pool(d, "t_sleep", 1)
        # The container has waited longer than the next job's timeout: the
        # job's time starts with the job, not with its container.
        time.sleep(2.5)
        job = d.run_job(sleep_job(0.5, timeout=2))
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"], {"slept": 0.5})
        self.assertWarm(job, held)
        # And a warm job past its timeout is stopped and leaves nothing.
        again = self.wait_pool(d, "t_sleep", 1)
        job = d.run_job(sleep_job(30, timeout=1))
        self.assertEqual((job["status"], job["error"]["code"]), ("failed", "timeout"), job)
        rid = self.assertWarm(job, again)
        self.assertLess(job["metrics"]["run_ms"], 10000 * slow_factor(), job)
        d.wait_cleaned()
        self.assertGone(d, [rid])

    def test_container_died_while_waiting(self):
        d = self.daemon("WarmDied", {"t_echo": 1})
        held = self.wait_pool(d, "t_echo", 1)
        rid = next(iter(held))
        # Its process dies while it waits.
        self.kill_waiting(d, rid)
        # A job still gets its answer (from another container), and the dead
        # one goes like any other.
        job = d.run_job(echo_job(4))
        self.assertEqual((job["status"], job["result"]), ("succeeded", {"i": 4}), job)
        self.assertNotEqual(job["attempts"][-1]["run_id"], rid, job)
        d.wait_cleaned()
        self.assertGone(d, [rid])

    def test_warm_job_log_served_with_its_run_id(self):
        d = self.daemon("WarmLogs", {"t_workspace": 1, "t_echo": None})
        held = self.wait_pool(d, "t_workspace", 1)
        job = d.run_job(ws_job("logtag7"))
        rid = self.assertWarm(job, held)
        path = os.path.join(d.state_dir, "logs", "%s-1.log" % job["id"])
        for phase in ("answered", "cleaned"):
            r = d.req("GET", "/v1/jobs/%s/logs" % job["id"])
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("X-Edgecd-Run-Id"), rid, "%s: %s" % (phase, dict(r.headers)))
            # stdout and stderr both reach the job's log.
            self.assertEqual(r.body.count("workspace: tag=logtag7"), 2, "%s: %r" % (phase, r.body))
            with open(path) as f:
                self.assertEqual(f.read(), r.body)
            d.wait_cleaned()
            self.assertGone(d, [rid])
        cold = d.run_job(echo_job(1))
        r = d.req("GET", "/v1/jobs/%s/logs" % cold["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("X-Edgecd-Run-Id"), self.assertCold(cold))


class DeadGates(WarmCase):

    def test_dead_waiting_containers_fail_no_job(self):
        # More dead waiting containers than a job has attempts: none of
        # them is the job's failure, nor the algorithm's.
        d = self.daemon("WarmAllDead", {"t_echo": 3}, config={"retry": {"max_attempts": 2}})
        held = self.wait_pool(d, "t_echo", 3)
        for rid in held:
            self.kill_waiting(d, rid)
        job = d.run_job(echo_job(4))
        self.assertEqual((job["status"], job.get("result")), ("succeeded", {"i": 4}), json.dumps(job)[:2000])
        self.assertFalse({a["run_id"] for a in job["attempts"]} & held, job)
        # The dead ones go by themselves and the pool is made whole again.
        new = self.wait_pool(d, "t_echo", 3)
        self.assertFalse(new & held)
        self.assertGone(d, held)
        # Nor does a dead one wait for a job to find it: killed while no job
        # comes, it is replaced.
        victim = sorted(new)[0]
        self.kill_waiting(d, victim)
        wait_for(lambda: victim not in containers(d), 20, lambda: "the dead container stays: %s" % containers(d))
        self.assertFalse(self.wait_pool(d, "t_echo", 3) & (held | {victim}))
        p = pool(d, "t_echo")
        self.assertEqual(p["hits"] + p["misses"], 1, p)    # the one job, hit or miss

    def test_gates_that_always_die_are_not_made_in_a_loop(self):
        # Each container dies as soon as it waits (here: killed as soon as
        # it is seen): the pool makes them again after a pause that grows,
        # as after a failed create, not one after another.
        d = self.daemon("WarmAlwaysDead", {"t_echo": 1})
        seen = set()
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            # Once ready (its gate waits): killed while being made, it
            # would be a failed create.
            if pool(d, "t_echo").get("size") != 1:
                time.sleep(0.02)
                continue
            for rid in warm_of(d, "t_echo")[0] - seen:
                try:
                    self.kill_waiting(d, rid)
                    seen.add(rid)
                except (OSError, AssertionError):
                    pass    # not running yet, or going
            time.sleep(0.02)

        # The first at once, then after 5 s and 10 s: three, four at most.
        self.assertLessEqual(len(seen), 4, "%d containers made in 12 s" % len(seen))
        self.assertGreaterEqual(len(seen), 2, seen)
        job = d.run_job(echo_job(1))
        self.assertEqual(job["status"], "succeeded", job)


class DrainCounts(WarmCase):

    def test_a_job_queued_before_a_change_is_a_miss(self):
        # A job accepted under the manifest before a change keeps it; the
        # pool it would take from drains, so it runs cold: a miss of its
        # algorithm and version like any other.
        d = self.daemon("WarmDrainMiss", {"t_echo": 1, "t_sleep": None}, config={"workers": 1})
        held = self.wait_pool(d, "t_echo", 1)
        blocker = self.submit_ok(d, sleep_job(3))
        self.addCleanup(harness.cancel_quietly, d, blocker)
        self.wait_running(d, blocker)
        jid = self.submit_ok(d, echo_job(1))
        path = os.path.join(d.config["plugins_dir"], "t_echo", "plugin.yaml")
        with open(path, "a") as f:
            f.write("# changed\n")
        wait_for(lambda: not (held & containers(d)), 20, lambda: "the old pool did not drain: %s" % containers(d))
        job = d.wait_final(jid)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertCold(job)
        p = pool(d, "t_echo")
        self.assertEqual((p["hits"], p["misses"]), (0, 1), p)


if __name__ == "__main__":
    unittest.main()
