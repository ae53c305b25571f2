"""SSE-KMS end to end against the real backend, as AWS S3 behaves, with keys
of s3seal's own keystore (the backend's SSE is never used): PutObject,
multipart uploads and copies with aws:kms and every form of SSEKMSKeyId (key
id, alias, key ARN, alias ARN, none: the account's aws/s3 made on first
use), encryption contexts and bucket keys; what the answers say; what lands
on the backend (ciphertext, the key's ARN and version, the context with
aws:s3:arn); key states (disabled, pending deletion) and rotation changed
with `s3seal keys` while the server runs; key policies (a principal denied
kms:Decrypt, a condition on the encryption context); keys of another
account; presigned GETs; bucket defaults from the config and from
PutBucketEncryption; the stored context bound to the data key; the
hash-chained audit log and `s3seal audit verify`, with the data key cache
and without it (keystore.dek_cache_seconds: 0); two instances of two
workers sharing the keystore and the audit log; aws-cli and the AWS SDK for
JavaScript (sse_kms_js.mjs)."""

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import botocore
from boto3.s3.transfer import TransferConfig

from harness import REGION, S3Seal, backend_client, backend_has, empty_and_delete, new_bucket_name

HERE = os.path.dirname(os.path.abspath(__file__))
SEG = 65536
TAG = 16
MiB = 1024 * 1024
ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
E2E = f"arn:aws:iam::{ACCOUNT}:user/e2e"
REFRESH_WAIT = 6  # the server sees CLI changes within ~2 s; a margin for slow machines


