"""The Debian package: `cpack -G DEB` in the build directory of S3SEAL_BIN
makes s3seal_<version>_<arch>.deb, dpkg installs it (root only), and the
installed /usr/bin/s3seal answers `version` and `help`, its man pages
render, the s3seal system user and /var/lib/s3seal exist, and `serve` from
it encrypts a PUT in front of the real backend and reads it back. The
package is purged at the end, and a user and state directory it made are
removed, so the test can run again on the same machine."""

import glob
import grp
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import unittest
from unittest import mock

from harness import S3Seal, backend_client, empty_and_delete, env, new_bucket_name

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = "/usr/bin/s3seal"


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(s3seal VERSION (\S+)", f.read()).group(1)


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def installed():
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", "s3seal"],
                       capture_output=True, text=True)
    return r.returncode == 0 and "installed" in r.stdout.split()


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("installing a .deb with dpkg needs root")
        for tool in ("dpkg", "cpack", "dpkg-deb"):
            if not shutil.which(tool):
                raise unittest.SkipTest(f"{tool} is not installed")
        build = os.path.dirname(os.path.abspath(env("S3SEAL_BIN")))
        cpack_config = os.path.join(build, "CPackConfig.cmake")
        if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
            raise unittest.SkipTest(f"{build} is not a CMake build directory of s3seal")
        if not os.path.exists(cpack_config):
            raise AssertionError(f"{build} has no CPack configuration (cmake/S3sPackage.cmake)")
        if installed():
            raise unittest.SkipTest("an s3seal package is already installed here; the test "
                                    "would replace and then remove it")
        cls.out = tempfile.mkdtemp(prefix="s3seal-deb-")
        # The package of the existing build: cpack's install step finds it
        # up to date.
        r = subprocess.run(["cpack", "-G", "DEB", "--config", cpack_config, "-B", cls.out],
                           cwd=build, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise AssertionError("cpack failed:\n" + r.stdout + r.stderr)
        debs = glob.glob(os.path.join(cls.out, "s3seal_*.deb"))
        if len(debs) != 1:
            raise AssertionError(f"cpack made {debs}, not one s3seal_*.deb:\n{r.stdout}")
        cls.deb = debs[0]
        cls.had_user = user_exists("s3seal")
        cls.had_group = group_exists("s3seal")
        cls.had_state = os.path.exists("/var/lib/s3seal")
        r = subprocess.run(["dpkg", "-i", cls.deb], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            cls.clean_up()
            raise AssertionError("dpkg -i failed:\n" + r.stdout + r.stderr)

    @classmethod
    def tearDownClass(cls):
        cls.clean_up()

    @classmethod
    def clean_up(cls):
        r = subprocess.run(["dpkg", "-P", "s3seal"], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, "dpkg -P s3seal failed:\n" + r.stdout + r.stderr
        # What the package made and leaves on purge (a system user, a state
        # directory that might hold a keystore): this machine had neither.
        if not cls.had_state and os.path.isdir("/var/lib/s3seal"):
            shutil.rmtree("/var/lib/s3seal")
        if not cls.had_user and user_exists("s3seal"):
            subprocess.run(["userdel", "s3seal"], check=True)
        if not cls.had_group and group_exists("s3seal"):
            subprocess.run(["groupdel", "s3seal"], check=True)
        shutil.rmtree(cls.out, ignore_errors=True)

    def test_file_name_and_metadata(self):
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                              text=True, check=True).stdout.strip()
        self.assertEqual(os.path.basename(self.deb), f"s3seal_{project_version()}_{arch}.deb")
        depends = subprocess.run(["dpkg-deb", "-f", self.deb, "Depends"], capture_output=True,
                                 text=True, check=True).stdout
        for lib in ("libuv1", "libcurl4", "libssl3", "libyaml-0-2", "libjson-c5", "libxml2",
                    "libsqlite3-0", "libpq5", "libsystemd0", "adduser"):
            self.assertRegex(depends, rf"(^|[ ,]){re.escape(lib)}([ ,(]|$)")
        self.assertTrue(installed())

    def test_installed_files(self):
        for path in (BIN, "/lib/systemd/system/s3seal.service",
                     "/etc/s3seal/s3seal.example.yaml", "/usr/share/man/man1/s3seal.1.gz",
                     "/usr/share/man/man5/s3seal.yaml.5.gz", "/usr/share/doc/s3seal/README.md"):
            self.assertTrue(os.path.isfile(path), path)
        self.assertTrue(os.access(BIN, os.X_OK))
        with open("/lib/systemd/system/s3seal.service") as f:
            unit = f.read()
        self.assertRegex(unit, r"(?m)^ExecStart=/usr/bin/s3seal serve -c /etc/s3seal/s3seal\.yaml$")
        with open("/etc/s3seal/s3seal.example.yaml") as f, \
                open(os.path.join(ROOT, "deploy", "s3seal.example.yaml")) as g:
            self.assertEqual(f.read(), g.read())

    def test_man_pages_render(self):
        for page, title in (("/usr/share/man/man1/s3seal.1.gz", "S3SEAL(1)"),
                            ("/usr/share/man/man5/s3seal.yaml.5.gz", "S3SEAL.YAML(5)")):
            if shutil.which("man"):
                r = subprocess.run(["man", "-l", page], capture_output=True, text=True,
                                   env=dict(os.environ, MANPAGER="cat", PAGER="cat",
                                            MANWIDTH="80"))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr, "")
                self.assertIn(title, r.stdout)
                self.assertIn("NAME", r.stdout)
            if shutil.which("groff"):
                src = subprocess.run(["gzip", "-dc", page], capture_output=True,
                                     check=True).stdout
                r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=src,
                                   capture_output=True)
                self.assertEqual(r.returncode, 0)
                self.assertEqual(r.stderr.decode(), "", page)

    def test_system_user_and_state_directory(self):
        u = pwd.getpwnam("s3seal")
        self.assertLess(u.pw_uid, 1000)  # a system user
        self.assertEqual(u.pw_dir, "/var/lib/s3seal")
        self.assertIn(u.pw_shell, ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false"))
        st = os.stat("/var/lib/s3seal")
        if not self.had_state:
            self.assertEqual(st.st_uid, u.pw_uid)
            self.assertEqual(st.st_gid, grp.getgrnam("s3seal").gr_gid)
            self.assertEqual(st.st_mode & 0o7777, 0o750)

    def test_version_and_help(self):
        r = subprocess.run([BIN, "version"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, f"s3seal {project_version()}\n")
        r = subprocess.run([BIN, "help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        for cmd in ("serve", "keystore", "keys", "root-key", "rewrap", "migrate", "catalog",
                    "presign", "decrypt", "audit", "policy", "version"):
            self.assertIn(f"  {cmd}", r.stdout)
        r = subprocess.run([BIN, "keys", "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("usage: s3seal keys", r.stdout)
        # No config is read for help, even where the command needs one.
        r = subprocess.run([BIN, "-c", "/nonexistent.yaml", "rewrap", "-h"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("usage: s3seal [-c FILE] rewrap", r.stdout)
        r = subprocess.run([BIN, "no-such-command"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)

    def test_serve_from_the_package(self):
        with mock.patch.dict(os.environ, {"S3SEAL_BIN": BIN}):
            s = S3Seal()
        self.assertEqual(s.bin, BIN)
        s.start()
        c = s.client()
        bucket = new_bucket_name("pkg")
        try:
            c.create_bucket(Bucket=bucket)
            data = os.urandom(100_000)
            r = c.put_object(Bucket=bucket, Key="obj", Body=data,
                             ServerSideEncryption="AES256")
            self.assertEqual(r["ServerSideEncryption"], "AES256")
            self.assertEqual(c.get_object(Bucket=bucket, Key="obj")["Body"].read(), data)
            raw = backend_client().get_object(Bucket=bucket, Key="obj")
            body = raw["Body"].read()
            self.assertNotEqual(body, data)
            self.assertNotIn(data[:32], body)
            self.assertGreater(len(body), len(data))
            self.assertIn("s3seal-dek", raw["Metadata"])
        finally:
            empty_and_delete(c, bucket)
            s.stop(self)


if __name__ == "__main__":
    unittest.main()
