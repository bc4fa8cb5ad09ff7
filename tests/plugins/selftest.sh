#!/bin/sh
# selftest.sh - runs the built plugin binaries OUTSIDE containers on fixed
# inputs and compares what they write: results, exit statuses, stderr
# messages, hostile JSON (jansson in the examples, tests/plugins/json.c in
# testkit), write errors, progress.json, and the layout of every rootfs.
# Containers are the integration tests' business.
#
#   tests/plugins/selftest.sh [TEST_OUT]      (default build/test-plugins)
#
# Run from the repository root (or set EDGECD_SRC).  Prints each failure,
# then "N passed, N failed"; exits 1 when anything failed, 2 when the
# plugins are not built.  Uses EDGECD_INPUT/EDGECD_OUTPUT to point the
# binaries at a temporary directory, removed on exit.
set -u

src=${EDGECD_SRC:-.}
tp=${1:-${EDGECD_TEST_PLUGINS:-$src/build/test-plugins}}
corpus=${JSONTESTSUITE:-$src/../shared/corpora/jsontestsuite/test_parsing}

MM=$tp/matrix_multiplication/rootfs/bin/matrix_multiplication
ST=$tp/statistics/rootfs/bin/statistics
SO=$tp/sort/rootfs/bin/sort
CV=$tp/convolve2d/rootfs/bin/convolve2d
PI=$tp/monte_carlo_pi/rootfs/bin/monte_carlo_pi
WB=$tp/word_count/rootfs/bin
TK=$tp/t_echo/rootfs/bin/testkit
for f in "$MM" "$ST" "$SO" "$CV" "$PI" "$WB/busybox" "$WB/word_count.sh" "$TK"; do
        if [ ! -x "$f" ]; then
                echo "selftest: $f missing; build the plugins first (make plugins)" >&2
                exit 2
        fi
done
WC="env PATH=$WB $WB/busybox sh $WB/word_count.sh"

work=$(mktemp -d /tmp/edgecd-selftest-XXXXXX) || exit 2
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
        fail=$((fail + 1))
        printf 'FAIL: %s\n' "$*"
}

# run CMD...: input $work/in.json, output dir $work/out; sets rc.
run() {
        rm -rf "$work/out" && mkdir "$work/out"
        EDGECD_INPUT=$work/in.json EDGECD_OUTPUT=$work/out "$@" >"$work/stdout" 2>"$work/stderr"
        rc=$?
}

# expect NAME INPUT RESULT CMD...: exit 0 and result.json is exactly RESULT
# (trailing newline ignored), no temporary file left behind.
expect() {
        name=$1 input=$2 want=$3
        shift 3
        printf '%s' "$input" >"$work/in.json"
        run "$@"
        if [ "$rc" -ne 0 ]; then
                bad "$name: exit $rc, want 0; stderr: $(head -c 300 "$work/stderr")"
                return
        fi
        got=$(cat "$work/out/result.json" 2>/dev/null)
        if [ "$got" != "$want" ]; then
                bad "$name: result
     got  $got
     want $want"
        elif [ -e "$work/out/result.json.tmp" ]; then
                bad "$name: result.json.tmp left behind"
        else
                ok
        fi
}

# expect_fail NAME INPUT STATUS MESSAGE CMD...: exit STATUS, exactly one
# line on stderr containing MESSAGE, no result.json.
expect_fail() {
        name=$1 input=$2 want_rc=$3 msg=$4
        shift 4
        printf '%s' "$input" >"$work/in.json"
        run "$@"
        check_fail "$name" "$want_rc" "$msg"
}

check_fail() {
        if [ "$rc" -ne "$2" ]; then
                bad "$1: exit $rc, want $2; stderr: $(head -c 300 "$work/stderr")"
        elif ! grep -qF -- "$3" "$work/stderr"; then
                bad "$1: stderr lacks '$3': $(head -c 300 "$work/stderr")"
        elif [ "$(wc -l <"$work/stderr")" -ne 1 ]; then
                bad "$1: stderr is not one line: $(head -c 300 "$work/stderr")"
        elif [ -e "$work/out/result.json" ]; then
                bad "$1: result.json written despite the failure"
        else
                ok
        fi
}

# ---- matrix_multiplication ----

expect "matrix: 2x3 times 3x2" \
        '{"matrix_a":[[1,2,3],[4,5,6]],"matrix_b":[[7,8],[9,10],[11,12]]}' \
        '{"product":[[58,64],[139,154]],"rows":2,"cols":2}' "$MM"
expect "matrix: column times row, negatives" \
        '{"matrix_a":[[1],[-2],[3]],"matrix_b":[[4,-5]]}' \
        '{"product":[[4,-5],[-8,10],[12,-15]],"rows":3,"cols":2}' "$MM"
