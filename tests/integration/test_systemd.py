"""The daemon in systemd's environment, without systemd: NOTIFY_SOCKET set
to a datagram socket of the test's own (as a Type=notify unit has it), and
a listening socket passed the way socket activation passes it (LISTEN_FDS,
LISTEN_PID, fd 3).

runc proxies NOTIFY_SOCKET when it finds it in its environment, and `start`
then waits for the container to say READY: a daemon that handed its own
environment to the runtime hung at the start-up probe and found no runtime.
Every runtime process gets an explicit minimal environment instead."""

import os
import shutil
import socket
import tempfile
import time
import unittest

from harness import Daemon, check_job, quick, slow_factor

MATRIX = {"algorithm": "matrix_multiplication",
          "parameters": {"matrix_a": [[1, 2], [3, 4]], "matrix_b": [[5, 6], [7, 8]]}}


class NotifySocket:
    """A datagram socket collecting what the daemon says to systemd, in a
    temporary directory of its own (removed by close)."""

    def __init__(self, test):
        self.dir = tempfile.mkdtemp(prefix="edgecd-it-notify-")
        test.addCleanup(self.close)
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def wait_for(self, line, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line in m.split("\n") for m in self.messages):
                return True
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                self.messages.append(self.sock.recv(4096).decode("utf-8", "replace"))
            except socket.timeout:
                pass
        return any(line in m.split("\n") for m in self.messages)

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, True)


@quick
class Notify(unittest.TestCase):

    def test_ready_and_jobs_with_notify_socket(self):
        ns = NotifySocket(self)
        d = Daemon("notify", env={"NOTIFY_SOCKET": ns.path})
        self.addCleanup(d.stop)
        d.start(timeout=20 * slow_factor())
        self.assertTrue(ns.wait_for("READY=1", 20 * slow_factor()), "no READY=1: %s" % ns.messages)
        job = d.run_job(MATRIX)
        self.assertEqual(job["result"]["product"], [[19, 22], [43, 50]], job)
        self.assertIn("the sandbox probe passed", d.log_text())
        d.stop()
        self.assertTrue(ns.wait_for("STOPPING=1", 5), "no STOPPING=1: %s" % ns.messages)


@quick
class SocketActivation(unittest.TestCase):

    def test_passed_socket_serves_and_runs_jobs(self):
        ns = NotifySocket(self)
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        self.addCleanup(lsock.close)
        fd = lsock.fileno()
        # systemd's way: the socket at fd 3, LISTEN_FDS=1, LISTEN_PID the
        # daemon's own pid (the shell's, kept across exec).
        shim = ["/bin/sh", "-c",
                'fd=$1; shift; [ "$fd" = 3 ] || { eval "exec 3<&$fd $fd<&-"; }; '
                'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"', "sh", str(fd)]
        # The configured address is not used: the passed socket wins.
        d = Daemon("sockact", config={"listen": "127.0.0.1:9"}, pass_fds=(fd,), argv0=shim,
                   env={"NOTIFY_SOCKET": ns.path})
        d.port = lsock.getsockname()[1]
        self.addCleanup(d.stop)
        d.start(timeout=20 * slow_factor())
        self.assertTrue(ns.wait_for("READY=1", 20 * slow_factor()), ns.messages)
        self.assertIn("socket-activated fd 3", d.log_text())
        job = d.run_job(MATRIX)
        check_job(job, final=True)
        self.assertEqual(job["status"], "succeeded", job)
