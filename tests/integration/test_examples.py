"""The example plugins (plugins/) through a real daemon and real containers,
each result checked against an independent computation in Python: numpy
(float64 products, numpy.pad for the border modes, np.histogram,
np.percentile), exact Python integers and fractions, math.fsum, sorted()
and collections.Counter, and a Python splitmix64 for monte_carlo_pi.  Bad
inputs are checked too: each must fail as algorithm_failed, exit status 2,
with one clear line naming what is wrong.

The large cases (a 1,024 x 1,024 product of integers and of doubles,
statistics over ten million values, sorts of a million numbers and of a
million strings) run against the release daemon only: under the ASan daemon
(`make check`'s second run) they are skipped, as they test the plugins, not
the daemon, and take most of this file's time.  Their submissions are over
max_body_bytes: the daemon spools them and checks them as a stream, up to
each plugin's max_input_bytes; only http.max_response_bytes is raised, for
the large answers.

Needs python3-numpy (scripts/install-deps.sh).
"""

import collections
import fractions
import json
import math
import os
import random
import re
import time

import numpy as np

import harness
from harness import DaemonCase

# The plugins' own max_input_bytes and max_result_bytes take the large
# cases (10,000,000 values are about 200 MB of request); the answers need
# room too.
BIG_LIMITS = {"http": {"max_response_bytes": "512MiB"}}
INT64_MAX = 2 ** 63 - 1


def release_daemon():
    return "asan" not in os.path.basename(harness.OPTIONS["daemon"])


class ExampleCase(DaemonCase):
    CONFIG = BIG_LIMITS

    def run_job(self, algorithm, params, timeout=60):
        """POST ?wait=true with a compact body; the final job."""
        body = json.dumps({"algorithm": algorithm, "parameters": params},
                          separators=(",", ":")).encode()
        r = self.d.submit(body, wait="true", headers={"Content-Type": "application/json"},
                          timeout=timeout * harness.slow_factor())
        self.assertEqual(r.status, 200, "POST %s (%d bytes): %s" % (algorithm, len(body), str(r)[:1500]))
        harness.check_job(r.body, final=True, runtime=self.d.runtime.get("name"))
        return r.body

    def result(self, algorithm, params, timeout=60):
        job = self.run_job(algorithm, params, timeout)
        self.assertEqual(job["status"], "succeeded", json.dumps(job)[:1500])
        return job["result"]

    def assertBadInput(self, algorithm, params, pattern):
        """The job fails as algorithm_failed with exit status 2 and a
        message matching pattern (the plugin's one line)."""
        job = self.run_job(algorithm, params)
        err = job.get("error") or {}
        self.assertEqual((job["status"], err.get("code"), job.get("exit_code")),
                         ("failed", "algorithm_failed", 2), json.dumps(job)[:1500])
        self.assertIsNone(job["result"])
        self.assertRegex(err["message"], pattern)
        return err["message"]

    def assertRefused(self, algorithm, params, field):
        """The schema refuses it: 400 invalid_parameters naming the field."""
        r = self.d.submit({"algorithm": algorithm, "parameters": params})
        harness.check_error(r, 400, "invalid_parameters")
        self.assertTrue(r.body["error"].get("field", "").startswith(field), r)

    def big(self):
        if not release_daemon():
            self.skipTest("large case: release daemon only")


# ---------------------------------------------------------------- matrix

def int_product(a, b):
    """Exact, with Python's unbounded integers."""
    bt = list(zip(*b))
    return [[sum(x * y for x, y in zip(row, col)) for col in bt] for row in a]