# Binary fractions: exact whether or not dgemm fuses its multiply-adds
# (OpenBLAS picks its kernel by CPU).
expect "matrix: fractions and negatives" \
        '{"matrix_a":[[-1,2.5],[0.5,-3]],"matrix_b":[[2,-4,1],[0.25,0.5,0.75]]}' \
        '{"product":[[-1.375,5.25,0.875],[0.25,-3.5,-1.75]],"rows":2,"cols":3}' "$MM"
expect "matrix: exponents" \
        '{"matrix_a":[[0.5,0.25],[0.125,-1e-3]],"matrix_b":[[2,4],[8,1E3]]}' \
        '{"product":[[3,252],[0.242,-0.5]],"rows":2,"cols":2}' "$MM"
expect "matrix: shortest round-trip double" \
        '{"matrix_a":[[0.1]],"matrix_b":[[3]]}' \
        '{"product":[[0.30000000000000004]],"rows":1,"cols":1}' "$MM"
# 3037000499^2 and 2^53+1 fit int64 but not a double's 53 bits.
expect "matrix: exact int64" \
        '{"matrix_a":[[3037000499,0],[0,9007199254740993]],"matrix_b":[[3037000499,0],[0,1]]}' \
        '{"product":[[9223372030926249001,0],[0,9007199254740993]],"rows":2,"cols":2}' "$MM"
expect_fail "matrix: int64 overflow is a bad input" \
        '{"matrix_a":[[9223372036854775807]],"matrix_b":[[2]]}' 2 \
        'integer overflow: product[0][0] = 18446744073709551614 is outside the 64-bit integer range' "$MM"
expect "matrix: a partial sum beyond int64 whose total fits" \
        '{"matrix_a":[[4611686018427387904,4611686018427387904,-4611686018427387904]],"matrix_b":[[1],[1],[1]]}' \
        '{"product":[[4611686018427387904]],"rows":1,"cols":1}' "$MM"
expect "matrix: the same as doubles" \
        '{"matrix_a":[[9223372036854775807.0]],"matrix_b":[[2]]}' \
        '{"product":[[1.8446744073709552e+19]],"rows":1,"cols":1}' "$MM"
expect "matrix: timing on request" '{"matrix_a":[[2]],"matrix_b":[[3]],"timing":false}' \
        '{"product":[[6]],"rows":1,"cols":1}' "$MM"
expect_fail "matrix: integer beyond int64" \
        '{"matrix_a":[[123456789012345678901234567890]],"matrix_b":[[1]]}' 2 'too big integer' "$MM"
expect "matrix: whitespace and key order" \
        ' { "matrix_b" : [ [ 2 ] ] ,
  "matrix_a" : [ [ 3 ] ] } ' \
        '{"product":[[6]],"rows":1,"cols":1}' "$MM"

expect_fail "matrix: dimension mismatch" \
        '{"matrix_a":[[1,2,3],[4,5,6]],"matrix_b":[[1,2],[3,4]]}' 2 \
        'matrix_multiplication: matrix_a is 2x3 but matrix_b is 2x2: columns of matrix_a (3) must equal rows of matrix_b (2)' "$MM"
expect_fail "matrix: ragged" \
        '{"matrix_a":[[1,2,3],[4,5]],"matrix_b":[[1],[2],[3]]}' 2 \
        'matrix_multiplication: matrix_a row 1 has 2 entries, row 0 has 3' "$MM"
expect_fail "matrix: ragged b" \
        '{"matrix_a":[[1]],"matrix_b":[[1,2],[3]]}' 2 'matrix_b row 1 has 1 entries, row 0 has 2' "$MM"
expect_fail "matrix: empty" '{"matrix_a":[],"matrix_b":[[1]]}' 2 'matrix_a is empty' "$MM"
expect_fail "matrix: empty row" '{"matrix_a":[[]],"matrix_b":[[1]]}' 2 'matrix_a row 0 is empty' "$MM"
expect_fail "matrix: not a number" '{"matrix_a":[[1,"2"]],"matrix_b":[[1],[2]]}' 2 \
        'matrix_a[0][1] must be a number, got string' "$MM"
expect_fail "matrix: row not an array" '{"matrix_a":[1],"matrix_b":[[1]]}' 2 \
        'matrix_a row 0 must be an array of numbers, got number' "$MM"
expect_fail "matrix: missing" '{"matrix_a":[[1]]}' 2 'matrix_b is missing' "$MM"
expect_fail "matrix: not an object" '[[1]]' 2 'parameters must be a JSON object, got array' "$MM"
expect_fail "matrix: product overflows double" '{"matrix_a":[[1e300]],"matrix_b":[[1e300]]}' 2 \
        'product[0][0] is beyond the range of a double' "$MM"

