"""harness.py - start a real edgecd on a loopback port and talk HTTP to it.

Owned by the integration suite (tests/integration/).  Python 3 standard
library only; runs under Debian's /usr/bin/python3.  run.py fills OPTIONS
before it imports any test module.

A Daemon owns one temporary directory (config, state dir, log).  stop()
sends SIGTERM to the pid it started (nothing else is ever signalled), waits,
and then checks that the daemon left the host clean: exit status 0, no
sanitizer report in its log, no container in its runtime root, no cgroup
named after its cgroup_parent in any hierarchy, no mount under the temp dir,
no workspace.  Whatever it finds is removed (so a failing run does not leave
the host dirty) and then reported as an AssertionError.

Threads: tests call Daemon.req() from several threads at once (each call
opens its own connection); start()/stop() run on the main thread only.
"""

import atexit
import collections
import datetime
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

OPTIONS = {
    "daemon": os.path.join(REPO, "build", "edgecd"),
    "plugins": os.path.join(REPO, "build", "test-plugins"),
    "templates": os.path.join(REPO, "oci-templates"),
    "quick": False,
    # The `runtime` the daemons are configured with: youki by default (the
    # daemon falls back to crun, then runc, where youki is absent), or a
    # path (`make check RUNTIME=/path/to/youki`).  Tests never assume which
    # one runs: they ask the daemon (GET /readyz) and compare with that.
    "runtime": os.environ.get("EDGECD_RUNTIME") or "youki",
}

# What the first daemon of this run said it uses: {"name", "path", "version"}.
RUNTIME = {}

FINAL = ("succeeded", "failed", "cancelled")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")

# Daemons a test talked to or started; run.py prints their log tails when the
# test fails, then clears the list.
TOUCHED = []
_LIVE = set()
_COUNTER = itertools.count(1)
_LOCK = threading.Lock()


def quick(obj):
    """Mark a test method or class as part of the --quick subset."""
    obj.quick = True
    return obj


def slow_factor():
    """ASan builds run slower; deadlines that measure daemon work scale.
    EDGECD_SLOW_FACTOR multiplies it (the cgroup v2 tier runs under QEMU
    without KVM)."""
    f = 3.0 if "asan" in os.path.basename(OPTIONS["daemon"]) else 1.0
    return f * float(os.environ.get("EDGECD_SLOW_FACTOR") or 1)


def has_capability(bit):
    """Whether this process (and so a daemon it starts) has capability
    `bit` in its effective set (CAP_SYS_RESOURCE is 24)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    return False


CAP_SYS_RESOURCE = 24


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def hold_port(port, wait=2.0):
    """A socket of the test's listening on 127.0.0.1:port (the caller
    closes it), so that a daemon finds the port in use.  Bound within wait
    seconds: a child of a daemon killed a moment ago may hold it yet."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + wait
    while True:
        try:
            s.bind(("127.0.0.1", port))
            break
        except OSError:
            if time.monotonic() > deadline:
                s.close()
                raise
            time.sleep(0.05)
    s.listen(1)
    return s


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_scalar(x) for x in v) + "]"
    return json.dumps(str(v))     # a JSON string is a YAML double-quoted scalar


def yaml_dump(d, indent=0):
    lines = []
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(" " * indent + "%s:" % k)
            lines.extend(yaml_dump(v, indent + 2))
        else:
            lines.append(" " * indent + "%s: %s" % (k, _yaml_scalar(v)))
    return lines


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")


class Response(collections.namedtuple("Response", "status headers body")):
    """(status, headers, body); body is parsed JSON for application/json,
    else text.  .raw holds the bytes, .elapsed the seconds it took."""

    def error_code(self):
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None

    def __str__(self):
        b = self.raw[:600].decode("utf-8", "replace") if hasattr(self, "raw") else self.body
        return "HTTP %s %s" % (self.status, b)


def _make_response(r, raw, elapsed):
    ctype = r.getheader("Content-Type", "") or ""
    body = raw.decode("utf-8", "replace")
    if ctype.split(";")[0].strip().lower() == "application/json":
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            pass        # left as text; tests asserting JSON will say so
    resp = Response(r.status, r.headers, body)
    resp.raw = raw
    resp.elapsed = elapsed
    return resp


def _encode(body, headers):
    hdrs = dict(headers or {})
    if body is None:
        return None, hdrs
    if isinstance(body, (dict, list)):
        if not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
        return json.dumps(body, ensure_ascii=False).encode("utf-8"), hdrs
    if isinstance(body, str):
        return body.encode("utf-8"), hdrs
    return bytes(body), hdrs


def tail(path, lines=80):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(no log: %s)" % e
    return "\n".join(data.splitlines()[-lines:])


# ---------------------------------------------------------------- host state

def preload_shim(name, tmp):
    """Build tests/integration/NAME.c (an LD_PRELOAD shim) into tmp; the
    environment that preloads it into a daemon.  Under the ASan build the
    shim comes before the ASan runtime in the library list: harmless for
    these shims (each wraps a libc call or two), so the check is off."""
    so = os.path.join(tmp, name + ".so")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".c")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", so, src, "-ldl"], check=True)
    env = {"LD_PRELOAD": so}
    if "asan" in os.path.basename(OPTIONS["daemon"]):
        opts = os.environ.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "verify_asan_link_order=0"
    return env


