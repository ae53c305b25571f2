"""The tamper matrix (issue 17): encrypted objects altered on the backend,
one way at a time, then read through s3seal, whole and ranged. Every case
fails closed: an error status, or a body cut short where the damage is met
after the head has left; and no byte that differs from the original
plaintext at its offset is ever released.

Objects: a single-part SSE-S3 object of several segments, an empty one, and
a multipart object of three parts (two of 80 segments, one of three). Cases:
one bit flipped in every region (each segment's stored header, body and tag;
first, middle and last segment; first, middle and last part), truncation at
every kind of boundary and inside segments (down to zero bytes), segments
and parts reordered, swapped, duplicated and dropped, and the s3seal
metadata swapped between two objects. The tampered bytes are written
straight to the backend under the object's own metadata (a multipart object
as a multipart upload, so that its ETag still names its part count)."""

import math
import os
import unittest

import botocore

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name

KIB = 1024
MIB = 1024 * KIB
SEG = 64 * KIB
S_FULL = SEG + 16  # a single stream's stored segment
M_FULL = SEG + 28  # the multipart layout's: header (16), body, tag (12)
M_HDR = 16
PART = 5 * MIB  # the backend's smallest part but the last


class TamperMatrixTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bucket = new_bucket_name("tamper")
        cls.s = S3Seal().start()
        cls.addClassCleanup(cls.s.stop)
        cls.c = cls.s.client(read_timeout=30, retries={"max_attempts": 1})
        cls.b = backend_client()
        cls.c.create_bucket(Bucket=cls.bucket)
        cls.addClassCleanup(empty_and_delete, backend_client(), cls.bucket)
        # The single-part objects.
        cls.single = os.urandom(3 * SEG + 5000)
        for key, data in (("single", cls.single), ("single-b", os.urandom(len(cls.single))),
                          ("empty", b"")):
            cls.c.put_object(Bucket=cls.bucket, Key=key, Body=data, ServerSideEncryption="AES256")
        # The multipart object: 5 MiB, 5 MiB, 150,000 bytes.
        cls.sizes = [PART, PART, 150_000]
        cls.mp = os.urandom(sum(cls.sizes))
        uid = cls.c.create_multipart_upload(Bucket=cls.bucket, Key="mp",
                                            ServerSideEncryption="AES256")["UploadId"]
        parts, off = [], 0
        for i, n in enumerate(cls.sizes):
            r = cls.c.upload_part(Bucket=cls.bucket, Key="mp", UploadId=uid, PartNumber=i + 1,
                                  Body=cls.mp[off:off + n])
            parts.append({"PartNumber": i + 1, "ETag": r["ETag"]})
            off += n
        cls.c.complete_multipart_upload(Bucket=cls.bucket, Key="mp", UploadId=uid,
                                        MultipartUpload={"Parts": parts})
        cls.stored = {}
        for key in ("single", "single-b", "empty", "mp"):
            o = cls.b.get_object(Bucket=cls.bucket, Key=key)
            cls.stored[key] = (o["Body"].read(), o["Metadata"], o["ContentType"])
        # Stored part boundaries of the multipart object.
        cls.part_segs = [math.ceil(n / SEG) for n in cls.sizes]
        cls.part_off = [0]
        for n in cls.sizes:
            cls.part_off.append(cls.part_off[-1] + n + 28 * math.ceil(n / SEG))

    # ------------------------------------------------------------ helpers

    def put_raw(self, key, body, meta, ctype, cuts=None):
        """Stores `body` under `key` with `meta`; as a multipart upload cut
        at `cuts` (offsets into body) when given."""
        if cuts is None:
            self.b.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=meta,
                              ContentType=ctype)
            return
        uid = self.b.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=meta,
                                             ContentType=ctype)["UploadId"]
        bounds = [0] + [c for c in cuts if 0 < c < len(body)] + [len(body)]
        parts = []
        for i in range(len(bounds) - 1):
            r = self.b.upload_part(Bucket=self.bucket, Key=key, UploadId=uid, PartNumber=i + 1,
                                   Body=body[bounds[i]:bounds[i + 1]])
            parts.append({"PartNumber": i + 1, "ETag": r["ETag"]})
        self.b.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=uid,
                                         MultipartUpload={"Parts": parts})

    def read(self, key, rng=None):
        """(failed, delivered bytes) of a GET through s3seal."""
        kw = {"Range": f"bytes={rng[0]}-{rng[1]}"} if rng else {}
        try:
            r = self.c.get_object(Bucket=self.bucket, Key=key, **kw)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            if isinstance(e, botocore.exceptions.ClientError):
                self.assertGreaterEqual(
                    e.response["ResponseMetadata"]["HTTPStatusCode"], 400)
            return True, b""
        got = bytearray()
        length = r["ContentLength"]
        try:
            for chunk in r["Body"].iter_chunks(SEG):
                got += chunk
        except Exception:  # cut mid-body
            return True, bytes(got)
        return len(got) < length, bytes(got)

    def check(self, name, key, plain, ranges, must_fail_ranges=(), whole_fails=True):
        """The whole GET fails; no ranged GET releases a wrong byte; the
        ranges that cover the damage fail."""
        failed, got = self.read(key)
        if whole_fails:
            self.assertTrue(failed, f"{name}: the whole GET succeeded ({len(got)} bytes)")
        self.assertEqual(got, plain[:len(got)], f"{name}: a wrong byte was released")
        for lo, hi in ranges:
            if lo >= len(plain):
                continue
            hi = min(hi, len(plain) - 1)
            failed, got = self.read(key, (lo, hi))
            self.assertEqual(got, plain[lo:lo + len(got)],
                             f"{name}: bytes={lo}-{hi} released a wrong byte")
            if (lo, hi) in must_fail_ranges:
                self.assertTrue(failed, f"{name}: bytes={lo}-{hi} succeeded over the damage")

    def run_cases(self, key, plain, cases, ranges, seg_plain_of, cuts_of=None, whole_fails=True):
        """Each case written over the object itself (its data key is bound
        to its name), the original put back at the end."""
        body, meta, ctype = self.stored[key]
        # Control: the untouched bytes, rewritten the same way, read back.
        self.put_raw(key, body, meta, ctype, cuts_of(body) if cuts_of else None)
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key=key)["Body"].read(), plain)
        try:
            for name, tampered, at in cases:
                with self.subTest(object=key, case=name):
                    self.assertNotEqual(tampered, body)
                    self.put_raw(key, tampered, meta, ctype,
                                 cuts_of(tampered) if cuts_of else None)
                    must = []
                    if at is not None and plain:
                        lo = seg_plain_of(at)
                        if lo < len(plain):
                            must = [(lo, min(lo + 99, len(plain) - 1))]
                    self.check(name, key, plain, list(ranges) + must, must, whole_fails)
        finally:
            self.put_raw(key, body, meta, ctype, cuts_of(body) if cuts_of else None)

    # ------------------------------------------------------------- cases

    def test_single_part_object(self):
        body = self.stored["single"][0]
        n = len(body)
        segs = math.ceil(n / S_FULL)
        cases = []

        def flip(off):
            t = bytearray(body)
            t[off] ^= 0x01
            return bytes(t)
        for s in range(segs):
            start, end = s * S_FULL, min(n, (s + 1) * S_FULL)
            for region, off in (("body start", start), ("body middle", (start + end - 16) // 2),
                                ("body end", end - 17), ("tag", end - 16), ("tag end", end - 1)):
                cases.append((f"segment {s} {region} flipped", flip(off), off))
        for s in range(segs):
            cases.append((f"truncated at segment {s}", body[:s * S_FULL], None))
            cases.append((f"truncated inside segment {s}", body[:s * S_FULL + 1000], None))
        cases.append(("last byte dropped", body[:-1], None))
        seg = [body[i * S_FULL:(i + 1) * S_FULL] for i in range(segs)]
        cases.append(("segments 0 and 1 swapped", seg[1] + seg[0] + b"".join(seg[2:]), 0))
        cases.append(("segments 1 and 2 swapped", seg[0] + seg[2] + seg[1] + seg[3], S_FULL))
        cases.append(("segment 0 duplicated", seg[0] + b"".join(seg), S_FULL))
        cases.append(("segment 1 dropped", seg[0] + b"".join(seg[2:]), S_FULL))
        cases.append(("a byte appended", body + b"\0", None))
        ranges = [(0, 99), (SEG - 10, SEG + 10), (2 * SEG + 5, 3 * SEG + 100),
                  (len(self.single) - 50, len(self.single) - 1)]
        self.run_cases("single", self.single, cases, ranges, lambda off: off // S_FULL * SEG)

    def test_empty_object(self):
        body = self.stored["empty"][0]
        self.assertEqual(len(body), 16)
        cases = [(f"tag byte {i} flipped", body[:i] + bytes([body[i] ^ 0x80]) + body[i + 1:],
                  None) for i in range(16)]
        cases += [("truncated to zero", b"", None), ("truncated to 15", body[:15], None),
                  ("a byte appended", body + b"\0", None),
                  ("random tag", os.urandom(16), None)]
        # An empty object's GET must not answer 200 with its (empty) body
        # before its tag was checked.
        self.run_cases("empty", b"", cases, [], lambda off: 0)

    def test_multipart_object(self):
        body = self.stored["mp"][0]
        po = self.part_off
        plain_off = [0, PART, 2 * PART, len(self.mp)]

        def cuts(b):
            return [po[1], po[2]]

        def seg_at(p, i):
            return po[p] + i * M_FULL

        def plain_of(off):
            p = max(i for i in range(3) if po[i] <= off)
            return plain_off[p] + (off - po[p]) // M_FULL * SEG

        def flip(off, bit=0x01):
            t = bytearray(body)
            t[off] ^= bit
            return bytes(t)
        cases = []
        for p in range(3):
            k = self.part_segs[p]
            for i in sorted({0, k // 2, k - 1}):
                start = seg_at(p, i)
                end = min(po[p + 1], start + M_FULL)
                regions = [("header w", start + 2), ("header w final bit", start + 3),
                           ("header random", start + 4 + 5), ("body", start + M_HDR),
                           ("body end", end - 13), ("tag", end - 12), ("tag end", end - 1)]
                if 0 < i < k - 1:  # a middle segment: one of each region
                    regions = [regions[0], regions[2], regions[3], regions[5]]
                for region, off in regions:
                    cases.append((f"part {p + 1} segment {i} {region} flipped", flip(off), start))
        # Truncations: at segment boundaries, inside segments (at part
        # boundaries: test_trailing_parts_dropped).
        for off in (0, seg_at(0, 1), seg_at(0, 40), seg_at(0, 79), seg_at(1, 1),
                    seg_at(1, 79), seg_at(2, 1), seg_at(2, 2),
                    seg_at(0, 40) + 500, po[1] + 17, seg_at(2, 2) + 30, len(body) - 1):
            cases.append((f"truncated at {off}", body[:off], None))
        segs = [body[seg_at(p, i):min(po[p + 1], seg_at(p, i) + M_FULL)]
                for p in range(3) for i in range(self.part_segs[p])]
        part = [body[po[p]:po[p + 1]] for p in range(3)]

        def join(lst):
            return b"".join(lst)
        k = self.part_segs[0]
        cases += [
            ("parts 1 and 2 swapped", part[1] + part[0] + part[2], 0),
            ("part 2 duplicated", part[0] + part[1] + part[1] + part[2], po[2]),
            ("part 2 dropped", part[0] + part[2], po[1]),
            ("segments 0 and 1 of part 1 swapped", join([segs[1], segs[0]] + segs[2:]), 0),
            ("last segments of parts 1 and 2 swapped",
             join(segs[:k - 1] + [segs[2 * k - 1]] + segs[k:2 * k - 1] + [segs[k - 1]]
                  + segs[2 * k:]), seg_at(0, k - 1)),
            ("segment 3 duplicated", join(segs[:4] + [segs[3]] + segs[4:]), seg_at(0, 4)),
            ("segment 3 dropped", join(segs[:3] + segs[4:]), seg_at(0, 3)),
        ]
        ranges = [(0, 99), (SEG - 10, SEG + 10), (PART - 50, PART + 50),
                  (PART + 3 * SEG + 1, PART + 3 * SEG + 70000), (2 * PART - 10, 2 * PART + 10),
                  (len(self.mp) - 100, len(self.mp) - 1)]
        self.run_cases("mp", self.mp, cases, ranges, plain_of, cuts)

    def test_trailing_parts_dropped_releases_no_wrong_byte(self):
        """The object rebuilt on the backend from its first part, or its
        first two, as a multipart object of that many parts: no byte that
        differs from the original is released (what is served is a prefix
        of it)."""
        body = self.stored["mp"][0]
        po = self.part_off
        cases = [(f"parts after part {p} dropped", body[:po[p]], None) for p in (1, 2)]
        self.run_cases("mp", self.mp, cases, [(0, 99), (PART - 50, PART + 50)],
                       lambda off: 0, lambda b: [po[1], po[2]], whole_fails=False)

    def test_parts_dropped_fails(self):
        """Whole leading or trailing parts dropped and the rest completed
        again on the backend as a multipart object of fewer parts (its
        metadata kept): the catalog's part count refuses it, whole and in
        every range."""
        body = self.stored["mp"][0]
        po = self.part_off
        cases = [(f"parts after part {p} dropped", body[:po[p]], None) for p in (1, 2)]
        cases += [("part 1 dropped", body[po[1]:], None),
                  ("parts 1 and 3 dropped", body[po[1]:po[2]], None)]
        self.run_cases("mp", self.mp, cases, [(0, 99), (PART - 50, PART + 50)], lambda off: 0,
                       lambda b: [po[1], po[2]])

    def test_metadata_swapped_between_objects(self):
        """Each object's s3seal metadata on the other's ciphertext, under
        either name; the multipart object's on the single one's."""
        a, b, m = self.stored["single"], self.stored["single-b"], self.stored["mp"]
        for name, body, meta in (
                ("B's metadata on A", a[0], b[1]),
                ("B whole under A's name", b[0], b[1]),
                ("the multipart object's metadata on A", a[0], m[1])):
            with self.subTest(case=name):
                self.put_raw("single", body, meta, a[2])
                self.check(name, "single", self.single, [(0, 99), (SEG, SEG + 99)])
        # A's metadata on B's ciphertext, under B's name.
        self.put_raw("single-b", b[0], a[1], b[2])
        failed, got = self.read("single-b")
        self.assertTrue(failed and got == b"", "B opened with A's metadata")
        # Only its own metadata opens it.
        self.put_raw("single", a[0], a[1], a[2])
        self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="single")["Body"].read(),
                         self.single)


if __name__ == "__main__":
    unittest.main()
