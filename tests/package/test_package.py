#!/usr/bin/python3
"""The Debian package and `make install`, checked from the outside.

Run from anywhere, as root (the package holds root-owned plugin trees, and
one test mounts an overlay in a private mount namespace):

    /usr/bin/python3 tests/package/test_package.py [--filter PATTERN]

`make deb` runs once (it reuses build/, so after `make` it only packages);
then the tests read the .deb with dpkg-deb, run lintian on it, unpack it
with dpkg -x and run its /usr/bin/edgecd in a root made of the package's
/usr and /etc laid over the host's, and run `make install` into scratch
DESTDIRs for PREFIX=/usr and PREFIX=/usr/local.  One line per test, then
"N passed, N failed"; exit status 1 on any failure.
"""

import fnmatch
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def makefile_version():
    with open(os.path.join(REPO, "Makefile")) as f:
        m = re.search(r"^VERSION\s*:=\s*(\S+)", f.read(), re.M)
    return m.group(1)


VERSION = makefile_version()
ARCH = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                      check=True).stdout.strip()
DEB_REL = "build/edgecd_%s_%s.deb" % (VERSION, ARCH)
DEB = os.path.join(REPO, DEB_REL)
PLUGINS_BUILT = os.path.join(REPO, "build", "plugins")

_built = {}


def build_deb():
    """`make deb`, once for the whole run; its output, or the failure again."""
    if "out" not in _built:
        if os.path.exists(DEB):
            os.unlink(DEB)      # the test must see this run's package
        t0 = time.monotonic()
        r = subprocess.run(["make", "-s", "deb"], cwd=REPO, capture_output=True, text=True,
                           timeout=1800)
        _built.update(rc=r.returncode, out=r.stdout, err=r.stderr, secs=time.monotonic() - t0)
    if _built["rc"] != 0:
        raise AssertionError("make deb failed (exit %d):\n%s\n%s"
                             % (_built["rc"], _built["out"][-3000:], _built["err"][-3000:]))
    return _built


def run(*argv, **kw):
    kw.setdefault("timeout", 600)
    return subprocess.run(list(argv), capture_output=True, text=True, **kw)


def deb_listing():
    """dpkg-deb -c as {path: (mode string, owner/group, link target)}."""
    r = run("dpkg-deb", "-c", DEB)
    assert r.returncode == 0, r.stderr
    files = {}
    for line in r.stdout.splitlines():
        # drwxr-xr-x root/root 0 2026-12-02 07:53 ./usr/bin/
        parts = line.split(None, 5)
        name, _, target = parts[5].partition(" -> ")
        files[name.rstrip("/").lstrip(".") or "/"] = (parts[0], parts[1], target)
    return files


def unit_commands(path):
    """The binaries a unit's ExecStart=/ExecStartPre= lines run."""
    cmds = []
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*(ExecStart|ExecStartPre)=([-@:+!]*)(\S+)", line)
            if m:
                cmds.append((m.group(1), m.group(3)))
    return cmds