def cgroup_roots():
    """Every cgroup hierarchy root on this host: v1 controllers (and
    name=systemd), the hybrid /sys/fs/cgroup/unified, or a pure v2 root."""
    roots = []
    base = "/sys/fs/cgroup"
    if os.path.exists(os.path.join(base, "cgroup.controllers")):
        roots.append(base)            # pure v2
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        entries = []
    seen = set()
    for e in entries:
        p = os.path.join(base, e)
        real = os.path.realpath(p)
        if real in seen or not os.path.isdir(real):
            continue
        if os.path.exists(os.path.join(real, "cgroup.procs")):
            seen.add(real)
            roots.append(real)
    return roots


def cgroup_dirs(parent):
    """Existing directories named parent (e.g. "/edgecd-it-1-2") in any hierarchy."""
    rel = parent.strip("/")
    return [os.path.join(r, rel) for r in cgroup_roots() if os.path.isdir(os.path.join(r, rel))]


def children(pid):
    """The pids of pid's children (every thread's), as /proc says now."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    out.extend(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return out


# A run's cgroup is a slot right under the parent (daemon/sandbox/runcgroup.h):
# on cgroup v1 made once and used again run after run, on v2 made ahead for
# one run each; its container's cgroup is <parent>/slot-N/<run id>.
SLOT_RE = re.compile(r"slot-(0|[1-9][0-9]*)$")


def root_shared():
    """Is / a shared mount here (systemd makes it so; the daemon then takes
    a mount namespace of its own, mountns.h)?"""
    shared = False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            head = line.split(" - ", 1)[0].split()
            if len(head) >= 6 and head[4] == "/":
                shared = any(o.startswith("shared:") for o in head[6:])
    return shared


def cgroup_v2():
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def cgroup_children(parent):
    """Every cgroup below parent, in any hierarchy, but the daemon's slots
    themselves: what runs left (what is in a slot is listed)."""
    out = []
    for d in cgroup_dirs(parent):
        for dirpath, dirnames, _ in os.walk(d):
            out.extend(os.path.join(dirpath, x) for x in dirnames if not (dirpath == d and SLOT_RE.match(x)))
    return out


def subdirs(path):
    try:
        return [x for x in os.listdir(path) if os.path.isdir(os.path.join(path, x))]
    except OSError:
        return []


def run_cgroups(parent):
    """The run ids with a cgroup below parent, in any hierarchy: their
    container's in a slot, or one of an older layout under the run's name."""
    out = set()
    for d in cgroup_dirs(parent):
        for x in subdirs(d):
            out.update(subdirs(os.path.join(d, x)) if SLOT_RE.match(x) else [x])
    return out


def container_cgroup_dirs(parent, rid):
    """Where run rid's container's cgroup is, in every hierarchy that has it."""
    out = []
    for d in cgroup_dirs(parent):
        out += [os.path.join(d, x, rid) for x in subdirs(d)
                if SLOT_RE.match(x) and os.path.isdir(os.path.join(d, x, rid))]
    return out


def _unescape_mount(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def state_on_small_disk(d, size="24m"):
    """Put daemon d's state dir (not started yet) on a tmpfs of `size` of its
    own, so that a test can fill it.  Returns the path of the file to fill
    it with (fill_disk); the caller removes that file before d.stop() and
    unmounts with unmount_state(d) after it."""
    os.makedirs(d.state_dir)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", d.state_dir],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("mount a tmpfs on %s: %s" % (d.state_dir, r.stderr))
    d.own_mounts.append(d.state_dir)
    return os.path.join(d.state_dir, "fill.bin")


def state_on_ext4(d, size_mb=48):
    """Put daemon d's state dir (not started yet) on an ext4 file system of
    its own, in an image file on a loop device: one the test can freeze
    (fsfreeze), which a tmpfs cannot be.  Unmount with unmount_state(d)
    after d.stop()."""
    os.makedirs(d.state_dir)
    image = os.path.join(d.tmp, "state.ext4")
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    for argv in (["mkfs.ext4", "-q", "-F", image], ["mount", "-o", "loop", image, d.state_dir]):
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("%s: %s" % (" ".join(argv), r.stderr))
    d.own_mounts.append(d.state_dir)
    os.chmod(d.state_dir, 0o700)


def unmount_state(d):
    """After d.stop() (which unmounts lazily what it finds under its temp
    dir), whatever happened."""
    if d.state_dir in mounts_under(d.state_dir):
        subprocess.run(["umount", "-R", "-l", d.state_dir], capture_output=True)


def fill_disk(path):
    """Write path until its file system is full (ENOSPC), in smaller and
    smaller pieces; a short write is fine, the next one fails."""
    with open(path, "wb", buffering=0) as f:
        _write_until_full(f, (1 << 20, 1 << 12, 1))


def _write_until_full(f, sizes):
    import errno
    for size in sizes:
        chunk = b"\1" * size
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise


def keep_disk_full(path):
    """fill_disk(path), then keep the file system full from a thread: space
    the daemon frees (a run's files taken apart) is taken again within a
    few milliseconds.  Returns the function that stops the thread; the
    caller still removes path."""
    fill_disk(path)
    stop = threading.Event()

    def refill():
        with open(path, "ab", buffering=0) as f:
            while not stop.wait(0.002):
                _write_until_full(f, (1 << 16, 1 << 12, 1))
    t = threading.Thread(target=refill, daemon=True)
    t.start()

    def release():
        stop.set()
        t.join()
    return release


def mounts_under(prefix, pid=None):
    path = "/proc/%d/mounts" % pid if pid else "/proc/self/mounts"
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2:
                    mp = _unescape_mount(parts[1])
                    if mp == prefix or mp.startswith(prefix.rstrip("/") + "/"):
                        out.append(mp)
    except OSError:
        pass
    return out


def runtime_containers(root):
    """Containers in a daemon's runtime roots (root is STATE/runtime, one
    root per runtime below it): "<runtime>/<id>" for each.  youki, crun and
    runc all keep a directory per container in their --root, so this needs
    no runtime's command line or wording."""
    found = []
    if not os.path.isdir(root):
        return []
    for name in sorted(os.listdir(root)):
        sub = os.path.join(root, name)
        if not os.path.isdir(sub):
            continue
        for cid in sorted(os.listdir(sub)):
            if os.path.isdir(os.path.join(sub, cid)):
                found.append("%s/%s" % (name, cid))
    return found


