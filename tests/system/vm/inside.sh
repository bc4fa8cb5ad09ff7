#!/bin/sh
# inside.sh - the cgroup v2 tier's script, run in the test VM at boot as the
# input tar's run.sh (see check-v2.sh): installs the daemon (the .deb, or a
# `make install` tree), then runs the selected integration tests and
# test_v2vm.py once on crun and once on runc.  Ends with the line
# "N passed, N failed"; $1/rc holds 0 when all passed.
set -u
out=$1
in=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
say() { echo "check-v2: $*"; }
finish() {
        echo "$passed passed, $failed failed"
        if [ "$failed" -eq 0 ]; then echo 0 >"$out/rc"; else echo 1 >"$out/rc"; fi
        exit 0
}
fail() { say "FAIL: $*"; failed=$((failed + 1)); }

fs=$(stat -fc %T /sys/fs/cgroup)
say "kernel $(uname -r), /sys/fs/cgroup is $fs, controllers: $(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)"
[ "$fs" = cgroup2fs ] || { fail "/sys/fs/cgroup is not cgroup v2"; finish; }
for rt in crun runc; do
        say "$rt: $($rt --version 2>&1 | head -n 1)"
done

if ls "$in"/pkg/*.deb >/dev/null 2>&1; then
        how="dpkg -i $(cd "$in/pkg" && ls ./*.deb | sed 's|^\./||')"
        # The package would start the service; the tests start it
        # themselves (test_v2vm.Delegated), on each runtime: policy-rc.d
        # tells the maintainer scripts not to.
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        t0=$(cut -d' ' -f1 /proc/uptime)
        dpkg -i --force-unsafe-io "$in"/pkg/*.deb >"$out/install.log" 2>&1 || { cat "$out/install.log"; fail "$how"; finish; }
        rm -f /usr/sbin/policy-rc.d
        systemctl stop edgecd.service
        say "dpkg -i took $(echo "$(cut -d' ' -f1 /proc/uptime) $t0" | awk '{printf "%.1f", $1 - $2}') s"
else
        how="make install (no make deb on this branch)"
        cp -a "$in/pkg/root/." / >"$out/install.log" 2>&1 || { cat "$out/install.log"; fail "$how"; finish; }
fi
systemctl daemon-reload
daemon=$(command -v edgecd) || { fail "no edgecd in PATH after $how"; finish; }
say "installed $daemon by $how"

cp "$in/src/tests/system/vm/test_v2vm.py" "$in/src/tests/integration/"
filters=""
while read -r f; do
        case "$f" in ""|\#*) continue;; esac
        filters="$filters --filter $f"
done <"$in/filters"

# Seconds since boot this script may use (check-v2.sh: the host's timeout
# less a margin to write the output and power off).  Each runtime's run gets
# an equal share of what is left; past it run.py is stopped (SIGTERM) and
# says which test hung and where, so a hang leaves its log, not just the
# host's timeout.
budget=$(cat "$in/budget" 2>/dev/null || echo 1080)
left=2
[ -n "$filters" ] && for rt in crun runc; do
        say "== integration tests and test_v2vm on $rt"
        log=$out/tests-$rt.log
        now=$(cut -d. -f1 /proc/uptime)
        share=$(( (budget - now) / left ))
        left=$((left - 1))
        [ "$share" -ge 60 ] || share=60
        say "$rt: run.py is stopped after $share s"
        # shellcheck disable=SC2086
        EDGECD_SLOW_FACTOR=4 timeout -k 30 "$share" /usr/bin/python3 -u "$in/src/tests/integration/run.py" \
                --daemon "$daemon" --runtime "$rt" \
                --plugins "$in/src/build/test-plugins" --templates "$in/src/oci-templates" $filters \
                2>&1 | tee "$log"
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
        if [ -z "$line" ]; then
                fail "$rt: run.py printed no summary"
                continue
        fi
        passed=$((passed + $(echo "$line" | awk '{print $1}')))
        failed=$((failed + $(echo "$line" | awk '{print $3}')))
        # The daemons ran on the runtime asked for, not a fallback.
        grep -qE "^\([0-9]+ s; runtime $rt " "$log" || fail "$rt: the daemons did not say they ran on $rt"
done

if [ -f "$in/bench.sh" ]; then
        say "== cold-job benchmark (crun)"
        if sh "$in/bench.sh" "$out"; then passed=$((passed + 1)); else fail "bench"; fi
fi
finish
