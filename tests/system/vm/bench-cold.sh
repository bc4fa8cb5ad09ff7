#!/bin/sh
# bench-cold.sh - make bench-v2, in the test VM: sections 9 and 11 of
# bench/bench.py (a cold job through the installed daemon against a raw
# `crun run` of the same config.json, alternated pairs; the daemon's own
# CPU per job, by thread) on crun, with cgroup v2.  Absolute times under
# emulation mean little; the ratios do.  $1: the output dir.
set -u
out=$1
src=$(cd "$(dirname "$0")" && pwd)/src
mkdir -p "$src/build"
# bench.py finds the daemon and the example plugins under build/.
ln -sfn "$(command -v edgecd)" "$src/build/edgecd"
ln -sfn /usr/lib/edgecd/plugins "$src/build/plugins"
cd "$src" || exit 1
EDGECD_RUNTIME=crun /usr/bin/python3 -u bench/bench.py --only 9,11 2>&1 | tee "$out/bench.log"
grep -q "ratio" "$out/bench.log"
