#!/usr/bin/env bash
# run-vm.sh - boot the cgroup v2 test VM once with an input tar, collect
# what its script wrote.
#
#   tests/system/vm/run-vm.sh CACHE_DIR INPUT_TAR OUTPUT_DIR [TIMEOUT_S]
#
# The VM (mkvm.sh CACHE_DIR: Debian's kernel, systemd, cgroup v2 only) boots
# under QEMU without KVM (TCG, 2 vCPUs, EDGECD_VM_MEMORY MiB, default 1024), its root image with
# snapshot=on (never written), INPUT_TAR as /dev/vdb and a blank output
# disk as /dev/vdc.  At boot edgecd-vmtest.service runs the tar's run.sh and
# writes the output directory to /dev/vdc as a tar, then powers off; here it
# is unpacked into OUTPUT_DIR (log, rc, whatever run.sh left).  The serial
# console is OUTPUT_DIR/console.log.
# Exit status: run.sh's (OUTPUT_DIR/rc); 124 when the VM did not power off
# within TIMEOUT_S (default 900; then it is killed) and 125 when it gave
# nothing back; both print the console's tail.
set -uo pipefail

die() { echo "run-vm: $*" >&2; exit 125; }
[ $# -ge 3 ] || die "usage: $0 CACHE_DIR INPUT_TAR OUTPUT_DIR [TIMEOUT_S]"
here=$(cd "$(dirname "$0")" && pwd)
cache=$1 input=$2 outdir=$3 timeout=${4:-900}
# MiB: a daemon's memory pool is 3/4 of it, and two default jobs (256 MiB
# limits each) must fit for the tests with two workers.
memory=${EDGECD_VM_MEMORY:-1024}
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is not installed (scripts/install-deps.sh)"
paths=$("$here/mkvm.sh" "$cache") || die "cannot build the VM (mkvm.sh $cache)"
kernel=$(sed -n 's/^KERNEL=//p' <<<"$paths")
initrd=$(sed -n 's/^INITRD=//p' <<<"$paths")
image=$(sed -n 's/^IMAGE=//p' <<<"$paths")

rm -rf "$outdir"
mkdir -p "$outdir"
outdisk=$outdir/.output-disk
truncate -s 256M "$outdisk"
console=$outdir/console.log

# A tar is read whole by tar; a disk's size must be a multiple of 512.
in_disk=$outdir/.input-disk
cp "$input" "$in_disk"
truncate -s %512 "$in_disk"

start=$(date +%s%N)
qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m "$memory" -smp 2 \
        -nodefaults -display none -no-reboot -monitor none \
        -serial "file:$console" \
        -kernel "$kernel" -initrd "$initrd" \
        -append "root=/dev/vda rw console=ttyS0 panic=-1 quiet loglevel=3 systemd.unified_cgroup_hierarchy=1 systemd.show_status=0" \
        -drive "file=$image,format=raw,if=virtio,snapshot=on" \
        -drive "file=$in_disk,format=raw,if=virtio,readonly=on" \
        -drive "file=$outdisk,format=raw,if=virtio" \
        </dev/null >"$outdir/qemu.log" 2>&1 &
qpid=$!
# Only the QEMU started here is ever killed, by its pid.
trap 'kill -KILL $qpid 2>/dev/null; rm -f "$outdisk" "$in_disk"' EXIT
# A Ctrl-C or a stop reaches this script, not QEMU (a background job of a
# script ignores SIGINT): leave through the EXIT trap above.
trap 'exit 130' INT TERM HUP
waited=0
while kill -0 $qpid 2>/dev/null; do
        if [ "$waited" -ge "$timeout" ]; then
                kill -KILL $qpid 2>/dev/null
                wait $qpid 2>/dev/null
                echo "run-vm: the VM did not power off within $timeout s; console tail ($console):" >&2
                tail -n 40 "$console" >&2
                exit 124
        fi
        sleep 1
        waited=$((waited + 1))
done
wait $qpid
qrc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
secs=$((ms / 1000)).$(printf %03d $((ms % 1000)))
if ! tar -x -C "$outdir" -f "$outdisk" 2>/dev/null || [ ! -f "$outdir/rc" ]; then
        echo "run-vm: the VM gave no result (qemu exit $qrc, $secs s); qemu said:" >&2
        tail -n 5 "$outdir/qemu.log" >&2
        echo "run-vm: console tail ($console):" >&2
        tail -n 40 "$console" >&2
        exit 125
fi
echo "run-vm: VM round trip $secs s" >&2
exit "$(cat "$outdir/rc")"
