#!/usr/bin/python3
"""Integration tests for edgecd: a real daemon, real HTTP, real containers.

Run from the repository root, as root (containers, cgroups, mounts):

    /usr/bin/python3 tests/integration/run.py --daemon build/edgecd \
        [--plugins build/test-plugins] [--filter PATTERN] [--quick]

Every tests/integration/test_*.py is loaded.  One line is printed per test
("ok", "FAIL" or "ERROR", its name, seconds), then the details of each
failure (with the tail of the log of each daemon the test used), then the
line "N passed, N failed".  Exit status 1 on any failure (or when nothing
matched the filter), 0 otherwise.

A SIGTERM or SIGINT (a watchdog's `timeout`, Ctrl-C) stops the run: it
prints every thread's stack, the test under way as ERROR with its daemons'
log tails, runs that test's remaining tearDown and cleanups, stops the
daemons and prints the summary (at least one failure); a second signal
ends it at once.

--filter PATTERN keeps tests whose id (module.Class.method) contains
PATTERN, or matches it as a shell glob; repeatable.

--quick runs the subset marked with @harness.quick, a fast check for a
sanitizer or debug build (`make check` runs the whole suite on both builds).
It covers:
  - the CLI (--version, --check-config good and bad files);
  - every HTTP error path (bad JSON and the whole JSONTestSuite corpus,
    invalid requests, schema failures, unknown algorithm/version, 415,
    413 with Content-Length, chunked and a 10 GB claim, 405, 404, 409, 429);
  - real jobs of each outcome: succeeded (matrix, echo), algorithm_failed,
    timeout, no_result, invalid_result, result_too_large,
    sandbox_violation, out_of_memory, cancelled (queued and running);
  - the wait path: ?wait=true, ?wait=N expiring, and 100 concurrent
    ?wait=30 requests while /healthz keeps answering, then cancelled;
  - listing with filters and pagination, priorities;
  - startup without a plugins dir or with only broken manifests,
    readiness, stop with jobs in flight.
It leaves out checks that exercise the plugins more than the daemon
(negative, fractional, random and ragged matrices, statistics, word_count,
t_pids) and a few CLI corner cases (--help, unknown option, range errors,
missing config file).
"""

import argparse
import faulthandler
import fnmatch
import os
import signal
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def is_quick(test):
    m = getattr(test, test._testMethodName, None)
    return bool(getattr(m, "quick", False) or getattr(type(test), "quick", False))


def matches(test, patterns):
    if not patterns:
        return True
    tid = test.id()
    return any(p in tid or fnmatch.fnmatchcase(tid, p) for p in patterns)


