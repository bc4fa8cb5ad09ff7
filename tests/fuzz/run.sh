#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan +
# coverage) and runs each for a bounded time.  Called by `make fuzz`.
#
#   FUZZ_SECONDS=60                 seconds per target (default 60)
#   FUZZ_TARGETS="config manifest"  a subset (default: all six)
#   FUZZ_CC=clang-14                the compiler
#
# Prints one line per target, "TARGET: N runs, N exec/s, coverage N, crashes N"
# (coverage: edges of the daemon's own code that libFuzzer saw; jansson and
# libyaml are not instrumented), and exits non-zero when a target crashed,
# leaked, timed out or tripped UBSan.  The input that did it is kept as
# build/fuzz/crashes/TARGET-{crash,leak,timeout,oom}-SHA1; replay it with
#   build/fuzz/fuzz-TARGET build/fuzz/crashes/TARGET-crash-...
# Inputs that found new coverage go to build/fuzz/corpus/TARGET/ (the seeds
# in tests/fuzz/corpus/TARGET/ stay as they are) and are reused next time.
#
# Needs clang-14 and its libFuzzer runtime (Debian: clang-14 and
# libclang-rt-14-dev, which holds libclang_rt.fuzzer); installs them with
# apt-get when missing, which needs root.
set -u
cd "$(dirname "$0")/../.." || exit 2
export EDGECD_SRC="$PWD"

SECONDS_PER=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-config manifest schema request jsontext tokens}
CC=${FUZZ_CC:-clang-14}
B=build/fuzz
PKGS="jansson yaml-0.1 libseccomp yajl nettle uuid libsystemd"

# ---- toolchain ----

fuzzer_runtime() {
        local dir
        dir=$("$CC" -print-resource-dir 2>/dev/null) || return 1
        [ -f "$dir/lib/linux/libclang_rt.fuzzer-$(uname -m).a" ]
}

if ! command -v "$CC" >/dev/null 2>&1 || ! fuzzer_runtime; then
        if [ "$(id -u)" != 0 ]; then
                echo "fuzz: $CC or its libFuzzer runtime is missing; run as root to install" \
                     "clang-14 and libclang-rt-14-dev, or install them yourself" >&2
                exit 2
        fi
        echo "fuzz: installing clang-14 and libclang-rt-14-dev"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang-14 libclang-rt-14-dev >/dev/null ||
                { apt-get update -q >/dev/null &&
                  DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang-14 libclang-rt-14-dev >/dev/null; } ||
                { echo "fuzz: apt-get install failed" >&2; exit 2; }
        fuzzer_runtime || { echo "fuzz: $CC still has no libclang_rt.fuzzer" >&2; exit 2; }
fi

# ---- build ----

WARN="-Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wcast-qual -Wstrict-prototypes
      -Wmissing-prototypes -Wformat=2 -Wvla -Wundef -Wnull-dereference -Wimplicit-fallthrough"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# shellcheck disable=SC2086
CFLAGS="-std=gnu17 -O1 -g $WARN -D_GNU_SOURCE -pthread $SAN $(pkg-config --cflags $PKGS)"
# shellcheck disable=SC2086
LIBS="$(pkg-config --libs $PKGS) -lm"
# The daemon modules the targets need: daemon/.../X.c for every "X.h" that
# the targets include, directly or through the modules' own includes (so a
# new dependency of manifest.c, say, is picked up without editing this
# list).  Module names are unique across daemon/'s folders.
header() { find daemon -path daemon/inside -prune -o -name "$1.h" -print | head -n 1; }
modules() {
        local have="" next files m h
        next=$(cat tests/fuzz/*.c tests/fuzz/*.h)
        while :; do
                files=""
                for m in $(printf '%s\n' "$next" | sed -n 's/^#include "\([a-z_]*\/\)\{0,1\}\([a-z_]*\)\.h".*/\2/p' | sort -u); do
                        case " $have " in *" $m "*) continue ;; esac
                        h=$(header "$m")
                        [ -n "$h" ] || continue
                        have="$have $m"
                        files="$files $h"
                        [ -f "${h%.h}.c" ] && files="$files ${h%.h}.c"
                done
                [ -n "$files" ] || break
                # shellcheck disable=SC2086
                next=$(cat $files)
        done
        for m in $have; do h=$(header "$m"); [ -f "${h%.h}.c" ] && printf '%s\n' "${h%.h}"; done | sort | tr '\n' ' ' | sed 's/ $//'
}
MODULES=$(modules)

