#!/usr/bin/env bash
# check-v2.sh - the cgroup v2 tier (make check-v2): boots Debian's kernel
# with a unified cgroup v2 hierarchy in QEMU (TCG, no KVM) and runs the
# installed daemon there on crun and on runc (tests/system/vm/inside.sh:
# the integration tests named in tests/system/vm/filters, and
# tests/system/vm/test_v2vm.py, which includes the packaged edgecd.service
# under the VM's systemd with Delegate=yes).  Ends with "N passed, N failed".
#
#   tests/system/check-v2.sh [--bench]
#
# --bench also runs the cold-job comparison (crun job vs raw `crun run`)
# in the VM and prints its ratio (make bench-v2).
#
# The daemon goes in as the .deb of `make deb` when the Makefile has it,
# else as a `make install DESTDIR=...` tree.  The kernel, initramfs and root
# image are cached in EDGECD_VM_CACHE (default build/vm; rebuilt when their
# package lists or scripts change); the first run needs apt and a few
# minutes, later ones boot in seconds.  EDGECD_VM_TIMEOUT (default 1200)
# bounds one VM's life.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
repo=$PWD
cache=${EDGECD_VM_CACHE:-$repo/build/vm}
timeout=${EDGECD_VM_TIMEOUT:-1200}
bench=false
[ "${1:-}" = "--bench" ] && bench=true

give_up() {
        echo "check-v2: $*"
        echo "0 passed, 1 failed"
        exit 1
}
[ "$(id -u)" = 0 ] || give_up "needs root (debootstrap, and the VM's image)"

work=$cache/run
input=$work/input
rm -rf "$work"
mkdir -p "$input/pkg" "$input/src/build" "$input/src/tests/system"

# The daemon as a package.
if grep -q '^deb:' Makefile; then
        make -s deb >"$work/package.log" 2>&1 || { tail -n 20 "$work/package.log"; give_up "make deb failed"; }
        debs=(build/edgecd_*_amd64.deb)
        [ -f "${debs[0]}" ] || give_up "make deb made no build/edgecd_*_amd64.deb"
        cp "$(ls -t build/edgecd_*_amd64.deb | head -n 1)" "$input/pkg/"
else
        make -s install DESTDIR="$input/pkg/root" >"$work/package.log" 2>&1 ||
                { tail -n 20 "$work/package.log"; give_up "make install failed"; }
fi
# What the tests in the VM need: the harness and its tests, the test
# plugins, the templates.
make -s plugins >>"$work/package.log" 2>&1 || give_up "make plugins failed"
cp -a tests/integration "$input/src/tests/"
cp -a tests/system/vm "$input/src/tests/system/"
cp -a oci-templates "$input/src/"
cp -a build/test-plugins "$input/src/build/"
rm -rf "$input/src/tests/integration/__pycache__"
cp tests/system/vm/inside.sh "$input/run.sh"
cp tests/system/vm/filters "$input/filters"
# The VM's script bounds its test runs within this many seconds after boot,
# leaving two minutes of the host's timeout to write the output and power off.
echo $((timeout > 300 ? timeout - 120 : timeout * 3 / 5)) >"$input/budget"
if $bench; then
        # The benchmark alone, no tests.
        cp -a bench "$input/src/"
        cp tests/system/vm/bench-cold.sh "$input/bench.sh"
        : >"$input/filters"
fi
tar -cf "$work/input.tar" -C "$input" . || give_up "cannot write $work/input.tar"

echo "check-v2: booting the cgroup v2 VM (cache $cache)"
tests/system/vm/run-vm.sh "$cache" "$work/input.tar" "$work/out" "$timeout"
rc=$?
if [ ! -f "$work/out/log" ]; then
        give_up "the VM did not run the tests (run-vm.sh exit $rc; console: $work/out/console.log)"
fi
# The VM's own log ends with its "N passed, N failed".
cat "$work/out/log"
echo "check-v2: logs in $work/out (console.log, tests-crun.log, tests-runc.log)"
exit "$rc"