class Package(unittest.TestCase):
    """`make deb` and what the .deb holds."""

    def test_make_deb_builds_and_prints_the_path(self):
        b = build_deb()
        lines = b["out"].strip().splitlines()
        self.assertTrue(lines, "make deb printed nothing")
        self.assertEqual(lines[-1], DEB_REL, b["out"])
        self.assertTrue(os.path.isfile(DEB), DEB)
        r = run("dpkg-deb", "--info", DEB)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Nothing left beside it: the scratch tree goes once the .deb is out.
        self.assertFalse(os.path.exists(os.path.join(REPO, "build", "deb", "edgecd-" + VERSION)))

    def test_control_fields(self):
        build_deb()
        def field(name):
            r = run("dpkg-deb", "-f", DEB, name)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.strip()
        self.assertEqual(field("Package"), "edgecd")
        self.assertEqual(field("Version"), VERSION)
        self.assertEqual(field("Architecture"), ARCH)
        depends = [d.strip() for d in field("Depends").split(",")]
        self.assertIn("runc | crun", depends)
        # ${shlibs:Depends} was filled in: the daemon's and edgecdctl's libraries.
        for lib in ("libc6", "libmicrohttpd12", "libjansson4", "libyaml-0-2", "libseccomp2",
                    "libsystemd0", "libsqlite3-0", "libcurl4"):
            self.assertTrue(any(d.split()[0] == lib for d in depends), (lib, depends))
        self.assertNotIn("${", field("Depends"))
        self.assertEqual(field("Recommends"), "umoci")

    def test_every_required_file_is_in_the_package(self):
        build_deb()
        files = deb_listing()
        want = {
            "/usr/bin/edgecd": "-rwxr-xr-x",
            "/usr/bin/edgecdctl": "-rwxr-xr-x",
            "/usr/share/man/man1/edgecdctl.1.gz": "-rw-r--r--",
            "/usr/share/man/man8/edgecd.8.gz": "-rw-r--r--",
            "/lib/systemd/system/edgecd.service": "-rw-r--r--",
            "/lib/systemd/system/edgecd.socket": "-rw-r--r--",
            "/usr/lib/tmpfiles.d/edgecd.conf": "-rw-r--r--",
            "/etc/edgecd/edgecd.yaml": "-rw-r--r--",
            "/usr/share/doc/edgecd/copyright": "-rw-r--r--",
            "/usr/share/doc/edgecd/changelog.gz": "-rw-r--r--",
            "/usr/share/doc/edgecd/README.md": "-rw-r--r--",
        }
        for t in os.listdir(os.path.join(REPO, "oci-templates")):
            want["/usr/share/edgecd/oci-templates/" + t] = "-rw-r--r--"
        for path, mode in want.items():
            with self.subTest(path=path):
                self.assertIn(path, files)
                self.assertEqual(files[path][0], mode, path)
                self.assertEqual(files[path][1], "root/root", path)
        # Every file of every example plugin, with the mode it was built
        # with (rootfs/tmp stays 1777; binaries 0755, manifests 0644).
        plugins = sorted(os.listdir(PLUGINS_BUILT))
        self.assertGreaterEqual(len(plugins), 1)
        n = 0
        for top, dirs, names in os.walk(PLUGINS_BUILT):
            for name in dirs + names:
                p = os.path.join(top, name)
                rel = "/usr/lib/edgecd/plugins/" + os.path.relpath(p, PLUGINS_BUILT)
                with self.subTest(path=rel):
                    self.assertIn(rel, files)
                    st = os.lstat(p)
                    self.assertEqual(files[rel][0], stat.filemode(st.st_mode), rel)
                n += 1
        self.assertEqual(files["/usr/lib/edgecd/plugins/sort/rootfs/tmp"][0], "drwxrwxrwt")
        # Nothing but these: no debug files, no build leftovers.
        self.assertFalse([p for p in files if p.startswith("/usr/lib/debug")])
        self.assertFalse([p for p in files if "/debian/" in p or p.endswith(".tmp")])

    def test_conffile_and_maintainer_scripts(self):
        build_deb()
        tmp = tempfile.mkdtemp(prefix="edgecd-pkg-ctrl-")
        self.addCleanup(shutil.rmtree, tmp, True)
        r = run("dpkg-deb", "--control", DEB, tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(tmp, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/edgecd/edgecd.yaml"])
        with open(os.path.join(tmp, "postinst")) as f:
            postinst = f.read()
        # dh_installtmpfiles: the state dir made at install, not only at boot.
        self.assertRegex(postinst, r"systemd-tmpfiles [^\n]*--create edgecd\.conf")
        # dh_installsystemd: the service enabled and started; the socket
        # neither (it would take the service's address), only kept enabled
        # on upgrades where the administrator had enabled it.
        self.assertRegex(postinst, r"deb-systemd-helper enable 'edgecd\.service'")
        self.assertRegex(postinst, r"deb-systemd-invoke \$_dh_action 'edgecd\.service'")
        self.assertRegex(postinst, r"if deb-systemd-helper debian-installed 'edgecd\.socket'; then\n"
                                   r"(.*\n)*?\t\tif deb-systemd-helper --quiet was-enabled "
                                   r"'edgecd\.socket'; then\n(.*\n)*?\t\t\tdeb-systemd-helper "
                                   r"enable 'edgecd\.socket'")
        self.assertNotRegex(postinst, r"deb-systemd-invoke [^\n]*edgecd\.socket")
        # An upgrade leaves a started socket up (it was stopped in the
        # preinst and never started again: socket activation listened
        # nowhere after an upgrade); a remove stops it, then the service.
        self.assertFalse(os.path.exists(os.path.join(tmp, "preinst")) and
                         "edgecd.socket" in open(os.path.join(tmp, "preinst")).read())
        with open(os.path.join(tmp, "prerm")) as f:
            prerm = f.read()
        self.assertRegex(prerm, r'"\$1" = remove \][^\n]*\n\s*deb-systemd-invoke stop edgecd\.socket(.*\n)*'
                                r"\s*deb-systemd-invoke stop 'edgecd\.service'")
        with open(os.path.join(tmp, "postrm")) as f:
            postrm = f.read()
        self.assertIn("deb-systemd-helper purge 'edgecd.service'", postrm)
        # Purge takes the state (job database, logs) with it, never more
        # (test_purge_takes_the_state_and_leftover_mounts runs it).
        self.assertRegex(postrm, r'if \[ "\$1" = "purge" \]; then\n\s*state="\$\{DPKG_ROOT:-\}/var/lib/edgecd"\n')
        self.assertIn('rm -rf --one-file-system "$state"', postrm)

    def test_purge_takes_the_state_and_leftover_mounts(self):
        """The packaged postrm, run for a purge under DPKG_ROOT in a mount
        namespace of its own: a killed daemon's tmpfs mounts below the
        state directory (its workspaces, a run's /output) are taken off
        and the state goes, where `rm --one-file-system` alone stopped at
        them and failed the purge; a state directory that is a
        filesystem of its own is emptied and left mounted.  The systemd
        helpers it calls are stubs on PATH."""
        build_deb()
        tmp = tempfile.mkdtemp(prefix="edgecd-pkg-purge-")
        self.addCleanup(shutil.rmtree, tmp, True)
        ctrl, stubs = os.path.join(tmp, "ctrl"), os.path.join(tmp, "stubs")
        os.mkdir(stubs)
        r = run("dpkg-deb", "--control", DEB, ctrl)
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ("deb-systemd-helper", "deb-systemd-invoke", "systemctl"):
            with open(os.path.join(stubs, name), "w") as f:
                f.write("#!/bin/sh\nexit 0\n")
            os.chmod(os.path.join(stubs, name), 0o755)
        script = r"""
set -e
mount --make-rprivate /
for case in plain own_fs; do
    root="$TMP/root-$case"; state="$root/var/lib/edgecd"
    mkdir -p "$state/logs" "$state/workspaces"
    if [ $case = own_fs ]; then mount -t tmpfs disk "$state"; mkdir -p "$state/logs" "$state/workspaces"; fi
    echo db > "$state/edgecd.db"; echo log > "$state/logs/a-1.log"
    mount -t tmpfs edgecd-workspaces "$state/workspaces"
    mkdir -p "$state/workspaces/r-1/output"
    mount -t tmpfs tmpfs "$state/workspaces/r-1/output"
    echo '{}' > "$state/workspaces/r-1/output/result.json"
    DPKG_ROOT="$root" PATH="$STUBS:$PATH" sh "$CTRL/postrm" purge
    if [ $case = plain ]; then
        [ ! -e "$state" ] || { echo "plain: $state is still there"; exit 1; }
    else
        mountpoint -q "$state" || { echo "own_fs: $state is no longer mounted"; exit 1; }
        [ -z "$(ls -A "$state")" ] || { echo "own_fs: $state is not empty: $(ls -A "$state")"; exit 1; }
        umount "$state"
    fi
    ! grep -q " $root" /proc/self/mountinfo || { echo "$case: mounts left under $root"; exit 1; }
    echo "$case ok"
done
"""
        env = dict(os.environ, TMP=tmp, STUBS=stubs, CTRL=ctrl)
        r = run("unshare", "-m", "sh", "-c", script, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, "postrm purge: %s\n%s" % (r.stdout, r.stderr))
        self.assertEqual(r.stdout.split(), ["plain", "ok", "own_fs", "ok"], r.stdout)

    def test_lintian_passes(self):
        build_deb()
        # As nobody (lintian needs no root, and says so when it has it), on
        # a copy nobody can read wherever the source tree is.
        tmp = tempfile.mkdtemp(prefix="edgecd-pkg-lintian-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        deb = shutil.copy(DEB, tmp)
        os.chmod(deb, 0o644)
        r = run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "env", "HOME=/nonexistent", "lintian", "--fail-on", "error,warning",
                "--display-info", deb, timeout=900, cwd=tmp)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        tags = [l for l in r.stdout.splitlines() if re.match(r"[EWIXPN]: ", l)]
        self.assertFalse([l for l in tags if l[0] in "EW"], r.stdout)
        # Every override still matches something.
        self.assertFalse([l for l in tags if "unused-override" in l or "mismatched-override" in l],
                         r.stdout)
        # And the overrides are only the justified ones, about the plugins'
        # root file systems.
        with open(os.path.join(REPO, "packaging/debian/lintian-overrides")) as f:
            rules = [l.split() for l in f if l.strip() and not l.startswith("#")]
        self.assertEqual(sorted(r[1] for r in rules), ["non-standard-dir-perm",
                                                       "statically-linked-binary",
                                                       "uses-dpkg-database-directly"])
        for r_ in rules:
            self.assertTrue(r_[-1].startswith("[usr/lib/edgecd/plugins/"), r_)

    def test_units_name_the_packaged_binary(self):
        build_deb()
        tree = tempfile.mkdtemp(prefix="edgecd-pkg-units-")
        self.addCleanup(shutil.rmtree, tree, True)
        r = run("dpkg", "-x", DEB, tree)
        self.assertEqual(r.returncode, 0, r.stderr)
        cmds = unit_commands(os.path.join(tree, "lib/systemd/system/edgecd.service"))
        self.assertEqual({c[0] for c in cmds}, {"ExecStart", "ExecStartPre"})
        for what, binary in cmds:
            self.assertEqual(binary, "/usr/bin/edgecd", what)
            self.assertTrue(os.access(tree + binary, os.X_OK), binary)
        with open(os.path.join(tree, "lib/systemd/system/edgecd.service")) as f:
            # No template variable left (systemd's own @groups may be there).
            self.assertNotRegex(f.read().split("[Unit]", 1)[1], r"@[A-Z_]+@")

    def test_tmpfiles_entry_makes_the_state_dir(self):
        build_deb()
        tree = tempfile.mkdtemp(prefix="edgecd-pkg-tmpfiles-")
        self.addCleanup(shutil.rmtree, tree, True)
        r = run("dpkg", "-x", DEB, tree)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(tree, "var/lib/edgecd")))
        r = run("systemd-tmpfiles", "--create", "--root=" + tree, "edgecd.conf")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        st = os.stat(os.path.join(tree, "var/lib/edgecd"))
        self.assertEqual((oct(st.st_mode & 0o7777), st.st_uid, st.st_gid), (oct(0o700), 0, 0))

    def test_unpacked_daemon_runs_with_no_flags(self):
        """The package's /usr and /etc laid over the host's (read-only
        overlays in a private mount namespace, under a tmpfs root), so that
        /usr/bin/edgecd --check-config with no flags at all reads the shipped
        /etc/edgecd/edgecd.yaml and finds the packaged plugins and templates
        where the embedded defaults say."""
        build_deb()
        tmp = tempfile.mkdtemp(prefix="edgecd-pkg-root-")
        self.addCleanup(shutil.rmtree, tmp, True)
        tree = os.path.join(tmp, "tree")
        r = run("dpkg", "-x", DEB, tree)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(REPO, "config", "edgecd.yaml"), "rb") as a, \
                open(os.path.join(tree, "etc/edgecd/edgecd.yaml"), "rb") as b:
            self.assertEqual(a.read(), b.read(), "the shipped config is config/edgecd.yaml")
        os.mkdir(os.path.join(tmp, "root"))
        script = r'''
set -e
T=$1; M=$T/root
mount -t tmpfs -o mode=0755 tmpfs "$M"
for d in usr etc; do
        mkdir "$M/$d"
        mount -t overlay overlay -o "ro,lowerdir=$T/tree/$d:/$d" "$M/$d"
done
for d in bin sbin lib lib32 lib64 libx32; do
        if [ -L "/$d" ]; then cp -P "/$d" "$M/$d"
        elif [ -d "/$d" ]; then mkdir "$M/$d"; mount --bind "/$d" "$M/$d"; fi
done
mkdir "$M/proc" "$M/dev" "$M/var" "$M/tmp" "$M/run"
mount -t proc proc "$M/proc"
mount --rbind /dev "$M/dev"
chroot "$M" /usr/bin/edgecd --version
exec chroot "$M" /usr/bin/edgecd --check-config
'''
        r = run("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", tmp)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("edgecd %s\n" % VERSION, r.stdout)
        n = len(os.listdir(PLUGINS_BUILT))
        self.assertIn("plugins: %d loaded, 0 broken, from /usr/lib/edgecd/plugins\n" % n, r.stdout)
        self.assertTrue(r.stdout.endswith("configuration OK\n"), r.stdout + r.stderr)


