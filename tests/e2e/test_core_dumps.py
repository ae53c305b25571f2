"""Secrets stay out of core dumps: a running `s3seal serve` is not dumpable
(prctl PR_SET_DUMPABLE 0) and its core size limit is 0, unless the config
sets debug_core_dumps: true.

Whether a process is dumpable cannot be asked from outside (PR_GET_DUMPABLE
answers for the caller only), and forcing a core file would mean changing
the system-wide core_pattern. What is observable and reliable: the kernel
gives the /proc/PID files of a process that is not dumpable to root
(task_dump_owner), and of a dumpable one to the process's own user. So
s3seal runs here as a user other than root: as nobody when the tests run
as root (its files handed over to it), else as the tests' own user. The
core size limit is read from /proc/PID/limits."""

import os
import pwd
import unittest

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name


def run_as_uid():
    if os.getuid() != 0:
        return None, os.getuid()
    uid = pwd.getpwnam("nobody").pw_uid
    return uid, uid


def proc_owner(pid):
    return os.stat(f"/proc/{pid}/environ").st_uid


def core_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4]  # the soft limit
    raise AssertionError("no core limit in /proc/PID/limits")


class CoreDumpTest(unittest.TestCase):
    def check(self, extra_yaml, dumpable):
        run_as, uid = run_as_uid()
        s = S3Seal(extra_yaml=extra_yaml, run_as=run_as).start()
        try:
            pid = s.proc.pid
            with open(f"/proc/{pid}/status") as f:
                real_uid = int(next(l for l in f if l.startswith("Uid:")).split()[1])
            self.assertEqual(real_uid, uid)
            self.assertNotEqual(uid, 0, "the check needs s3seal to run as a user other than root")
            # It serves while it is so.
            bucket = new_bucket_name("core")
            c = s.client()
            c.create_bucket(Bucket=bucket)
            c.put_object(Bucket=bucket, Key="k", Body=b"x" * 100, ServerSideEncryption="AES256")
            self.assertEqual(c.get_object(Bucket=bucket, Key="k")["Body"].read(), b"x" * 100)
            empty_and_delete(backend_client(), bucket)
            if dumpable:
                self.assertEqual(proc_owner(pid), uid)
            else:
                self.assertEqual(proc_owner(pid), 0)
                self.assertEqual(core_limit(pid), "0")
            s.stop(self)
        finally:
            if s.proc is not None:
                s.proc.kill()
                s.proc.wait()

    def test_not_dumpable_by_default(self):
        self.check("", dumpable=False)

    def test_debug_core_dumps_option(self):
        self.check("debug_core_dumps: true\n", dumpable=True)


if __name__ == "__main__":
    unittest.main()