class MatrixMultiplication(ExampleCase):

    def mm(self, a, b, **extra):
        return self.result("matrix_multiplication", dict(matrix_a=a, matrix_b=b, **extra), timeout=240)

    def assertClose(self, got, a, b):
        """Each entry within the error bound of a dot product of length m
        in double precision: m * 2^-52 * sum |a_ik b_kj| (plus a hair)."""
        want = np.array(a, dtype=np.float64) @ np.array(b, dtype=np.float64)
        bound = np.abs(np.array(a)) @ np.abs(np.array(b)) * (len(b) * 2.0 ** -52) + 1e-300
        g = np.array(got, dtype=np.float64)
        self.assertEqual(g.shape, want.shape)
        bad = np.argwhere(np.abs(g - want) > bound)
        self.assertEqual(len(bad), 0, "entries off: %s" % [(tuple(i), g[tuple(i)], want[tuple(i)])
                                                            for i in bad[:5]])

    def test_small_exact(self):
        for a, b in (([[1, 2, 3], [4, 5, 6]], [[7, 8], [9, 10], [11, 12]]),
                     ([[1], [-2], [3]], [[4, -5]]),
                     ([[-3, -7], [5, -11]], [[-2], [13]]),
                     ([[0]], [[-9223372036854775807]])):
            r = self.mm(a, b)
            self.assertEqual(r, {"product": int_product(a, b), "rows": len(a), "cols": len(b[0])})

    def test_integers_beyond_double_stay_exact(self):
        # 3037000499^2 and 2^53+1 fit int64 but not a double's 53 bits.
        a, b = [[3037000499, 0], [0, 9007199254740993]], [[3037000499, 0], [0, 1]]
        self.assertEqual(self.mm(a, b)["product"], [[9223372030926249001, 0], [0, 9007199254740993]])
        # Partial sums past 2^52 (the checked 128-bit kernel), answers in int64.
        rnd = random.Random(8)
        a = [[rnd.randint(-2 ** 28, 2 ** 28) for _ in range(40)] for _ in range(30)]
        b = [[rnd.randint(-2 ** 28, 2 ** 28) for _ in range(20)] for _ in range(40)]
        want = int_product(a, b)
        self.assertTrue(max(abs(x) for row in want for x in row) > 2 ** 53)
        self.assertEqual(self.mm(a, b)["product"], want)
        # A partial sum beyond int64 whose total fits is not an overflow.
        a, b = [[2 ** 62, 2 ** 62, -2 ** 62]], [[1], [1], [1]]
        self.assertEqual(self.mm(a, b)["product"], [[2 ** 62]])

    def test_integer_overflow_is_a_clear_failure(self):
        msg = self.assertBadInput("matrix_multiplication",
                                  {"matrix_a": [[1, 2], [2 ** 62, 2 ** 62]], "matrix_b": [[1], [1]]},
                                  r"integer overflow: product\[1\]\[0\]")
        self.assertIn("9223372036854775808", msg)            # the exact value, 2^63
        self.assertBadInput("matrix_multiplication",
                            {"matrix_a": [[INT64_MAX]], "matrix_b": [[INT64_MAX]]},
                            r"integer overflow: product\[0\]\[0\] = %d is outside the 64-bit integer range"
                            % INT64_MAX ** 2)
        self.assertBadInput("matrix_multiplication",
                            {"matrix_a": [[-2 ** 63, -2 ** 63]], "matrix_b": [[-2 ** 63], [-2 ** 63]]},
                            r"integer overflow: product\[0\]\[0\]")
        # The same entries as doubles are a double-precision product.
        r = self.mm([[float(INT64_MAX)]], [[2.0]])
        self.assertEqual(r["product"], [[2.0 ** 64]])

    def test_double_overflow_is_a_clear_failure(self):
        self.assertBadInput("matrix_multiplication", {"matrix_a": [[1e300, 0.5]], "matrix_b": [[1e300], [1]]},
                            r"product\[0\]\[0\] is beyond the range of a double")

    def test_bad_shapes(self):
        self.assertBadInput("matrix_multiplication",
                            {"matrix_a": [[1, 2, 3], [4, 5]], "matrix_b": [[1], [2], [3]]},
                            r"^.*matrix_a row 1 has 2 entries, row 0 has 3")
        self.assertBadInput("matrix_multiplication", {"matrix_a": [[1]], "matrix_b": [[1, 2], [3]]},
                            r"matrix_b row 1 has 1 entries, row 0 has 2")
        self.assertBadInput("matrix_multiplication",
                            {"matrix_a": [[1, 2, 3], [4, 5, 6]], "matrix_b": [[1, 2], [3, 4]]},
                            r"matrix_a is 2x3 but matrix_b is 2x2: columns of matrix_a \(3\) must equal "
                            r"rows of matrix_b \(2\)")
        self.assertRefused("matrix_multiplication", {"matrix_a": [[]], "matrix_b": [[1]]},
                           "/parameters/matrix_a/0")
        self.assertRefused("matrix_multiplication", {"matrix_a": [[1] * 2049], "matrix_b": [[1]]},
                           "/parameters/matrix_a/0")
        self.assertRefused("matrix_multiplication", {"matrix_a": [[1]], "matrix_b": [[1]], "timing": 1},
                           "/parameters/timing")

    def test_doubles_against_numpy(self):
        rnd = random.Random(3)
        a = [[rnd.uniform(-100, 100) for _ in range(300)] for _ in range(200)]
        b = [[rnd.choice((rnd.uniform(-1, 1), rnd.randint(-5, 5))) for _ in range(90)] for _ in range(300)]
        r = self.mm(a, b)
        self.assertEqual((r["rows"], r["cols"]), (200, 90))
        self.assertClose(r["product"], a, b)
        # Shortest round-trip decimals: 0.1 * 3 is 0.30000000000000004.
        self.assertEqual(self.mm([[0.1]], [[3]])["product"], [[0.30000000000000004]])

    def test_timing_on_request(self):
        r = self.mm([[1, 2]], [[3], [4]], timing=True)
        self.assertEqual(r["product"], [[11]])
        self.assertEqual(set(r["timing"]), {"parse_ms", "kernel_ms"})
        self.assertTrue(all(v >= 0 for v in r["timing"].values()), r)
        self.assertNotIn("timing", self.mm([[1, 2]], [[3], [4]], timing=False))

    def test_1024_integers_exact(self):
        self.big()
        rng = np.random.default_rng(10)
        a = rng.integers(-1000, 1001, size=(1024, 1024))
        b = rng.integers(-1000, 1001, size=(1024, 1024))
        t0 = time.monotonic()
        r = self.mm(a.tolist(), b.tolist())
        took = time.monotonic() - t0
        # numpy's integer matmul is its own loop (no BLAS): exact in int64
        # here (|entries| <= 1024 * 10^6).
        want = a @ b
        self.assertEqual((r["rows"], r["cols"]), (1024, 1024))
        got = np.array(r["product"], dtype=np.int64)
        self.assertTrue(np.array_equal(got, want),
                        "first difference at %s" % (np.argwhere(got != want)[:1].tolist(),))
        print("  [1024x1024 integer product: %.1f s through the daemon]" % took, flush=True)

    def test_1024_doubles(self):
        self.big()
        rng = np.random.default_rng(11)
        a = rng.uniform(-1, 1, size=(1024, 1024))
        b = rng.uniform(-1, 1, size=(1024, 1024))
        t0 = time.monotonic()
        r = self.mm(a.tolist(), b.tolist(), timing=True)
        took = time.monotonic() - t0
        self.assertClose(r["product"], a, b)
        # And 500 entries against a dot product summed exactly (fsum of the
        # rounded products), with no BLAS at all.
        g = r["product"]
        rnd = random.Random(12)
        for _ in range(500):
            i, j = rnd.randrange(1024), rnd.randrange(1024)
            want = math.fsum(float(x) * float(y) for x, y in zip(a[i], b[:, j]))
            tol = 1024 * 2.0 ** -52 * float(np.abs(a[i]) @ np.abs(b[:, j]))
            self.assertLessEqual(abs(g[i][j] - want), tol, (i, j, g[i][j], want))
        print("  [1024x1024 double product: %.1f s through the daemon, kernel %.0f ms]"
              % (took, r["timing"]["kernel_ms"]), flush=True)