class MakeInstall(unittest.TestCase):
    """`make install` for both usual prefixes: the unit names the binary
    that was installed."""

    def install(self, prefix):
        dest = tempfile.mkdtemp(prefix="edgecd-pkg-install-")
        self.addCleanup(shutil.rmtree, dest, True)
        r = run("make", "-s", "install", "DESTDIR=" + dest, "PREFIX=" + prefix, cwd=REPO)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return dest

    def check_prefix(self, prefix):
        dest = self.install(prefix)
        unit = os.path.join(dest, "etc/systemd/system/edgecd.service")
        cmds = unit_commands(unit)
        self.assertEqual(sorted(c[0] for c in cmds), ["ExecStart", "ExecStartPre"], cmds)
        for what, binary in cmds:
            self.assertEqual(binary, prefix + "/bin/edgecd", what)
            self.assertTrue(os.access(dest + binary, os.X_OK), (what, binary))
        for path in (prefix + "/bin/edgecdctl", prefix + "/share/man/man1/edgecdctl.1",
                     prefix + "/share/man/man8/edgecd.8", "/etc/systemd/system/edgecd.socket",
                     "/etc/tmpfiles.d/edgecd.conf", "/etc/edgecd/edgecd.yaml",
                     "/usr/share/edgecd/oci-templates/default.json",
                     "/usr/lib/edgecd/plugins/sort/plugin.yaml"):
            self.assertTrue(os.path.exists(dest + path), path)
        other = "/usr/local" if prefix == "/usr" else "/usr"
        self.assertFalse(os.path.exists(dest + other + "/bin/edgecd"))

    def test_prefix_usr(self):
        self.check_prefix("/usr")

    def test_prefix_usr_local(self):
        self.check_prefix("/usr/local")

    def test_unit_dir_and_tmpfiles_dir_as_the_package_sets_them(self):
        dest = tempfile.mkdtemp(prefix="edgecd-pkg-install-")
        self.addCleanup(shutil.rmtree, dest, True)
        r = run("make", "-s", "install", "DESTDIR=" + dest, "PREFIX=/opt/edgecd",
                "UNITDIR=/lib/systemd/system", "TMPFILESDIR=/usr/lib/tmpfiles.d", cwd=REPO)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        cmds = unit_commands(os.path.join(dest, "lib/systemd/system/edgecd.service"))
        self.assertEqual({b for _, b in cmds}, {"/opt/edgecd/bin/edgecd"})
        self.assertTrue(os.path.exists(os.path.join(dest, "usr/lib/tmpfiles.d/edgecd.conf")))
        self.assertFalse(os.path.exists(os.path.join(dest, "etc/systemd")))