mkdir -p "$B/obj" "$B/crashes" "$B/logs"
build() {
        local m objs=""
        for m in $MODULES; do
                # shellcheck disable=SC2086
                "$CC" $CFLAGS -fsanitize=fuzzer-no-link -iquote daemon -c "$m.c" -o "$B/obj/${m##*/}.o" || return 1
                objs="$objs $B/obj/${m##*/}.o"
        done
        local t
        for t in $TARGETS; do
                [ -f "tests/fuzz/fuzz-$t.c" ] || { echo "fuzz: no target \`$t\`" >&2; return 1; }
                # shellcheck disable=SC2086
                "$CC" $CFLAGS -fsanitize=fuzzer -iquote daemon -o "$B/fuzz-$t" \
                      "tests/fuzz/fuzz-$t.c" $objs $LIBS || return 1
        done
}
echo "fuzz: building with $CC into $B/ (daemon modules: $MODULES)"
build || { echo "fuzz: build failed" >&2; exit 2; }

# ---- run ----

max_len() {
        case "$1" in
        config|manifest|tokens) echo 16384 ;;
        *) echo 65536 ;;
        esac
}

# The last value of "KEY: N" (libFuzzer's final stats), or empty.
final_stat() { grep -E "^stat::$1: " "$2" | tail -n 1 | awk '{print $2}'; }

# A smaller quarantine than ASan's 256 MB keeps a long run's RSS far below
# -rss_limit_mb (it reached 830 MB in 200 s of fuzz-manifest without this).
export ASAN_OPTIONS="detect_leaks=1:quarantine_size_mb=64${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
failed=0
summary=""
for t in $TARGETS; do
        corpus="$B/corpus/$t"
        log="$B/logs/$t.log"
        tmp="$B/tmp/$t"
        mkdir -p "$corpus" "$tmp"
        marker="$B/logs/.$t.start"
        : >"$marker"
        dict=() seeds=()
        [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
        [ -d "tests/fuzz/corpus/$t" ] && seeds=("tests/fuzz/corpus/$t")
        echo "fuzz: $t for ${SECONDS_PER}s (log $log)"
        # New coverage goes to the first corpus directory; the seeds are read.
        start=$SECONDS
        TMPDIR="$PWD/$tmp" "$B/fuzz-$t" -max_total_time="$SECONDS_PER" -max_len="$(max_len "$t")" \
                -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
                "${dict[@]}" -artifact_prefix="$B/crashes/$t-" \
                "$corpus" "${seeds[@]}" >"$log" 2>&1
        rc=$?
        rm -rf "$tmp"

        runs=$(final_stat number_of_executed_units "$log")
        eps=$(final_stat average_exec_per_sec "$log")
        if [ -z "$runs" ]; then
                # A crash ends the run before the final stats: use the last
                # status line ("#1234 NEW cov: ...").
                runs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
                eps=$(( ${runs:-0} / (SECONDS - start > 0 ? SECONDS - start : 1) ))
        fi
        cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | awk '{print $2}')
        crashes=$(find "$B/crashes" -maxdepth 1 -type f -name "$t-*" -newer "$marker" | wc -l)
        if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
                crashes=1   # died without writing an artifact: still a failure
        fi
        line="$t: ${runs:-0} runs, ${eps:-0} exec/s, coverage ${cov:-0}, crashes $crashes"
        summary="$summary$line"$'\n'
        echo "$line"
        if [ "$crashes" -gt 0 ]; then
                failed=$((failed + 1))
                grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error:|artifact_prefix|Test unit written)' "$log" |
                        head -n 8 | sed 's/^/    /'
                find "$B/crashes" -maxdepth 1 -type f -name "$t-*" -newer "$marker" | sed 's/^/    kept: /'
        fi
        rm -f "$marker"
done
rmdir "$B/tmp" 2>/dev/null

echo "== fuzz summary (${SECONDS_PER}s per target)"
printf '%s' "$summary"
if [ "$failed" -gt 0 ]; then
        echo "fuzz: $failed target(s) crashed; inputs under $B/crashes/"
        exit 1
fi
exit 0