# Hostile JSON: every one must be a clean exit 2 with a message.  testkit's
# own parser (tests/plugins/json.c) first, then jansson in the examples.
head -c 100000 /dev/zero | tr '\0' '[' >"$work/deep"
TKP="$TK parse"
expect_fail "json: deep nesting" "$(cat "$work/deep")" 2 'nesting deeper than 256 levels' $TKP
expect_fail "json: huge number" '{"matrix_a":[[1e999]],"matrix_b":[[1]]}' 2 'number out of range' $TKP
expect_fail "json: bad escape" '{"matrix_a":"\x"}' 2 "invalid escape '\\x'" $TKP
expect_fail "json: lone surrogate" '{"matrix_a":"\ud800"}' 2 'high surrogate without low surrogate' $TKP
expect_fail "json: truncated" '{"matrix_a":[[1,2' 2 'line 1, column 18: expected' $TKP
expect_fail "json: truncated string" '{"matrix_a":"abc' 2 'unterminated string' $TKP
expect_fail "json: trailing garbage" '{"matrix_a":[[1]],"matrix_b":[[1]]} x' 2 "unexpected 'x' after the value" $TKP
expect_fail "json: leading zero" '{"a":01}' 2 'leading zero' $TKP
expect_fail "json: raw control character" "$(printf '{"a":"x\001"}')" 2 'control character 0x01' $TKP
expect_fail "json: invalid UTF-8" "$(printf '{"a":"\377"}')" 2 'invalid UTF-8' $TKP
expect_fail "json: overlong UTF-8" "$(printf '{"a":"\300\257"}')" 2 'invalid UTF-8' $TKP
expect_fail "json: line and column" '{
  "a": tru }' 2 'line 2, column 8: invalid literal (expected true)' $TKP
expect_fail "json: empty input" '' 2 'empty input' $TKP

expect_fail "jansson: deep nesting" "$(cat "$work/deep")" 2 'maximum parsing depth reached' "$MM"
expect_fail "jansson: huge number" '{"matrix_a":[[1e999]],"matrix_b":[[1]]}' 2 \
        'line 1, column 19: real number overflow' "$MM"
expect_fail "jansson: bad escape" '{"matrix_a":"\x"}' 2 'invalid escape' "$ST"
expect_fail "jansson: lone surrogate" '{"matrix_a":"\ud800"}' 2 "invalid Unicode '\\uD800'" "$SO"
expect_fail "jansson: truncated" '{"matrix_a":[[1,2' 2 "line 1, column 17: ']' expected" "$CV"
expect_fail "jansson: trailing garbage" '{"matrix_a":[[1]],"matrix_b":[[1]]} x' 2 'end of file expected' "$MM"
expect_fail "jansson: duplicate key" '{"values":[1],"values":[2]}' 2 'duplicate object key' "$ST"
expect_fail "jansson: raw control character" "$(printf '{"a":"x\001"}')" 2 'control character 0x1' "$PI"
expect_fail "jansson: invalid UTF-8" "$(printf '{"a":"\377"}')" 2 'unable to decode byte 0xff' "$MM"
expect_fail "jansson: not an object" '[1]' 2 'parameters must be a JSON object, got array' "$SO"
expect_fail "jansson: empty input" '' 2 "'[' or '{' expected" "$MM"
rm -f "$work/in.json"
run "$MM"
check_fail "matrix: no input file" 1 'No such file or directory'

# Write errors: exit 3.  A file size limit gives EFBIG everywhere; a full
# tmpfs (ENOSPC) needs root and a private mount namespace.
# 1x1 times 1x1000: about 13 KB of output, over a 1-2 KB size limit.
printf '%s' '{"matrix_a":[[1000]],"matrix_b":[[' >"$work/in.json"
i=0
while [ $i -lt 999 ]; do printf '123456789,'; i=$((i + 1)); done >>"$work/in.json"
printf '1]]}' >>"$work/in.json"
rm -rf "$work/out" && mkdir "$work/out"
(
        ulimit -f 2
        trap '' XFSZ
        exec env EDGECD_INPUT="$work/in.json" EDGECD_OUTPUT="$work/out" "$MM"
) >"$work/stdout" 2>"$work/stderr"
rc=$?
check_fail "matrix: EFBIG on write -> exit 3" 3 'write '
[ -e "$work/out/result.json.tmp" ] && bad "matrix: EFBIG left result.json.tmp behind"