def runtime_binary(name):
    """The binary of a runtime by name: the one the daemon reported, else PATH."""
    if RUNTIME.get("name") == name and RUNTIME.get("path"):
        return RUNTIME["path"]
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/bin")


def force_remove_containers(root):
    for entry in runtime_containers(root):
        name, cid = entry.split("/", 1)
        binary = runtime_binary(name)
        if binary:
            subprocess.run([binary, "--root", os.path.join(root, name), "delete", "--force", cid],
                           capture_output=True, timeout=30)


def force_remove_cgroups(parent):
    for d in cgroup_dirs(parent):
        for dirpath, _, _ in sorted(os.walk(d), key=lambda t: -len(t[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


# ------------------------------------------------------------------- daemon

class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix stream socket (for `listen: unix:/path`)."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def socket_activated(case, name, config=None, env=None):
    """A Daemon (not started) given its listening socket the way systemd's
    socket activation gives it: a TCP socket on a free port, listening,
    at fd 3, LISTEN_FDS=1, LISTEN_PID the daemon's own pid (the shell's,
    kept across exec).  The configured address is not used."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    case.addCleanup(lsock.close)
    fd = lsock.fileno()
    shim = ["/bin/sh", "-c",
            'fd=$1; shift; [ "$fd" = 3 ] || { eval "exec 3<&$fd $fd<&-"; }; '
            'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"', "sh", str(fd)]
    cfg = dict(config or {})
    cfg["listen"] = "127.0.0.1:9"
    d = Daemon(name, config=cfg, pass_fds=(fd,), argv0=shim, env=env)
    d.port = lsock.getsockname()[1]
    case.addCleanup(d.stop)
    return d


class Daemon:
    """One edgecd process with its own temp dir, config, state and port.
    Set unix_path (and listen on it) to talk over a unix socket instead."""

    def __init__(self, name="d", config=None, args=None, plugins=None, write_config=True, env=None,
                 pass_fds=(), argv0=None):
        self.name = name
        n = next(_COUNTER)
        self.tmp = tempfile.mkdtemp(prefix="edgecd-it-%s-" % name.lower()[:20])
        self.state_dir = os.path.join(self.tmp, "state")
        self.log_path = os.path.join(self.tmp, "daemon.log")
        self.config_path = os.path.join(self.tmp, "edgecd.yaml")
        self.port = free_port()
        self.unix_path = None
        self.host = "127.0.0.1"   # where req() connects
        self.cgroup_parent = "/edgecd-it-%d-%d" % (os.getpid(), n)
        self.proc = None
        self.runtime = {}         # what this daemon said it uses (GET /readyz)
        self.final_log = None
        self.stopped = False
        self.args = list(args or [])
        self.env = dict(env or {})     # added to the daemon's environment
        self.pass_fds = tuple(pass_fds)
        self.argv0 = argv0             # a command to run instead of the daemon itself (socket activation)
        self.own_mounts = []           # mount points under tmp a test made itself (not leftovers)
        self.restarts = 0              # processes started after the first (restart())
        cfg = {
            "listen": "127.0.0.1:%d" % self.port,
            "plugins_dir": plugins if plugins is not None else OPTIONS["plugins"],
            "templates_dir": OPTIONS["templates"],
            "state_dir": self.state_dir,
            "runtime": OPTIONS["runtime"],
            "cgroup_parent": self.cgroup_parent,
            "workers": 2,
            "queue_capacity": 64,
            "log_level": "debug",
            # Stop at once (running jobs are recorded queued for the next
            # start); tests of the drain set it themselves.
            "drain_seconds": 0,
        }
        # Every edgecd claims its job_users ranges on the host (idpool.h):
        # each test daemon gets ranges of its own, past the default one,
        # so that daemons of one test, or of runs side by side, do not
        # refuse each other.  A test's own job_users keys win.
        # 140,000 ranges of 1024 between the default's end and 2^31 - 1,
        # the highest id runc takes.
        slot = (os.getpid() * 64 + n % 64) % 140000
        first = 2001000000 + 65536 + slot * 1024
        users = {"first_uid": first, "first_gid": first, "count": 1024}
        users.update((config or {}).get("job_users") or {})
        cfg.update(config or {})
        cfg["job_users"] = users
        self.config = cfg
        if write_config:
            with open(self.config_path, "w") as f:
                f.write("# written by tests/integration/harness.py\n")
                f.write("\n".join(yaml_dump(cfg)) + "\n")
        with _LOCK:
            _LIVE.add(self)

    # -- lifecycle

    def start(self, timeout=15.0):
        timeout *= slow_factor()
        TOUCHED.append(self)
        cmd = [OPTIONS["daemon"], "--config", self.config_path] + self.args
        if self.argv0:
            cmd = list(self.argv0) + cmd
        self.logf = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(self.env)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=self.tmp, env=env,
                                     start_new_session=True, pass_fds=self.pass_fds)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                msg = "daemon %s exited with status %s during startup" % (self.name, rc)
                self._abort(msg)
            try:
                r = self.req("GET", "/healthz", timeout=1.0)
                if r.status == 200:
                    ready = self.req("GET", "/readyz", timeout=5.0)
                    if isinstance(ready.body, dict) and isinstance(ready.body.get("runtime"), dict):
                        self.runtime = ready.body["runtime"]
                        # Only a daemon on the configured runtime says which
                        # one the run uses (not one on a test's wrapper).
                        if not RUNTIME and self.config.get("runtime") == OPTIONS["runtime"]:
                            RUNTIME.update(self.runtime)
                    return self
                last = str(r)
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.05)
        self._abort("daemon %s: GET /healthz did not answer 200 within %.0f s (last: %s)"
                    % (self.name, timeout, last))

    def _abort(self, msg):
        log = tail(self.log_path)
        try:
            self.stop(check=False)
        except Exception:        # noqa: BLE001 - cleanup must not hide msg
            pass
        raise AssertionError(msg + "\n--- daemon log tail ---\n" + log)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def view(self, path):
        """path as the daemon sees it: through /proc/PID/root while it runs
        (its mounts, the workspaces' tmpfs and each run's, are in a mount
        namespace of its own: mountns.h), else as it is here."""
        if self.alive():
            return "/proc/%d/root%s" % (self.proc.pid, os.path.abspath(path))
        return path

    def own_mount_ns(self):
        """Is the running daemon in a mount namespace other than this
        process's (mountns.h: where / is shared, as under systemd)?"""
        return os.stat("/proc/%d/ns/mnt" % self.proc.pid).st_ino != os.stat("/proc/self/ns/mnt").st_ino

    def rss_kib(self):
        """The daemon's resident memory now (VmRSS), in KiB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for pid %d" % self.proc.pid)

    def metric(self, name, labels=None, headers=None):
        """The value of one sample of GET /metrics (labels: a dict that must
        all match), or None when there is no such sample."""
        r = self.req("GET", "/metrics", headers=headers)
        if r.status != 200:
            raise AssertionError("GET /metrics: %s" % (r,))
        for line in r.body.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            if head == name and not labels:
                return float(value)
            if head.startswith(name + "{") and labels and all('%s="%s"' % kv in head for kv in labels.items()):
                return float(value)
        return None

    def log_tail(self, lines=80):
        if self.final_log is not None:
            return self.final_log
        return tail(self.log_path, lines)

    def wait_log(self, pattern, timeout=10.0):
        """True once the daemon's log matches pattern (a regular
        expression), within timeout seconds (times slow_factor())."""
        deadline = time.monotonic() + timeout * slow_factor()
        while time.monotonic() < deadline:
            if re.search(pattern, self.log_text()):
                return True
            time.sleep(0.1)
        return bool(re.search(pattern, self.log_text()))

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def leftovers(self, include_parent=True):
        """What of ours is still on the host, as a list of sentences."""
        problems = []
        cs = runtime_containers(os.path.join(self.state_dir, "runtime"))
        if cs:
            problems.append("containers left in %s/runtime: %s" % (self.state_dir, ", ".join(cs)))
        if include_parent:
            dirs = cgroup_dirs(self.cgroup_parent)
            if dirs:
                problems.append("cgroup dirs left: %s" % ", ".join(dirs))
        else:
            kids = cgroup_children(self.cgroup_parent)
            if kids:
                problems.append("job cgroups left: %s" % ", ".join(kids))
            # Slots are the daemon's while it counts them: one it no longer
            # does (a run left something in it) is a leftover until the
            # collector has removed it.
            if self.alive():
                slots = set()
                for d in cgroup_dirs(self.cgroup_parent):
                    slots.update(x for x in subdirs(d) if SLOT_RE.match(x))
                counted = self.metric("edgecd_run_cgroup_slots")
                if len(slots) > counted:
                    problems.append("slot cgroups the daemon does not count (%d): %s"
                                    % (counted, ", ".join(sorted(slots))))
        ms = mounts_under(self.tmp)
        ws = os.path.join(self.state_dir, "workspaces")
        if self.alive():
            ms += [m for m in mounts_under(self.tmp, self.proc.pid) if m not in ms]
            # The workspaces' own tmpfs is the running daemon's, not a leftover.
            ms = [m for m in ms if m != ws]
        ms = [m for m in ms if m not in self.own_mounts]
        if ms:
            problems.append("mounts left: %s" % ", ".join(ms))
        wsv = self.view(ws)
        if os.path.isdir(wsv) and os.listdir(wsv):
            problems.append("workspaces left: %s" % ", ".join(sorted(os.listdir(wsv))))
        wl = os.path.join(self.state_dir, "warm-logs")
        if include_parent and os.path.isdir(wl) and os.listdir(wl):
            problems.append("warm containers' logs left: %s" % ", ".join(sorted(os.listdir(wl))))
        return problems

    def job_mounts(self):
        """Mounts under the daemon's temp dir other than its workspaces'
        own tmpfs: the runs' (their /output tmpfs) and any leftover."""
        ws = os.path.join(self.state_dir, "workspaces")
        ms = mounts_under(self.tmp)
        if self.alive():
            ms += [m for m in mounts_under(self.tmp, self.proc.pid) if m not in ms]
        return [m for m in ms if m != ws]

    def wait_cleaned(self, timeout=15.0):
        """Wait until the daemon has taken apart every finished run (the
        container, cgroup and workspace go after the job's answer):
        edgecd_cleanups_pending reaches 0.  The timeout is times
        slow_factor(): the runtime's deletes, unmounts and rmdirs are
        daemon work."""
        timeout *= slow_factor()
        deadline = time.monotonic() + timeout
        while True:
            v = self.metric("edgecd_cleanups_pending")
            if v == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError("daemon %s: %s cleanup(s) still pending after %.0f s" % (self.name, v, timeout))
            time.sleep(0.05)

    def assert_idle_clean(self, timeout=5.0):
        """While the daemon runs and no job is active: no container, no job
        cgroup, no mount, no workspace.  Polls briefly (removal trails
        the HTTP answer: the cleaner takes a run apart after its answer),
        timeout times slow_factor()."""
        deadline = time.monotonic() + timeout * slow_factor()
        while True:
            p = self.leftovers(include_parent=False)
            if not p:
                return
            if time.monotonic() > deadline:
                raise AssertionError("daemon %s not clean while idle: %s" % (self.name, "; ".join(p)))
            time.sleep(0.1)

    def stop(self, check=True):
        """SIGTERM, wait 20 s (then SIGKILL), check the host is clean, remove
        the temp dir.  Raises AssertionError listing every problem."""
        if self.stopped:
            return
        self.stopped = True
        problems = []
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    problems.append("did not exit within 20 s of SIGTERM (killed)")
                    self.proc.kill()
                    self.proc.wait(10)
            rc = self.proc.returncode
            if rc != 0:
                problems.append("exit status %s%s" % (rc, " (signal %d)" % -rc if rc < 0 else ""))
            self.logf.close()
            log = self.log_text()
            bad = [ln for ln in log.splitlines() if any(m in ln for m in SANITIZER_MARKERS)]
            if bad:
                problems.append("sanitizer report in log: %s" % " | ".join(bad[:5]))
        problems += self.leftovers(include_parent=True)
        self.final_log = tail(self.log_path)
        self._force_cleanup()
        with _LOCK:
            _LIVE.discard(self)
        if problems and check:
            raise AssertionError("daemon %s: stop: %s\n--- daemon log tail ---\n%s"
                                 % (self.name, "; ".join(problems), self.final_log))

    def _force_cleanup(self):
        # A test's own file system left frozen (fsfreeze) would hang all
        # that touches it, the daemon's kill too; thawing one not frozen
        # is a harmless error.
        for m in self.own_mounts:
            subprocess.run(["fsfreeze", "-u", m], capture_output=True)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        force_remove_containers(os.path.join(self.state_dir, "runtime"))
        for m in sorted(mounts_under(self.tmp), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        force_remove_cgroups(self.cgroup_parent)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- restarts: one Daemon, several processes on the same config, state
    # dir, port and cgroup parent (the durable job store).  stop() stays the
    # last word: it checks the last process and removes everything.

    @property
    def db_path(self):
        return os.path.join(self.state_dir, "edgecd.db")

    def kill(self):
        """SIGKILL the running process (it cleans nothing up) and reap it.
        The state dir stays for restart()."""
        if not self.alive():
            raise AssertionError("daemon %s: kill(): not running (exit %s)"
                                 % (self.name, self.proc and self.proc.returncode))
        self.proc.kill()
        self.proc.wait(10)
        self.logf.close()

    def terminate(self, timeout=20.0):
        """SIGTERM the running process and wait for it to exit, without
        stop()'s checks and without removing anything: the state dir stays
        for restart().  Returns (exit status, seconds from the signal to the
        exit).  A process still there after timeout is killed and that is
        an AssertionError."""
        if not self.alive():
            raise AssertionError("daemon %s: terminate(): not running (exit %s)"
                                 % (self.name, self.proc and self.proc.returncode))
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            self.logf.close()
            raise AssertionError("daemon %s did not exit within %.0f s of SIGTERM (killed)"
                                 % (self.name, timeout))
        secs = time.monotonic() - t0
        self.logf.close()
        return rc, secs

    def restart(self, timeout=15.0):
        """Start a new process on the same config, state dir, port and
        cgroup parent once the previous one has exited (kill() or
        terminate(), never stop(): stop() removes the state dir).  The log
        file goes on (a marker line separates the processes)."""
        if self.stopped:
            raise AssertionError("daemon %s: restart() after stop(): its state dir is gone" % self.name)
        if self.alive():
            raise AssertionError("daemon %s: restart() while the process still runs" % self.name)
        if self.proc is not None and not self.logf.closed:
            self.logf.close()
        self.restarts += 1
        with open(self.log_path, "ab") as f:
            f.write(("--- harness: restart %d (previous exit %s) ---\n"
                     % (self.restarts, self.proc.returncode if self.proc else None)).encode())
        if self in TOUCHED:
            TOUCHED.remove(self)    # start() adds it again
        return self.start(timeout)

    # -- HTTP

    def req(self, method, path, body=None, headers=None, timeout=30.0):
        """One request on a fresh connection: (status, headers, body)."""
        if self not in TOUCHED:
            TOUCHED.append(self)
        data, hdrs = _encode(body, headers)
        if self.unix_path:
            c = UnixHTTPConnection(self.unix_path, timeout)
        else:
            c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            t0 = time.monotonic()
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            raw = r.read()
            return _make_response(r, raw, time.monotonic() - t0)
        finally:
            c.close()

    def session(self, timeout=10.0):
        return Session(self, timeout)

    def healthz_ok(self, timeout=2.0):
        r = self.req("GET", "/healthz", timeout=timeout)
        return r.status == 200

    # -- jobs

    def submit(self, body, wait=None, headers=None, timeout=60.0):
        path = "/v1/jobs" if wait is None else "/v1/jobs?wait=%s" % wait
        return self.req("POST", path, body, headers, timeout=timeout)

    def run_job(self, body, timeout=60.0):
        """POST ?wait=true; asserts 200 and a final job; returns the job."""
        r = self.submit(body, wait="true", timeout=timeout * slow_factor())
        if r.status != 200 or not isinstance(r.body, dict):
            raise AssertionError("POST /v1/jobs?wait=true %s: expected 200, got %s"
                                 % (json.dumps(body)[:200], r))
        check_job(r.body, final=True, runtime=self.runtime.get("name"))
        return r.body

    def get_job(self, job_id):
        r = self.req("GET", "/v1/jobs/%s" % job_id)
        if r.status != 200:
            raise AssertionError("GET /v1/jobs/%s: %s" % (job_id, r))
        return r.body

    def wait_final(self, job_id, timeout=30.0):
        deadline = time.monotonic() + timeout * slow_factor()
        job = None
        while time.monotonic() < deadline:
            job = self.get_job(job_id)
            if job.get("status") in FINAL:
                check_job(job, final=True, runtime=self.runtime.get("name"))
                return job
            time.sleep(0.05)
        raise AssertionError("job %s not final after %.0f s: %s" % (job_id, timeout, job))

    def wait_status(self, job_id, status, timeout=10.0):
        deadline = time.monotonic() + timeout * slow_factor()
        job = None
        while time.monotonic() < deadline:
            job = self.get_job(job_id)
            if job.get("status") == status:
                return job
            if job.get("status") in FINAL:
                break
            time.sleep(0.05)
        raise AssertionError("job %s did not reach %s: %s" % (job_id, status, job))

    def list_jobs(self, **query):
        """Every job matching query, following `next` across pages."""
        out = []
        q = dict(query)
        for _ in range(1000):
            path = "/v1/jobs?" + "&".join("%s=%s" % kv for kv in q.items())
            r = self.req("GET", path)
            if r.status != 200:
                raise AssertionError("GET %s: %s" % (path, r))
            out.extend(r.body["jobs"])
            if not r.body.get("next"):
                return out
            q["after"] = r.body["next"]
        raise AssertionError("pagination did not end")


class Session:
    """A keep-alive connection that reconnects when the daemon closes it."""

    def __init__(self, daemon, timeout):
        self.d = daemon
        self.timeout = timeout
        self.c = None
        self.reconnects = 0

    def req(self, method, path, body=None, headers=None):
        data, hdrs = _encode(body, headers)
        for attempt in (0, 1):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=self.timeout)
            try:
                t0 = time.monotonic()
                self.c.request(method, path, body=data, headers=hdrs)
                r = self.c.getresponse()
                raw = r.read()
                resp = _make_response(r, raw, time.monotonic() - t0)
                if r.will_close:
                    self.close()
                return resp
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine,
                    BrokenPipeError):
                # The server may close an idle keep-alive connection; retry
                # once on a new one.  A timeout is not retried: it is a hang.
                self.close()
                self.reconnects += 1
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def raw_exchange(port, head, body_chunks=(), timeout=10.0):
    """Send raw bytes (head, then each chunk from a sender thread, so an
    early answer can be read while we still send) and read one response.
    Returns (status, headers dict lower-case, body bytes, seconds)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    t0 = time.monotonic()
    stop = threading.Event()

    def sender():
        try:
            s.sendall(head)
            for ch in body_chunks:
                if stop.is_set():
                    return
                s.sendall(ch)
        except OSError:
            pass            # the server answered and closed: expected for 413

    th = threading.Thread(target=sender, daemon=True)
    th.start()
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        if b"\r\n\r\n" not in buf:
            raise AssertionError("no complete response head (got %r)" % buf[:200])
        hd, _, rest = buf.partition(b"\r\n\r\n")
        lines = hd.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0") or 0)
        while len(rest) < n:
            d = s.recv(65536)
            if not d:
                break
            rest += d
        return status, hdrs, rest, time.monotonic() - t0
    finally:
        stop.set()
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
        th.join(5)


def real_runtime():
    """The runtime the daemons report, the configured path, else runc."""
    return RUNTIME.get("path") or (OPTIONS["runtime"] if OPTIONS["runtime"].startswith("/") else None) \
        or runtime_binary("runc")


def write_runtime_wrapper(directory, name, body):
    """A shell script `name` in directory standing in for the runtime: body
    runs first (with $op the operation and $id the container id), then the
    real runtime (real_runtime()) takes over with the same arguments unless
    body exits.  Returns its path."""
    real = real_runtime()
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                "# written by tests/integration/harness.py\n"
                "op=$3\n"
                "id=$4\n"
                "case $op in create|run|delete) eval \"id=\\${$#}\";; esac\n"
                "%s\n"
                "exec %s \"$@\"\n" % (body, real))
    os.chmod(path, 0o755)
    return path


# ------------------------------------------------------------- assertions

METRIC_KEYS = ("queue_ms", "create_ms", "run_ms", "collect_ms", "total_ms",
               "peak_memory_bytes", "cpu_ms")
JOB_KEYS = ("id", "algorithm", "version", "status", "priority", "created_at", "started_at",
            "finished_at", "result", "error", "exit_code", "metrics", "runtime", "attempts",
            "submitted_by", "progress")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_job(job, final=None, runtime=None):
    """Assert the job object has the contract's shape; final=True also
    demands a final status with its timestamps and metrics.  A job that ran
    names the runtime the daemon reported (runtime, else the run's first)."""
    def fail(msg):
        raise AssertionError("job object: %s: %s" % (msg, json.dumps(job)[:800]))

    if not isinstance(job, dict):
        fail("not an object")
    missing = [k for k in JOB_KEYS if k not in job]
    if missing:
        fail("missing keys %s" % missing)
    if not isinstance(job["id"], str) or not UUID_RE.match(job["id"]):
        fail("id is not a UUID")
    st = job["status"]
    if st not in ("queued", "running") + FINAL:
        fail("bad status %r" % st)
    if final is True and st not in FINAL:
        fail("expected a final status")
    if job["priority"] not in ("high", "normal", "low"):
        fail("bad priority")
    p = job["progress"]
    if p is not None and (not isinstance(p, dict) or sorted(p) != ["fraction", "message"]
                          or not (p["fraction"] is None or isinstance(p["fraction"], (int, float))
                                  and 0 <= p["fraction"] <= 1)
                          or not (p["message"] is None or isinstance(p["message"], str))
                          or (p["fraction"] is None and p["message"] is None)):
        fail("progress is neither null nor {fraction, message}")
    for k in ("created_at", "started_at", "finished_at"):
        v = job[k]
        if v is not None and (not isinstance(v, str) or not TIME_RE.match(v)):
            fail("%s is not RFC 3339 UTC with ms: %r" % (k, v))
    if not isinstance(job["created_at"], str):
        fail("created_at unset")
    if st == "queued" and (job["started_at"] is not None or job["finished_at"] is not None):
        fail("queued job with started_at/finished_at")
    if st in FINAL:
        if job["finished_at"] is None:
            fail("final job without finished_at")
        if parse_time(job["finished_at"]) < parse_time(job["created_at"]):
            fail("finished_at before created_at")
        if job["started_at"] is not None:
            if not (parse_time(job["created_at"]) <= parse_time(job["started_at"])
                    <= parse_time(job["finished_at"])):
                fail("timestamps out of order")
        m = job["metrics"]
        # A job whose container never ran (cancelled before it started, or
        # while its runtime was still making it, or the runtime refused to
        # create it) has no cgroup to read: null is tolerated there for the
        # two cgroup figures (and only there).  So is a run a daemon crash
        # interrupted: nobody read its cgroup.
        last = job["attempts"][-1] if job.get("attempts") else {}
        no_figures = ("runtime_error", "interrupted", "cancelled")
        no_container = job["started_at"] is None or (job["error"] or {}).get("code") in no_figures \
            or (last.get("error") or {}).get("code") in no_figures
        lax = ("peak_memory_bytes", "cpu_ms") if no_container else ()
        if not isinstance(m, dict) or any(not _is_int(m.get(k)) and not (k in lax and m.get(k) is None)
                                          for k in METRIC_KEYS):
            fail("metrics must hold ints %s" % (METRIC_KEYS,))
    if st == "succeeded":
        if job["error"] is not None:
            fail("succeeded job with error")
        if job["started_at"] is None:
            fail("succeeded job without started_at")
        want = runtime or RUNTIME.get("name")
        if want and job["runtime"] != want:
            fail("runtime should be %s, the one the daemon reported" % want)
        if not job["attempts"] or job["attempts"][-1]["error"] is not None:
            fail("a succeeded job's last attempt must have succeeded")
        if job["exit_code"] != 0:
            fail("succeeded job with exit_code %r" % job["exit_code"])
    else:
        if job["result"] is not None:
            fail("result set on a job that did not succeed")
    if st in ("failed", "cancelled"):
        e = job["error"]
        if not isinstance(e, dict) or not isinstance(e.get("code"), str) \
                or not isinstance(e.get("message"), str) or not e["message"]:
            fail("error must be {code, message}")
    if st in ("queued", "running") and job["error"] is not None:
        fail("error set on an active job")
    if job["exit_code"] is not None and not _is_int(job["exit_code"]):
        fail("exit_code must be int or null")
    return job


def check_error(resp, status, code=None, field=None):
    """Assert resp is status with the JSON error shape (and code, field)."""
    what = "expected %s %s%s, got %s" % (status, code or "", " field " + field if field else "", resp)
    if resp.status != status:
        raise AssertionError(what)
    ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise AssertionError("error response Content-Type %r: %s" % (ctype, what))
    b = resp.body
    if not isinstance(b, dict) or not isinstance(b.get("error"), dict):
        raise AssertionError("error body is not {\"error\":{...}}: " + what)
    e = b["error"]
    if not isinstance(e.get("code"), str) or not e["code"] or not isinstance(e.get("message"), str) \
            or not e["message"]:
        raise AssertionError("error needs code and message strings: " + what)
    if "field" in e and e["field"] is not None and not isinstance(e["field"], str):
        raise AssertionError("error field must be a string: " + what)
    if code is not None and e["code"] != code:
        raise AssertionError(what)
    if field is not None and e.get("field") != field:
        raise AssertionError(what)
    return e


# ------------------------------------------------------------- test bases

def rewrite_manifest(path, name=None, version=None, extra="", drop_resources=False):
    """Rewrite a plugin.yaml in place: its name and version when given,
    its resources line dropped when asked, extra appended."""
    with open(path) as f:
        text = f.read()
    if name:
        text, n = re.subn(r"(?m)^name: .*$", "name: %s" % name, text)
        assert n == 1, text
    if version:
        text, n = re.subn(r"(?m)^version: .*$", "version: %s" % version, text)
        assert n == 1, text
    if drop_resources:
        text = re.sub(r"(?m)^resources: .*\n", "", text)
    with open(path, "w") as f:
        f.write(text + extra)


def copy_plugin(src_name, dst_dir, name=None, version=None, extra="", drop_resources=False):
    """The test plugin SRC_NAME (OPTIONS["plugins"]) copied to dst_dir, its
    manifest rewritten (rewrite_manifest); the manifest's path."""
    shutil.copytree(os.path.join(OPTIONS["plugins"], src_name), dst_dir, symlinks=True)
    path = os.path.join(dst_dir, "plugin.yaml")
    rewrite_manifest(path, name=name, version=version, extra=extra, drop_resources=drop_resources)
    return path


def busy_daemon(test, name, config, env=None):
    """A started daemon with one worker, held by a long t_sleep job (cancelled
    when the test ends): what is submitted next stays queued."""
    d = Daemon(name, config=dict(config, workers=1), env=env)
    test.addCleanup(d.stop)
    d.start()
    r = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 60}, "timeout_seconds": 60})
    test.assertEqual(r.status, 202, r)
    test.addCleanup(cancel_quietly, d, r.body["id"])
    d.wait_status(r.body["id"], "running")
    return d