# ---------------------------------------------------------------- statistics

def nearest_rank(sorted_values, p):
    """x(k), k = ceil(p n / 100) in exact arithmetic on the decimal p."""
    n = len(sorted_values)
    k = math.ceil(fractions.Fraction(repr(p)) * n / 100)
    return sorted_values[min(max(k, 1), n) - 1]


class Statistics(ExampleCase):

    def stats(self, values, timeout=60, **extra):
        return self.result("statistics", dict(values=values, **extra), timeout=timeout)

    def check(self, values, r, pcts, method, bins):
        x = np.array(values, dtype=np.float64)
        n = len(x)
        self.assertEqual(r["count"], n)
        self.assertEqual((r["min"], r["max"]), (float(x.min()), float(x.max())))
        exact_sum = math.fsum(values)
        self.assertTrue(math.isclose(r["sum"], exact_sum, rel_tol=1e-12, abs_tol=1e-9), (r["sum"], exact_sum))
        self.assertTrue(math.isclose(r["mean"], exact_sum / n, rel_tol=1e-12, abs_tol=1e-12))
        self.assertTrue(math.isclose(r["variance"], float(np.var(x)), rel_tol=1e-9, abs_tol=1e-12),
                        (r["variance"], float(np.var(x))))
        self.assertTrue(math.isclose(r["stddev"], math.sqrt(r["variance"]), rel_tol=1e-12))
        self.assertTrue(math.isclose(r["median"], float(np.median(x)), rel_tol=1e-12, abs_tol=1e-12))
        s = np.sort(x)
        self.assertEqual(len(r["percentiles"]), len(set("%.15g" % p for p in pcts)))
        for p in pcts:
            got = r["percentiles"]["p%.15g" % p]
            if method == "nearest_rank":
                self.assertEqual(got, float(nearest_rank(s, p)), p)
            else:
                want = float(np.percentile(x, p))
                self.assertTrue(math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12), (p, got, want))
        counts, edges = np.histogram(x, bins=bins)
        self.assertEqual(r["histogram"]["counts"], counts.tolist())
        self.assertEqual(len(r["histogram"]["edges"]), bins + 1)
        self.assertTrue(np.allclose(r["histogram"]["edges"], edges, rtol=1e-15, atol=0))
        self.assertEqual(sum(r["histogram"]["counts"]), n)

    def test_small_known(self):
        r = self.stats([2, 4, 4, 4, 5, 5, 7, 9], percentiles=[50, 90], bins=7)
        self.assertEqual({k: r[k] for k in ("count", "sum", "mean", "min", "max", "variance", "stddev",
                                            "median")},
                         {"count": 8, "sum": 40, "mean": 5, "min": 2, "max": 9, "variance": 4,
                          "stddev": 2, "median": 4.5})
        self.assertEqual(r["percentiles"]["p50"], 4.5)
        self.assertTrue(math.isclose(r["percentiles"]["p90"], 7.6), r)     # 7 + 0.3 * (9 - 7)
        self.assertEqual(r["histogram"], {"edges": [2, 3, 4, 5, 6, 7, 8, 9],
                                          "counts": [1, 0, 3, 2, 0, 1, 1]})
        r = self.stats([2, 4, 4, 4, 5, 5, 7, 9], percentiles=[0, 12.5, 12.6, 50, 90, 100],
                       percentile_method="nearest_rank")
        self.assertEqual(r["percentiles"], {"p0": 2, "p12.5": 2, "p12.6": 4, "p50": 4, "p90": 9, "p100": 9})
        self.assertEqual(r["histogram"]["counts"], [1, 0, 3, 0, 2, 0, 0, 1, 0, 1])   # 10 bins by default
        r = self.stats([7.5])           # one value: the range is 7..8
        self.assertEqual((r["median"], r["variance"]), (7.5, 0))
        self.assertEqual(r["histogram"]["counts"], [0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
        self.assertEqual((r["histogram"]["edges"][0], r["histogram"]["edges"][-1]), (7, 8))
        self.check([7.5], r, [25, 50, 75, 90, 95, 99], "linear", 10)

    def test_against_numpy(self):
        rnd = random.Random(5)
        values = [rnd.gauss(1000, 3) for _ in range(50000)] + [rnd.randint(-10 ** 6, 10 ** 6) for _ in range(7)]
        rnd.shuffle(values)
        pcts = [0, 0.1, 1, 25, 33.3, 50, 75, 99, 99.9, 100, 50]
        for method, bins in (("linear", 17), ("nearest_rank", 1)):
            r = self.stats(values, percentiles=pcts, percentile_method=method, bins=bins)
            self.check(values, r, pcts, method, bins)

    def test_bad_input(self):
        self.assertBadInput("statistics", {"values": [1e308, 1e308]},
                            r"values too large: the sum is beyond the range of a double")
        self.assertRefused("statistics", {"values": [1, "2"]}, "/parameters/values/1")
        self.assertRefused("statistics", {"values": [1], "percentiles": [101]}, "/parameters/percentiles/0")
        self.assertRefused("statistics", {"values": [1], "bins": 0}, "/parameters/bins")
        self.assertRefused("statistics", {"values": [1], "percentile_method": "mean"},
                           "/parameters/percentile_method")
        self.assertRefused("statistics", {"values": []}, "/parameters/values")

    def test_ten_million_values(self):
        self.big()
        rng = np.random.default_rng(6)
        # Rounded to 6 decimals: 10 to 12 characters a value, ~120 MB.
        x = np.round(rng.normal(50, 20, size=10_000_000), 6)
        values = x.tolist()
        pcts = [0, 0.01, 1, 10, 25, 50, 75, 90, 99, 99.99, 100]
        t0 = time.monotonic()
        r = self.stats(values, timeout=300, percentiles=pcts, percentile_method="nearest_rank", bins=64)
        took = time.monotonic() - t0
        self.check(values, r, pcts, "nearest_rank", 64)
        print("  [statistics over 10,000,000 values: %.1f s through the daemon]" % took, flush=True)


# ---------------------------------------------------------------- sort

def typed(items):
    """repr keeps 1 apart from 1.0 and -0.0 from 0, which == does not."""
    return [repr(v) for v in items]


class Sort(ExampleCase):

    def sort(self, items, order=None, timeout=60):
        params = {"items": items}
        if order:
            params["order"] = order
        r = self.result("sort", params, timeout=timeout)
        self.assertEqual(r["count"], len(items))
        return r["items"]

    def assertSorted(self, items, timeout=60):
        """Both orders against Python's sorted(), which is stable both ways."""
        for order in ("ascending", "descending"):
            got = self.sort(items, order, timeout)
            self.assertEqual(typed(got), typed(sorted(items, reverse=order == "descending")), order)

    def test_numbers_stable(self):
        self.assertSorted([3, 1.0, 2, 1, -0.0, 0, 0.0, -7, 2.5e300, -1e-300, 1, 1.0, -0.0])
        self.assertSorted([0.5, 0.25, 2.0, 1e-5, 123456.789])                      # fractions only
        self.assertSorted([5, -2, INT64_MAX, -2 ** 63, 0, 5, 17])                   # integers only
        # Integers beyond 2^53 among fractions: exact comparisons.
        self.assertSorted([2 ** 53 + 1, 9007199254740992.0, 2 ** 53, 2 ** 63 - 1, 9.223372036854776e18,
                           -2 ** 53 - 1, -9007199254740992.0, 0.5])
        self.assertEqual(self.sort([]), [])
        self.assertEqual(self.sort([3, 1, 2]), [1, 2, 3])

    def test_strings(self):
        items = ["banana", "apple", "", "Apple", "applesauce-a", "applesauce-b", "applesauce",
                 "applesauce-a", "é", "e\u0301", "z", "😀", "\uffff", "日本語", "a\tb", "a b",
                 "applesauc", "appl", "longer common prefix 1", "longer common prefix 0"]
        self.assertSorted(items)
        self.assertSorted(["same"] * 5 + ["Same"] * 3)

    def test_bad_input(self):
        self.assertBadInput("sort", {"items": [1, 2, "3"]},
                            r"items must be all numbers or all strings: items\[0\] is a number, "
                            r"items\[2\] a string")
        self.assertRefused("sort", {"items": [1, None]}, "/parameters/items/1")
        self.assertRefused("sort", {"items": [1], "order": "up"}, "/parameters/order")

    def test_a_million_numbers_and_strings(self):
        self.big()
        rnd = random.Random(9)
        numbers = [rnd.choice((rnd.random(), rnd.randint(-1000, 1000), float(rnd.randint(-5, 5))))
                   for _ in range(1_000_000)]
        t0 = time.monotonic()
        self.assertSorted(numbers, timeout=120)
        t_num = time.monotonic() - t0
        # Many shared 8-byte prefixes, so the tie-breaking merge sort works.
        strings = ["%s-%d" % (rnd.choice(("prefix00", "prefix01", "x", "日本")), rnd.randrange(10 ** 6))
                   for _ in range(1_000_000)]
        t0 = time.monotonic()
        self.assertSorted(strings, timeout=120)
        print("  [sort of 1,000,000 numbers: %.1f s, of 1,000,000 strings: %.1f s, both orders, "
              "through the daemon]" % (t_num, time.monotonic() - t0), flush=True)


# ---------------------------------------------------------------- convolve2d

NP_MODE = {"zero": "constant", "clamp": "edge", "wrap": "wrap", "reflect": "reflect",
           "symmetric": "symmetric"}


def np_convolve_same(image, kernel, border):
    """out[i][j] = sum K[u][v] I(i+ch-u, j+cw-v), I extended by numpy.pad."""
    img = np.array(image, dtype=np.float64)
    k = np.array(kernel, dtype=np.float64)
    kh, kw = k.shape
    ch, cw = (kh - 1) // 2, (kw - 1) // 2
    p = np.pad(img, ((ch, ch), (cw, cw)), mode=NP_MODE[border])
    out = np.zeros_like(img)
    rows, cols = img.shape
    for u in range(kh):
        for v in range(kw):
            out += k[u, v] * p[2 * ch - u:2 * ch - u + rows, 2 * cw - v:2 * cw - v + cols]
    return out


class Convolve2d(ExampleCase):

    def conv(self, image, kernel, border=None):
        params = {"image": image, "kernel": kernel}
        if border:
            params["border"] = border
        r = self.result("convolve2d", params)
        self.assertEqual((r["rows"], r["cols"]), (len(image), len(image[0])))
        return r["image"]

    def test_orientation_by_hand(self):
        img = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
        shift = [[0, 0, 0], [0, 0, 1], [0, 0, 0]]        # a convolution moves it right
        self.assertEqual(self.conv(img, shift), [[0, 1, 2], [0, 4, 5], [0, 7, 8]])
        self.assertEqual(self.conv(img, shift, "wrap"), [[3, 1, 2], [6, 4, 5], [9, 7, 8]])
        self.assertEqual(self.conv(img, shift, "clamp"), [[1, 1, 2], [4, 4, 5], [7, 7, 8]])
        self.assertEqual(self.conv(img, shift, "reflect"), [[2, 1, 2], [5, 4, 5], [8, 7, 8]])
        self.assertEqual(self.conv(img, shift, "symmetric"), [[1, 1, 2], [4, 4, 5], [7, 7, 8]])
        box = [[1, 1, 1]] * 3
        self.assertEqual(self.conv(img, box), [[12, 21, 16], [27, 45, 33], [24, 39, 28]])

    def test_border_modes_against_numpy(self):
        rnd = random.Random(4)
        img = [[rnd.randint(-50, 50) for _ in range(17)] for _ in range(13)]
        kernel = [[rnd.randint(-3, 3) for _ in range(3)] for _ in range(5)]
        tiny = [[rnd.randint(0, 9) for _ in range(4)] for _ in range(3)]
        wide = [[rnd.randint(-2, 2) for _ in range(9)] for _ in range(7)]    # wider than tiny
        for border in NP_MODE:
            for im, k in ((img, kernel), (tiny, wide), ([[5]], [[1, 2, 3]]), ([[1, 2, 3]], [[2]])):
                got = self.conv(im, k, border)
                want = np_convolve_same(im, k, border)
                self.assertEqual(got, want.tolist(), "%s, %dx%d image, %dx%d kernel"
                                 % (border, len(im), len(im[0]), len(k), len(k[0])))

    def test_doubles(self):
        rng = np.random.default_rng(7)
        img = rng.uniform(-1, 1, size=(64, 50))
        k = rng.normal(size=(7, 5))
        for border in ("zero", "reflect"):
            got = np.array(self.conv(img.tolist(), k.tolist(), border))
            self.assertTrue(np.allclose(got, np_convolve_same(img, k, border), rtol=1e-12, atol=1e-12))

    def test_bad_input(self):
        self.assertBadInput("convolve2d", {"image": [[1, 2]], "kernel": [[1, 1]]},
                            r"kernel is 1x2: its sides must be odd")
        self.assertBadInput("convolve2d", {"image": [[1, 2], [3]], "kernel": [[1]]},
                            r"image row 1 has 1 entries, row 0 has 2")
        self.assertRefused("convolve2d", {"image": [[1]], "kernel": [[1]] * 33}, "/parameters/kernel")
        self.assertRefused("convolve2d", {"image": [[1]], "kernel": [[1]], "border": "mirror"},
                           "/parameters/border")


# ---------------------------------------------------------------- word_count

ASCII_PUNCT = "".join(chr(c) for c in range(0x21, 0x7f) if not chr(c).isalnum())


def py_word_count(text):
    """The plugin's definitions, counted by Python."""
    lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    words = [w for w in re.split(r"[ \t\n\r\v\f]+", text) if w]
    counts = collections.Counter()
    for w in words:
        w = "".join(c.lower() if "A" <= c <= "Z" else c for c in w).strip(ASCII_PUNCT)
        if w:
            counts[w] += 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].encode()))[:10]
    return {"lines": lines, "words": len(words), "chars": len(text),
            "top_words": [{"word": w, "count": c} for w, c in top]}


