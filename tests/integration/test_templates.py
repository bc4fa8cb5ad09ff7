"""The shipped `strict` template (oci-templates/strict.json and
strict.seccomp.allow): its linux.resources are ceilings a job's limits stay
under, its own allowlist takes system calls away (no sockets), its mounts
are fewer; a manifest over a ceiling, adding a call outside the list or
naming a template that does not exist is broken, with file, line and key."""

import json
import os
import re
import shutil
import signal
import tempfile
import time
import unittest

import harness
from harness import Daemon


def copy_plugin(src, root, name, extra="", drop_resources=False):
    """src copied to root/name under that name; its manifest's path."""
    return harness.copy_plugin(src, os.path.join(root, name), name=name, extra=extra,
                               drop_resources=drop_resources)


STRICT = "oci_template: strict\n"


class StrictTemplate(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="edgecd-it-templates-")
        os.chmod(cls.tmp, 0o755)
        copy_plugin("t_echo", cls.tmp, "s_echo", STRICT)
        copy_plugin("t_net", cls.tmp, "s_net", STRICT)
        copy_plugin("t_sandbox", cls.tmp, "s_sandbox", STRICT)
        copy_plugin("t_sandbox", cls.tmp, "d_sandbox")
        # The config's default pids (64) under strict's ceiling of 32, and not.
        copy_plugin("t_pids", cls.tmp, "s_pids", STRICT, drop_resources=True)
        copy_plugin("t_pids", cls.tmp, "d_pids", drop_resources=True)
        cls.broken_files = {
            "b_over": copy_plugin("t_echo", cls.tmp, "b_over", STRICT + "resources: {memory_mb: 1024}\n"),
            "b_calls": copy_plugin("t_echo", cls.tmp, "b_calls", STRICT + "syscalls: [ptrace]\n"),
            "b_missing": copy_plugin("t_echo", cls.tmp, "b_missing", "oci_template: nosuch\n"),
        }
        cls.d = Daemon("StrictTemplate", plugins=cls.tmp, config={"defaults": {"pids": 64}}).start()

    @classmethod
    def tearDownClass(cls):
        try:
            harness.cancel_all(cls.d)
            cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_a_job_runs_under_it(self):
        job = self.d.run_job({"algorithm": "s_echo", "parameters": {"n": 7}})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"], {"n": 7})

    def test_sockets_are_a_sandbox_violation(self):
        job = self.d.run_job({"algorithm": "s_net", "parameters": {}})
        self.assertEqual(job["status"], "failed", job)
        self.assertEqual(job["error"]["code"], "sandbox_violation", job)

    def test_pids_ceiling(self):
        strict = self.d.run_job({"algorithm": "s_pids", "parameters": {"max": 200}})
        plain = self.d.run_job({"algorithm": "d_pids", "parameters": {"max": 200}})
        self.assertEqual(strict["status"], "succeeded", strict)
        self.assertEqual(plain["status"], "succeeded", plain)
        s, p = strict["result"]["forked"], plain["result"]["forked"]
        self.assertTrue(16 < s < 32, "forked %d under strict's ceiling of 32" % s)
        self.assertTrue(32 < p < 64, "forked %d under the default limit of 64" % p)

    def test_fewer_mounts(self):
        strict = self.d.run_job({"algorithm": "s_sandbox", "parameters": {}})["result"]
        plain = self.d.run_job({"algorithm": "d_sandbox", "parameters": {}})["result"]
        for m in ("/dev/shm", "/dev/mqueue", "/dev/pts"):
            self.assertIn(m, plain["mounts"])
            self.assertNotIn(m, strict["mounts"])
        self.assertTrue(strict["tmp_writable"], strict.get("tmp_errno"))
        self.assertEqual(strict["seccomp"], 2)
        self.assertEqual(strict["no_new_privs"], 1)

    def test_manifests_over_it_are_broken(self):
        broken = {b["path"]: b["error"] for b in self.d.req("GET", "/v1/algorithms").body["broken"]}
        want = {
            "b_over": r":\d+: resources: memory_mb 1024 is over template `strict`'s ceiling of 256",
            "b_calls": r":\d+: syscalls: `ptrace` is not in template `strict`'s allowlist",
            "b_missing": r":\d+: oci_template: ",
        }
        for name, pattern in want.items():
            path = self.broken_files[name]
            errors = [e for p, e in broken.items() if p == path or p == os.path.dirname(path)]
            self.assertEqual(len(errors), 1, "%s not listed broken: %s" % (name, broken))
            self.assertRegex(errors[0], re.escape(path) + pattern)
            r = self.d.req("GET", "/v1/algorithms/" + name)
            self.assertEqual(r.status, 404, r)


class TemplateChanged(unittest.TestCase):
    """SIGHUP checks unchanged plugins again against templates that changed."""

    def test_sighup_rechecks_against_a_lowered_ceiling(self):
        tdir = harness.copy_templates(self, "templates")
        with open(os.path.join(tdir, "strict.json")) as f:
            strict = json.load(f)

        def ceiling(mib):
            strict["linux"]["resources"]["memory"]["limit"] = mib << 20
            harness.write_template(tdir, "mine", strict)

        ceiling(1024)
        plugins = os.path.join(os.path.dirname(tdir), "plugins")
        os.makedirs(plugins)
        path = copy_plugin("t_echo", plugins, "m_echo", "oci_template: mine\nresources: {memory_mb: 512}\n")
        d = Daemon("TemplateChanged", plugins=plugins, config={"templates_dir": tdir}).start()
        self.addCleanup(d.stop)
        self.assertEqual(d.run_job({"algorithm": "m_echo", "parameters": {"n": 1}})["status"], "succeeded")
        ceiling(256)
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10 * harness.slow_factor()
        while d.req("GET", "/v1/algorithms/m_echo").status == 200:
            self.assertLess(time.monotonic(), deadline, "m_echo still loaded after SIGHUP")
            time.sleep(0.1)
        broken = {b["path"]: b["error"] for b in d.req("GET", "/v1/algorithms").body["broken"]}
        self.assertRegex(broken.get(path, ""), re.escape(path) +
                         r":\d+: resources: memory_mb 512 is over template `mine`'s ceiling of 256")


if __name__ == "__main__":
    unittest.main()