if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null 2>&1 && unshare -m true 2>/dev/null; then
        mkdir -p "$work/full"
        # shellcheck disable=SC2016
        # A one-page tmpfs, filled up, in a mount namespace that dies
        # with the command: nothing to unmount afterwards.
        full_run='mount -t tmpfs -o size=4k tmpfs "$1" || exit 99
                  dd if=/dev/zero of="$1/fill" bs=1024 count=8 2>/dev/null
                  shift; exec "$@"'
        rm -rf "$work/out" && mkdir "$work/out"
        EDGECD_INPUT=$work/in.json EDGECD_OUTPUT=$work/full \
                unshare -m --propagation private sh -c "$full_run" sh "$work/full" "$MM" \
                >"$work/stdout" 2>"$work/stderr"
        rc=$?
        check_fail "matrix: ENOSPC -> exit 3" 3 'No space left on device'
        printf '%s' '{"text":"a b c"}' >"$work/in.json"
        EDGECD_INPUT=$work/in.json EDGECD_OUTPUT=$work/full \
                unshare -m --propagation private sh -c "$full_run" sh "$work/full" $WC \
                >"$work/stdout" 2>"$work/stderr"
        rc=$?
        check_fail "word_count: ENOSPC -> exit 3" 3 'word_count: write '
else
        # The whole suite needs root (containers); do not test less quietly.
        bad "ENOSPC checks need root and unshare -m"
fi

# ---- statistics ----

expect "statistics: 1..4" '{"values":[1,2,3,4]}' \
        '{"count":4,"sum":10,"mean":2.5,"min":1,"max":4,"variance":1.25,"stddev":1.118033988749895,"median":2.5,"percentiles":{"p25":1.75,"p50":2.5,"p75":3.25,"p90":3.7,"p95":3.8499999999999996,"p99":3.9699999999999998},"histogram":{"edges":[1,1.3,1.6,1.9,2.2,2.5,2.8,3.1,3.4,3.6999999999999997,4],"counts":[1,0,0,1,0,0,1,0,0,1]}}' "$ST"
expect "statistics: chosen percentiles, duplicate once" \
        '{"values":[9,2,4,4,5,4,7,5],"percentiles":[0,10,50,99.9,100,50],"bins":2}' \
        '{"count":8,"sum":40,"mean":5,"min":2,"max":9,"variance":4,"stddev":2,"median":4.5,"percentiles":{"p0":2,"p10":3.4000000000000004,"p50":4.5,"p99.9":8.986,"p100":9},"histogram":{"edges":[2,5.5,9],"counts":[6,2]}}' "$ST"
expect "statistics: nearest rank" \
        '{"values":[9,2,4,4,5,4,7,5],"percentiles":[0,10,12.5,12.6,50,99.9,100],"percentile_method":"nearest_rank","bins":1}' \
        '{"count":8,"sum":40,"mean":5,"min":2,"max":9,"variance":4,"stddev":2,"median":4.5,"percentiles":{"p0":2,"p10":2,"p12.5":2,"p12.6":4,"p50":4,"p99.9":9,"p100":9},"histogram":{"edges":[2,9],"counts":[8]}}' "$ST"
expect "statistics: one value" '{"values":[-5],"percentiles":[],"bins":2}' \
        '{"count":1,"sum":-5,"mean":-5,"min":-5,"max":-5,"variance":0,"stddev":0,"median":-5,"percentiles":{},"histogram":{"edges":[-5.5,-5,-4.5],"counts":[0,1]}}' "$ST"
expect "statistics: compensated sum" '{"values":[1e16,1,-1e16],"percentiles":[50],"bins":2}' \
        '{"count":3,"sum":1,"mean":0.3333333333333333,"min":-1e+16,"max":1e+16,"variance":6.666666666666667e+31,"stddev":8164965809277260,"median":1,"percentiles":{"p50":1},"histogram":{"edges":[-1e+16,0,1e+16],"counts":[1,2]}}' "$ST"
expect_fail "statistics: empty" '{"values":[]}' 2 'values is empty' "$ST"
expect_fail "statistics: not a number" '{"values":[1,null]}' 2 'values[1] must be a number, got null' "$ST"
expect_fail "statistics: percentile range" '{"values":[1],"percentiles":[101]}' 2 \
        'percentiles[0] is 101, must be within 0..100' "$ST"
expect_fail "statistics: overflow" '{"values":[1e308,1e308]}' 2 'the sum is beyond the range of a double' "$ST"
expect_fail "statistics: missing" '{"value":[1]}' 2 'values is missing' "$ST"
expect_fail "statistics: bad method" '{"values":[1],"percentile_method":"mean"}' 2 \
        'percentile_method is `mean`, must be one of linear, nearest_rank' "$ST"
expect_fail "statistics: bins" '{"values":[1],"bins":2.5}' 2 'bins is 2.5, must be a whole number' "$ST"

# ---- sort, convolve2d ----

expect "sort: numbers, stable" '{"items":[3,1.0,2,1,-0.0,0,2.5,-7]}' \
        '{"items":[-7,-0.0,0,1.0,1,2,2.5,3],"count":8}' "$SO"
expect "sort: descending, stable" '{"items":[3,1.0,2,1,-0.0,0,2.5,-7],"order":"descending"}' \
        '{"items":[3,2.5,2,1.0,1,-0.0,0,-7],"count":8}' "$SO"