def wait_for(fn, timeout, what):
    """Poll fn() until it returns something true (returned); what() says
    what was awaited and what the state is when it never comes."""
    deadline = time.monotonic() + timeout * slow_factor()
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("not within %.0f s: %s" % (timeout * slow_factor(), what()))
        time.sleep(0.05)


def copy_templates(testcase, prefix):
    """A copy of the OCI templates directory (OPTIONS["templates"]) for
    testcase to edit, in a temporary directory removed after it: the
    copy's path (its parent is free for the test's other files)."""
    tmp = tempfile.mkdtemp(prefix="edgecd-it-%s-" % prefix)
    testcase.addCleanup(shutil.rmtree, tmp, True)
    os.chmod(tmp, 0o755)
    tdir = os.path.join(tmp, "templates")
    shutil.copytree(OPTIONS["templates"], tdir)
    return tdir


def write_template(tdir, name, spec):
    """Template `name` in tdir replaced by spec, in one rename (as an
    editor saves it)."""
    tmp = os.path.join(tdir, name + ".json.tmp")
    with open(tmp, "w") as f:
        json.dump(spec, f)
    os.rename(tmp, os.path.join(tdir, name + ".json"))


def cancel_all(d):
    """Cleanup: cancel every queued or running job of d, errors ignored."""
    if d is None or not d.alive():
        return
    try:
        for st in ("queued", "running"):
            for j in d.list_jobs(status=st):
                d.req("DELETE", "/v1/jobs/" + j["id"], timeout=5)
    except (AssertionError, OSError, http.client.HTTPException, KeyError):
        pass

