"""Plugins shipped as OCI image layouts: a layout built here with umoci
from a rootfs of our own (the test plugins' static testkit), loaded as a
plugin without a rootfs/, unpacked by the daemon into its cache by
digest, its entrypoint, cmd, env and working dir taken as defaults under
the manifest, re-read when the tag names a new image, and refused with
file, line and key when it is broken."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Daemon, slow_factor

UMOCI = shutil.which("umoci")


def umoci(*args):
    r = subprocess.run([UMOCI] + list(args), capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("umoci %s: %s" % (" ".join(args), r.stderr))
    return r


def build_layout(layout, rootfs_src, entrypoint, cmd, env, workdir, tag="latest"):
    """An OCI image layout at `layout` holding rootfs_src's files as one
    layer, tagged `tag`, with the config given."""
    work = tempfile.mkdtemp(prefix="edgecd-it-umoci-")
    try:
        if not os.path.exists(layout):
            umoci("init", "--layout", layout)
        umoci("new", "--image", "%s:%s" % (layout, tag))
        bundle = os.path.join(work, "bundle")
        umoci("unpack", "--image", "%s:%s" % (layout, tag), bundle)
        shutil.rmtree(os.path.join(bundle, "rootfs"))
        shutil.copytree(rootfs_src, os.path.join(bundle, "rootfs"), symlinks=True)
        umoci("repack", "--image", "%s:%s" % (layout, tag), bundle)
        args = ["config", "--image", "%s:%s" % (layout, tag), "--config.workingdir", workdir]
        for e in entrypoint:
            args += ["--config.entrypoint", e]
        for c in cmd:
            args += ["--config.cmd", c]
        for e in env:
            args += ["--config.env", e]
        umoci(*args)
        umoci("gc", "--layout", layout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def index_digest(layout, tag="latest"):
    with open(os.path.join(layout, "index.json")) as f:
        for m in json.load(f)["manifests"]:
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
                return m["digest"]
    raise AssertionError("no %s in %s" % (tag, layout))


def sparse_layout(layout, work, size):
    """An OCI image layout whose one layer is an uncompressed tar holding a
    sparse file of `size` bytes: GNU tar writes a few hundred bytes for
    it, an unpack writes `size` bytes of zeros."""
    src = os.path.join(work, "src")
    os.makedirs(src)
    with open(os.path.join(src, "zeros"), "wb") as f:
        f.truncate(size)
    tar = os.path.join(work, "layer.tar")
    subprocess.run(["tar", "--sparse", "--format=posix", "-cf", tar, "-C", src, "zeros"], check=True)
    with open(tar, "rb") as f:
        hand_layout(layout, f.read(), {"Entrypoint": ["/zeros"]})
    return os.path.getsize(tar)


def hand_layout(layout, layer, image_config):
    """An OCI image layout written by hand: one uncompressed tar layer
    (bytes), the image config's `config` object, tagged latest."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"))

    def blob(data):
        h = hashlib.sha256(data).hexdigest()
        with open(os.path.join(layout, "blobs", "sha256", h), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + h, "size": len(data)}
    config = blob(json.dumps({"architecture": "amd64", "os": "linux", "config": image_config,
                              "rootfs": {"type": "layers",
                                         "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}},
                             separators=(",", ":")).encode())
    manifest = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
                                "layers": [dict(blob(layer), mediaType="application/vnd.oci.image.layer.v1.tar")]}
                               ).encode())
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [dict(manifest, mediaType="application/vnd.oci.image.manifest.v1+json",
                                                          annotations={"org.opencontainers.image.ref.name": "latest"})]}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion": "1.0.0"}')


def write_manifest(pdir, name, extra=""):
    with open(os.path.join(pdir, "plugin.yaml"), "w") as f:
        f.write("name: %s\nversion: 1.0.0\ndescription: An image plugin.\nimage: image\n"
                "input_schema: {type: object}\n%s" % (name, extra))