expect "sort: integers beyond 2^53 among fractions" \
        '{"items":[9007199254740993,9007199254740992.0,9007199254740992,0.5]}' \
        '{"items":[0.5,9007199254740992.0,9007199254740992,9007199254740993],"count":4}' "$SO"
expect "sort: strings by code point" '{"items":["b","a","longprefix-b","longprefix-a","","\u00e9","Z","a"]}' \
        '{"items":["","Z","a","a","b","longprefix-a","longprefix-b","é"],"count":8}' "$SO"
expect "sort: empty" '{"items":[]}' '{"items":[],"count":0}' "$SO"
expect_fail "sort: mixed" '{"items":["a",1]}' 2 \
        'items must be all numbers or all strings: items[0] is a string, items[1] a number' "$SO"
expect_fail "sort: null item" '{"items":[1,null]}' 2 'items[1] must be a number or a string, got null' "$SO"
expect "convolve2d: wrap, flipped kernel" \
        '{"image":[[1,2,3],[4,5,6],[7,8,9]],"kernel":[[0,0,0],[0,0,1],[0,0,0]],"border":"wrap"}' \
        '{"image":[[3,1,2],[6,4,5],[9,7,8]],"rows":3,"cols":3}' "$CV"
expect "convolve2d: reflect, kernel wider than the image" \
        '{"image":[[1,2]],"kernel":[[1,1,1,1,1]],"border":"reflect"}' \
        '{"image":[[7,8]],"rows":1,"cols":2}' "$CV"
expect_fail "convolve2d: even kernel" '{"image":[[1]],"kernel":[[1,1]]}' 2 'kernel is 1x2: its sides must be odd' "$CV"
expect_fail "convolve2d: bad border" '{"image":[[1]],"kernel":[[1]],"border":"mirror"}' 2 \
        'border is `mirror`, must be one of zero, clamp, wrap, reflect, symmetric' "$CV"

# ---- monte_carlo_pi: the result, and progress.json left whole ----

# 801 inside: counted by a Python splitmix64 (tests/integration/test_examples.py).
printf '{"samples":1000,"seed":7}' >"$work/in.json"
run "$PI"
prog=$(cat "$work/out/progress.json" 2>/dev/null)
if [ "$rc" -eq 0 ] && [ "$prog" = '{"fraction":1,"message":"1000 of 1000 samples, pi ~ 3.204000"}' ] &&
        [ "$(cat "$work/out/result.json")" = '{"pi":3.204,"samples":1000,"inside":801,"seed":7,"std_error":0.050501326715245806,"abs_error":0.062407346410207065}' ] &&
        [ -z "$(find "$work/out" -name '*.tmp')" ]; then
        ok
else
        bad "monte_carlo_pi: exit $rc, progress [$prog], result [$(cat "$work/out/result.json" 2>/dev/null)]"
fi
expect_fail "monte_carlo_pi: fractional samples" '{"samples":2.5}' 2 'samples is 2.5, must be a whole number' "$PI"

# ---- word_count (busybox sh + awk from the rootfs) ----

expect "word_count: basic" \
        '{"text":"Hello, world! Hello again.\nThe world is big; the WORLD.\n"}' \
        '{"lines":2,"words":10,"chars":56,"top_words":[{"word":"world","count":3},{"word":"hello","count":2},{"word":"the","count":2},{"word":"again","count":1},{"word":"big","count":1},{"word":"is","count":1}]}' $WC
expect "word_count: escapes and quoting" \
        '{"text":"say \"hi\" \"hi\" back\\slash a\/b tab\there ctl\bx \u00e9t\u00e9"}' \
        '{"lines":1,"words":9,"chars":57,"top_words":[{"word":"hi","count":2},{"word":"a/b","count":1},{"word":"back\\slash","count":1},{"word":"ctl\bx","count":1},{"word":"here","count":1},{"word":"say","count":1},{"word":"tab","count":1},{"word":"u00e9t\\u00e9","count":1}]}' $WC
expect "word_count: UTF-8 counts code points" \
        '{"text":"café Café CAFÉ 😀"}' \
        '{"lines":1,"words":4,"chars":16,"top_words":[{"word":"café","count":2},{"word":"cafÉ","count":1},{"word":"😀","count":1}]}' $WC
expect "word_count: ties in byte order, top 10" \
        '{"text":"k j i h g f e d c b a k"}' \
        '{"lines":1,"words":12,"chars":23,"top_words":[{"word":"k","count":2},{"word":"a","count":1},{"word":"b","count":1},{"word":"c","count":1},{"word":"d","count":1},{"word":"e","count":1},{"word":"f","count":1},{"word":"g","count":1},{"word":"h","count":1},{"word":"i","count":1}]}' $WC
