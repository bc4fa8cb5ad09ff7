"""valgrind_run.py - the daemon under valgrind (memcheck): real jobs of each
outcome, a cancel, a wait answered at shutdown, error requests; then SIGTERM.
Fails on any memcheck error or definite/indirect leak, on a non-zero exit, or
on anything left behind (the harness's checks).  valgrind has no pidfd_open
but passes clone's CLONE_PIDFD through, so the runtimes spawned here have
pidfds; the polling fallback without one is test-reaper's
test_wait_deadline_and_cancel (its second run).

Usage: /usr/bin/python3 tests/integration/valgrind_run.py [--daemon build/edgecd]
Ends with "N passed, N failed".
"""
import argparse
import os
import re
import stat
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default=os.path.join(harness.REPO, "build", "edgecd"))
    args = ap.parse_args()
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        print("%-5s valgrind.%s%s" % ("ok" if ok else "FAIL", name, "" if ok else ": " + str(detail)[:2000]))
        if ok:
            passed += 1
        else:
            failed += 1

    wrapdir = tempfile.mkdtemp(prefix="edgecd-vg-")
    wrapper = os.path.join(wrapdir, "edgecd-valgrind")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect "
                "--errors-for-leak-kinds=definite,indirect --error-exitcode=9 %s \"$@\"\n"
                % os.path.abspath(args.daemon))
    os.chmod(wrapper, stat.S_IRWXU)
    harness.OPTIONS["daemon"] = wrapper
    d = harness.Daemon("valgrind")
    try:
        d.start(timeout=60)
        job = d.run_job({"algorithm": "matrix_multiplication",
                         "parameters": {"matrix_a": [[1, 2]], "matrix_b": [[3], [4]]}}, timeout=60)
        check("matrix", job["status"] == "succeeded" and job["result"]["product"] == [[11]], job)
        for alg, code in (("t_exit", "algorithm_failed"), ("t_invalid", "invalid_result"),
                          ("t_syscall", "sandbox_violation")):
            job = d.run_job({"algorithm": alg}, timeout=60)
            check(alg, (job["error"] or {}).get("code") == code, job)
        job = d.run_job({"algorithm": "t_sleep", "parameters": {"seconds": 30}, "timeout_seconds": 1},
                        timeout=60)
        check("timeout", (job["error"] or {}).get("code") == "timeout", job)
        r = d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 30}})
        d.wait_status(r.body["id"], "running", timeout=30)
        d.req("DELETE", "/v1/jobs/" + r.body["id"])
        job = d.wait_final(r.body["id"], timeout=30)
        check("cancel", job["status"] == "cancelled", job)
        for body in (b"{bad", b"[]", b'{"algorithm":"nope"}'):
            d.req("POST", "/v1/jobs", body, {"Content-Type": "application/json"})
        d.req("GET", "/metrics")
        d.req("GET", "/readyz")
        answer = []
        t = threading.Thread(target=lambda: answer.append(
            d.submit({"algorithm": "t_sleep", "parameters": {"seconds": 30}, "timeout_seconds": 60},
                     wait="true", timeout=60)))
        t.start()
        time.sleep(3)
    except Exception as ex:   # noqa: BLE001 - reported as a failure, then stop and check
        check("scenario", False, repr(ex))
        t = None
    try:
        d.stop()
        check("clean_exit_no_leaks", True)
    except AssertionError as ex:
        log = d.final_log or ""
        check("clean_exit_no_leaks", False, "%s\n%s" % (ex, "\n".join(
            ln for ln in log.splitlines() if re.match(r"==\d+==", ln))))
    if t is not None:
        t.join(60)
        # Stopped at once (drain_seconds 0): recorded queued for the next start.
        ok = answer and answer[0].status == 202 and answer[0].body.get("status") == "queued"
        check("wait_answered_at_stop", bool(ok), answer)
    os.unlink(wrapper)
    os.rmdir(wrapdir)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