def cipher_size(n):
    return n + TAG * max(1, -(-n // SEG))


def credential(principal):
    return ("AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30), principal)


ALICE = credential(f"arn:aws:iam::{ACCOUNT}:user/alice")
BOB = credential(f"arn:aws:iam::{ACCOUNT}:user/bob")
# Carol is of another account: her identity policy allows S3, and the test
# bucket's policy lets her account in (authorization needs both).
CAROL = credential(f"arn:aws:iam::{OTHER_ACCOUNT}:user/carol") + (
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]},)


def b64json(d):
    return base64.b64encode(json.dumps(d).encode()).decode()


def refusal(fn, *args, **kw):
    """(HTTP status, error code, message) of a call that must fail."""
    try:
        fn(*args, **kw)
    except botocore.exceptions.ClientError as e:
        return (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"],
                e.response["Error"].get("Message", ""))
    raise AssertionError(f"{getattr(fn, '__name__', fn)} succeeded where it must be refused")


def key_metadata(out):
    """The KeyMetadata of a `keys create|describe` answer (AWS's shape, or
    the metadata object itself)."""
    d = json.loads(out)
    return d.get("KeyMetadata", d)


def key_list(out):
    """The keys of a `keys list --json` answer, as a list of metadata."""
    d = json.loads(out)
    if isinstance(d, dict):
        for name in ("Keys", "KeyMetadata", "keys"):
            if isinstance(d.get(name), list):
                d = d[name]
                break
    if not isinstance(d, list):
        raise AssertionError(f"keys list --json: no list of keys in {out[:500]!r}")
    return [k.get("KeyMetadata", k) for k in d]


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(principal, actions, **extra):
    return {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": actions,
            "Resource": "*", **extra}


class SseKmsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="s3seal-e2e-kms-")
        cls.audit_log = os.path.join(cls.tmp, "audit.jsonl")
        cls.bucket = new_bucket_name("kms")
        cls.cfg_bucket = new_bucket_name("kmscfg")
        cls.buckets = [cls.bucket, cls.cfg_bucket]
        cls.s = S3Seal(extra_credentials=[ALICE, BOB, CAROL], extra_yaml=f"""buckets:
  {cls.cfg_bucket}:
    default_encryption: aws:kms
    kms_key_id: alias/e2e-config
audit_log: {cls.audit_log}
""")
        # The keystore exists before the server starts, so that the keys
        # made here are in its first snapshot.
        cls.s.cli("keystore", "init", check=True)
        cls.keys_before = key_list(cls.s.cli("keys", "list", "--json", check=True).stdout)
        cls.main = cls.create_key("alias/e2e-main", description="the main test key")
        cls.second = cls.create_key("alias/e2e-second")
        cls.config_key = cls.create_key("alias/e2e-config")
        cls.bucket_key_key = cls.create_key("alias/e2e-bucket-key")
        cls.state_key = cls.create_key("alias/e2e-state")
        cls.rotate_key = cls.create_key("alias/e2e-rotate")
        cls.audit_key = cls.create_key("alias/e2e-audit")
        cls.deny_key = cls.create_key("alias/e2e-deny-bob")
        cls.put_policy(cls.deny_key, policy(
            allow(f"arn:aws:iam::{ACCOUNT}:root", "kms:*"),
            {"Sid": "NoDecryptForBob", "Effect": "Deny",
             "Principal": {"AWS": BOB[2]}, "Action": "kms:Decrypt", "Resource": "*"}))
        cls.context_key = cls.create_key("alias/e2e-context")
        cls.put_policy(cls.context_key, policy(
            allow(f"arn:aws:iam::{ACCOUNT}:root", ["kms:GenerateDataKey*", "kms:Decrypt"],
                  Condition={"StringEquals": {"kms:EncryptionContext:project": "x"}})))
        cls.carol_key = cls.create_key("alias/carol-key", "--account", OTHER_ACCOUNT)
        cls.s.start()
        cls.c = cls.s.client()
        cls.alice = cls.s.client(access_key=ALICE[0], secret_key=ALICE[1])
        cls.bob = cls.s.client(access_key=BOB[0], secret_key=BOB[1])
        cls.carol = cls.s.client(access_key=CAROL[0], secret_key=CAROL[1])
        for b in cls.buckets:
            cls.c.create_bucket(Bucket=b)
            cls.c.put_bucket_policy(Bucket=b, Policy=json.dumps(policy({
                "Sid": "OtherAccount", "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::{b}/*"})))

    @classmethod
    def tearDownClass(cls):
        try:
            for b in cls.buckets:
                empty_and_delete(backend_client(), b)
            shutil.rmtree(cls.tmp, True)
        finally:
            cls.s.stop()

    @classmethod
    def create_key(cls, alias, *more, description=None):
        args = ["keys", "create", "--alias", alias, *more]
        if description:
            args += ["--description", description]
        md = key_metadata(cls.s.cli(*args, check=True).stdout)
        assert md["Arn"].endswith(":key/" + md["KeyId"]), md
        md["Alias"] = alias
        return md

    @classmethod
    def put_policy(cls, key, doc):
        path = os.path.join(cls.tmp, f"policy-{uuid.uuid4().hex}.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        cls.s.cli("keys", "put-policy", key["Arn"], "--policy-file", path, check=True)

    # ---------------------------------------------------------------- helpers

    def keys_cli(self, *args):
        return self.s.cli("keys", *args, check=True).stdout

    def describe(self, key):
        return key_metadata(self.keys_cli("describe", key["Arn"]))

    def new_bucket(self, prefix="kmsb"):
        b = new_bucket_name(prefix)
        self.buckets.append(b)
        self.c.create_bucket(Bucket=b)
        return b

    def put(self, key, data, kms_key=None, client=None, bucket=None, **kw):
        args = dict(Bucket=bucket or self.bucket, Key=key, Body=data,
                    ServerSideEncryption="aws:kms", **kw)
        if kms_key is not None:
            args["SSEKMSKeyId"] = kms_key
        return (client or self.c).put_object(**args)

    def get(self, key, client=None, bucket=None, **kw):
        r = (client or self.c).get_object(Bucket=bucket or self.bucket, Key=key, **kw)
        r["Data"] = r["Body"].read()
        return r

    def eventually(self, fn, what, timeout=REFRESH_WAIT):
        """Polls fn until it returns a true value (changes from the CLI reach
        the running server within its refresh period)."""
        deadline = time.time() + timeout
        last = None
        while True:
            try:
                v = fn()
                if v:
                    return v
            except (botocore.exceptions.ClientError, AssertionError) as e:
                last = e
            if time.time() > deadline:
                self.fail(f"{what}: not within {timeout} s (last: {last!r})")
            time.sleep(0.25)

    def refused_with(self, code, fn, *args, **kw):
        """A predicate for eventually(): fn(*args) is refused with code."""
        def check():
            try:
                fn(*args, **kw)
            except botocore.exceptions.ClientError as e:
                return e.response["Error"]["Code"] == code and e
            return False
        return check

    def assert_kms_answer(self, r, arn, bucket_key=False):
        self.assertEqual(r["ServerSideEncryption"], "aws:kms")
        self.assertEqual(r["SSEKMSKeyId"], arn)
        if bucket_key:
            self.assertIs(r.get("BucketKeyEnabled"), True)
        else:
            self.assertFalse(r.get("BucketKeyEnabled", False))

    def assert_ciphertext(self, key, data, arn, version=1, bucket=None, multipart=False,
                          bucket_key=False, context=None):
        """The backend holds ciphertext of `data`, its data key wrapped by
        version `version` of key `arn`, and the effective context (the
        client's pairs and aws:s3:arn)."""
        bucket = bucket or self.bucket
        raw = backend_client().get_object(Bucket=bucket, Key=key)
        body = raw["Body"].read()
        meta = raw["Metadata"]
        self.assertNotIn("ServerSideEncryption", raw, "the backend's own SSE was used")
        if multipart:
            self.assertEqual(meta.get("s3seal-layout"), "parts3")
            self.assertGreater(len(body), len(data))
        else:
            self.assertEqual(len(body), cipher_size(len(data)))
        for off in (0, len(data) // 2, len(data) - 64):
            w = data[max(0, off):max(0, off) + 64]
            if len(w) >= 16:
                self.assertNotIn(w, body, f"plaintext of {key} on the backend")
        self.assertEqual(meta.get("s3seal-key"), f"kms:{version}:{arn}")
        self.assertIn("s3seal-dek", meta)
        stored = json.loads(base64.b64decode(meta["s3seal-context"]))
        want = dict(context or {})
        want["aws:s3:arn"] = f"arn:aws:s3:::{bucket}" if bucket_key else \
            f"arn:aws:s3:::{bucket}/{key}"
        self.assertEqual(stored, want)
        if bucket_key:
            self.assertIn("s3seal-bucket-key", meta)
        else:
            self.assertNotIn("s3seal-bucket-key", meta)
        return meta

    def audit(self):
        with open(self.audit_log, "rb") as f:
            return [json.loads(line) for line in f.read().splitlines() if line.strip()]

    def records(self, bucket=None, obj=None, operation=None, after=0):
        return [r for r in self.audit()[after:]
                if (bucket is None or r.get("bucket") == bucket) and
                (obj is None or r.get("object") == obj) and
                (operation is None or r.get("operation") == operation)]

    # ------------------------------------------------------------------ tests

    def test_key_references(self):
        """Every form of SSEKMSKeyId names the same key; the answers give its
        ARN; GET and HEAD give SSE and the key but never a context."""
        m = self.main
        d = self.describe(m)
        self.assertEqual((d["KeyId"], d["Arn"], d["KeyState"], d["Description"]),
                         (m["KeyId"], m["Arn"], "Enabled", "the main test key"))
        self.assertEqual(d["AWSAccountId"], ACCOUNT)
        self.assertEqual(d["KeyManager"], "CUSTOMER")
        alias_arn = m["Arn"].replace(f":key/{m['KeyId']}", ":alias/e2e-main")
        refs = {"id": m["KeyId"], "alias": "alias/e2e-main", "arn": m["Arn"],
                "alias-arn": alias_arn}
        sizes = {"id": 0, "alias": 1, "arn": SEG + 1, "alias-arn": 3 * SEG + 5}
        for name, ref in refs.items():
            data = os.urandom(sizes[name])
            key = f"ref/{name}"
            r = self.put(key, data, ref)
            self.assert_kms_answer(r, m["Arn"])
            self.assertNotIn("SSEKMSEncryptionContext", r)  # none was given
            self.assert_ciphertext(key, data, m["Arn"])
            got = self.get(key)
            self.assertEqual(got["Data"], data, name)
            self.assert_kms_answer(got, m["Arn"])
            self.assertNotIn("SSEKMSEncryptionContext", got)
            head = self.c.head_object(Bucket=self.bucket, Key=key)
            self.assert_kms_answer(head, m["Arn"])
            self.assertEqual(head["ContentLength"], len(data))
            self.assertNotIn("SSEKMSEncryptionContext", head)
            self.assertEqual(head["Metadata"], {})
            # As in S3, an SSE-KMS object's ETag is no MD5 of its data; it is
            # the same in every answer.
            self.assertEqual(r["ETag"], head["ETag"])
            self.assertEqual(got["ETag"], head["ETag"])
            self.assertNotEqual(r["ETag"], f'"{hashlib.md5(data).hexdigest()}"')
        # A range across a segment edge.
        data = os.urandom(3 * SEG + 5)
        self.put("ref/ranged", data, m["Arn"])
        self.assert_ciphertext("ref/ranged", data, m["Arn"])
        r = self.get("ref/ranged", Range=f"bytes={SEG - 7}-{2 * SEG + 3}")
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 206)
        self.assertEqual(r["Data"], data[SEG - 7:2 * SEG + 4])
        self.assert_kms_answer(r, m["Arn"])

    def test_keys_made_while_serving(self):
        """As with AWS KMS, a key or alias made a moment ago is usable at
        once; an alias deleted is gone within the refresh period."""
        k = key_metadata(self.keys_cli("create", "--alias", "alias/e2e-fresh"))
        data = os.urandom(SEG + 1)
        r = self.put("fresh/by-alias", data, "alias/e2e-fresh")
        self.assert_kms_answer(r, k["Arn"])
        self.assert_ciphertext("fresh/by-alias", data, k["Arn"])
        self.keys_cli("alias", "create", "alias/e2e-fresh-2", k["KeyId"])
        r = self.put("fresh/by-new-alias", data, "alias/e2e-fresh-2")
        self.assert_kms_answer(r, k["Arn"])
        self.assert_ciphertext("fresh/by-new-alias", data, k["Arn"])
        self.assertEqual(self.get("fresh/by-new-alias")["Data"], data)
        self.keys_cli("alias", "delete", "alias/e2e-fresh-2")
        self.eventually(self.refused_with("KMS.NotFoundException", self.put, "fresh/probe", b"x",
                                          "alias/e2e-fresh-2"),
                        "a deleted alias no longer resolves")
        # The key itself stays, and so do the objects it protects.
        self.assertEqual(self.get("fresh/by-new-alias")["Data"], data)
        self.assert_kms_answer(self.put("fresh/by-id", b"id", k["KeyId"]), k["Arn"])
        self.assert_ciphertext("fresh/by-id", b"id", k["Arn"])

    def test_default_key_made_on_first_use(self):
        self.assertFalse([k for k in self.keys_before if k.get("KeyManager") == "AWS"],
                         "an AWS managed key before any use")
        data = os.urandom(70_000)
        r = self.put("default/one", data)
        arn = r["SSEKMSKeyId"]
        self.assertRegex(arn, rf"^arn:aws:kms:[a-z0-9-]+:{ACCOUNT}:key/[0-9a-f-]{{36}}$")
        self.assertNotIn(arn, [k["Arn"] for k in (self.main, self.second, self.config_key)])
        self.assert_ciphertext("default/one", data, arn)
        self.assertEqual(self.get("default/one")["Data"], data)
        listed = key_list(self.keys_cli("list", "--json"))
        default = [k for k in listed if k["Arn"] == arn]
        self.assertEqual(len(default), 1, listed)
        self.assertEqual(default[0]["KeyManager"], "AWS")
        self.assertEqual(default[0]["AWSAccountId"], ACCOUNT)
        self.assertEqual([k for k in listed if k.get("KeyManager") == "AWS" and
                          k.get("AWSAccountId") == ACCOUNT], default)
        # Its creation is in the audit trail, by s3seal itself, once.
        made = [r for r in self.records(operation="CreateKey") if r["keyArn"] == arn]
        self.assertEqual(len(made), 1, made)
        self.assertEqual((made[0]["principal"], made[0]["result"]), ("s3seal", "Success"))
        # The same key afterwards, also by its alias, and for another
        # principal of the account.
        self.assertEqual(self.put("default/two", b"two", client=self.alice)["SSEKMSKeyId"], arn)
        self.assertEqual(self.put("default/three", b"three", "alias/aws/s3")["SSEKMSKeyId"], arn)
        self.assert_ciphertext("default/three", b"three", arn)
        # A principal of another account gets its own account's aws/s3.
        r = self.put("default/carol", data, client=self.carol)
        carol_arn = r["SSEKMSKeyId"]
        self.assertRegex(carol_arn, rf"^arn:aws:kms:[a-z0-9-]+:{OTHER_ACCOUNT}:key/")
        self.assert_ciphertext("default/carol", data, carol_arn)
        self.assertEqual(self.get("default/carol", client=self.carol)["Data"], data)
        # A bucket default of aws:kms without a key id uses aws/s3 too.
        b = self.new_bucket()
        self.c.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
        r = self.c.put_object(Bucket=b, Key="plain", Body=data)
        self.assert_kms_answer(r, arn)
        self.assert_ciphertext("plain", data, arn, bucket=b)

    def test_encryption_context(self):
        ctx = {"project": "x", "department": "finance", "ünïcode": "välue"}
        data = os.urandom(100_000)
        r = self.put("ctx/given", data, "alias/e2e-main", SSEKMSEncryptionContext=b64json(ctx))
        self.assert_kms_answer(r, self.main["Arn"])
        answered = json.loads(base64.b64decode(r["SSEKMSEncryptionContext"]))
        for k, v in ctx.items():
            self.assertEqual(answered.get(k), v, k)
        if "aws:s3:arn" in answered:
            self.assertEqual(answered["aws:s3:arn"], f"arn:aws:s3:::{self.bucket}/ctx/given")
        self.assert_ciphertext("ctx/given", data, self.main["Arn"], context=ctx)
        got = self.get("ctx/given")
        self.assertEqual(got["Data"], data)
        self.assertNotIn("SSEKMSEncryptionContext", got)
        head = self.c.head_object(Bucket=self.bucket, Key="ctx/given")
        self.assertNotIn("SSEKMSEncryptionContext", head)
        self.assert_kms_answer(head, self.main["Arn"])
        # Contexts that are not base64 of a JSON object of strings.
        for i, bad in enumerate([base64.b64encode(b"not json").decode(), "%%%not base64%%%",
                                 b64json({"n": 1}), b64json(["a", "b"])]):
            status, code, _ = refusal(self.put, f"ctx/bad{i}", b"x", "alias/e2e-main",
                                      SSEKMSEncryptionContext=bad)
            self.assertEqual((status, code), (400, "InvalidArgument"), bad)
            self.assertFalse(backend_has(self.bucket, f"ctx/bad{i}"))

    def test_context_is_bound(self):
        """The stored context is bound to the wrapped data key: an object
        whose context was changed on the backend (say, to satisfy a policy's
        condition) does not decrypt, and gives no plaintext."""
        data = os.urandom(SEG + 50)
        self.put("bound/ctx", data, "alias/e2e-main",
                 SSEKMSEncryptionContext=b64json({"project": "y"}))
        meta = self.assert_ciphertext("bound/ctx", data, self.main["Arn"],
                                      context={"project": "y"})
        b = backend_client()
        body = b.get_object(Bucket=self.bucket, Key="bound/ctx")["Body"].read()
        changed = dict(meta)
        changed["s3seal-context"] = base64.b64encode(json.dumps(
            {"aws:s3:arn": f"arn:aws:s3:::{self.bucket}/bound/ctx", "project": "x"},
            separators=(",", ":"), sort_keys=True).encode()).decode()
        b.put_object(Bucket=self.bucket, Key="bound/ctx", Body=body, Metadata=changed)
        got = b""
        with self.assertRaises(Exception):
            got = self.get("bound/ctx", client=self.alice)["Data"]
        self.assertNotEqual(got, data)
        # Put back as it was, it decrypts again.
        b.put_object(Bucket=self.bucket, Key="bound/ctx", Body=body, Metadata=meta)
        self.assertEqual(self.get("bound/ctx", client=self.alice)["Data"], data)

    def test_refused_requests(self):
        for ref in (str(uuid.uuid4()), "alias/no-such-alias",
                    self.main["Arn"].replace(self.main["KeyId"], str(uuid.uuid4()))):
            status, code, _ = refusal(self.put, "refused/not-found", b"data", ref)
            self.assertEqual((status, code), (400, "KMS.NotFoundException"), ref)
        # SSEKMSKeyId without aws:kms.
        status, code, _ = refusal(self.c.put_object, Bucket=self.bucket, Key="refused/aes",
                                  Body=b"data", ServerSideEncryption="AES256",
                                  SSEKMSKeyId=self.main["KeyId"])
        self.assertEqual((status, code), (400, "InvalidArgument"))
        status, code, _ = refusal(self.c.put_object, Bucket=self.bucket, Key="refused/none",
                                  Body=b"data", SSEKMSKeyId=self.main["KeyId"])
        self.assertEqual((status, code), (400, "InvalidArgument"))
        status, code, _ = refusal(self.c.create_multipart_upload, Bucket=self.bucket,
                                  Key="refused/mpu", ServerSideEncryption="aws:kms",
                                  SSEKMSKeyId="alias/no-such-alias")
        self.assertEqual((status, code), (400, "KMS.NotFoundException"))
        for key in ("refused/not-found", "refused/aes", "refused/none"):
            self.assertFalse(backend_has(self.bucket, key), key)
        self.assertEqual(self.c.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []), [])
        # SSE-C parameters on a GET of an SSE-KMS object: not applicable.
        self.put("refused/ssec", b"data", self.main["KeyId"])
        status, code, _ = refusal(self.c.get_object, Bucket=self.bucket, Key="refused/ssec",
                                  SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32)
        self.assertEqual((status, code), (400, "InvalidRequest"))

    def test_bucket_key(self):
        k = self.bucket_key_key
        before = len(self.audit())
        objs = {"bk/a": os.urandom(SEG + 9), "bk/b": os.urandom(10)}
        for key, data in objs.items():
            r = self.put(key, data, k["Arn"], BucketKeyEnabled=True)
            self.assert_kms_answer(r, k["Arn"], bucket_key=True)
            self.assert_ciphertext(key, data, k["Arn"], bucket_key=True)
            got = self.get(key)
            self.assertEqual(got["Data"], data)
            self.assert_kms_answer(got, k["Arn"], bucket_key=True)
            self.assert_kms_answer(self.c.head_object(Bucket=self.bucket, Key=key), k["Arn"],
                                   bucket_key=True)
        # One key-service call for both objects: that is what a bucket key is for.
        made = [r for r in self.audit()[before:]
                if r.get("operation") == "GenerateDataKey" and r.get("keyArn") == k["Arn"]]
        self.assertEqual(len(made), 1, made)
        # A multipart upload with a bucket key.
        cr = self.c.create_multipart_upload(Bucket=self.bucket, Key="bk/mpu",
                                            ServerSideEncryption="aws:kms", SSEKMSKeyId=k["Arn"],
                                            BucketKeyEnabled=True)
        self.assert_kms_answer(cr, k["Arn"], bucket_key=True)
        part = os.urandom(SEG * 3)
        up = self.c.upload_part(Bucket=self.bucket, Key="bk/mpu", UploadId=cr["UploadId"],
                                PartNumber=1, Body=part)
        self.assert_kms_answer(up, k["Arn"], bucket_key=True)
        done = self.c.complete_multipart_upload(
            Bucket=self.bucket, Key="bk/mpu", UploadId=cr["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": up["ETag"]}]})
        self.assert_kms_answer(done, k["Arn"], bucket_key=True)
        self.assertEqual(self.get("bk/mpu")["Data"], part)
        self.assert_ciphertext("bk/mpu", part, k["Arn"], multipart=True, bucket_key=True)
        # BucketKeyEnabled=False is an ordinary SSE-KMS object.
        r = self.put("bk/off", b"no bucket key" * 10, k["Arn"], BucketKeyEnabled=False)
        self.assert_kms_answer(r, k["Arn"])
        self.assert_ciphertext("bk/off", b"no bucket key" * 10, k["Arn"])

    def test_key_states(self):
        k = self.state_key
        data = os.urandom(2 * SEG + 1)
        self.put("state/before", data, k["Alias"])
        self.assert_ciphertext("state/before", data, k["Arn"])
        self.assertEqual(self.get("state/before")["Data"], data)  # its data key is now cached
        uid = self.c.create_multipart_upload(Bucket=self.bucket, Key="state/mpu",
                                             ServerSideEncryption="aws:kms",
                                             SSEKMSKeyId=k["KeyId"])["UploadId"]
        try:
            self.keys_cli("disable", k["KeyId"])
            self.assertEqual(self.describe(k)["KeyState"], "Disabled")
            self.eventually(self.refused_with("KMS.DisabledException", self.put,
                                              "state/probe", b"x", k["Alias"]),
                            "PUT with a disabled key refused")
            status, code, _ = refusal(self.put, "state/disabled", b"x", k["Alias"])
            self.assertEqual((status, code), (400, "KMS.DisabledException"))
            self.assertFalse(backend_has(self.bucket, "state/disabled"))
            # A cached data key is not used past the key's state either.
            e = self.eventually(self.refused_with("KMS.DisabledException", self.get,
                                                  "state/before"),
                                "GET with a disabled key refused")
            self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 400)
            status, code, _ = refusal(self.c.upload_part, Bucket=self.bucket, Key="state/mpu",
                                      UploadId=uid, PartNumber=1, Body=b"part")
            self.assertEqual((status, code), (400, "KMS.DisabledException"))
            status, code, _ = refusal(self.c.copy_object, Bucket=self.bucket, Key="state/copy",
                                      CopySource={"Bucket": self.bucket, "Key": "state/before"},
                                      ServerSideEncryption="AES256")
            self.assertEqual((status, code), (400, "KMS.DisabledException"))
            self.assertFalse(backend_has(self.bucket, "state/copy"))

            self.keys_cli("enable", k["KeyId"])
            self.eventually(lambda: self.get("state/before")["Data"] == data,
                            "GET after enable")
            self.put("state/enabled", b"enabled again", k["Alias"])
            self.assert_ciphertext("state/enabled", b"enabled again", k["Arn"])

            self.keys_cli("schedule-deletion", k["KeyId"], "--days", "7")
            d = self.describe(k)
            self.assertEqual(d["KeyState"], "PendingDeletion")
            self.assertTrue(d.get("DeletionDate"))
            self.eventually(self.refused_with("KMS.KMSInvalidStateException", self.put,
                                              "state/probe", b"x", k["Alias"]),
                            "PUT with a key pending deletion refused")
            status, code, _ = refusal(self.put, "state/pending", b"x", k["Alias"])
            self.assertEqual((status, code), (400, "KMS.KMSInvalidStateException"))
            e = self.eventually(self.refused_with("KMS.KMSInvalidStateException", self.get,
                                                  "state/before"),
                                "GET with a key pending deletion refused")
            self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 400)
            self.assertFalse(backend_has(self.bucket, "state/pending"))

            self.keys_cli("cancel-deletion", k["KeyId"])
            self.assertEqual(self.describe(k)["KeyState"], "Disabled")  # as AWS
            self.eventually(self.refused_with("KMS.DisabledException", self.get, "state/before"),
                            "GET after cancel-deletion refused as disabled")
        finally:
            self.s.cli("keys", "enable", k["KeyId"])
        self.eventually(lambda: self.get("state/before")["Data"] == data, "GET after enable")
        self.put("state/after", b"after", k["KeyId"])
        self.assert_ciphertext("state/after", b"after", k["Arn"])
        p = self.c.upload_part(Bucket=self.bucket, Key="state/mpu", UploadId=uid, PartNumber=1,
                               Body=b"part")
        self.c.complete_multipart_upload(Bucket=self.bucket, Key="state/mpu", UploadId=uid,
                                         MultipartUpload={"Parts": [{"PartNumber": 1,
                                                                     "ETag": p["ETag"]}]})
        self.assertEqual(self.get("state/mpu")["Data"], b"part")
        self.assert_ciphertext("state/mpu", b"part", k["Arn"], multipart=True)

    def test_rotation(self):
        k = self.rotate_key
        old = os.urandom(SEG + 100)
        self.put("rot/old", old, k["Alias"])
        self.assert_ciphertext("rot/old", old, k["Arn"], version=1)
        self.keys_cli("rotate", k["KeyId"])
        self.assertEqual(int(self.describe(k)["CurrentKeyVersion"]), 2)
        new = os.urandom(1000)

        def new_version_used():
            r = self.put("rot/new", new, k["Alias"])
            self.assertEqual(r["SSEKMSKeyId"], k["Arn"])
            return backend_client().head_object(Bucket=self.bucket, Key="rot/new")[
                "Metadata"]["s3seal-key"] == f"kms:2:{k['Arn']}"
        self.eventually(new_version_used, "new objects use version 2")
        self.assert_ciphertext("rot/new", new, k["Arn"], version=2)
        self.assertEqual(self.get("rot/new")["Data"], new)
        self.assertEqual(self.get("rot/old")["Data"], old)
        self.assert_ciphertext("rot/old", old, k["Arn"], version=1)  # not rewritten
        # Another principal, so not from the data key cache.
        got = self.get("rot/old", client=self.alice)
        self.assertEqual(got["Data"], old)
        self.assert_kms_answer(got, k["Arn"])

    def test_policy_denies_decrypt(self):
        k = self.deny_key
        data = os.urandom(SEG * 2)
        r = self.put("policy/doc", data, k["Alias"], client=self.alice)
        self.assert_kms_answer(r, k["Arn"])
        self.assert_ciphertext("policy/doc", data, k["Arn"])
        self.assertEqual(self.get("policy/doc", client=self.alice)["Data"], data)
        before = len(self.audit())
        status, code, msg = refusal(self.get, "policy/doc", client=self.bob)
        self.assertEqual((status, code), (403, "AccessDenied"))
        self.assertIn("kms:Decrypt", msg)
        self.assertIn(k["Arn"], msg)
        self.assertIn(BOB[2], msg)
        denied = self.records(self.bucket, "policy/doc", "Decrypt", after=before)
        self.assertEqual([(r["result"], r["principal"]) for r in denied],
                         [("AccessDenied", BOB[2])])
        # HEAD decrypts nothing: as in S3, Bob may HEAD it.
        self.assert_kms_answer(self.bob.head_object(Bucket=self.bucket, Key="policy/doc"),
                               k["Arn"])
        # Bob reads objects under other keys, and writes with this one
        # (GenerateDataKey is allowed) - but does not upload parts, which
        # need kms:Decrypt, as in S3.
        self.put("policy/main", data, "alias/e2e-main", client=self.alice)
        self.assert_ciphertext("policy/main", data, self.main["Arn"])
        self.assertEqual(self.get("policy/main", client=self.bob)["Data"], data)
        r = self.put("policy/by-bob", b"bob wrote this", k["Alias"], client=self.bob)
        self.assert_ciphertext("policy/by-bob", b"bob wrote this", k["Arn"])
        self.assertEqual(self.get("policy/by-bob", client=self.alice)["Data"], b"bob wrote this")
        uid = self.bob.create_multipart_upload(Bucket=self.bucket, Key="policy/mpu",
                                               ServerSideEncryption="aws:kms",
                                               SSEKMSKeyId=k["Alias"])["UploadId"]
        status, code, _ = refusal(self.bob.upload_part, Bucket=self.bucket, Key="policy/mpu",
                                  UploadId=uid, PartNumber=1, Body=b"part")
        self.assertEqual((status, code), (403, "AccessDenied"))
        self.c.abort_multipart_upload(Bucket=self.bucket, Key="policy/mpu", UploadId=uid)
        # A copy reads its source: refused too, and nothing is written.
        status, code, msg = refusal(self.bob.copy_object, Bucket=self.bucket, Key="policy/copy",
                                    CopySource={"Bucket": self.bucket, "Key": "policy/doc"},
                                    ServerSideEncryption="AES256")
        self.assertEqual((status, code), (403, "AccessDenied"))
        self.assertIn("kms:Decrypt", msg)
        self.assertFalse(backend_has(self.bucket, "policy/copy"))

    def test_policy_condition_on_context(self):
        k = self.context_key
        data = os.urandom(5000)
        r = self.put("cond/x", data, k["Alias"], SSEKMSEncryptionContext=b64json({"project": "x"}))
        self.assert_kms_answer(r, k["Arn"])
        self.assert_ciphertext("cond/x", data, k["Arn"], context={"project": "x"})
        self.assertEqual(self.get("cond/x")["Data"], data)  # the stored context allows Decrypt
        for name, ctx in (("other", {"project": "y"}), ("none", None),
                          ("other-key", {"team": "x"})):
            kw = {"SSEKMSEncryptionContext": b64json(ctx)} if ctx else {}
            status, code, msg = refusal(self.put, f"cond/{name}", b"x", k["Alias"], **kw)
            self.assertEqual((status, code), (403, "AccessDenied"), name)
            self.assertIn(k["Arn"], msg)
            self.assertFalse(backend_has(self.bucket, f"cond/{name}"))

    def test_cross_account(self):
        k = self.carol_key
        self.assertIn(f":{OTHER_ACCOUNT}:key/", k["Arn"])
        self.assertEqual(self.describe(k)["AWSAccountId"], OTHER_ACCOUNT)
        data = os.urandom(SEG + 3)
        # Carol's account's own key, by its alias in her account.
        r = self.put("xacct/carol", data, "alias/carol-key", client=self.carol)
        self.assert_kms_answer(r, k["Arn"])
        self.assert_ciphertext("xacct/carol", data, k["Arn"])
        self.assertEqual(self.get("xacct/carol", client=self.carol)["Data"], data)
        # From 111122223333: a bare id or alias does not resolve there; the
        # ARNs do, and the default policy refuses.
        for ref in (k["KeyId"], "alias/carol-key"):
            status, code, _ = refusal(self.put, "xacct/e2e", b"x", ref)
            self.assertEqual((status, code), (400, "KMS.NotFoundException"), ref)
        alias_arn = k["Arn"].replace(f":key/{k['KeyId']}", ":alias/carol-key")
        for ref in (k["Arn"], alias_arn):
            status, code, _ = refusal(self.put, "xacct/e2e", b"x", ref)
            self.assertEqual((status, code), (403, "AccessDenied"), ref)
        self.assertFalse(backend_has(self.bucket, "xacct/e2e"))
        status, code, msg = refusal(self.get, "xacct/carol")
        self.assertEqual((status, code), (403, "AccessDenied"))
        self.assertIn(k["Arn"], msg)
        # Carol's account allows e2e (and only e2e) of 111122223333.
        self.put_policy(k, policy(
            allow(f"arn:aws:iam::{OTHER_ACCOUNT}:root", "kms:*"),
            allow(E2E, ["kms:GenerateDataKey*", "kms:Decrypt", "kms:DescribeKey"])))
        mine = os.urandom(2000)
        r = self.eventually(lambda: self.put("xacct/e2e", mine, k["Arn"]),
                            "PUT by ARN once the policy allows it")
        self.assert_kms_answer(r, k["Arn"])
        self.assert_ciphertext("xacct/e2e", mine, k["Arn"])
        self.assertEqual(self.get("xacct/e2e")["Data"], mine)
        self.assertEqual(self.get("xacct/carol")["Data"], data)
        self.assertEqual(self.get("xacct/e2e", client=self.carol)["Data"], mine)
        status, code, _ = refusal(self.put, "xacct/e2e-id", b"x", k["KeyId"])
        self.assertEqual((status, code), (400, "KMS.NotFoundException"))
        # The policy is the whole truth: another principal of 111122223333 is
        # still refused.
        status, code, _ = refusal(self.put, "xacct/bob", b"x", k["Arn"], client=self.bob)
        self.assertEqual((status, code), (403, "AccessDenied"))
        status, code, _ = refusal(self.get, "xacct/carol", client=self.bob)
        self.assertEqual((status, code), (403, "AccessDenied"))

    def test_presigned_get(self):
        data = os.urandom(3 * SEG + 17)
        self.put("presigned", data, "alias/e2e-main")
        self.assert_ciphertext("presigned", data, self.main["Arn"])
        url = self.c.generate_presigned_url("get_object", Params={"Bucket": self.bucket,
                                                                  "Key": "presigned"},
                                            ExpiresIn=300)
        with urllib.request.urlopen(url, timeout=30) as r:
            self.assertEqual(r.read(), data)
            self.assertEqual(r.headers["x-amz-server-side-encryption"], "aws:kms")
            self.assertEqual(r.headers["x-amz-server-side-encryption-aws-kms-key-id"],
                             self.main["Arn"])
        req = urllib.request.Request(url, headers={"Range": f"bytes={SEG}-{SEG + 99}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            self.assertEqual(r.status, 206)
            self.assertEqual(r.read(), data[SEG:SEG + 100])

    def test_multipart(self):
        k = self.second
        data = os.urandom(2 * 5 * MiB + 123_457)
        path = os.path.join(self.tmp, "mpu.bin")
        with open(path, "wb") as f:
            f.write(data)
        self.c.upload_file(path, self.bucket, "mpu/big",
                           ExtraArgs={"ServerSideEncryption": "aws:kms",
                                      "SSEKMSKeyId": "alias/e2e-second"},
                           Config=TransferConfig(multipart_threshold=5 * MiB,
                                                 multipart_chunksize=5 * MiB, max_concurrency=3))
        head = self.c.head_object(Bucket=self.bucket, Key="mpu/big")
        self.assert_kms_answer(head, k["Arn"])
        self.assertEqual(head["ContentLength"], len(data))
        self.assertTrue(head["ETag"].endswith('-3"'), head["ETag"])
        self.assert_ciphertext("mpu/big", data, k["Arn"], multipart=True)
        got = self.get("mpu/big")
        self.assertEqual(got["Data"], data)
        self.assert_kms_answer(got, k["Arn"])
        for a, b in ((5 * MiB - 10, 5 * MiB + 9), (len(data) - 5, len(data) - 1), (0, 0)):
            r = self.get("mpu/big", Range=f"bytes={a}-{b}")
            self.assertEqual(r["Data"], data[a:b + 1], (a, b))
        # What each step of the upload answers, as S3.
        ctx = {"project": "mpu"}
        cr = self.c.create_multipart_upload(Bucket=self.bucket, Key="mpu/small",
                                            ServerSideEncryption="aws:kms",
                                            SSEKMSKeyId=k["KeyId"],
                                            SSEKMSEncryptionContext=b64json(ctx))
        self.assert_kms_answer(cr, k["Arn"])
        part = os.urandom(100_000)
        up = self.c.upload_part(Bucket=self.bucket, Key="mpu/small", UploadId=cr["UploadId"],
                                PartNumber=1, Body=part)
        self.assert_kms_answer(up, k["Arn"])
        done = self.c.complete_multipart_upload(
            Bucket=self.bucket, Key="mpu/small", UploadId=cr["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": up["ETag"]}]})
        self.assert_kms_answer(done, k["Arn"])
        self.assertEqual(self.get("mpu/small")["Data"], part)
        self.assert_ciphertext("mpu/small", part, k["Arn"], multipart=True, context=ctx)

    def test_copies(self):
        data = os.urandom(2 * SEG + 11)
        # SSE-S3 source, aws:kms destination.
        self.c.put_object(Bucket=self.bucket, Key="copy/s3", Body=data,
                          ServerSideEncryption="AES256")
        r = self.c.copy_object(Bucket=self.bucket, Key="copy/s3-to-kms",
                               CopySource={"Bucket": self.bucket, "Key": "copy/s3"},
                               ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/e2e-main")
        self.assert_kms_answer(r, self.main["Arn"])
        self.assert_ciphertext("copy/s3-to-kms", data, self.main["Arn"])
        got = self.get("copy/s3-to-kms")
        self.assertEqual(got["Data"], data)
        self.assert_kms_answer(got, self.main["Arn"])
        # aws:kms source, AES256 destination.
        r = self.c.copy_object(Bucket=self.bucket, Key="copy/kms-to-s3",
                               CopySource={"Bucket": self.bucket, "Key": "copy/s3-to-kms"},
                               ServerSideEncryption="AES256")
        self.assertEqual(r["ServerSideEncryption"], "AES256")
        self.assertNotIn("SSEKMSKeyId", r)
        raw = backend_client().get_object(Bucket=self.bucket, Key="copy/kms-to-s3")
        self.assertTrue(raw["Metadata"]["s3seal-key"].startswith("sse-s3:"))
        self.assertNotIn("s3seal-context", raw["Metadata"])
        self.assertNotIn(data[:64], raw["Body"].read())
        got = self.get("copy/kms-to-s3")
        self.assertEqual(got["Data"], data)
        self.assertEqual(got["ServerSideEncryption"], "AES256")
        self.assertNotIn("SSEKMSKeyId", got)
        # aws:kms to aws:kms under another key, into another bucket, with a context.
        b = self.new_bucket()
        ctx = {"copied": "yes"}
        r = self.c.copy_object(Bucket=b, Key="copy/other-key",
                               CopySource={"Bucket": self.bucket, "Key": "copy/s3-to-kms"},
                               ServerSideEncryption="aws:kms", SSEKMSKeyId=self.second["Arn"],
                               SSEKMSEncryptionContext=b64json(ctx))
        self.assert_kms_answer(r, self.second["Arn"])
        self.assert_ciphertext("copy/other-key", data, self.second["Arn"], bucket=b, context=ctx)
        got = self.get("copy/other-key", bucket=b)
        self.assertEqual(got["Data"], data)
        self.assert_kms_answer(got, self.second["Arn"])
        # A copy to a key that does not exist is refused and writes nothing.
        status, code, _ = refusal(self.c.copy_object, Bucket=self.bucket, Key="copy/refused",
                                  CopySource={"Bucket": self.bucket, "Key": "copy/s3"},
                                  ServerSideEncryption="aws:kms",
                                  SSEKMSKeyId="alias/no-such-alias")
        self.assertEqual((status, code), (400, "KMS.NotFoundException"))
        self.assertFalse(backend_has(self.bucket, "copy/refused"))

    def test_bucket_defaults(self):
        # From the config file.
        data = os.urandom(SEG * 2 + 1)
        r = self.c.put_object(Bucket=self.cfg_bucket, Key="plain", Body=data)
        self.assert_kms_answer(r, self.config_key["Arn"])
        head = self.c.head_object(Bucket=self.cfg_bucket, Key="plain")
        self.assert_kms_answer(head, self.config_key["Arn"])
        self.assert_ciphertext("plain", data, self.config_key["Arn"], bucket=self.cfg_bucket)
        self.assertEqual(self.get("plain", bucket=self.cfg_bucket)["Data"], data)
        # Listings of a bucket encrypted by default report plaintext sizes.
        listed = self.c.list_objects_v2(Bucket=self.cfg_bucket, Prefix="plain")["Contents"]
        self.assertEqual([(o["Key"], o["Size"]) for o in listed], [("plain", len(data))])
        # An explicit choice still wins over the default.
        r = self.c.put_object(Bucket=self.cfg_bucket, Key="explicit", Body=data,
                              ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/e2e-main")
        self.assert_kms_answer(r, self.main["Arn"])
        self.assert_ciphertext("explicit", data, self.main["Arn"], bucket=self.cfg_bucket)
        # From PutBucketEncryption, with a bucket key.
        b = self.new_bucket()
        self.c.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                   "KMSMasterKeyID": self.second["Arn"]},
            "BucketKeyEnabled": True}]})
        rule = self.c.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"][
            "Rules"][0]
        self.assertEqual(rule["ApplyServerSideEncryptionByDefault"],
                         {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": self.second["Arn"]})
        r = self.c.put_object(Bucket=b, Key="plain", Body=data)
        self.assert_kms_answer(r, self.second["Arn"], bucket_key=True)
        head = self.c.head_object(Bucket=b, Key="plain")
        self.assert_kms_answer(head, self.second["Arn"], bucket_key=True)
        self.assert_ciphertext("plain", data, self.second["Arn"], bucket=b, bucket_key=True)
        self.assertEqual(self.get("plain", bucket=b)["Data"], data)
        # A default must name a key the bucket's owner may use: one that does
        # not exist, or another account's key its policy keeps from this
        # account, is refused and nothing is stored.
        b3 = self.new_bucket()
        for ref, want in (("alias/no-such-alias", (400, "KMS.NotFoundException")),
                          (self.carol_key["Arn"], (403, "AccessDenied"))):
            status, code, _ = refusal(
                self.c.put_bucket_encryption, Bucket=b3, ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": ref}}]})
            self.assertEqual((status, code), want, ref)
            status, code, _ = refusal(self.c.get_bucket_encryption, Bucket=b3)
            self.assertEqual(code, "ServerSideEncryptionConfigurationNotFoundError")
        r = self.c.put_object(Bucket=b3, Key="plain", Body=data)
        self.assertNotEqual(r.get("ServerSideEncryption"), "aws:kms")
        # By alias, without a bucket key; a multipart upload too.
        b2 = self.new_bucket()
        self.c.put_bucket_encryption(Bucket=b2, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                   "KMSMasterKeyID": "alias/e2e-main"}}]})
        r = self.c.put_object(Bucket=b2, Key="plain", Body=data)
        self.assert_kms_answer(r, self.main["Arn"])
        self.assert_ciphertext("plain", data, self.main["Arn"], bucket=b2)
        cr = self.c.create_multipart_upload(Bucket=b2, Key="mpu")
        self.assert_kms_answer(cr, self.main["Arn"])
        up = self.c.upload_part(Bucket=b2, Key="mpu", UploadId=cr["UploadId"], PartNumber=1,
                                Body=data)
        self.c.complete_multipart_upload(Bucket=b2, Key="mpu", UploadId=cr["UploadId"],
                                         MultipartUpload={"Parts": [{"PartNumber": 1,
                                                                     "ETag": up["ETag"]}]})
        self.assertEqual(self.get("mpu", bucket=b2)["Data"], data)
        self.assert_ciphertext("mpu", data, self.main["Arn"], bucket=b2, multipart=True)

    def test_audit_log(self):
        k = self.audit_key
        b = self.new_bucket("kmsaudit")
        data = os.urandom(1000)
        put = self.put("audited", data, k["Alias"], bucket=b,
                       SSEKMSEncryptionContext=b64json({"purpose": "audit"}))
        self.assert_ciphertext("audited", data, k["Arn"], bucket=b, context={"purpose": "audit"})
        recs = self.records(b, "audited")
        self.assertEqual(len(recs), 1, recs)
        r = recs[0]
        for field in ("time", "seq", "operation", "result", "principal", "accessKeyId",
                      "sourceIPAddress", "requestId", "keyArn", "keyVersion", "bucket", "object",
                      "encryptionContext", "prev", "hash"):
            self.assertIn(field, r)
        self.assertEqual((r["operation"], r["result"]), ("GenerateDataKey", "Success"))
        self.assertEqual((r["principal"], r["accessKeyId"]), (E2E, self.s.access_key))
        self.assertEqual((r["keyArn"], r["keyVersion"]), (k["Arn"], 1))
        self.assertEqual(r["sourceIPAddress"], "127.0.0.1")  # an IP address, as CloudTrail's
        self.assertEqual(r["requestId"], put["ResponseMetadata"]["RequestId"])
        ctx = r["encryptionContext"]
        if isinstance(ctx, str):
            ctx = json.loads(ctx)
        self.assertEqual(ctx, {"purpose": "audit", "aws:s3:arn": f"arn:aws:s3:::{b}/audited"})
        self.assertRegex(r["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        self.assertRegex(r["hash"], r"^[0-9a-f]{64}$")

        # A GET: one Decrypt; again by the same principal within the cache's
        # time: none; by another principal: one.
        n = len(self.audit())
        got = self.get("audited", bucket=b)
        self.assertEqual(got["Data"], data)
        recs = self.audit()[n:]
        self.assertEqual([(x["operation"], x["result"], x["principal"], x["object"])
                          for x in recs], [("Decrypt", "Success", E2E, "audited")])
        self.assertEqual(recs[0]["requestId"], got["ResponseMetadata"]["RequestId"])
        self.assertEqual(self.get("audited", bucket=b)["Data"], data)
        self.c.head_object(Bucket=b, Key="audited")  # HEAD uses no key
        self.assertEqual(self.audit()[n + 1:], [])
        self.assertEqual(self.get("audited", bucket=b, client=self.alice)["Data"], data)
        self.assertEqual([(x["operation"], x["result"], x["principal"], x["accessKeyId"])
                          for x in self.audit()[n + 1:]],
                         [("Decrypt", "Success", ALICE[2], ALICE[0])])

        # Refusals are recorded with their error code.
        n = len(self.audit())
        refusal(self.put, "refused", b"x", "alias/no-such-alias", bucket=b)
        refusal(self.put, "refused", b"x", self.carol_key["Arn"], bucket=b, client=self.bob)
        self.assertEqual([(x["operation"], x["result"], x["principal"], x["bucket"], x["object"])
                          for x in self.audit()[n:]],
                         [("GenerateDataKey", "KMS.NotFoundException", E2E, b, "refused"),
                          ("GenerateDataKey", "AccessDenied", BOB[2], b, "refused")])
        self.assertFalse(backend_has(b, "refused"))

        # The chain: sequence numbers and links, then `audit verify`.
        lines = self.audit()
        self.assertEqual([x["seq"] for x in lines], list(range(lines[0]["seq"],
                                                               lines[0]["seq"] + len(lines))))
        self.assertEqual(lines[0]["prev"], "0" * 64)
        for a, c in zip(lines, lines[1:]):
            self.assertEqual(c["prev"], a["hash"])
        v = self.s.cli("audit", "verify", self.audit_log)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn(b"intact", v.stdout)
        with open(self.audit_log, "rb") as f:
            raw = f.read().splitlines(keepends=True)
        for i, (old, new) in enumerate(((b'"result":"Success"', b'"result":"Sucness"'),
                                        (b"user/e2e", b"user/e2f"))):
            copy = os.path.join(self.tmp, f"audit-altered-{i}.jsonl")
            j = next(j for j, line in enumerate(raw) if old in line)
            altered = list(raw)
            altered[j] = altered[j].replace(old, new, 1)
            with open(copy, "wb") as f:
                f.write(b"".join(altered))
            v = self.s.cli("audit", "verify", copy)
            self.assertEqual(v.returncode, 1, v.stdout + v.stderr)
            self.assertNotIn(b"intact", v.stdout)
        # A record taken out is found too.
        copy = os.path.join(self.tmp, "audit-removed.jsonl")
        with open(copy, "wb") as f:
            f.write(b"".join(raw[:1] + raw[2:]))
        self.assertEqual(self.s.cli("audit", "verify", copy).returncode, 1)

    def test_aws_cli(self):
        path = os.path.join(self.tmp, "cli.bin")
        data = os.urandom(300_000)
        with open(path, "wb") as f:
            f.write(data)
        r = self.s.aws("s3", "cp", path, f"s3://{self.bucket}/cli/file", "--sse", "aws:kms",
                       "--sse-kms-key-id", "alias/e2e-second", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_ciphertext("cli/file", data, self.second["Arn"])
        head = json.loads(self.s.aws("s3api", "head-object", "--bucket", self.bucket, "--key",
                                     "cli/file").stdout)
        self.assertEqual(head["ServerSideEncryption"], "aws:kms")
        self.assertEqual(head["SSEKMSKeyId"], self.second["Arn"])
        self.assertEqual(head["ContentLength"], len(data))
        self.assertNotIn("SSEKMSEncryptionContext", head)
        out = self.s.aws("s3", "cp", f"s3://{self.bucket}/cli/file", "-").stdout
        self.assertEqual(out, data)
        r = self.s.aws("s3", "cp", path, f"s3://{self.bucket}/cli/missing-key", "--sse",
                       "aws:kms", "--sse-kms-key-id", "alias/no-such-alias", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"KMS.NotFoundException", r.stderr)
        self.assertFalse(backend_has(self.bucket, "cli/missing-key"))

    def test_javascript_sdk(self):
        if not os.path.isdir(os.path.join(HERE, "node_modules", "@aws-sdk", "client-s3")):
            self.fail("tests/e2e/node_modules is missing: run deploy/install-deps.sh")
        b = self.new_bucket("kmsjs")
        r = subprocess.run(["node", "sse_kms_js.mjs", self.s.endpoint, b, self.s.access_key,
                            self.s.secret_key, "alias/e2e-main", self.main["Arn"]],
                           cwd=HERE, capture_output=True, timeout=300)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode()[-3000:])
        self.assertIn(b"ok PutObject stream", r.stdout)
        # Checked here too: what the script stored is ciphertext under the key.
        raw = backend_client().head_object(Bucket=b, Key="js-buffer")
        self.assertEqual(raw["Metadata"]["s3seal-key"], f"kms:1:{self.main['Arn']}")
        self.assertEqual(raw["ContentLength"], cipher_size(5000))


class SseKmsNoCacheTest(unittest.TestCase):
    """keystore.dek_cache_seconds: 0: no data key is cached, so every GET
    of an SSE-KMS object is a Decrypt of its own, audited."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="s3seal-e2e-kms-nocache-")
        cls.audit_log = os.path.join(cls.tmp, "audit.jsonl")
        cls.bucket = new_bucket_name("kmsnc")
        cls.s = S3Seal(keystore_extra="dek_cache_seconds: 0\n",
                       extra_yaml=f"audit_log: {cls.audit_log}\n")
        cls.s.cli("keystore", "init", check=True)
        cls.key = key_metadata(cls.s.cli("keys", "create", "--alias", "alias/nocache",
                                         check=True).stdout)
        cls.s.start()
        cls.c = cls.s.client()
        cls.c.create_bucket(Bucket=cls.bucket)

    @classmethod
    def tearDownClass(cls):
        try:
            empty_and_delete(backend_client(), cls.bucket)
            shutil.rmtree(cls.tmp, True)
        finally:
            cls.s.stop()

    def test_every_get_is_a_decrypt(self):
        data = os.urandom(1000)
        r = self.c.put_object(Bucket=self.bucket, Key="o", Body=data,
                              ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/nocache")
        self.assertEqual(r["SSEKMSKeyId"], self.key["Arn"])
        raw = backend_client().get_object(Bucket=self.bucket, Key="o")
        self.assertEqual(raw["Metadata"]["s3seal-key"], f"kms:1:{self.key['Arn']}")
        self.assertNotIn(data[:64], raw["Body"].read())
        for _ in range(3):
            self.assertEqual(self.c.get_object(Bucket=self.bucket, Key="o")["Body"].read(), data)
        with open(self.audit_log) as f:
            recs = [json.loads(line) for line in f if line.strip()]
        self.assertEqual([(x["operation"], x["result"]) for x in recs
                          if x.get("bucket") == self.bucket],
                         [("GenerateDataKey", "Success")] + [("Decrypt", "Success")] * 3)
        v = self.s.cli("audit", "verify", self.audit_log)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)


class SseKmsFleetTest(unittest.TestCase):
    """Two instances (two workers each) sharing one keystore and one audit
    log, as a fleet does: the first uses of the default key, concurrent
    across workers and instances, make one key; a key disabled with the CLI
    is refused by every worker of both; both append to one intact chain."""

    def test_fleet(self):
        tmp = tempfile.mkdtemp(prefix="s3seal-e2e-kms-fleet-")
        log = os.path.join(tmp, "audit.jsonl")
        a = S3Seal(workers=2, extra_yaml=f"audit_log: {log}\n")
        a.cli("keystore", "init", check=True)
        key = key_metadata(a.cli("keys", "create", "--alias", "alias/fleet", check=True).stdout)
        a.start()
        b = None
        bucket = new_bucket_name("kmsfleet")
        try:
            b = S3Seal(workers=2, keystore_of=a, extra_yaml=f"audit_log: {log}\n").start()
            clients = [a.client(max_pool_connections=16), b.client(max_pool_connections=16)]
            clients[0].create_bucket(Bucket=bucket)
            data = os.urandom(5000)

            def put_default(i):
                return clients[i % 2].put_object(Bucket=bucket, Key=f"default/{i}", Body=data,
                                                 ServerSideEncryption="aws:kms")["SSEKMSKeyId"]
            with ThreadPoolExecutor(16) as ex:
                arns = set(ex.map(put_default, range(32)))
            self.assertEqual(len(arns), 1, arns)
            arn = arns.pop()
            managed = [k for k in key_list(a.cli("keys", "list", "--json", check=True).stdout)
                       if k.get("KeyManager") == "AWS"]
            self.assertEqual([k["Arn"] for k in managed], [arn])
            raw = backend_client().get_object(Bucket=bucket, Key="default/7")
            self.assertEqual(raw["Metadata"]["s3seal-key"], f"kms:1:{arn}")
            self.assertEqual(len(raw["Body"].read()), cipher_size(len(data)))

            for i in range(4):
                clients[i % 2].put_object(Bucket=bucket, Key=f"k/{i}", Body=data,
                                          ServerSideEncryption="aws:kms",
                                          SSEKMSKeyId="alias/fleet")
            raw = backend_client().get_object(Bucket=bucket, Key="k/3")
            self.assertEqual(raw["Metadata"]["s3seal-key"], f"kms:1:{key['Arn']}")
            self.assertNotIn(data[:64], raw["Body"].read())

            def get(i):
                try:
                    got = clients[i % 2].get_object(Bucket=bucket, Key=f"k/{i % 4}")
                    return "ok" if got["Body"].read() == data else "wrong data"
                except botocore.exceptions.ClientError as e:
                    return e.response["Error"]["Code"]
            with ThreadPoolExecutor(8) as ex:
                self.assertEqual(set(ex.map(get, range(16))), {"ok"})
            a.cli("keys", "disable", key["KeyId"], check=True)
            time.sleep(REFRESH_WAIT - 2)
            with ThreadPoolExecutor(8) as ex:
                self.assertEqual(set(ex.map(get, range(32))), {"KMS.DisabledException"})

            v = a.cli("audit", "verify", log)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            self.assertIn(b"chain intact", v.stdout)
            with open(log) as f:
                recs = [json.loads(line) for line in f if line.strip()]
            ops = [(r["operation"], r["result"]) for r in recs if r.get("bucket") == bucket]
            self.assertEqual(ops.count(("GenerateDataKey", "Success")), 32 + 4)
            self.assertGreaterEqual(ops.count(("Decrypt", "KMS.DisabledException")), 1)
        finally:
            empty_and_delete(backend_client(), bucket)
            try:
                if b:
                    b.stop()
            finally:
                a.stop()
                shutil.rmtree(tmp, True)


if __name__ == "__main__":
    unittest.main()
