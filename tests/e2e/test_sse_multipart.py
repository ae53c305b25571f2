"""SSE-S3 for multipart uploads, end to end against the real backend: an
encrypted CreateMultipartUpload (by header or by bucket default) answers with
AES256 and an opaque UploadId that every multipart call accepts; parts go up
in any order, in parallel and through two s3seal instances sharing a
keystore; what lands on the backend is ciphertext in the per-part layout of
the documented size; GET, HEAD, Range GETs across part boundaries, ListParts
and listings answer for the plaintext; aws-cli and boto3's managed transfers
round trip; copies decrypt; aborts reach the backend; swapped parts are
never served as plaintext; UploadPartCopy into an encrypted upload
re-encrypts; and CompleteMultipartUpload refuses a layout the format cannot
read (unequal or unaligned parts, gaps, wrong order) before anything is
stored."""

import math
import os
import random
import shutil
import tempfile
import unittest
from concurrent.futures import ThreadPoolExecutor

import botocore
from boto3.s3.transfer import TransferConfig

from harness import S3Seal, backend_client, backend_has, empty_and_delete, new_bucket_name

KIB = 1024
MIB = 1024 * KIB
SEG = 64 * KIB
OVERHEAD = 28  # per 64 KiB segment of a part: nonce and tag


def part_cipher_size(n):
    return n + OVERHEAD * math.ceil(n / SEG)


def read_delivered(client, bucket, key, **kw):
    """GETs and reads as far as s3seal lets it. Returns (failed, content
    length announced or None, bytes delivered before any failure)."""
    got = bytearray()
    try:
        r = client.get_object(Bucket=bucket, Key=key, **kw)
    except Exception:  # an error status, or the connection cut before headers
        return True, None, b""
    length = r["ContentLength"]
    try:
        for chunk in r["Body"].iter_chunks(SEG):
            got += chunk
    except Exception:  # cut mid-body
        return True, length, bytes(got)
    return len(got) < length, length, bytes(got)


class SseMultipartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket_name("ssempu")
        cls.default_bucket = new_bucket_name("ssempudef")
        yaml = f"""buckets:
  {cls.default_bucket}:
    default_encryption: AES256
"""
        cls.s1 = S3Seal(extra_yaml=yaml).start()
        cls.addClassCleanup(cls.s1.stop)
        cls.s2 = S3Seal(extra_yaml=yaml, keystore_of=cls.s1).start()
        cls.addClassCleanup(cls.s2.stop)
        cls.c1 = cls.s1.client()
        cls.c2 = cls.s2.client()
        cls.b = backend_client()
        for bucket in (cls.bucket, cls.default_bucket):
            cls.c1.create_bucket(Bucket=bucket)
            cls.addClassCleanup(empty_and_delete, backend_client(), bucket)
        cls.tmp = tempfile.mkdtemp(prefix="s3seal-e2e-mpu-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)

    # ------------------------------------------------------------ helpers

    def backend_upload_id(self, bucket, key, upload_id):
        """The backend's id of s3seal's upload: s3seal's id is it plus a suffix."""
        ups = [u for u in self.b.list_multipart_uploads(Bucket=bucket, Prefix=key)
               .get("Uploads", []) if u["Key"] == key]
        ids = [u["UploadId"] for u in ups if upload_id.startswith(u["UploadId"])]
        self.assertEqual(len(ids), 1, (upload_id, ups))
        self.assertNotEqual(ids[0], upload_id)
        self.assertIn("~s3seal3~", upload_id[len(ids[0]):])
        return ids[0]

    def create(self, client, bucket, key, sse=True, **kw):
        if sse:
            kw["ServerSideEncryption"] = "AES256"
        mp = client.create_multipart_upload(Bucket=bucket, Key=key, **kw)
        self.assertEqual(mp.get("ServerSideEncryption"), "AES256")
        self.assertIn("~s3seal3~", mp["UploadId"])
        return mp["UploadId"]

    def multipart(self, key, sizes, bucket=None, clients=None, sse=True, workers=2,
                  data=None, **create_kw):
        """Uploads random data in parts of the given sizes, in shuffled order
        and in parallel, part i through clients[i % len(clients)]; checks
        ListParts (through the last client, and on the backend) before
        completing through the last client. Returns the plaintext."""
        bucket = bucket or self.bucket
        clients = clients or [self.c1]
        data = os.urandom(sum(sizes)) if data is None else data
        self.assertEqual(len(data), sum(sizes))
        uid = self.create(clients[0], bucket, key, sse=sse, **create_kw)
        offsets = [sum(sizes[:i]) for i in range(len(sizes))]

        def put(i):
            r = clients[i % len(clients)].upload_part(
                Bucket=bucket, Key=key, UploadId=uid, PartNumber=i + 1,
                Body=data[offsets[i]:offsets[i] + sizes[i]])
            self.assertEqual(r.get("ServerSideEncryption"), "AES256", i + 1)
            return r["ETag"]

        order = list(range(len(sizes)))
        random.shuffle(order)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            etags = dict(zip(order, pool.map(put, order)))

        listed = clients[-1].list_parts(Bucket=bucket, Key=key, UploadId=uid)["Parts"]
        self.assertEqual([(p["PartNumber"], p["Size"], p["ETag"]) for p in listed],
                         [(i + 1, sizes[i], etags[i]) for i in range(len(sizes))])
        raw = self.b.list_parts(Bucket=bucket, Key=key,
                                UploadId=self.backend_upload_id(bucket, key, uid))["Parts"]
        self.assertEqual([(p["PartNumber"], p["Size"]) for p in raw],
                         [(i + 1, part_cipher_size(n)) for i, n in enumerate(sizes)])

        done = clients[-1].complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": etags[i]}
                                       for i in range(len(sizes))]})
        self.assertEqual(done.get("ServerSideEncryption"), "AES256")
        return data

    def assert_ciphertext_on_backend(self, bucket, key, data, samples=6):
        raw = self.b.get_object(Bucket=bucket, Key=key)
        body = raw["Body"].read()
        self.assertEqual(raw["Metadata"].get("s3seal-layout"), "parts3")
        self.assertEqual(len(body), len(data) + OVERHEAD * math.ceil(len(data) / SEG))
        self.assertRegex(raw["ETag"], r'-\d+"$')  # a multipart object on the backend
        starts = [0, len(data) - 64] + [random.randrange(len(data) - 64) for _ in range(samples)]
        for a in starts:
            self.assertNotIn(data[a:a + 64], body, a)
        return raw, body

    def assert_reads_back(self, client, bucket, key, data, metadata=None):
        got = client.get_object(Bucket=bucket, Key=key)
        self.assertEqual(got["ContentLength"], len(data))
        self.assertEqual(got["ServerSideEncryption"], "AES256")
        body = got["Body"].read()
        self.assertEqual(len(body), len(data))
        self.assertTrue(body == data, "GET returned other bytes than were uploaded")
        head = client.head_object(Bucket=bucket, Key=key)
        self.assertEqual(head["ContentLength"], len(data))
        self.assertEqual(head["ServerSideEncryption"], "AES256")
        if metadata is not None:
            self.assertEqual(got["Metadata"], metadata)
            self.assertEqual(head["Metadata"], metadata)

    def assert_range(self, client, bucket, key, data, rng, lo, hi):
        r = client.get_object(Bucket=bucket, Key=key, Range=rng)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 206, rng)
        self.assertEqual(r["ContentRange"], f"bytes {lo}-{hi}/{len(data)}", rng)
        self.assertEqual(r["ContentLength"], hi - lo + 1, rng)
        try:
            body = r["Body"].read()
        except Exception as e:
            self.fail(f"{rng}: the response was cut ({e})")
        self.assertTrue(body == data[lo:hi + 1], f"{rng}: other bytes than the plaintext slice")

    # -------------------------------------------------------------- tests

    def test_two_instances_parallel_50mb(self):
        """Parts alternate between two instances sharing a keystore, in
        parallel and out of order, into a bucket encrypted by default (no SSE
        header); completed through the second, read through the first."""
        n = 50 * MIB + 12345
        sizes = [8 * MIB] * (n // (8 * MIB)) + [n % (8 * MIB)]
        data = self.multipart("two/big.bin", sizes, bucket=self.default_bucket,
                              clients=[self.c1, self.c2], sse=False, workers=4,
                              Metadata={"colour": "red"}, ContentType="application/x-big")
        self.assert_reads_back(self.c1, self.default_bucket, "two/big.bin", data,
                               metadata={"colour": "red"})
        head = self.c2.head_object(Bucket=self.default_bucket, Key="two/big.bin")
        self.assertEqual((head["ContentLength"], head["ServerSideEncryption"],
                          head["ContentType"]), (n, "AES256", "application/x-big"))
        self.assert_ciphertext_on_backend(self.default_bucket, "two/big.bin", data)
        self.assert_range(self.c2, self.default_bucket, "two/big.bin", data,
                          f"bytes={8 * MIB - 5}-{16 * MIB + 5}", 8 * MIB - 5, 16 * MIB + 5)
        # Listings of a bucket encrypted by default give the plaintext size.
        for c in (self.c1, self.c2):
            listed = c.list_objects_v2(Bucket=self.default_bucket, Prefix="two/")["Contents"]
            self.assertEqual([(o["Key"], o["Size"]) for o in listed], [("two/big.bin", n)])

    def check_ranges(self, key, sizes, randomised=12):
        data = self.multipart(key, sizes)
        n = len(data)
        edges = [sum(sizes[:i]) for i in range(1, len(sizes))]
        c, bucket = self.c1, self.bucket
        self.assert_reads_back(c, bucket, key, data, metadata={})
        b1, b2 = edges[0], edges[-1]
        spans = [(0, 0), (0, b1 - 1), (SEG - 1, SEG), (b2, n - 1), (b2 + 5, b2 + SEG + 3),
                 (n - SEG - 1, n - 1), (n - 1, n - 1), (0, n - 1), (b1 - 100000, b2 + 100000)]
        for e in edges:  # at, around and across each part boundary
            spans += [(e - 1, e), (e, e), (e - 10, e + 10), (e + SEG - 1, e + SEG),
                      (e, e + 99), (e - 1, e - 1)]
        rnd = random.Random(os.urandom(8))
        for _ in range(randomised):  # anywhere, up to ~300 KiB long
            a = rnd.randrange(n)
            spans.append((a, min(n - 1, a + rnd.randrange(300 * KIB))))
        for _ in range(randomised // 3):  # from one part into the next
            e = rnd.choice(edges)
            spans.append((e - rnd.randrange(1, 200 * KIB), e + rnd.randrange(200 * KIB)))
        for a, b in spans:
            self.assert_range(c, bucket, key, data, f"bytes={a}-{b}", a, b)
        for a in (b1 - 3, b2 + 1000, n - 1, rnd.randrange(n)):
            self.assert_range(c, bucket, key, data, f"bytes={a}-", a, n - 1)
        for k in (1, 777, n - b2 + 1, rnd.randrange(1, n)):
            self.assert_range(c, bucket, key, data, f"bytes=-{k}", n - k, n - 1)
        self.assert_range(c, bucket, key, data, f"bytes=-{n + 5}", 0, n - 1)
        self.assert_range(c, bucket, key, data, f"bytes={b2 - 7}-{n + 500}", b2 - 7, n - 1)
        for rng in (f"bytes={n}-", f"bytes={n + 10}-{n + 20}"):
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                c.get_object(Bucket=bucket, Key=key, Range=rng)
            self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 416, rng)
            self.assertEqual(e.exception.response["Error"]["Code"], "InvalidRange", rng)

    def test_ranges(self):
        """Parts as clients make them: equal, whole MiB, a shorter last one."""
        self.check_ranges("ranged", [5 * MIB, 5 * MIB, MIB + 777])

    def test_unequal_parts_are_refused_at_complete(self):
        """Parts of different sizes (each a whole number of 64 KiB segments)
        are refused when the upload is completed, and nothing is stored: the
        multipart layout needs every part but the last to be of one size."""
        sizes = [5 * MIB + SEG, 5 * MIB, MIB + 777]
        data = os.urandom(sum(sizes))
        key = "unequal"
        uid = self.create(self.c1, self.bucket, key)
        parts, off = [], 0
        for i, size in enumerate(sizes):
            r = self.c1.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=i + 1,
                                    Body=data[off:off + size])
            parts.append({"PartNumber": i + 1, "ETag": r["ETag"]})
            off += size
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c1.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                              MultipartUpload={"Parts": parts})
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidPart")
        self.assertFalse(backend_has(self.bucket, key))
        # Completing with parts out of order or with a gap is refused too.
        for subset in ([parts[1], parts[0]], [parts[0], parts[2]]):
            with self.assertRaises(botocore.exceptions.ClientError) as e:
                self.c1.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                                  MultipartUpload={"Parts": subset})
            self.assertIn(e.exception.response["Error"]["Code"],
                          ("InvalidPartOrder", "InvalidPart"))
            self.assertFalse(backend_has(self.bucket, key))
        self.c1.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)

    def test_small_and_single_part_uploads(self):
        for key, sizes in (("one-byte", [1]), ("one-part", [2 * SEG + 1]),
                           ("aligned-last", [5 * MIB, 2 * SEG])):
            data = self.multipart(key, sizes)
            self.assert_reads_back(self.c1, self.bucket, key, data)
            if len(data) > 64:
                self.assert_ciphertext_on_backend(self.bucket, key, data, samples=4)
            else:  # too short for 64-byte windows: layout and size
                head = self.b.head_object(Bucket=self.bucket, Key=key)
                self.assertEqual(head["Metadata"].get("s3seal-layout"), "parts3")
                self.assertEqual(head["ContentLength"], part_cipher_size(len(data)))

    def test_unaligned_middle_part_is_refused_or_read_back_correctly(self):
        """A part other than the last that is not a whole number of 64 KiB
        segments: s3seal may refuse it (at UploadPart or at Complete), but
        must never store an object that reads back wrong."""
        sizes = [5 * MIB + 1000, 100]
        data = os.urandom(sum(sizes))
        key = "unaligned"
        uid = self.create(self.c1, self.bucket, key)
        try:
            etags = []
            for i, off in enumerate((0, sizes[0])):
                etags.append(self.c1.upload_part(Bucket=self.bucket, Key=key, UploadId=uid,
                                                 PartNumber=i + 1,
                                                 Body=data[off:off + sizes[i]])["ETag"])
            self.c1.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e}
                                           for i, e in enumerate(etags)]})
        except botocore.exceptions.ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            self.assertTrue(400 <= status < 500 or status == 501, e.response)
            self.c1.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)
            return
        self.assert_reads_back(self.c1, self.bucket, key, data)
        self.assert_range(self.c1, self.bucket, key, data, f"bytes={sizes[0] - 5}-{sizes[0] + 5}",
                          sizes[0] - 5, sizes[0] + 5)

    def test_aws_cli_cp(self):
        n = 50 * 1000 * 1000 + 7
        data = os.urandom(n)
        src, dst = os.path.join(self.tmp, "cli.in"), os.path.join(self.tmp, "cli.out")
        with open(src, "wb") as f:
            f.write(data)
        url = f"s3://{self.default_bucket}/cli/big.bin"
        self.s1.aws("s3", "cp", src, url)
        self.assert_ciphertext_on_backend(self.default_bucket, "cli/big.bin", data)
        self.s2.aws("s3", "cp", url, dst)
        with open(dst, "rb") as f:
            self.assertTrue(f.read() == data, "aws s3 cp gave back other bytes")
        ls = self.s1.aws("s3", "ls", f"s3://{self.default_bucket}/cli/").stdout.decode()
        self.assertIn(f" {n} big.bin", ls)

    def test_boto3_managed_transfers(self):
        n = 5 * 5 * MIB + 4321
        data = os.urandom(n)
        src, dst = os.path.join(self.tmp, "boto.in"), os.path.join(self.tmp, "boto.out")
        with open(src, "wb") as f:
            f.write(data)
        cfg = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB,
                             max_concurrency=4)
        self.c1.upload_file(src, self.bucket, "managed.bin", Config=cfg,
                            ExtraArgs={"ServerSideEncryption": "AES256"})
        self.assert_ciphertext_on_backend(self.bucket, "managed.bin", data)
        self.c2.download_file(self.bucket, "managed.bin", dst, Config=cfg)
        with open(dst, "rb") as f:
            self.assertTrue(f.read() == data, "download_file gave back other bytes")
        self.assertEqual(self.c2.head_object(Bucket=self.bucket, Key="managed.bin")
                         ["ServerSideEncryption"], "AES256")

    def test_copy_object(self):
        sizes = [5 * MIB, 3 * SEG + 17]
        data = self.multipart("copy-src", sizes, Metadata={"k": "v"})
        self.c1.copy_object(Bucket=self.bucket, Key="copy-dst",
                            CopySource={"Bucket": self.bucket, "Key": "copy-src"})
        self.assert_reads_back(self.c1, self.bucket, "copy-dst", data, metadata={"k": "v"})
        self.assert_range(self.c2, self.bucket, "copy-dst", data,
                          f"bytes={sizes[0] - 100}-{sizes[0] + 100}", sizes[0] - 100,
                          sizes[0] + 100)
        self.c2.copy_object(Bucket=self.default_bucket, Key="copied/é+1",
                            CopySource={"Bucket": self.bucket, "Key": "copy-src"})
        self.assert_reads_back(self.c2, self.default_bucket, "copied/é+1", data)
        # The source is untouched.
        self.assert_reads_back(self.c1, self.bucket, "copy-src", data)

    def test_part_number_reads(self):
        """GetObject and HeadObject with partNumber: s3seal maps the part to a
        range of the plaintext (the backend ignores partNumber), answers 206
        with the part's Content-Range and x-amz-mp-parts-count, and
        InvalidPartNumber past the last part; one part for a single PUT."""
        sizes = [5 * MIB, 5 * MIB, 12345]
        data = self.multipart("part-numbers", sizes)
        off = 0
        for n, size in enumerate(sizes, 1):
            got = self.c2.get_object(Bucket=self.bucket, Key="part-numbers", PartNumber=n)
            self.assertEqual(got["ResponseMetadata"]["HTTPStatusCode"], 206)
            self.assertEqual(got["PartsCount"], 3)
            self.assertEqual(got["ContentRange"], f"bytes {off}-{off + size - 1}/{len(data)}")
            self.assertEqual(got["Body"].read(), data[off:off + size])
            head = self.c1.head_object(Bucket=self.bucket, Key="part-numbers", PartNumber=n)
            self.assertEqual((head["ContentLength"], head["PartsCount"]), (size, 3))
            off += size
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c1.get_object(Bucket=self.bucket, Key="part-numbers", PartNumber=4)
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidPartNumber")
        self.c1.put_object(Bucket=self.bucket, Key="single-put", Body=b"one part",
                           ServerSideEncryption="AES256")
        got = self.c1.get_object(Bucket=self.bucket, Key="single-put", PartNumber=1)
        self.assertEqual(got["Body"].read(), b"one part")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c1.get_object(Bucket=self.bucket, Key="single-put", PartNumber=2)
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidPartNumber")

    def test_decrypt_command(self):
        """The standalone decrypt command reads the multipart layout, given
        the backend's head-object output (its ETag tells the part count)."""
        import json
        import subprocess
        key = "offline-mp"
        data = self.multipart(key, [5 * MIB, 5 * MIB, 12345])
        head = self.b.head_object(Bucket=self.bucket, Key=key)
        d = self.tmp
        with open(os.path.join(d, "mp-head.json"), "w") as f:
            json.dump({"Metadata": head["Metadata"], "ETag": head["ETag"]}, f)
        with open(os.path.join(d, "mp-cipher.bin"), "wb") as f:
            f.write(self.b.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        out = os.path.join(d, "mp-plain.bin")
        r = subprocess.run([self.s1.bin, "-c", self.s1.config, "decrypt", "--bucket", self.bucket,
                            "--key", key, "--metadata", os.path.join(d, "mp-head.json"),
                            "--in", os.path.join(d, "mp-cipher.bin"), "--out", out],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), data)

    def test_backend_upload_id_refused_for_writes(self):
        """An upload s3seal did not make (so not in its upload registry) is
        listed with the backend's id; in a bucket s3seal encrypts by default,
        a part sent with it is refused (it would be stored in plaintext),
        while listing and aborting work. (Uploads s3seal made are listed with
        its own ids: test_sse_upload_registry.)"""
        key = "by-backend-id"
        uid = self.b.create_multipart_upload(Bucket=self.default_bucket, Key=key)["UploadId"]
        listed = [u["UploadId"] for u in self.c1.list_multipart_uploads(
            Bucket=self.default_bucket, Prefix=key).get("Uploads", [])]
        self.assertEqual(listed, [uid])
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c1.upload_part(Bucket=self.default_bucket, Key=key, UploadId=listed[0],
                                PartNumber=1, Body=b"x" * 1000)
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchUpload")
        self.assertEqual(self.b.list_parts(Bucket=self.default_bucket, Key=key,
                                           UploadId=listed[0]).get("Parts", []), [])
        self.c1.list_parts(Bucket=self.default_bucket, Key=key, UploadId=listed[0])
        self.c1.abort_multipart_upload(Bucket=self.default_bucket, Key=key, UploadId=listed[0])

    def test_abort(self):
        key = "aborted"
        uid = self.create(self.c1, self.bucket, key)
        r = self.c2.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=1,
                                Body=os.urandom(MIB))
        self.assertEqual(r["ServerSideEncryption"], "AES256")
        self.backend_upload_id(self.bucket, key, uid)  # it is there
        self.c1.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid)
        left = [u for u in self.b.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
                .get("Uploads", []) if u["Key"] == key]
        self.assertEqual(left, [])
        # Gone through s3seal too (RGW answers NoSuchKey here, AWS NoSuchUpload).
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.c1.list_parts(Bucket=self.bucket, Key=key, UploadId=uid)
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)

    def test_upload_part_copy_into_encrypted_upload(self):
        """Parts copied from a plain and from an encrypted source (whole, and
        a range) are re-encrypted for the upload."""
        plain = os.urandom(6 * MIB + 5)
        enc = os.urandom(5 * MIB + 3)
        self.c1.put_object(Bucket=self.bucket, Key="upc/plain", Body=plain)
        self.c1.put_object(Bucket=self.bucket, Key="upc/enc", Body=enc,
                           ServerSideEncryption="AES256")
        for bucket, sse in ((self.bucket, True), (self.default_bucket, False)):
            key = "upc/target"
            uid = self.create(self.c1, bucket, key, sse=sse)
            parts, want = [], b""
            for n, (src, extra, data) in enumerate((
                    ("upc/plain", {"CopySourceRange": f"bytes=0-{5 * MIB - 1}"}, plain[:5 * MIB]),
                    ("upc/enc", {"CopySourceRange": f"bytes=0-{5 * MIB - 1}"}, enc[:5 * MIB]),
                    ("upc/plain", {"CopySourceRange": "bytes=1000-2999"}, plain[1000:3000]))):
                r = self.c1.upload_part_copy(Bucket=bucket, Key=key, UploadId=uid,
                                             PartNumber=n + 1,
                                             CopySource={"Bucket": self.bucket, "Key": src},
                                             **extra)
                parts.append({"PartNumber": n + 1, "ETag": r["CopyPartResult"]["ETag"]})
                want += data
            self.c1.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                              MultipartUpload={"Parts": parts})
            self.assert_reads_back(self.c1, bucket, key, want)
            self.assert_ciphertext_on_backend(bucket, key, want, samples=4)

    def test_swapped_parts_are_not_served(self):
        """The same key rebuilt straight on the backend from its own part
        ciphertexts in another order (and with a part left out), under its
        own metadata: neither a GET nor a ranged GET into the moved parts may
        return the plaintext of the wrong part."""
        part = 5 * MIB
        sizes = [part] * 4 + [100_000]
        key = "swap"
        data = self.multipart(key, sizes)
        self.assertTrue(self.c1.get_object(Bucket=self.bucket, Key=key)["Body"].read() == data)
        head = self.b.head_object(Bucket=self.bucket, Key=key)
        meta, ctype, total = head["Metadata"], head["ContentType"], head["ContentLength"]
        cp = part_cipher_size(part)
        self.assertEqual(total, 4 * cp + part_cipher_size(sizes[-1]))
        cipher = [(i * cp, min(total, (i + 1) * cp) - 1) for i in range(len(sizes))]
        plain = [data[i * part:(i + 1) * part] for i in range(len(sizes))]
        self.b.copy_object(Bucket=self.bucket, Key="swap-orig",
                           CopySource={"Bucket": self.bucket, "Key": key})
        c = self.s1.client(read_timeout=30)

        def rebuild(order):
            mp = self.b.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=meta,
                                                ContentType=ctype)
            etags = []
            for n, i in enumerate(order):
                lo, hi = cipher[i]
                r = self.b.upload_part_copy(
                    Bucket=self.bucket, Key=key, UploadId=mp["UploadId"], PartNumber=n + 1,
                    CopySourceRange=f"bytes={lo}-{hi}",
                    CopySource={"Bucket": self.bucket, "Key": "swap-orig"})
                etags.append(r["CopyPartResult"]["ETag"])
            self.b.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=mp["UploadId"],
                MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e}
                                           for n, e in enumerate(etags)]})
            self.assertEqual(self.b.head_object(Bucket=self.bucket, Key=key)["Metadata"], meta)
            return b"".join(plain[i] for i in order)

        for order in ([1, 0, 2, 3, 4], [0, 2, 1, 3, 4], [0, 2, 3, 4]):
            wrong = rebuild(order)
            with self.subTest(parts=order):
                failed, length, got = read_delivered(c, self.bucket, key)
                self.assertTrue(failed, f"a GET succeeded ({len(got)} of {length} bytes)")
                self.assertFalse(got == wrong, "the tampered plaintext was served")
                self.assertTrue(data.startswith(got),
                                "bytes other than a prefix of the original were served")
            moved = [n for n, i in enumerate(order) if n != i]
            spans = []
            for n in moved:  # inside each moved part, and across its start
                spans += [(n * part + 100, n * part + 199), (n * part + 1000, n * part + 70000)]
                if n:
                    spans.append((n * part - 50, n * part + 50))
            for lo, hi in spans:
                with self.subTest(parts=order, range=f"bytes={lo}-{hi}"):
                    failed, length, got = read_delivered(c, self.bucket, key,
                                                         Range=f"bytes={lo}-{hi}")
                    self.assertFalse(got and got == wrong[lo:hi + 1],
                                     "the plaintext of the wrong part was served")
                    self.assertTrue(failed, f"served ({len(got)} of {length} bytes)")
                    self.assertTrue(data[lo:hi + 1].startswith(got),
                                    "bytes other than the original's were served")

if __name__ == "__main__":
    unittest.main()
