#!/usr/bin/env bash
# Runs every edgecd test and ends with the line "N passed, N failed";
# exits non-zero when anything failed.  Called by `make check` with the unit
# test binaries as arguments.
#
#   1. unit tests (Check, built with ASan+UBSan), one binary per module
#   2. the plugins' own self-test (binaries run outside containers)
#   3. integration tests: the real daemon over HTTP, real containers
#   4. the same integration suite against the ASan+UBSan daemon
#   5. a short scenario with the daemon under valgrind
#   6. the Debian package (make deb, its contents, lintian, the unpacked
#      daemon) and make install for PREFIX=/usr and /usr/local
#   7. under a real systemd: the daemon installed in a Debian 12 tree booted
#      with systemd-nspawn (tests/system/run.py; the tree is built once
#      with debootstrap and cached under build/system/)
#   8. the cgroup v2 tier: the installed daemon on crun and runc in a QEMU
#      VM (tests/system/check-v2.sh; EDGECD_CHECK_V2=0 leaves it out)
#
# EDGECD_RUNTIME (make check RUNTIME=...) names the runtime every daemon and
# unit test uses: a name or an absolute path; empty means youki, which falls
# back to crun, then runc.  The integration suite prints which one ran.
set -u
cd "$(dirname "$0")/.." || exit 2
export EDGECD_SRC="$PWD"
export EDGECD_RUNTIME="${EDGECD_RUNTIME:-}"
PY=/usr/bin/python3
passed=0
failed=0
log_dir=build/test-logs
mkdir -p "$log_dir"
# A Ctrl-C or a stop ends the run after the tier under way has cleaned up
# (run.py stops its daemons itself): no later tier starts.
trap 'echo "interrupted"; echo "$passed passed, $((failed + 1)) failed"; exit 130' INT TERM

# Add the counts of the last "N passed, N failed" line of a log.
count_summary() {
        local line
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
        if [ -z "$line" ]; then
                echo "  (no summary line: counted as 1 failure; see $1)"
                failed=$((failed + 1))
                return
        fi
        passed=$((passed + $(echo "$line" | awk '{print $1}')))
        failed=$((failed + $(echo "$line" | awk '{print $3}')))
}

echo "== unit tests (ASan+UBSan)"
for t in "$@"; do
        name=$(basename "$t")
        out="$log_dir/$name.log"
        CK_VERBOSITY=normal ASAN_OPTIONS=detect_leaks=1 "$t" >"$out" 2>&1
        rc=$?
        line=$(grep -E 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$out" | tail -n 1)
        if [ -z "$line" ]; then
                echo "FAIL $name: exit $rc, no Check summary"
                tail -n 20 "$out"
                failed=$((failed + 1))
                continue
        fi
        n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
        f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
        e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
        bad=$((f + e))
        if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
                bad=1   # a leak report or a crash after the checks
                grep -E 'ERROR|runtime error' "$out" | head -n 5
        fi
        passed=$((passed + n - (f + e)))
        failed=$((failed + bad))
        echo "$line  $name"
        [ "$bad" -gt 0 ] && grep -E ':[EF]:' "$out" | head -n 20
done

echo "== plugin self-test"
bash tests/plugins/selftest.sh >"$log_dir/selftest.log" 2>&1
tail -n 3 "$log_dir/selftest.log"
count_summary "$log_dir/selftest.log"

echo "== integration tests (build/edgecd, real containers)"
$PY tests/integration/run.py --daemon build/edgecd 2>&1 | tee "$log_dir/integration.log"
count_summary "$log_dir/integration.log"

echo "== integration tests (build/edgecd-asan: ASan+UBSan, leaks checked at exit)"
$PY tests/integration/run.py --daemon build/edgecd-asan 2>&1 | tee "$log_dir/integration-asan.log"
count_summary "$log_dir/integration-asan.log"

echo "== the daemon under valgrind (memcheck, leaks)"
$PY tests/integration/valgrind_run.py --daemon build/edgecd 2>&1 | tee "$log_dir/valgrind.log"
count_summary "$log_dir/valgrind.log"

echo "== the Debian package and make install"
$PY tests/package/test_package.py 2>&1 | tee "$log_dir/package.log"
count_summary "$log_dir/package.log"

echo "== under a real systemd (systemd-nspawn, a Debian 12 tree)"
$PY tests/system/run.py 2>&1 | tee "$log_dir/system.log"
count_summary "$log_dir/system.log"

# Last, as it is the longest: a Debian VM with a unified cgroup v2
# hierarchy, the installed daemon on crun and on runc (make check-v2).
# EDGECD_CHECK_V2=0 leaves it out, and says so.
echo "== cgroup v2 tier (QEMU, the installed daemon on crun and runc; make check-v2)"
if [ "${EDGECD_CHECK_V2:-1}" = 0 ]; then
        echo "  skipped: EDGECD_CHECK_V2=0"
else
        tests/system/check-v2.sh >"$log_dir/check-v2.log" 2>&1
        grep -E '^(ok|FAIL|ERROR) |^check-v2:|^run-vm:' "$log_dir/check-v2.log"
        tail -n 1 "$log_dir/check-v2.log"
        count_summary "$log_dir/check-v2.log"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