class HugeImageConfig(unittest.TestCase):
    def test_an_image_config_of_300000_strings_loads_in_linear_time(self):
        # Entrypoint, Cmd and Env were built one push at a time, each push
        # counting the list: a config blob of under 1 MiB (its limit) held
        # the plugin loader for a minute (minutes under ASan); now seconds.
        tmp = tempfile.mkdtemp(prefix="edgecd-it-images-huge-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        shutil.copy(os.path.join(harness.OPTIONS["plugins"], "t_sandbox", "rootfs", "bin", "testkit"),
                    os.path.join(src, "testkit"))
        tar = os.path.join(tmp, "layer.tar")
        subprocess.run(["tar", "--format=posix", "-cf", tar, "-C", src, "testkit"], check=True)
        pdir = os.path.join(tmp, "plugins", "i_huge")
        os.makedirs(pdir)
        with open(tar, "rb") as f:
            hand_layout(os.path.join(pdir, "image"), f.read(),
                        {"Entrypoint": ["/testkit"], "Cmd": ["echo"] + [""] * 300000,
                         "Env": ["K%d=v" % i for i in range(5000)]})
        write_manifest(pdir, "i_huge")
        d = Daemon("HugeImageConfig", plugins=os.path.join(tmp, "plugins"))
        self.addCleanup(d.stop)
        d.start(timeout=30)
        algs = d.req("GET", "/v1/algorithms").body
        self.assertIn("i_huge", [a["name"] for a in algs["algorithms"]], algs.get("broken"))


