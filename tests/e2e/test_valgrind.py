"""s3seal under valgrind (memcheck): the SSE-S3 paths of a short workload
(single PUT and GET, Range GETs, a multipart upload with ListParts and
listings, a partNumber GET, a plain-to-encrypted copy and a part copy, the
upload registry, the bucket encryption API) and its SSE-KMS paths (the
default key made on first use, a key made by `s3seal keys`, a context, a
bucket key, cached and uncached reads, a multipart upload, a copy, a
refusal by key state, the audit log and its verification) leave no memory
error and no definite leak, in the server and in the commands. Not in the
sanitizer build, whose own checks cover it."""

import base64
import json
import os
import time
import shutil
import stat
import tempfile
import unittest

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name, env

MIB = 1024 * 1024


@unittest.skipIf(os.environ.get("S3SEAL_SANITIZED") == "1", "ASan build: valgrind cannot run it")
@unittest.skipUnless(shutil.which("valgrind"), "valgrind is not installed")
class ValgrindTest(unittest.TestCase):
    def test_sse_workload_is_memcheck_clean(self):
        tmp = tempfile.mkdtemp(prefix="s3seal-e2e-valgrind-")
        self.addCleanup(shutil.rmtree, tmp, True)
        logs = os.path.join(tmp, "memcheck.%p.log")
        wrapper = os.path.join(tmp, "s3seal")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec valgrind --leak-check=full --errors-for-leak-kinds=definite "
                    f"--log-file={logs} {env('S3SEAL_BIN')} \"$@\"\n")
        os.chmod(wrapper, stat.S_IRWXU)
        bucket = new_bucket_name("valgrind")
        old = os.environ["S3SEAL_BIN"]
        os.environ["S3SEAL_BIN"] = wrapper
        try:
            s = S3Seal(extra_yaml=f"buckets:\n  {bucket}:\n    default_encryption: AES256\n"
                                  f"audit_log: {tmp}/audit.jsonl\n")
        finally:
            os.environ["S3SEAL_BIN"] = old
        s.start()
        try:
            self.workload(s, bucket)
            self.kms_workload(s, bucket, f"{tmp}/audit.jsonl")
        finally:
            empty_and_delete(backend_client(), bucket)
            s.stop()
        reports = [os.path.join(tmp, n) for n in os.listdir(tmp) if n.startswith("memcheck.")]
        self.assertTrue(reports, "valgrind wrote no log")
        for path in reports:
            with open(path) as f:
                text = f.read()
            self.assertIn("ERROR SUMMARY: 0 errors", text, text[-3000:])
            self.assertNotIn("definitely lost: 1", text)

    def workload(self, s, bucket):
        c = s.client(read_timeout=120)
        c.create_bucket(Bucket=bucket)
        data = os.urandom(200_000)
        c.put_object(Bucket=bucket, Key="one", Body=data)
        self.assertEqual(c.get_object(Bucket=bucket, Key="one")["Body"].read(), data)
        got = c.get_object(Bucket=bucket, Key="one", Range="bytes=70000-70100")
        self.assertEqual(got["Body"].read(), data[70000:70101])
        big = os.urandom(5 * MIB + 777)
        uid = c.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
        p1 = c.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1,
                           Body=big[:5 * MIB])
        p2 = c.upload_part_copy(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2,
                                CopySource={"Bucket": bucket, "Key": "one"},
                                CopySourceRange="bytes=0-776")
        self.assertEqual(len(c.list_parts(Bucket=bucket, Key="mp", UploadId=uid)["Parts"]), 2)
        self.assertEqual(len(c.list_multipart_uploads(Bucket=bucket).get("Uploads", [])), 1)
        c.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]},
                                       {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
        want = big[:5 * MIB] + data[:777]
        got = c.get_object(Bucket=bucket, Key="mp", Range=f"bytes={5 * MIB - 10}-")
        self.assertEqual(got["Body"].read(), want[5 * MIB - 10:])
        got = c.get_object(Bucket=bucket, Key="mp", PartNumber=2)
        self.assertEqual(got["Body"].read(), data[:777])
        sizes = {o["Key"]: o["Size"] for o in c.list_objects_v2(Bucket=bucket)["Contents"]}
        self.assertEqual(sizes["mp"], len(want))
        c.put_object(Bucket=bucket, Key="plain-src", Body=b"x" * 1000,
                     ServerSideEncryption="AES256")
        c.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "mp"})
        self.assertEqual(c.get_object(Bucket=bucket, Key="copy")["Body"].read(), want)
        c.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        c.get_bucket_encryption(Bucket=bucket)
        c.delete_bucket_encryption(Bucket=bucket)

    def kms_workload(self, s, bucket, audit_log):
        c = s.client(read_timeout=120)
        data = os.urandom(150_000)
        put = c.put_object(Bucket=bucket, Key="kms-default", Body=data,
                           ServerSideEncryption="aws:kms")
        self.assertEqual(put["ServerSideEncryption"], "aws:kms")
        arn = json.loads(s.cli("keys", "create", "--alias", "alias/vg", check=True).stdout)["Arn"]
        ctx = base64.b64encode(json.dumps({"project": "vg"}).encode()).decode()
        c.put_object(Bucket=bucket, Key="kms", Body=data, ServerSideEncryption="aws:kms",
                     SSEKMSKeyId="alias/vg", SSEKMSEncryptionContext=ctx, BucketKeyEnabled=True)
        for _ in range(2):  # the second read is a cache hit
            self.assertEqual(c.get_object(Bucket=bucket, Key="kms")["Body"].read(), data)
        self.assertEqual(c.get_object(Bucket=bucket, Key="kms-default")["Body"].read(), data)
        big = os.urandom(5 * MIB + 1)
        uid = c.create_multipart_upload(Bucket=bucket, Key="kms-mp", ServerSideEncryption="aws:kms",
                                        SSEKMSKeyId=arn)["UploadId"]
        p1 = c.upload_part(Bucket=bucket, Key="kms-mp", UploadId=uid, PartNumber=1, Body=big)
        c.complete_multipart_upload(Bucket=bucket, Key="kms-mp", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}]})
        c.copy_object(Bucket=bucket, Key="kms-copy", CopySource={"Bucket": bucket, "Key": "kms"},
                      ServerSideEncryption="aws:kms")
        self.assertEqual(c.get_object(Bucket=bucket, Key="kms-mp")["Body"].read(), big)
        self.assertEqual(c.get_object(Bucket=bucket, Key="kms-copy")["Body"].read(), data)
        s.cli("keys", "disable", "alias/vg", check=True)
        deadline = time.time() + 30
        while True:
            try:
                c.get_object(Bucket=bucket, Key="kms")["Body"].read()
            except Exception as e:  # botocore's ClientError
                self.assertIn("KMS.DisabledException", str(e))
                break
            self.assertLess(time.time(), deadline, "the disabled key was still used")
            time.sleep(0.5)
        self.assertEqual(s.cli("audit", "verify", audit_log).returncode, 0)


if __name__ == "__main__":
    unittest.main()
