/* matmul_host.c - the host side of bench.py's section 13: one n x n
 * double-precision product, timed outside any container.
 *
 *   matmul_host dgemm|naive N REPS      prints "SECONDS" (the best of REPS)
 *
 * dgemm is cblas_dgemm from the Debian libopenblas.a the matrix plugin
 * links (the serial build: one core); naive is the textbook i-j-k triple
 * loop, compiled -O2 for plain x86-64.  The entries are quarters in
 * -2..2, as in the bench's jobs; the checksum printed on stderr keeps the
 * compiler from dropping the work. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void naive(int n, const double *a, const double *b, double *c)
{
        for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                        double s = 0;
                        for (int k = 0; k < n; k++)
                                s += a[(size_t)i * n + k] * b[(size_t)k * n + j];
                        c[(size_t)i * n + j] = s;
                }
}

int main(int argc, char **argv)
{
        if (argc != 4 || (strcmp(argv[1], "dgemm") && strcmp(argv[1], "naive"))) {
                fprintf(stderr, "usage: matmul_host dgemm|naive N REPS\n");
                return 2;
        }
        int n = atoi(argv[2]), reps = atoi(argv[3]);
        if (n < 1 || n > 8192 || reps < 1) {
                fprintf(stderr, "matmul_host: bad N or REPS\n");
                return 2;
        }
        size_t nn = (size_t)n * (size_t)n;
        double *a = malloc(nn * sizeof(*a)), *b = malloc(nn * sizeof(*b)), *c = malloc(nn * sizeof(*c));
        if (!a || !b || !c) {
                fprintf(stderr, "matmul_host: out of memory\n");
                return 1;
        }
        srand(1);
        for (size_t i = 0; i < nn; i++) {
                a[i] = (rand() % 17 - 8) / 4.0;
                b[i] = (rand() % 17 - 8) / 4.0;
        }
        double best = 1e300, sum = 0;
        for (int r = 0; r < reps; r++) {
                double t0 = now();
                if (argv[1][0] == 'd')
                        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n,
                                    0.0, c, n);
                else
                        naive(n, a, b, c);
                double t = now() - t0;
                if (t < best)
                        best = t;
                sum += c[nn / 2];
        }
        fprintf(stderr, "checksum %g\n", sum);
        printf("%.6f\n", best);
        return 0;
}