# --- runner: one line per test, then "N passed, N failed" -------------------

def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


class LineResult(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.passed = self.failed = 0
        self.details = []
        self.bad = False

    def startTest(self, test):
        super().startTest(test)
        self.bad = False
        self.t0 = time.monotonic()

    def _fail(self, kind, test, err):
        self.bad = True
        self.details.append("%s: %s\n%s" % (kind, test, self._exc_info_to_string(err, test)))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail("FAIL", test, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._fail("ERROR", test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._fail("FAIL" if issubclass(err[0], test.failureException) else "ERROR",
                       subtest, err)

    def stopTest(self, test):
        super().stopTest(test)
        if self.bad:
            self.failed += 1
        else:
            self.passed += 1
        print("%-5s %s %.2fs" % ("FAIL" if self.bad else "ok", test.id(),
                                 time.monotonic() - self.t0), flush=True)


def main():
    patterns = []
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--filter" and args:
            patterns.append(args.pop(0))
        else:
            print("usage: test_package.py [--filter PATTERN]...")
            print("0 passed, 1 failed")
            return 2
    if os.geteuid() != 0:
        print("test_package.py: must run as root")
        print("0 passed, 1 failed")
        return 1
    suite = unittest.TestLoader().loadTestsFromModule(sys.modules[__name__])
    tests = [t for t in iter_tests(suite)
             if not patterns or any(p in t.id() or fnmatch.fnmatchcase(t.id(), p)
                                    for p in patterns)]
    if not tests:
        print("test_package.py: no test matches the filter")
        print("0 passed, 1 failed")
        return 1
    result = LineResult()
    unittest.TestSuite(tests).run(result)
    if result.details:
        print("\n==================== failures ====================")
        for d in result.details:
            print(d)
            print("-" * 50)
    if "secs" in _built:
        print("(make deb: %.0f s)" % _built["secs"])
    print("%d passed, %d failed" % (result.passed, result.failed))
    return 1 if result.failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        print("0 passed, 1 failed")
        sys.exit(1)