def cancel_quietly(d, job_id, timeout=15.0):
    """DELETE a job unless final and wait for it to end; errors ignored
    (this runs in cleanups, after the test's own verdict)."""
    if d is None or not d.alive():
        return
    try:
        job = d.get_job(job_id)
        if job.get("status") in FINAL:
            return
        d.req("DELETE", "/v1/jobs/" + job_id, timeout=5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if d.get_job(job_id).get("status") in FINAL:
                return
            time.sleep(0.1)
    except (AssertionError, OSError, http.client.HTTPException):
        pass


import unittest  # noqa: E402  (kept next to its only users)


class DaemonCase(unittest.TestCase):
    """One daemon per test class (setUpClass), stopped and checked in
    tearDownClass.  Subclasses set CONFIG (extra config keys)."""

    CONFIG = {}
    d = None

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(cls.__name__, config=cls.CONFIG).start()

    @classmethod
    def tearDownClass(cls):
        if cls.d is not None:
            d, cls.d = cls.d, None
            d.stop()

    def setUp(self):
        if self.d is not None and self.d not in TOUCHED:
            TOUCHED.append(self.d)
        if self.d is not None and not self.d.alive():
            self.fail("daemon %s is not running (exit %s)" % (self.d.name, self.d.proc.returncode))

    def track(self, job_id, d=None):
        """Cancel job_id when the test ends (pass or fail) so that a failing
        test does not leave long jobs that hold the workers of later tests."""
        self.addCleanup(cancel_quietly, d or self.d, job_id)
        return job_id

    def assertHealthy(self, d=None):
        d = d or self.d
        r = d.req("GET", "/healthz", timeout=5)
        self.assertEqual(r.status, 200, "daemon no longer serves /healthz: %s" % (r,))


def _atexit_cleanup():
    for d in list(_LIVE):
        try:
            d.stop(check=False)
        except Exception:  # noqa: BLE001
            pass


atexit.register(_atexit_cleanup)