class WordCount(ExampleCase):

    def test_against_python(self):
        texts = ["the cat and the hat\nthe end",
                 "Hello, world! Hello again.\nThe world is big; the WORLD.\n",
                 "", "\n\n", "one", "a\n\nb", "tabs\tand  spaces\r\nand\x0cff ...!!! --",
                 "café Café CAFÉ 😀 naïve NAÏVE", "k j i h g f e d c b a k",
                 "quote\"d back\\slash a/b (paren) [brk] {brace} 'single' `tick`"]
        for t in texts:
            self.assertEqual(self.result("word_count", {"text": t}), py_word_count(t), repr(t))

    def test_larger_text(self):
        rnd = random.Random(1)
        vocab = ["alpha", "Beta", "gamma,", "delta.", "(epsilon)", "zeta!", "ETA", "theta;", "iota",
                 "kappa", "lambda", "mu", "Nu", "xi", "omicron", "pi", "rho?", "sigma", "tau", "ü"]
        words = [rnd.choice(vocab[:rnd.randint(1, len(vocab))]) for _ in range(40000)]
        text = "".join(w + rnd.choice((" ", " ", "  ", "\n", "\t")) for w in words)
        self.assertEqual(self.result("word_count", {"text": text}), py_word_count(text))

    def test_bad_input(self):
        self.assertRefused("word_count", {"text": 5}, "/parameters/text")
        self.assertRefused("word_count", {}, "/parameters")