expect "word_count: empty text" '{"text":""}' '{"lines":0,"words":0,"chars":0,"top_words":[]}' $WC
expect "word_count: unterminated last line" '{"text":"a\n\nb"}' \
        '{"lines":3,"words":2,"chars":4,"top_words":[{"word":"a","count":1},{"word":"b","count":1}]}' $WC
expect "word_count: pretty-printed input" '{
  "text" : "x\\\"y"
}' '{"lines":1,"words":1,"chars":4,"top_words":[{"word":"x\\\"y","count":1}]}' $WC
expect_fail "word_count: not a string" '{"text":5}' 2 'word_count: text must be a string' $WC
expect_fail "word_count: missing" '{"txt":"a"}' 2 'word_count: text is missing' $WC
expect_fail "word_count: unterminated" '{"text":"abc' 2 'unterminated string' $WC
expect_fail "word_count: bad escape" '{"text":"a\qb"}' 2 'bad escape' $WC
expect_fail "word_count: empty input" '' 2 'empty input' $WC

# ---- testkit ----

printf '{"n": 3,\n "s":"\\u00e9"}\n' >"$work/in.json"
run "$TK" echo
if [ "$rc" -eq 0 ] && cmp -s "$work/in.json" "$work/out/result.json"; then ok; else bad "testkit echo: not byte for byte (exit $rc)"; fi
expect "testkit echo v2" '{"n":3}' '{"version":2,"input":{"n":3}}' "$TK" echo v2
expect_fail "testkit exit 3" '{}' 3 'testkit: failing on purpose with status 3' "$TK" exit 3
expect "testkit sleep" '{"seconds":0.1}' '{"slept":0.1}' "$TK" sleep
expect_fail "testkit sleep: bad seconds" '{"seconds":"x"}' 2 'seconds must be a number' "$TK" sleep
printf '{}' >"$work/in.json"
run "$TK" noresult
if [ "$rc" -eq 0 ] && [ -z "$(ls -A "$work/out")" ]; then ok; else bad "testkit noresult: exit $rc or files written"; fi
expect "testkit invalid" '{}' '{"unterminated": ' "$TK" invalid
expect "testkit invalid: text" '{"text":"{} \"x"}' '{} "x' "$TK" invalid
printf '{"bytes":1000}' >"$work/in.json"
run "$TK" big
if [ "$rc" -eq 0 ] && [ "$(wc -c <"$work/out/result.json")" -eq 1000 ]; then ok; else bad "testkit big: exit $rc or wrong size"; fi
printf '{}' >"$work/in.json"
run "$TK" big
if [ "$rc" -eq 0 ] && [ "$(wc -c <"$work/out/result.json")" -eq 2097152 ] &&
        [ "$(head -c 3 "$work/out/result.json")" = '["x' ] && [ "$(tail -c 3 "$work/out/result.json")" = 'x"]' ]; then
        ok
else
        bad "testkit big: default is not a 2097152-byte array"
fi
expect "testkit memory" '{"mb":4}' '{"allocated_mb":4}' "$TK" memory
printf '{"bytes":1000}' >"$work/in.json"
run "$TK" spam
if [ "$rc" -eq 0 ] && [ "$(wc -c <"$work/stdout")" -eq 1000 ] && [ "$(wc -l <"$work/stderr")" -eq 1000 ] &&
        [ "$(cat "$work/out/result.json")" = '{"ok":true}' ]; then
        ok
else
        bad "testkit spam: exit $rc, stdout/stderr sizes wrong or no result"
fi
expect "testkit pids" '{"max":3}' '{"forked":3,"errno":null}' "$TK" pids
printf '{}' >"$work/in.json"
run "$TK" syscall
case $(cat "$work/out/result.json" 2>/dev/null) in
'{"survived":true,'*) ok ;;
*) bad "testkit syscall: outside a container it should survive (exit $rc)" ;;
esac
TESTKIT_PROBE=$work/probe run "$TK" sandbox
case $(cat "$work/out/result.json" 2>/dev/null) in
'{"uid":'*'"output_writable":true,'*'"mounts":['*'"env":['*) ok ;;
*) bad "testkit sandbox: unexpected report $(head -c 300 "$work/out/result.json")" ;;
esac
[ -e "$work/probe" ] && bad "testkit sandbox: probe file left behind"
# The attack modes: only what is harmless and quick on the host.  forkbomb,
# escape, ignoreterm, net, peer and every deadly call run in containers
# only (the integration tests); here just their input checks, which die
# before doing anything.
t0=$(date +%s%N)
expect "testkit spin" '{"seconds":0.2}' '{"spun":0.2}' "$TK" spin
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -ge 200 ] || bad "testkit spin: ended after $ms ms, want at least 200"
expect_fail "testkit spin: bad seconds" '{"seconds":-1}' 2 'seconds is -1, must be within 0..' "$TK" spin