class ImagePlugins(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not UMOCI:
            raise AssertionError("umoci is not installed: scripts/install-deps.sh installs it")
        cls.tmp = tempfile.mkdtemp(prefix="edgecd-it-images-")
        os.chmod(cls.tmp, 0o755)
        cls.rootfs = os.path.join(harness.OPTIONS["plugins"], "t_sandbox", "rootfs")
        # i_sandbox: the image's own command (testkit sandbox), env and cwd.
        p = os.path.join(cls.tmp, "i_sandbox")
        os.makedirs(p)
        build_layout(os.path.join(p, "image"), cls.rootfs, ["/bin/testkit"], ["sandbox"],
                     ["GREETING=hello", "SHADOWED=image"], "/tmp")
        write_manifest(p, "i_sandbox", "env: {SHADOWED: manifest}\n")
        # i_echo: the same image, the manifest's command instead.
        p = os.path.join(cls.tmp, "i_echo")
        shutil.copytree(os.path.join(cls.tmp, "i_sandbox"), p)
        write_manifest(p, "i_echo", 'command: ["/bin/testkit", "echo"]\n')
        # Broken: a tag that is not there; a blob that does not match its digest.
        p = os.path.join(cls.tmp, "b_tag")
        shutil.copytree(os.path.join(cls.tmp, "i_sandbox"), p)
        write_manifest(p, "b_tag", "image_tag: nosuch\n")
        p = os.path.join(cls.tmp, "b_blob")
        shutil.copytree(os.path.join(cls.tmp, "i_sandbox"), p)
        write_manifest(p, "b_blob")
        hexd = index_digest(os.path.join(p, "image"))[len("sha256:"):]
        blob = os.path.join(p, "image", "blobs", "sha256", hexd)
        with open(blob) as f:
            text = f.read()
        os.unlink(blob)
        with open(blob, "w") as f:
            f.write(text.replace("{", "{ ", 1))
        # A working directory on /proc: with runc before 1.1.12, /proc/self/fd/7
        # was a leaked descriptor of the host's /sys/fs/cgroup (CVE-2024-21626).
        p = os.path.join(cls.tmp, "b_cwd")
        os.makedirs(p)
        build_layout(os.path.join(p, "image"), cls.rootfs, ["/bin/testkit"], ["echo"], [], "/proc/self/fd/7")
        write_manifest(p, "b_cwd")
        cls.d = Daemon("ImagePlugins", plugins=cls.tmp).start()

    @classmethod
    def tearDownClass(cls):
        try:
            if getattr(cls, "d", None):
                harness.cancel_all(cls.d)
                cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def cache(self):
        return os.path.join(self.d.state_dir, "images")

    def plugins_root(self, what):
        """A plugins directory of the test's own, removed after it."""
        root = tempfile.mkdtemp(prefix="edgecd-it-images-%s-" % what)
        self.addCleanup(shutil.rmtree, root, True)
        os.chmod(root, 0o755)
        return root

    def sleep_plugin(self, what):
        """A daemon of its own with one image plugin, i_sleep (testkit
        sleep); the plugin's directory, the daemon and its image cache."""
        p = self.image_plugin(self.plugins_root(what), "i_sandbox", "i_sleep", "i_sleep",
                              'command: ["/bin/testkit", "sleep"]\n')
        d = Daemon("Image" + what.capitalize(), plugins=os.path.dirname(p)).start()
        self.addCleanup(d.stop)
        return p, d, os.path.join(d.state_dir, "images")

    def assert_kept_while_running(self, d, cache, digest, job_id):
        """digest stays in the cache while job_id runs (a rescan after the
        reload that retired it), and leaves at the rescan after it ends."""
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        self.assertTrue(os.path.isdir(os.path.join(cache, digest)), "removed under a running job")
        self.assertEqual(d.req("DELETE", "/v1/jobs/" + job_id).status, 202)
        self.assertEqual(d.wait_final(job_id)["status"], "cancelled")
        # A rescan once the run is taken apart (a SIGHUP here; at most a
        # minute on its own) removes it.  The run's parts go after its
        # answer, and a rescan before they have gone keeps the image: a
        # SIGHUP each second until it goes.
        d.wait_cleaned()

        def rescanned_and_gone():
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            return not os.path.exists(os.path.join(cache, digest))
        harness.wait_for(rescanned_and_gone, 20, lambda: "the unused image stayed: %s" % os.listdir(cache))

    def image_plugin(self, root, src, dirname, name, extra=""):
        """The class's plugin src copied to root/dirname, its manifest
        written anew (write_manifest); the copy's path."""
        p = os.path.join(root, dirname)
        shutil.copytree(os.path.join(self.tmp, src), p, symlinks=True)
        write_manifest(p, name, extra)
        return p

    def test_a_job_runs_from_the_image_with_its_defaults(self):
        job = self.d.run_job({"algorithm": "i_sandbox", "parameters": {}})
        self.assertEqual(job["status"], "succeeded", job)
        r = job["result"]
        self.assertEqual(r["cwd"], "/tmp")
        self.assertIn("GREETING=hello", r["env"])
        self.assertIn("SHADOWED=manifest", r["env"])
        self.assertNotIn("SHADOWED=image", r["env"])
        self.assertFalse(r["rootfs_writable"])
        self.assertEqual(r["uid"], job["attempts"][-1]["uid"])

    def test_the_manifest_command_wins(self):
        job = self.d.run_job({"algorithm": "i_echo", "parameters": {"x": [1, 2]}})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"], {"x": [1, 2]})

    def test_unpacked_once_by_digest(self):
        digest = index_digest(os.path.join(self.tmp, "i_sandbox", "image"))
        hexd = digest[len("sha256:"):]
        # Two plugins of one image: one cache entry, no temporaries.
        self.assertEqual(sorted(os.listdir(self.cache())), [hexd])
        rootfs = os.path.join(self.cache(), hexd, "rootfs")
        self.assertTrue(os.path.isfile(os.path.join(rootfs, "bin", "testkit")))
        ino = os.stat(rootfs).st_ino
        rc, _ = self.d.terminate()
        self.assertEqual(rc, 0)
        self.d.restart()
        self.assertEqual(os.stat(rootfs).st_ino, ino, "unpacked again after a restart")
        self.assertEqual(self.d.run_job({"algorithm": "i_echo", "parameters": {"n": 1}})["result"], {"n": 1})

    def test_broken_images_name_file_line_and_key(self):
        broken = {b["path"]: b["error"] for b in self.d.req("GET", "/v1/algorithms").body["broken"]}
        tag = broken.get(os.path.join(self.tmp, "b_tag", "plugin.yaml"), "")
        self.assertRegex(tag, r"plugin\.yaml:\d+:\d+: image_tag: index.json has no manifest tagged `nosuch`")
        blob = broken.get(os.path.join(self.tmp, "b_blob", "plugin.yaml"), "")
        self.assertRegex(blob, r"plugin\.yaml:\d+:\d+: image: image manifest: the blob does not match its digest sha256:[0-9a-f]{64}$")
        cwd = broken.get(os.path.join(self.tmp, "b_cwd", "plugin.yaml"), "")
        self.assertRegex(cwd, r"plugin\.yaml:\d+:\d+: image: image config: WorkingDir `/proc/self/fd/7` is on "
                              r"/proc")
        for name in ("b_tag", "b_blob", "b_cwd"):
            self.assertEqual(self.d.req("GET", "/v1/algorithms/" + name).status, 404)

    def test_an_unpack_is_held_to_max_image_bytes(self):
        """A layout of a few kilobytes whose layer holds a sparse file of
        1 GiB: umoci writes the zeros, into the disk the store and the logs
        are on.  The unpack is stopped past max_image_bytes, nothing of it
        is left in the cache, and the plugin is listed as broken."""
        root = self.plugins_root("bomb")
        p = os.path.join(root, "i_bomb")
        os.makedirs(p)
        work = tempfile.mkdtemp(prefix="edgecd-it-bomb-")
        self.addCleanup(shutil.rmtree, work, True)
        size = sparse_layout(os.path.join(p, "image"), work, 1 << 30)
        self.assertLess(size, 64 * 1024, "GNU tar did not write a sparse entry")
        write_manifest(p, "i_bomb")
        d = Daemon("ImageBomb", plugins=root, config={"max_image_bytes": "64MiB"}).start()
        self.addCleanup(d.stop)
        self.assert_unpack_refused(d, p, r"`\S*umoci` was killed: the unpacked image took more than "
                                         r"max_image_bytes \(67108864 bytes\)")
        self.assertEqual(d.req("GET", "/healthz").status, 200)

    def assert_unpack_refused(self, d, p, why):
        """Plugin directory p is listed broken by daemon d, its unpack
        refused for `why` (a regular expression), and nothing of it is
        left in the image cache."""
        yaml = os.path.join(p, "plugin.yaml")
        broken = {b["path"]: b["error"] for b in d.req("GET", "/v1/algorithms").body["broken"]}
        self.assertRegex(broken.get(yaml, ""), r"plugin\.yaml:\d+: image: umoci unpack: " + why, broken)
        cache = os.path.join(d.state_dir, "images")
        self.assertEqual(os.listdir(cache) if os.path.isdir(cache) else [], [], "the unpack left files behind")

    def wrapped_umoci(self, d, script):
        """Daemon d (not started) finds, first in its PATH, an umoci that
        runs the shell script, then the real umoci."""
        bindir = os.path.join(d.tmp, "bin")
        os.makedirs(bindir)
        wrapper = os.path.join(bindir, "umoci")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nset -e\n%s\nexec %s \"$@\"\n" % (script, UMOCI))
        os.chmod(wrapper, 0o755)
        d.env["PATH"] = bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin")

    def test_others_writes_do_not_count_against_an_unpack(self):
        """The cache's disk fills by 48 MiB while a small image unpacks
        (the logs, the store, another unpack would): the image, a few
        MiB of its own, is within max_image_bytes 32MiB and loads."""
        root = self.plugins_root("others")
        self.image_plugin(root, "i_echo", "i_small", "i_small", 'command: ["/bin/testkit", "echo"]\n')
        d = Daemon("ImageOthers", plugins=root, config={"max_image_bytes": "32MiB"})
        self.addCleanup(d.stop)
        others = os.path.join(d.tmp, "others.bin")
        # Then a pause: the watch looks every 100 ms.
        self.wrapped_umoci(d, "dd if=/dev/zero of=%s bs=1M count=48 status=none\nsleep 0.5" % others)
        d.start()
        self.assertEqual(os.path.getsize(others), 48 << 20, "the wrapper did not run")
        r = d.req("GET", "/v1/algorithms")
        self.assertEqual(r.body["broken"], [], r)
        job = d.run_job({"algorithm": "i_small", "parameters": {"x": 7}})
        self.assertEqual(job["status"], "succeeded", job)

    def test_an_unpack_is_measured_when_done(self):
        """Space freed while an image unpacks hides it from the disk's
        count: a 48 MiB image unpacked while 64 MiB elsewhere are removed
        is still over max_image_bytes 32MiB, and refused."""
        root = self.plugins_root("freed")
        p = os.path.join(root, "i_big")
        os.makedirs(p)
        work = tempfile.mkdtemp(prefix="edgecd-it-freed-")
        self.addCleanup(shutil.rmtree, work, True)
        sparse_layout(os.path.join(p, "image"), work, 48 << 20)
        write_manifest(p, "i_big")
        d = Daemon("ImageFreed", plugins=root, config={"max_image_bytes": "32MiB"})
        self.addCleanup(d.stop)
        ballast = os.path.join(d.tmp, "ballast.bin")
        with open(ballast, "wb") as f:
            for _ in range(64):
                f.write(b"\1" * (1 << 20))
        self.wrapped_umoci(d, "rm %s" % ballast)
        d.start()
        self.assertFalse(os.path.exists(ballast), "the wrapper did not run")
        self.assert_unpack_refused(d, p, r"the unpacked image took more than max_image_bytes \(33554432 bytes\)")

    def test_links_inside_a_layout_are_refused(self):
        """A layout's files are its own: a link to a host file is never
        followed, and nothing of that file shows in the error."""
        secret = os.path.join(self.tmp, "host-secret")
        with open(secret, "w") as f:
            f.write("hunter2 is the password")
        root = self.plugins_root("links")
        for name, target in (("l_index", "index.json"), ("l_blob", None)):
            p = self.image_plugin(root, "i_echo", name, name, 'command: ["/bin/testkit", "echo"]\n')
            layout = os.path.join(p, "image")
            rel = target or os.path.join("blobs", "sha256", index_digest(layout)[len("sha256:"):])
            os.unlink(os.path.join(layout, rel))
            os.symlink(secret, os.path.join(layout, rel))
        d = Daemon("ImageLinks", plugins=root).start()
        self.addCleanup(d.stop)
        broken = {b["path"]: b["error"] for b in d.req("GET", "/v1/algorithms").body["broken"]}
        for name in ("l_index", "l_blob"):
            err = broken.get(os.path.join(root, name, "plugin.yaml"), "")
            self.assertIn("symbolic link", err, broken)
            self.assertNotIn("hunter", err)
        self.assertNotIn("hunter", json.dumps(d.req("GET", "/readyz").body))

    def test_a_repointed_image_link_is_taken(self):
        root = self.plugins_root("repoint")
        p = os.path.join(root, "i_link")
        os.makedirs(p)
        for v in ("v1", "v2"):
            shutil.copytree(os.path.join(self.tmp, "i_sandbox", "image"), os.path.join(p, v))
            umoci("config", "--image", os.path.join(p, v) + ":latest", "--config.env", "WHICH=" + v)
        os.symlink("v1", os.path.join(p, "image"))
        write_manifest(p, "i_link")
        d = Daemon("ImageRepoint", plugins=root).start()
        self.addCleanup(d.stop)
        self.assertIn("WHICH=v1", d.run_job({"algorithm": "i_link", "parameters": {}})["result"]["env"])
        os.unlink(os.path.join(p, "image"))
        os.symlink("v2", os.path.join(p, "image"))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20 * slow_factor()
        while "WHICH=v2" not in d.run_job({"algorithm": "i_link", "parameters": {}})["result"]["env"]:
            self.assertLess(time.monotonic(), deadline, "the re-pointed link was not taken")
            time.sleep(0.2)

    def test_a_removed_unpacked_rootfs_is_unpacked_again(self):
        """The cache emptied by hand (space freed): a rescan unpacks the
        image again instead of keeping a rootfs that is gone, on which
        every job failed as a runtime error until a restart."""
        root = self.plugins_root("gone")
        shutil.copytree(os.path.join(self.tmp, "i_echo"), os.path.join(root, "i_echo"), symlinks=True)
        d = Daemon("ImageGone", plugins=root).start()
        self.addCleanup(d.stop)
        self.assertEqual(d.run_job({"algorithm": "i_echo", "parameters": {"n": 1}})["result"], {"n": 1})
        cache = os.path.join(d.state_dir, "images")
        for e in os.listdir(cache):
            shutil.rmtree(os.path.join(cache, e))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20 * slow_factor()
        while not os.path.isdir(os.path.join(cache, index_digest(os.path.join(root, "i_echo", "image"))[len("sha256:"):],
                                             "rootfs")):
            self.assertLess(time.monotonic(), deadline, "not unpacked again")
            time.sleep(0.1)
        job = d.run_job({"algorithm": "i_echo", "parameters": {"n": 2}})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"], {"n": 2})

    def test_an_image_no_plugin_uses_leaves_the_cache(self):
        """A tag moved to a new image: the old one's unpacked rootfs leaves
        the cache once no job runs from it (it stayed until a restart, a
        device updated weekly filling its disk), not while one does."""
        p, d, cache = self.sleep_plugin("retired")
        layout = os.path.join(p, "image")

        def retag(env):
            old = index_digest(layout)[len("sha256:"):]
            umoci("config", "--image", layout + ":latest", "--config.env", env)
            new = index_digest(layout)[len("sha256:"):]
            d.proc.send_signal(signal.SIGHUP)
            harness.wait_for(lambda: os.path.isdir(os.path.join(cache, new, "rootfs")), 20,
                             lambda: "the new image %s was not unpacked: %s" % (new, os.listdir(cache)))
            return old, new

        # A job runs from the image: it stays while the job runs.
        r = d.submit({"algorithm": "i_sleep", "parameters": {"seconds": 60}})
        self.assertEqual(r.status, 202, r)
        d.wait_status(r.body["id"], "running")
        first, second = retag("ROUND=2")
        self.assert_kept_while_running(d, cache, first, r.body["id"])
        self.assertTrue(d.wait_log(re.escape("image cache: sha256:%s removed (no plugin uses it any more)" % first), 5),
                        d.log_tail(20))
        # Nothing runs from it: it goes at the reload that drops it.
        old, third = retag("ROUND=3")
        self.assertEqual(old, second)
        harness.wait_for(lambda: sorted(os.listdir(cache)) == [third], 20,
                         lambda: "the cache holds %s, not only %s" % (os.listdir(cache), third))
        job = d.run_job({"algorithm": "i_sleep", "parameters": {"seconds": 0}})
        self.assertEqual(job["status"], "succeeded", job)

    def test_an_image_stays_under_a_job_of_an_earlier_manifest(self):
        """A plugin.yaml edited while a job runs (the image the same), then
        its image re-tagged: the job's manifest left the table at the edit,
        the image still in use then; the image stays while that job runs
        (it was removed under it: only the edited manifest was looked at)."""
        p, d, cache = self.sleep_plugin("edited")
        layout = os.path.join(p, "image")
        first = index_digest(layout)[len("sha256:"):]

        r = d.submit({"algorithm": "i_sleep", "parameters": {"seconds": 60}})
        self.assertEqual(r.status, 202, r)
        d.wait_status(r.body["id"], "running")
        # The manifest changes, the image does not.
        write_manifest(p, "i_sleep", 'command: ["/bin/testkit", "sleep"]\ntimeout_seconds: 100\n')
        d.proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: d.req("GET", "/v1/algorithms/i_sleep").body.get("timeout_seconds") == 100, 20,
                         lambda: "the edited manifest was not loaded")
        time.sleep(1)
        # Then the image is re-tagged.
        umoci("config", "--image", layout + ":latest", "--config.env", "ROUND=2")
        second = index_digest(layout)[len("sha256:"):]
        d.proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: os.path.isdir(os.path.join(cache, second, "rootfs")), 20,
                         lambda: "the new image %s was not unpacked: %s" % (second, os.listdir(cache)))
        self.assert_kept_while_running(d, cache, first, r.body["id"])

    def test_a_colon_in_the_plugin_directory(self):
        """umoci cuts --image at its first ':': a plugin directory named
        "algo:v2" (or a plugins_dir holding a ':') still unpacks, instead
        of being broken by "read oci-layout: invalid image detected"."""
        root = self.plugins_root("colon")
        self.image_plugin(root, "i_echo", "i_echo:2", "i_colon", 'command: ["/bin/testkit", "echo"]\n')
        d = Daemon("ImageColon", plugins=root).start()
        self.addCleanup(d.stop)
        self.assertEqual(d.req("GET", "/v1/algorithms").body["broken"], [])
        job = d.run_job({"algorithm": "i_colon", "parameters": {"n": 3}})
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["result"], {"n": 3})

    def test_a_failed_unpack_is_not_run_again_until_the_layout_changes(self):
        """A layer that umoci cannot unpack (cut short) makes the plugin
        broken once; the watch's retries of broken plugins (1 s doubling
        to 30 s, for ever) do not run umoci again while nothing in the
        layout changed (each run of a large image took minutes on the
        thread that handles signals); a repaired layer is taken."""
        root = self.plugins_root("badlayer")
        p = self.image_plugin(root, "i_echo", "i_badlayer", "i_badlayer", 'command: ["/bin/testkit", "echo"]\n')
        layout = os.path.join(p, "image")
        with open(os.path.join(layout, "blobs", "sha256", index_digest(layout)[len("sha256:"):])) as f:
            layer = os.path.join(layout, "blobs", "sha256", json.load(f)["layers"][0]["digest"][len("sha256:"):])
        with open(layer, "rb") as f:
            good = f.read()
        os.unlink(layer)
        with open(layer, "wb") as f:
            f.write(good[:len(good) // 2])
        time.sleep(1.2)   # settled before the start: the start takes what is there
        d = Daemon("ImageBadLayer", plugins=root).start()
        self.addCleanup(d.stop)
        yaml = os.path.join(p, "plugin.yaml")

        def unpacks():
            with open(d.log_path) as f:
                return sum(1 for l in f if "plugins: unpacking" in l and yaml in l)

        broken = {b["path"]: b["error"] for b in d.req("GET", "/v1/algorithms").body["broken"]}
        self.assertRegex(broken.get(yaml, ""), r"plugin\.yaml:\d+: image: umoci unpack")
        self.assertEqual(unpacks(), 1)
        time.sleep(8)   # retries at 1, 2 and 4 s after the first
        broken = {b["path"]: b["error"] for b in d.req("GET", "/v1/algorithms").body["broken"]}
        self.assertIn("tried again once its layout changes, on SIGHUP, or in 10 min", broken.get(yaml, ""))
        self.assertEqual(unpacks(), 1, "umoci ran again on an unchanged layout")
        # Repaired: a new file in the layout, taken by the next retry.
        tmp = layer + ".new"
        with open(tmp, "wb") as f:
            f.write(good)
        os.rename(tmp, layer)
        deadline = time.monotonic() + 45 * slow_factor()
        while d.req("GET", "/v1/algorithms/i_badlayer").status != 200:
            self.assertLess(time.monotonic(), deadline, "the repaired layer was not taken")
            time.sleep(0.2)
        self.assertEqual(d.run_job({"algorithm": "i_badlayer", "parameters": {"n": 4}})["result"], {"n": 4})

    def test_systemd_is_told_of_an_unpack(self):
        """Under systemd an unpack extends the start's time limit and says
        so (EXTEND_TIMEOUT_USEC, STATUS), before READY=1."""
        from test_systemd import NotifySocket
        root = self.plugins_root("notify")
        shutil.copytree(os.path.join(self.tmp, "i_echo"), os.path.join(root, "i_echo"), symlinks=True)
        ns = NotifySocket(self)
        d = Daemon("ImageNotify", plugins=root, env={"NOTIFY_SOCKET": ns.path})
        self.addCleanup(d.stop)
        d.start(timeout=30 * slow_factor())
        self.assertTrue(ns.wait_for("READY=1", 20 * slow_factor()), ns.messages)
        lines = [l for m in ns.messages for l in m.split("\n")]
        ext = [i for i, l in enumerate(lines) if l.startswith("EXTEND_TIMEOUT_USEC=")]
        self.assertTrue(ext, lines)
        self.assertLess(ext[0], lines.index("READY=1"))
        st = [i for i, l in enumerate(lines) if l.startswith("STATUS=unpacking the image of ") and "i_echo" in l]
        self.assertTrue(st, lines)
        # And the status says so no more once it serves.
        self.assertTrue([l for l in lines[lines.index("READY=1"):] if l.startswith("STATUS=serving: ")], lines)
        self.assertEqual(d.run_job({"algorithm": "i_echo", "parameters": {"n": 1}})["result"], {"n": 1})

    def test_z_a_new_image_under_the_tag_is_taken(self):
        layout = os.path.join(self.tmp, "i_sandbox", "image")
        old = index_digest(layout)
        umoci("config", "--image", layout + ":latest", "--config.env", "GREETING=again")
        new = index_digest(layout)
        self.assertNotEqual(old, new)
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20 * slow_factor()
        while True:
            env = self.d.run_job({"algorithm": "i_sandbox", "parameters": {}})["result"]["env"]
            if "GREETING=again" in env:
                break
            self.assertLess(time.monotonic(), deadline, "the new image was not taken: %s" % env)
            time.sleep(0.2)
        self.assertTrue(os.path.isdir(os.path.join(self.cache(), new[len("sha256:"):], "rootfs")))


if __name__ == "__main__":
    unittest.main()
