"""The deployment files stay in step with s3seal: the documented example
config (deploy/s3seal.example.yaml, every key, the buckets section enabled)
is accepted and served with, the systemd unit runs `serve -c`, and the shell
scripts parse."""

import glob
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

from harness import env, free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class DeployTest(unittest.TestCase):
    def test_example_config_is_accepted(self):
        d = tempfile.mkdtemp(prefix="s3seal-example-")
        for name, content in (("backend.secret", b"backend-secret"),
                              ("alice.secret", b"alice-secret"),
                              ("master.key", os.urandom(32))):
            with open(os.path.join(d, name), "wb") as f:
                f.write(content)
            os.chmod(os.path.join(d, name), 0o600)
        with open(os.path.join(ROOT, "deploy", "s3seal.example.yaml")) as f:
            text = f.read()
        port = free_port()
        subst = {"/etc/s3seal/backend.secret": f"{d}/backend.secret",
                 "/etc/s3seal/alice.secret": f"{d}/alice.secret",
                 "/etc/s3seal/master.key": f"{d}/master.key",
                 "/var/lib/s3seal/keystore.db": f"{d}/keystore.db",
                 "/var/log/s3seal/audit.jsonl": f"{d}/audit.jsonl",
                 "127.0.0.1:8080": f"127.0.0.1:{port}"}
        for a, b in subst.items():
            self.assertIn(a, text)
            text = text.replace(a, b)
        # The commented-out buckets section is valid too: its lines, from
        # "# buckets:" to the next blank line, uncommented (the other
        # commented-out sections, such as tls:, need files of their own).
        text = re.sub(r"^# buckets:.*?(?=\n\n)",
                      lambda m: re.sub(r"^#(  +\S)", r"\1",
                                       m.group(0).replace("# buckets:", "buckets:", 1),
                                       flags=re.M),
                      text, count=1, flags=re.M | re.S)
        self.assertIn("\nbuckets:", text)
        self.assertIn("\n   docs:\n     default_encryption: aws:kms", text)
        config = os.path.join(d, "s3seal.yaml")
        with open(config, "w") as f:
            f.write(text)
        s3seal = env("S3SEAL_BIN")
        subprocess.run([s3seal, "-c", config, "keystore", "init"], check=True,
                       capture_output=True, timeout=60)
        log_path = os.path.join(d, "s3seal.log")
        with open(log_path, "wb") as log:
            p = subprocess.Popen([s3seal, "serve", "-c", config], stdout=log,
                                 stderr=subprocess.STDOUT)
            try:
                deadline = time.time() + 30
                while time.time() < deadline and p.poll() is None:
                    with open(log_path, "rb") as f:
                        if b"listening on 127.0.0.1:%d" % port in f.read():
                            break
                    time.sleep(0.05)
                with open(log_path, "rb") as f:
                    out = f.read().decode("utf-8", "replace")
                self.assertIsNone(p.poll(), out)
                self.assertIn(f"listening on 127.0.0.1:{port}", out)
            finally:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                rc = p.wait(timeout=60)
        self.assertEqual(rc, 0)
        with open(log_path, "rb") as f:
            out = f.read().decode("utf-8", "replace")
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            self.assertNotIn(marker, out)

    def test_systemd_unit(self):
        with open(os.path.join(ROOT, "deploy", "s3seal.service")) as f:
            unit = f.read()
        self.assertRegex(unit, r"(?m)^ExecStart=\S*/s3seal serve -c \S+\.yaml$")
        self.assertRegex(unit, r"(?m)^KillSignal=SIGTERM$")
        for section in ("[Unit]", "[Service]", "[Install]"):
            self.assertIn(section, unit)

    def test_scripts_parse(self):
        scripts = (glob.glob(os.path.join(ROOT, "deploy", "*.sh")) +
                   [os.path.join(ROOT, "tests", "run.sh"), os.path.join(ROOT, ".ci", "run")])
        self.assertGreaterEqual(len(scripts), 6)
        for path in scripts:
            self.assertTrue(os.access(path, os.X_OK), f"{path} is not executable")
            r = subprocess.run(["bash", "-n", path], capture_output=True)
            self.assertEqual(r.returncode, 0, f"{path}: {r.stderr.decode()}")


if __name__ == "__main__":
    unittest.main()