# ---------------------------------------------------------------- monte_carlo_pi

def py_monte_carlo_pi(samples, seed):
    mask = (1 << 64) - 1
    state = seed
    inside = 0
    for _ in range(samples):
        xy = []
        for _ in range(2):
            state = (state + 0x9E3779B97F4A7C15) & mask
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
            z ^= z >> 31
            xy.append((z >> 11) * 2.0 ** -53)
        inside += xy[0] * xy[0] + xy[1] * xy[1] <= 1.0
    return inside


class MonteCarloPi(ExampleCase):

    def test_against_python(self):
        for samples, seed in ((100000, 7), (1, 0), (39, 2 ** 53)):
            r = self.result("monte_carlo_pi", {"samples": samples, "seed": seed})
            inside = py_monte_carlo_pi(samples, seed)
            q = inside / samples
            self.assertEqual((r["samples"], r["seed"], r["inside"]), (samples, seed, inside))
            self.assertEqual(r["pi"], 4 * inside / samples)
            self.assertEqual(r["abs_error"], abs(4 * inside / samples - math.pi))
            self.assertTrue(math.isclose(r["std_error"], 4 * math.sqrt(q * (1 - q) / samples),
                                         rel_tol=1e-12, abs_tol=1e-300))

    def test_default_and_paced(self):
        r = self.result("monte_carlo_pi", {})
        self.assertEqual((r["samples"], r["seed"]), (10 ** 7, 1))
        self.assertLess(abs(r["pi"] - math.pi), 6 * r["std_error"], r)
        # "seconds" stretches the run, the answer stays the same.
        quick = self.result("monte_carlo_pi", {"samples": 20000, "seed": 3})
        job = self.run_job("monte_carlo_pi", {"samples": 20000, "seed": 3, "seconds": 2})
        self.assertEqual(job["result"], quick)
        self.assertGreaterEqual(job["metrics"]["run_ms"], 2000, job["metrics"])

    def test_bad_input(self):
        self.assertRefused("monte_carlo_pi", {"samples": 0}, "/parameters/samples")
        self.assertRefused("monte_carlo_pi", {"samples": 1.5}, "/parameters/samples")
        self.assertRefused("monte_carlo_pi", {"seconds": 61}, "/parameters/seconds")