# mo NAME INPUT BYTES PYEXPR: manyobjects exits 0 with a result of exactly
# BYTES that python3 parses into a value v for which PYEXPR holds.
mo() {
        printf '%s' "$2" >"$work/in.json"
        run "$TK" manyobjects
        if [ "$rc" -ne 0 ]; then
                bad "testkit manyobjects $1: exit $rc; stderr: $(head -c 300 "$work/stderr")"
                return
        fi
        size=$(wc -c <"$work/out/result.json")
        if [ "$size" -ne "$3" ]; then
                bad "testkit manyobjects $1: $size bytes, want $3"
        elif ! python3 -c "import json, sys
v = json.load(open(sys.argv[1]))
sys.exit(0 if ($4) else 1)" "$work/out/result.json"; then
                bad "testkit manyobjects $1: not JSON, or not the shape ($4)"
        else
                ok
        fi
}
# [{},...] is 3n+1 bytes: 1048576 holds 349525 objects and one space.
mo "default" '{}' 1048576 'len(v) == 349525 and all(x == {} for x in v)'
mo "objects" '{"bytes":100}' 100 'len(v) == 33 and all(x == {} for x in v)'
mo "arrays" '{"shape":"arrays","bytes":1000}' 1000 'len(v) == 333 and all(x == [] for x in v)'
mo "too small for one" '{"bytes":3}' 3 'v == []'
mo "deep" '{"shape":"deep","depth":50,"bytes":150}' 150 'repr(v) == "[" * 50 + "]" * 50'
# The default depth is beyond python's recursion limit: check the bytes.
printf '{"shape":"deep"}' >"$work/in.json"
run "$TK" manyobjects
f=$work/out/result.json
if [ "$rc" -eq 0 ] && [ "$(wc -c <"$f")" -eq 1048576 ] &&
        [ "$(head -c 100000 "$f" | tr -d '[' | wc -c)" -eq 0 ] &&
        [ "$(head -c 200000 "$f" | tail -c 100000 | tr -d ']' | wc -c)" -eq 0 ] &&
        [ "$(tail -c +200001 "$f" | tr -d ' ' | wc -c)" -eq 0 ]; then
        ok
else
        bad "testkit manyobjects deep: exit $rc, or not 100000 nested arrays padded to 1048576 bytes"
fi
expect_fail "testkit manyobjects: depth over bytes" '{"shape":"deep","depth":10,"bytes":19}' 2 \
        'depth 10 needs 20 bytes, more than bytes (19)' "$TK" manyobjects
expect_fail "testkit manyobjects: bad shape" '{"shape":"trees"}' 2 \
        "shape is \`trees\`, must be objects, arrays or deep" "$TK" manyobjects

# resultattack, the kinds that only make files in the temporary output dir
# (growing leaves a writer behind; not here).  ra KIND [MORE-JSON]
ra() {
        printf '{"kind":"%s"%s}' "$1" "${2-}" >"$work/in.json"
        run "$TK" resultattack
        f=$work/out/result.json
        [ "$rc" -eq 0 ] || bad "testkit resultattack $1: exit $rc; stderr: $(head -c 300 "$work/stderr")"
}
ra fifo
if [ -p "$f" ]; then ok; else bad "testkit resultattack fifo: result.json is not a fifo"; fi
ra dir
if [ -d "$f" ]; then ok; else bad "testkit resultattack dir: result.json is not a directory"; fi
ra sparse ',"bytes":4096'
if [ -f "$f" ] && [ "$(wc -c <"$f")" -eq 4096 ]; then ok; else bad "testkit resultattack sparse: not a 4096-byte file"; fi
ra hardlink
ino() { ls -i "$1" | awk '{ print $1 }'; }
if [ "$(ino "$f")" = "$(ino "$work/in.json")" ]; then ok; else bad "testkit resultattack hardlink: result.json is not input.json"; fi
ra proc_symlink
if [ -L "$f" ] && [ "$(readlink "$f")" = /proc/1/environ ]; then ok; else bad "testkit resultattack proc_symlink: no symlink to /proc/1/environ"; fi
ra devzero
if [ -L "$f" ] && [ "$(readlink "$f")" = /dev/zero ]; then ok; else bad "testkit resultattack devzero: no symlink to /dev/zero"; fi
ra tmp_then_rename_late
if [ ! -e "$f" ] && [ "$(cat "$f.tmp" 2>/dev/null)" = '{"late":true}' ]; then
        ok
else
        bad "testkit resultattack tmp_then_rename_late: want result.json.tmp only"
fi
expect_fail "testkit resultattack: unknown kind" '{"kind":"socket"}' 2 "unknown kind \`socket\`" "$TK" resultattack
expect_fail "testkit resultattack: no kind" '{}' 2 'kind is missing' "$TK" resultattack

