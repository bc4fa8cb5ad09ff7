/* warm-gate.c - the process a warm container starts with (warmpool.h).
 *
 * Usage: warm-gate FIFO COMMAND [ARG...].  Runs inside the job's sandbox,
 * as the job's user, under its seccomp filter and limits.  It blocks
 * opening FIFO (in /input) until the daemon opens it to write, reads one
 * byte, and: 'g' - the job's input is in place, become COMMAND (execvp,
 * same pid, so the container's init is the algorithm); anything else or
 * end of file - the container is not wanted (expired, drained): exit 0.
 * So a job of a warm plugin costs no runtime process at all before its
 * algorithm runs.  Static, no libc beyond what musl links in. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
        if (argc < 3) {
                fprintf(stderr, "edgecd warm-gate: usage: warm-gate FIFO COMMAND [ARG...]\n");
                return 125;
        }
        int fd;
        do
                fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        while (fd < 0 && errno == EINTR);
        if (fd < 0) {
                fprintf(stderr, "edgecd warm-gate: open %s: %s\n", argv[1], strerror(errno));
                return 125;
        }
        char c = 0;
        ssize_t n;
        do
                n = read(fd, &c, 1);
        while (n < 0 && errno == EINTR);
        close(fd);
        if (n != 1 || c != 'g')
                return 0;
        execvp(argv[2], argv + 2);
        fprintf(stderr, "edgecd: cannot run %s: %s\n", argv[2], strerror(errno));
        return 127;
}
