"""Who may do what: two accounts, three principals, through s3seal against
the real backend (boto3 and aws-cli).

- e2e (111122223333, no identity policy): the account's root, owner of the
  test bucket;
- alice (111122223333) with an identity policy that allows ListAllMyBuckets
  only: a principal of the owner's account without rights;
- carol (444455556666) with an identity policy that allows s3:*: another
  account's principal.

Every operation s3seal routes is tried by each, without and with a bucket
policy granting it; another account cannot replace or remove the bucket's
default encryption (the attack of the issue), and the SSE-enforcing bucket
policy refuses an upload without SSE."""
import base64
import hashlib
import json
import os
import secrets
import subprocess
import unittest

import botocore

from harness import (S3Seal, backend_client, empty_and_delete, error_code, new_bucket_name,
                     raw_request, sign_v4)

ACCOUNT = "111122223333"
OTHER = "444455556666"


def credential(principal, policy):
    return ("AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30), principal, policy)


def identity(*actions):
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}


ALICE = credential(f"arn:aws:iam::{ACCOUNT}:user/alice", identity("s3:ListAllMyBuckets"))
CAROL = credential(f"arn:aws:iam::{OTHER}:user/carol", identity("s3:*"))


def code_of(fn, *args, **kw):
    """The S3 error code of a refused call, or None when it succeeds."""
    try:
        fn(*args, **kw)
        return None
    except botocore.exceptions.ClientError as e:
        code = e.response["Error"]["Code"]
        # A HEAD's refusal has no body to name its code.
        return "AccessDenied" if code == "403" else code


class AuthzTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = S3Seal(extra_credentials=[ALICE, CAROL])
        cls.s.start()
        cls.owner = cls.s.client()
        cls.alice = cls.s.client(access_key=ALICE[0], secret_key=ALICE[1])
        cls.carol = cls.s.client(access_key=CAROL[0], secret_key=CAROL[1])
        cls.buckets = []

    @classmethod
    def tearDownClass(cls):
        for b in cls.buckets:
            empty_and_delete(backend_client(), b)
        cls.s.stop()

    def bucket(self, client=None):
        b = new_bucket_name("authz")
        self.buckets.append(b)
        (client or self.owner).create_bucket(Bucket=b)
        return b

    def grant(self, bucket, principals, actions="s3:*"):
        self.owner.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Sid": "Grant", "Effect": "Allow",
                           "Principal": {"AWS": principals}, "Action": actions,
                           "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))

    # ---------------------------------------------------------------- ops

    def operations(self, c, b):
        """Every operation s3seal routes, by client c on bucket b: name -> call."""
        owner = self.owner
        owner.put_object(Bucket=b, Key="src", Body=b"source")

        def mpu():
            up = c.create_multipart_upload(Bucket=b, Key="mpu")["UploadId"]
            etag = c.upload_part(Bucket=b, Key="mpu", UploadId=up, PartNumber=1,
                                 Body=b"p")["ETag"]
            c.list_parts(Bucket=b, Key="mpu", UploadId=up)
            c.complete_multipart_upload(Bucket=b, Key="mpu", UploadId=up, MultipartUpload={
                "Parts": [{"ETag": etag, "PartNumber": 1}]})

        def mpu_copy():
            up = owner.create_multipart_upload(Bucket=b, Key="mpc")["UploadId"]
            try:
                c.upload_part_copy(Bucket=b, Key="mpc", UploadId=up, PartNumber=1,
                                   CopySource={"Bucket": b, "Key": "src"})
            finally:
                owner.abort_multipart_upload(Bucket=b, Key="mpc", UploadId=up)

        def abort():
            up = owner.create_multipart_upload(Bucket=b, Key="ab")["UploadId"]
            try:
                c.abort_multipart_upload(Bucket=b, Key="ab", UploadId=up)
            except botocore.exceptions.ClientError:
                owner.abort_multipart_upload(Bucket=b, Key="ab", UploadId=up)
                raise

        return {
            "HeadBucket": lambda: c.head_bucket(Bucket=b),
            "ListObjectsV2": lambda: c.list_objects_v2(Bucket=b),
            "ListObjects": lambda: c.list_objects(Bucket=b),
            "ListObjectVersions": lambda: c.list_object_versions(Bucket=b),
            "ListMultipartUploads": lambda: c.list_multipart_uploads(Bucket=b),
            "PutObject": lambda: c.put_object(Bucket=b, Key="k", Body=b"data"),
            "GetObject": lambda: c.get_object(Bucket=b, Key="src")["Body"].read(),
            "HeadObject": lambda: c.head_object(Bucket=b, Key="src"),
            "CopyObject": lambda: c.copy_object(Bucket=b, Key="copy",
                                                CopySource={"Bucket": b, "Key": "src"}),
            "MultipartUpload": mpu,
            "UploadPartCopy": mpu_copy,
            "AbortMultipartUpload": abort,
            "PutObjectTagging": lambda: c.put_object_tagging(
                Bucket=b, Key="src", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}),
            "GetObjectTagging": lambda: c.get_object_tagging(Bucket=b, Key="src"),
            "DeleteObjectTagging": lambda: c.delete_object_tagging(Bucket=b, Key="src"),
            "GetBucketLocation": lambda: c.get_bucket_location(Bucket=b),
            "GetBucketVersioning": lambda: c.get_bucket_versioning(Bucket=b),
            "DeleteObject": lambda: c.delete_object(Bucket=b, Key="k"),
            "DeleteObjects": lambda: c.delete_objects(Bucket=b, Delete={
                "Objects": [{"Key": "nothing"}]}),
        }

    def test_operations(self):
        b = self.bucket()
        for name, op in self.operations(self.owner, b).items():
            self.assertIsNone(code_of(op), f"owner: {name}")
        for who, c in (("alice", self.alice), ("carol", self.carol)):
            for name, op in self.operations(c, b).items():
                self.assertEqual(code_of(op), "AccessDenied", f"{who} without a grant: {name}")
        # A bucket policy granting alice and carol's account: alice needs
        # only that (same account), carol has her identity policy as well.
        self.grant(b, [ALICE[2], f"arn:aws:iam::{OTHER}:root"])
        for who, c in (("alice", self.alice), ("carol", self.carol)):
            for name, op in self.operations(c, b).items():
                self.assertIsNone(code_of(op), f"{who} with a grant: {name}")
        # Still the owner's account's alone, whatever the grant: the policy
        # and the default encryption; alice, of that account, is granted.
        self.assertEqual(code_of(self.carol.get_bucket_policy, Bucket=b), "AccessDenied")
        self.assertEqual(code_of(self.carol.delete_bucket_policy, Bucket=b), "AccessDenied")
        self.assertIsNone(code_of(self.alice.get_bucket_policy, Bucket=b))
        self.assertEqual(code_of(self.carol.put_bucket_encryption, Bucket=b,
                                 ServerSideEncryptionConfiguration={"Rules": [{
                                     "ApplyServerSideEncryptionByDefault": {
                                         "SSEAlgorithm": "AES256"}}]}), "AccessDenied")
        # A grant narrower than the operation does not stretch.
        self.grant(b, [f"arn:aws:iam::{OTHER}:root"], "s3:GetObject")
        ops = self.operations(self.carol, b)
        self.assertIsNone(code_of(ops["GetObject"]))
        self.assertEqual(code_of(ops["PutObject"]), "AccessDenied")
        # A copy needs GetObject on its source: carol's own bucket as the
        # destination, the owner's as the source, without a grant on it.
        mine = self.bucket(self.carol)
        self.owner.delete_bucket_policy(Bucket=b)
        self.assertEqual(code_of(self.carol.copy_object, Bucket=mine, Key="c",
                                 CopySource={"Bucket": b, "Key": "src"}), "AccessDenied")
        self.grant(b, [f"arn:aws:iam::{OTHER}:root"], "s3:GetObject")
        self.assertIsNone(code_of(self.carol.copy_object, Bucket=mine, Key="c",
                                  CopySource={"Bucket": b, "Key": "src"}))

    # -------------------------------------------------------- the attack

    def test_other_account_cannot_touch_bucket_encryption(self):
        b = self.bucket()
        self.owner.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        attacker_rule = {"Rules": [{"ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": f"arn:aws:kms:us-east-1:{OTHER}:key/attacker"}}]}
        for c in (self.carol, self.alice):
            self.assertEqual(code_of(c.put_bucket_encryption, Bucket=b,
                                     ServerSideEncryptionConfiguration=attacker_rule),
                             "AccessDenied")
            self.assertEqual(code_of(c.delete_bucket_encryption, Bucket=b), "AccessDenied")
            self.assertEqual(code_of(c.get_bucket_encryption, Bucket=b), "AccessDenied")
        # Not even with a bucket policy that grants everything.
        self.grant(b, [ALICE[2], f"arn:aws:iam::{OTHER}:root"])
        self.assertEqual(code_of(self.carol.put_bucket_encryption, Bucket=b,
                                 ServerSideEncryptionConfiguration=attacker_rule),
                         "AccessDenied")
        self.assertEqual(code_of(self.carol.delete_bucket_encryption, Bucket=b), "AccessDenied")
        self.assertEqual(code_of(self.carol.put_bucket_policy, Bucket=b, Policy="{}"),
                         "AccessDenied")
        rule = self.owner.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"]
        self.assertEqual(rule["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"],
                         "AES256")
        # The owner's next upload is still sealed by s3seal.
        self.owner.put_object(Bucket=b, Key="after", Body=b"secret" * 100)
        stored = backend_client().get_object(Bucket=b, Key="after")["Body"].read()
        self.assertNotIn(b"secret", stored)
        # Alice, of the owner's account, may once her identity or the bucket
        # policy allows it (here the bucket policy does).
        self.owner.delete_bucket_encryption(Bucket=b)
        self.assertIsNone(code_of(self.alice.put_bucket_encryption, Bucket=b,
                                  ServerSideEncryptionConfiguration={"Rules": [{
                                      "ApplyServerSideEncryptionByDefault": {
                                          "SSEAlgorithm": "AES256"}}]}))

    # ------------------------------------------------------ bucket policy

    def test_sse_enforcing_policy(self):
        b = self.bucket()
        self.owner.put_bucket_policy(Bucket=b, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "DenyUnencrypted", "Effect": "Deny", "Principal": "*",
                "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{b}/*",
                "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}}}]}))
        self.assertEqual(code_of(self.owner.put_object, Bucket=b, Key="plain", Body=b"x"),
                         "AccessDenied")
        self.owner.put_object(Bucket=b, Key="sealed", Body=b"x" * 50,
                              ServerSideEncryption="AES256")
        self.assertEqual(self.owner.get_object(Bucket=b, Key="sealed")["Body"].read(), b"x" * 50)
        status = self.owner.get_bucket_policy_status(Bucket=b)["PolicyStatus"]
        self.assertFalse(status["IsPublic"])
        stored = json.loads(self.owner.get_bucket_policy(Bucket=b)["Policy"])
        self.assertEqual(stored["Statement"][0]["Sid"], "DenyUnencrypted")
        # Never the backend's.
        self.assertEqual(code_of(backend_client().get_bucket_policy, Bucket=b),
                         "NoSuchBucketPolicy")
        self.owner.delete_bucket_policy(Bucket=b)
        self.assertEqual(code_of(self.owner.get_bucket_policy, Bucket=b), "NoSuchBucketPolicy")
        self.owner.put_object(Bucket=b, Key="plain", Body=b"x")

    def test_malformed_policies(self):
        b = self.bucket()
        for doc in ("not json",
                    json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
                                               "Action": "s3:GetObjekt",
                                               "Resource": f"arn:aws:s3:::{b}/*"}]}),
                    json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
                                               "Action": "s3:GetObject",
                                               "Resource": "arn:aws:s3:::another/*"}]}),
                    json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "bob"},
                                               "Action": "s3:GetObject",
                                               "Resource": f"arn:aws:s3:::{b}/*"}]})):
            self.assertEqual(code_of(self.owner.put_bucket_policy, Bucket=b, Policy=doc),
                             "MalformedPolicy", doc)
        self.assertEqual(code_of(self.owner.get_bucket_policy, Bucket=b), "NoSuchBucketPolicy")
        # Alice, of the owner's account but without rights, may not set one.
        self.assertEqual(code_of(self.alice.put_bucket_policy, Bucket=b, Policy=json.dumps({
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*",
                           "Resource": f"arn:aws:s3:::{b}/*"}]})), "AccessDenied")

    # --------------------------------------------------------- ownership

    def test_list_buckets_and_names(self):
        mine = self.bucket()
        theirs = self.bucket(self.carol)
        names = {x["Name"] for x in self.owner.list_buckets()["Buckets"]}
        self.assertIn(mine, names)
        self.assertNotIn(theirs, names)
        names = {x["Name"] for x in self.carol.list_buckets()["Buckets"]}
        self.assertIn(theirs, names)
        self.assertNotIn(mine, names)
        # Alice's identity policy allows ListAllMyBuckets: her account's.
        names = {x["Name"] for x in self.alice.list_buckets()["Buckets"]}
        self.assertIn(mine, names)
        self.assertNotIn(theirs, names)
        # A name another account holds.
        self.assertEqual(code_of(self.carol.create_bucket, Bucket=mine), "BucketAlreadyExists")
        self.assertEqual(code_of(self.owner.create_bucket, Bucket=theirs),
                         "BucketAlreadyExists")
        # Alice may not create buckets, nor delete the owner's.
        self.assertEqual(code_of(self.alice.create_bucket, Bucket=new_bucket_name("authz")),
                         "AccessDenied")
        self.assertEqual(code_of(self.carol.delete_bucket, Bucket=mine), "AccessDenied")
        # The owner's data is carol's to use in her bucket only.
        self.carol.put_object(Bucket=theirs, Key="k", Body=b"carol")
        self.assertEqual(code_of(self.owner.get_object, Bucket=theirs, Key="k"), "AccessDenied")
        # A deleted bucket's name is free again, for another account too.
        self.carol.delete_object(Bucket=theirs, Key="k")
        self.carol.delete_bucket(Bucket=theirs)
        self.owner.create_bucket(Bucket=theirs)
        self.owner.put_object(Bucket=theirs, Key="k", Body=b"owner")
        self.assertEqual(code_of(self.carol.get_object, Bucket=theirs, Key="k"), "AccessDenied")

    def test_delete_objects_decided_per_key(self):
        """DeleteObjects is s3:DeleteObject on each key of its body: a
        principal allowed tmp/* deletes a batch under tmp/, a batch with one
        key outside is refused whole and deletes nothing, and a bucket
        policy's explicit Deny on one key is not bypassed by a batch."""
        b = self.bucket()
        self.owner.put_bucket_policy(Bucket=b, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "TmpOnly", "Effect": "Allow", "Principal": {"AWS": ALICE[2]},
                 "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{b}/tmp/*"},
                {"Sid": "KeepThis", "Effect": "Deny", "Principal": "*",
                 "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{b}/keep/this"}]}))
        for k in ("tmp/a", "tmp/b", "tmp/c", "keep/x", "keep/this", "other"):
            self.owner.put_object(Bucket=b, Key=k, Body=b"x")
        be = backend_client()

        def present(k):
            try:
                be.head_object(Bucket=b, Key=k)
                return True
            except botocore.exceptions.ClientError:
                return False

        r = self.alice.delete_objects(Bucket=b, Delete={
            "Objects": [{"Key": "tmp/a"}, {"Key": "tmp/b"}]})
        self.assertEqual(sorted(d["Key"] for d in r.get("Deleted", [])), ["tmp/a", "tmp/b"])
        self.assertFalse(present("tmp/a") or present("tmp/b"))
        self.assertEqual(code_of(self.alice.delete_objects, Bucket=b, Delete={
            "Objects": [{"Key": "tmp/c"}, {"Key": "keep/x"}]}), "AccessDenied")
        self.assertTrue(present("tmp/c") and present("keep/x"))
        # The owner's root may delete anything but what the Deny names.
        self.assertEqual(code_of(self.owner.delete_objects, Bucket=b, Delete={
            "Objects": [{"Key": "other"}, {"Key": "keep/this"}]}), "AccessDenied")
        self.assertTrue(present("other") and present("keep/this"))
        self.assertEqual(code_of(self.owner.delete_object, Bucket=b, Key="keep/this"),
                         "AccessDenied")
        r = self.owner.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "other"}]})
        self.assertEqual([d["Key"] for d in r.get("Deleted", [])], ["other"])
        self.assertFalse(present("other"))
        # Not a Delete document: MalformedXML, nothing deleted.
        self.assertEqual(code_of(self.owner.delete_objects, Bucket=b, Delete={"Objects": []}),
                         "MalformedXML")
        # A version named is deleted for good: s3:DeleteObjectVersion, which
        # Alice lacks even under tmp/.
        self.owner.put_object(Bucket=b, Key="tmp/v", Body=b"x")
        self.assertEqual(code_of(self.alice.delete_objects, Bucket=b, Delete={
            "Objects": [{"Key": "tmp/v", "VersionId": "null"}]}), "AccessDenied")
        self.assertTrue(present("tmp/v"))

        # Bodies that could read one way to s3seal and another to the
        # backend are refused whole: a repeated Key (one parser takes the
        # first, another the last), a DTD (entities expanded differently).
        def raw_delete(body):
            url = f"{self.s.endpoint}/{b}?delete"
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
            h = sign_v4("POST", url, {"content-md5": md5}, hashlib.sha256(body).hexdigest(),
                        ALICE[0], ALICE[1])
            return raw_request(self.s.endpoint, "POST", f"/{b}?delete", h, body)
        for body in (b"<Delete><Object><Key>tmp/v</Key><Key>keep/x</Key></Object></Delete>",
                     b'<!DOCTYPE Delete [<!ENTITY k "keep/x">]>'
                     b"<Delete><Object><Key>&k;</Key></Object></Delete>"):
            with self.subTest(body=body):
                status, _, resp = raw_delete(body)
                self.assertEqual((status, error_code(resp)), (400, "MalformedXML"))
        self.assertTrue(present("tmp/v") and present("keep/x"))
        status, _, resp = raw_delete(b"<Delete><Object><Key>tmp/v</Key></Object></Delete>")
        self.assertEqual(status, 200, resp)
        self.assertFalse(present("tmp/v"))
        self.owner.delete_bucket_policy(Bucket=b)

    def test_acls_refused(self):
        b = self.bucket()
        self.assertEqual(code_of(self.owner.put_object, Bucket=b, Key="k", Body=b"x",
                                 ACL="public-read"), "AccessControlListNotSupported")
        self.assertEqual(code_of(self.owner.put_object, Bucket=b, Key="k", Body=b"x",
                                 GrantRead=f"id={OTHER}"), "AccessControlListNotSupported")
        self.owner.put_object(Bucket=b, Key="k", Body=b"x", ACL="bucket-owner-full-control")
        self.assertEqual(code_of(self.owner.put_bucket_acl, Bucket=b, AccessControlPolicy={
            "Grants": [{"Grantee": {"Type": "Group",
                                    "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
                        "Permission": "READ"}],
            "Owner": {"ID": ACCOUNT}}), "AccessControlListNotSupported")
        # The XML form of bucket-owner-full-control passes (what GetBucketAcl
        # answers, put back), on the bucket and on an object; anything more
        # or other is refused, and the backend's ACL stays the owner's.
        acl = self.owner.get_bucket_acl(Bucket=b)
        owner_only = {"Owner": acl["Owner"], "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": acl["Owner"]["ID"]},
             "Permission": "FULL_CONTROL"}]}
        self.owner.put_bucket_acl(Bucket=b, AccessControlPolicy=owner_only)
        self.owner.put_object_acl(Bucket=b, Key="k", AccessControlPolicy=owner_only)
        everyone = {"Grantee": {"Type": "Group",
                                "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
                    "Permission": "READ"}
        other = {"Grantee": {"Type": "CanonicalUser", "ID": "someone-else"},
                 "Permission": "FULL_CONTROL"}
        for grants in ([owner_only["Grants"][0], everyone], [other],
                       [dict(owner_only["Grants"][0], Permission="READ")]):
            with self.subTest(grants=grants):
                doc = {"Owner": acl["Owner"], "Grants": grants}
                self.assertEqual(code_of(self.owner.put_bucket_acl, Bucket=b,
                                         AccessControlPolicy=doc),
                                 "AccessControlListNotSupported")
                self.assertEqual(code_of(self.owner.put_object_acl, Bucket=b, Key="k",
                                         AccessControlPolicy=doc),
                                 "AccessControlListNotSupported")
        # The owner's grant with a second grantee ID in it (the backend may
        # read the last): refused.
        oid = acl["Owner"]["ID"]
        doc = ('<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
               f"<Owner><ID>{oid}</ID></Owner><AccessControlList><Grant>"
               '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
               f'xsi:type="CanonicalUser"><ID>{oid}</ID><ID>someone-else</ID></Grantee>'
               "<Permission>FULL_CONTROL</Permission></Grant></AccessControlList>"
               "</AccessControlPolicy>").encode()
        url = f"{self.s.endpoint}/{b}?acl"
        h = sign_v4("PUT", url, {}, hashlib.sha256(doc).hexdigest(), self.s.access_key,
                    self.s.secret_key)
        status, _, resp = raw_request(self.s.endpoint, "PUT", f"/{b}?acl", h, doc)
        self.assertEqual((status, error_code(resp)), (400, "AccessControlListNotSupported"))
        self.assertEqual(backend_client().get_bucket_acl(Bucket=b)["Grants"], acl["Grants"])
        self.assertEqual(code_of(self.carol.put_bucket_acl, Bucket=b,
                                 AccessControlPolicy=owner_only), "AccessDenied")

    def test_presigned_acts_with_signers_rights(self):
        import urllib.request
        b = self.bucket()
        self.owner.put_object(Bucket=b, Key="k", Body=b"presigned")
        url = self.owner.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "k"},
                                                ExpiresIn=300)
        self.assertEqual(urllib.request.urlopen(url).read(), b"presigned")
        url = self.carol.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "k"},
                                                ExpiresIn=300)
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url)
        self.assertEqual(e.exception.code, 403)
        self.assertIn(b"<Code>AccessDenied</Code>", e.exception.read())

    def test_awscli(self):
        b = self.bucket()
        path = os.path.join(self.s.dir, "cli.txt")
        with open(path, "wb") as f:
            f.write(b"through aws-cli")
        self.s.aws("s3", "cp", path, f"s3://{b}/cli.txt")
        env = self.s.cli_env()
        env.update(AWS_ACCESS_KEY_ID=CAROL[0], AWS_SECRET_ACCESS_KEY=CAROL[1])
        r = subprocess.run(["aws", "--endpoint-url", self.s.endpoint, "s3api", "get-object",
                            "--bucket", b, "--key", "cli.txt", path + ".out"],
                           env=env, capture_output=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"AccessDenied", r.stderr)
        r = subprocess.run(["aws", "--endpoint-url", self.s.endpoint, "s3api",
                            "delete-bucket-encryption", "--bucket", b],
                           env=env, capture_output=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"AccessDenied", r.stderr)
        # The refusals name the action in the log, not to the client.
        log = self.s.read_log()
        self.assertIn("action=s3:GetObject", log)
        self.assertIn("action=s3:PutEncryptionConfiguration", log)

    def test_policy_simulate(self):
        path = os.path.join(self.s.dir, "bp.json")
        with open(path, "w") as f:
            json.dump({"Version": "2012-10-17", "Statement": [
                {"Sid": "DenyUnencrypted", "Effect": "Deny", "Principal": "*",
                 "Action": "s3:PutObject", "Resource": "arn:aws:s3:::data/*",
                 "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}}},
                {"Sid": "Partner", "Effect": "Allow", "Principal": {"AWS": OTHER},
                 "Action": "s3:*", "Resource": "arn:aws:s3:::data/*"}]}, f)
        ident = os.path.join(self.s.dir, "id.json")
        with open(ident, "w") as f:
            json.dump(CAROL[3], f)

        def simulate(*args):
            return subprocess.run([self.s.bin, "policy", "simulate", *args],
                                  capture_output=True, text=True)
        r = simulate("--principal", f"arn:aws:iam::{ACCOUNT}:user/e2e", "--action",
                     "s3:PutObject", "--resource", "arn:aws:s3:::data/k", "--bucket-policy", path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("explicitly denied", r.stdout)
        self.assertIn('statement 1 (Sid "DenyUnencrypted")', r.stdout)
        r = simulate("--principal", CAROL[2], "--action", "s3:PutObject", "--resource",
                     "arn:aws:s3:::data/k", "--bucket-policy", path, "--identity-policy", ident,
                     "--bucket-owner", ACCOUNT, "--context",
                     "s3:x-amz-server-side-encryption=AES256")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("is allowed", r.stdout)
        self.assertIn('Sid "Partner"', r.stdout)
        r = simulate("--principal", CAROL[2], "--action", "s3:GetObject", "--resource",
                     "arn:aws:s3:::data/k", "--bucket-owner", ACCOUNT)
        self.assertEqual(r.returncode, 1)
        self.assertIn("implicitly denied", r.stdout)
        r = simulate("--principal", CAROL[2], "--action", "s3:Fly", "--resource", "x")
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main()