class LineResult(unittest.TestResult):
    """One line per test; details collected for the end."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.details = []
        self.passed = 0
        self.failed = 0
        self.cur = None
        self.cur_test = None
        self.interrupted = None    # the signal's name, set by its handler before it raises

    def _w(self, s):
        self.stream.write(s + "\n")
        self.stream.flush()

    def startTest(self, test):
        super().startTest(test)
        del harness.TOUCHED[:]
        self.cur = {"status": "ok", "t0": time.monotonic(), "errs": []}
        self.cur_test = test

    def report_interrupted(self):
        """What a stop (SIGINT, SIGTERM: a watchdog's timeout) found: the
        test under way and its daemons' log tails (the signal handler
        printed every thread's stack); at least one failure."""
        if self.cur is None or self.cur_test is None:
            self._w("interrupted between tests (or in a class's set-up or tear-down)")
            daemons, what = list(harness._LIVE), "the run"
        else:
            self.failed += 1
            self._w("%-5s %s %.2fs (interrupted)" % ("ERROR", self.cur_test.id(),
                                                     time.monotonic() - self.cur["t0"]))
            daemons, what = list(harness.TOUCHED), str(self.cur_test)
            self.cur = None
        logs = ["--- log tail of daemon %s (%s) ---\n%s" % (d.name, d.tmp, d.log_tail(60)) for d in daemons]
        self.details.append("INTERRUPTED: %s\n%s" % (what, "\n".join(logs)))
        self.failed = max(self.failed, 1)

    def print_details(self):
        if self.details:
            print("\n==================== failures ====================")
            for d in self.details:
                print(d)
                print("-" * 50)
            del self.details[:]
        sys.stdout.flush()

    def tidy_interrupted_test(self, torn_down):
        """The interrupted test's tearDown (unless unittest ran it) and its
        cleanups not yet run (its cgroups, its mounts), each error printed;
        the daemons are stopped after."""
        t = self.cur_test
        if t is None:
            return
        steps = [] if torn_down else [t.tearDown]
        while steps or t._cleanups:
            if steps:
                fn, args, kwargs = steps.pop(), (), {}
            else:
                fn, args, kwargs = t._cleanups.pop()
            try:
                fn(*args, **kwargs)
            except Exception:  # noqa: BLE001
                traceback.print_exc()

    def _record(self, test, kind, err):
        text = self._exc_info_to_string(err, test)
        logs = []
        for d in list(harness.TOUCHED):
            if "--- daemon log tail ---" in text and "daemon %s " % d.name in text:
                continue        # the error message already carries this log
            logs.append("--- log tail of daemon %s (%s) ---\n%s" % (d.name, d.tmp, d.log_tail(60)))
        return "%s: %s\n%s%s" % (kind, test, text, "\n".join(logs))

    def addSuccess(self, test):
        super().addSuccess(test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, "FAIL", err)

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test, "ERROR", err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "FAIL" if issubclass(err[0], test.failureException) else "ERROR"
            self._fail(subtest, kind, err, parent=test)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if self.cur is not None:
            self.cur["status"] = "skip"
            self.cur["reason"] = reason

    def _fail(self, test, kind, err, parent=None):
        detail = self._record(test, kind, err)
        if self.cur is not None and (parent is not None or isinstance(test, unittest.TestCase)):
            if self.cur["status"] != "ERROR":
                self.cur["status"] = kind
            self.details.append(detail)
        else:
            # setUpClass/setUpModule/tearDown* errors come without startTest.
            self.failed += 1
            self._w("%-5s %s" % (kind, test))
            self.details.append(detail)

    def stopTest(self, test):
        super().stopTest(test)
        if self.interrupted:
            return      # not passed: report_interrupted() says where it stood
        c = self.cur
        self.cur = self.cur_test = None
        dt = time.monotonic() - c["t0"]
        if c["status"] == "ok":
            self.passed += 1
        elif c["status"] == "skip":
            self._w("%-5s %s %.2fs (%s)" % ("skip", test.id(), dt, c.get("reason")))
            return
        else:
            self.failed += 1
        self._w("%-5s %s %.2fs" % (c["status"], test.id(), dt))
        del harness.TOUCHED[:]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--daemon", required=True, help="the edgecd binary (build/edgecd)")
    ap.add_argument("--plugins", default=os.path.join("build", "test-plugins"),
                    help="plugins dir for the daemons (default build/test-plugins)")
    ap.add_argument("--templates", default=os.path.join(harness.REPO, "oci-templates"))
    ap.add_argument("--filter", action="append", default=[], metavar="PATTERN")
    ap.add_argument("--quick", action="store_true", help="the subset for the ASan build")
    ap.add_argument("--runtime", default=os.environ.get("EDGECD_RUNTIME") or "youki",
                    help="the daemons' `runtime` setting: a name or a path (default youki, "
                         "which falls back to crun, then runc)")
    ap.add_argument("--list", action="store_true", help="list the selected tests and exit")
    a = ap.parse_args()

    harness.OPTIONS.update(daemon=os.path.abspath(a.daemon), plugins=os.path.abspath(a.plugins),
                           templates=os.path.abspath(a.templates), quick=a.quick, runtime=a.runtime)
    os.environ.setdefault("EDGECD_SRC", harness.REPO)

    problems = []
    if not os.access(harness.OPTIONS["daemon"], os.X_OK):
        problems.append("daemon binary %s is missing or not executable" % a.daemon)
    if not os.path.isdir(harness.OPTIONS["plugins"]):
        problems.append("plugins dir %s does not exist (make plugins)" % a.plugins)
    if os.geteuid() != 0:
        problems.append("must run as root (containers, cgroups, mounts)")

    loader = unittest.TestLoader()
    names = sorted(f[:-3] for f in os.listdir(HERE) if f.startswith("test_") and f.endswith(".py"))
    suite = unittest.TestSuite()
    for n in names:
        suite.addTests(loader.loadTestsFromName(n))
    tests = [t for t in iter_tests(suite)
             if matches(t, a.filter) and (not a.quick or is_quick(t)
                                          or isinstance(t, unittest.loader._FailedTest))]
    if a.list:
        for t in tests:
            print(t.id())
        return 0
    if not tests:
        problems.append("no test matches the filter")
    if problems:
        for p in problems:
            print("run.py: " + p)
        print("0 passed, %d failed" % len(problems))
        return 1

    result = LineResult(sys.stdout)
    t0 = time.monotonic()

    def stop(signum, frame):
        name = signal.Signals(signum).name
        result.interrupted = name
        result.stop()      # no later test starts, whatever becomes of the exception
        # A second signal ends the run at once: a loop that swallows the
        # first (an `except BaseException`) cannot hold it.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            sys.stdout.write("--- %s: where each thread was ---\n" % name)
            sys.stdout.flush()
            faulthandler.dump_traceback(file=sys.stdout, all_threads=True)
        except (OSError, ValueError):
            pass    # no one reads the output any more (its pipe closed)
        raise KeyboardInterrupt(name)
    # A watchdog's `timeout` (the cgroup v2 VM's) ends a hung run with
    # SIGTERM, a user with SIGINT: both say where it stood before the summary.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        in_test_method = False
        try:
            unittest.TestSuite(tests).run(result)
        except KeyboardInterrupt as e:
            result.interrupted = result.interrupted or "SIGINT"
            # Stopped in the test itself: unittest skipped its tearDown.
            in_test_method = any(f.f_code.co_name == "_callTestMethod"
                                 for f, _ in traceback.walk_tb(e.__traceback__))
        if result.interrupted:
            # Said before the cleanups: a watchdog's kill may end those.
            print("interrupted by %s" % result.interrupted)
            result.report_interrupted()
            result.print_details()
            result.tidy_interrupted_test(torn_down=not in_test_method)
    finally:
        harness._atexit_cleanup()
    result.print_details()
    rt = harness.RUNTIME
    print("(%.0f s; runtime %s %s at %s)" % (time.monotonic() - t0, rt.get("name", "?"),
                                            rt.get("version", "?"), rt.get("path", "?")))
    print("%d passed, %d failed" % (result.passed, result.failed))
    return 1 if result.failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        print("0 passed, 1 failed")
        sys.exit(1)