expect_fail "testkit deadly: unknown call" '{"call":"reboot"}' 2 "unknown call \`reboot\`" "$TK" deadly
expect_fail "testkit deadly: no call" '{}' 2 'call is missing' "$TK" deadly
expect_fail "testkit deadly: call not a string" '{"call":1}' 2 'call must be a string, got number' "$TK" deadly
expect_fail "testkit peer: bad role" '{"role":"both"}' 2 "role is \`both\`, must be holder or prober" "$TK" peer
expect_fail "testkit peer: no role" '{}' 2 'role is missing' "$TK" peer
expect_fail "testkit peer: bad tag" '{"role":"prober","tag":"../x"}' 2 \
        'tag must be 1 to 32 characters of a-z and 0-9' "$TK" peer
expect_fail "testkit: unknown mode" '{}' 2 'unknown mode' "$TK" bogus

# ---- JSONTestSuite: n_ rejected cleanly by all, y_ accepted and re-serialized
# to a fixed point, i_ never a crash ----

if [ -d "$corpus" ]; then
        for bin in "$TK parse" "$MM" "$ST" "$SO"; do
                nfail=0 yfail=0 ifail=0
                for f in "$corpus"/*.json; do
                        base=${f##*/}
                        cp "$f" "$work/in.json"
                        # shellcheck disable=SC2086
                        run $bin
                        case $base in
                        n_*)
                                if [ "$rc" -ne 2 ] || [ ! -s "$work/stderr" ]; then
                                        nfail=$((nfail + 1))
                                        echo "FAIL: $bin on $base: exit $rc (want 2 with a message)"
                                fi ;;
                        y_*)
                                if [ "$bin" = "$TK parse" ]; then
                                        if [ "$rc" -ne 0 ]; then
                                                yfail=$((yfail + 1))
                                                echo "FAIL: parse $base: exit $rc: $(cat "$work/stderr")"
                                                continue
                                        fi
                                        cp "$work/out/result.json" "$work/in.json"
                                        cp "$work/out/result.json" "$work/first.json"
                                        run $bin
                                        if [ "$rc" -ne 0 ] || ! cmp -s "$work/first.json" "$work/out/result.json"; then
                                                yfail=$((yfail + 1))
                                                echo "FAIL: parse $base: output does not re-parse to itself"
                                        fi
                                elif [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
                                        yfail=$((yfail + 1))
                                        echo "FAIL: $bin on $base: exit $rc"
                                fi ;;
                        *)
                                if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
                                        ifail=$((ifail + 1))
                                        echo "FAIL: $bin on $base: exit $rc"
                                fi ;;
                        esac
                done
                for c in n y i; do
                        eval "k=\$${c}fail"
                        if [ "$k" -eq 0 ]; then ok; else bad "jsontestsuite ${c}_* with ${bin##*/}: $k files"; fi
                done
        done
else
        # CI has the corpus beside the checkout; a user's clone does not.
        echo "jsontestsuite: skipped: corpus absent ($corpus)"
fi

# ---- rootfs layout: static binaries, mount points, modes, nothing else ----

for dir in "$tp"/*/; do
        dir=${dir%/}
        name=${dir##*/}
        r=$dir/rootfs
        [ -f "$dir/plugin.yaml" ] || { bad "$name: no plugin.yaml"; continue; }
        case $name in
        matrix_multiplication | statistics | sort | convolve2d | monte_carlo_pi) bins=$name ;;
        word_count) bins="awk busybox cat mv rm sh word_count.sh" ;;
        *) bins=testkit ;;
        esac
        want=". ./bin"
        for b in $bins; do want="$want ./bin/$b"; done
        want="$want ./dev ./input ./output ./proc ./sys ./tmp"
        got=$(cd "$r" && find . | LC_ALL=C sort | tr '\n' ' ')
        [ "$got" = "$want " ] || { bad "$name: rootfs holds [$got], want [$want ]"; continue; }
        for m in dev input output proc sys tmp; do
                [ -z "$(ls -A "$r/$m")" ] || bad "$name: rootfs/$m is not empty"
        done
        wrong=$(find "$r" -path "$r/tmp" -prune -o -type d ! -perm 0755 -print; \
                find "$r/tmp" -maxdepth 0 ! -perm 1777; \
                find "$r" -type f ! -perm 0755; \
                find "$dir/plugin.yaml" ! -perm 0644)
        [ -z "$wrong" ] || bad "$name: wrong modes: $wrong"
        if [ "$(id -u)" -eq 0 ]; then
                notroot=$(find "$dir" ! -user 0)
                [ -z "$notroot" ] || bad "$name: not owned by root: $notroot"
        fi
        if command -v readelf >/dev/null 2>&1; then
                for b in $bins; do
                        f=$r/bin/$b
                        [ -L "$f" ] && continue
                        case $b in *.sh) continue ;; esac
                        readelf -l "$f" 2>/dev/null | grep -q 'program interpreter' &&
                                bad "$name: bin/$b is dynamically linked"
                done
        fi
        ok
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
