"""The audit trail of a fleet in its PostgreSQL keystore (`audit_log: keystore`).

Two s3seal instances share a keystore on a real PostgreSQL (tests/pg.sh
starts a throwaway one): one named by its default instance id
(HOSTNAME:PORT), one by `instance_id`. SSE-KMS PUTs and GETs go through
both, with the data key cache off so that every use of a key is a record;
each object is read straight from the backend to check it is ciphertext.
Each instance's records form a chain of its own in table audit_records,
naming bucket and object; `s3seal audit verify` checks every chain (or one,
--instance) and prints each instance's count and newest hash. A record
changed with psql is a break that verify names (instance and seq); a
changed newest record stops its instance from using keys (fail closed)
while the other goes on. On one host the same works with the SQLite
keystore, server and CLI sharing the chain."""

import json
import os
import socket
import subprocess
import tempfile
import time
import unittest
import uuid

import botocore

from harness import S3Seal, backend_client, empty_and_delete, new_bucket_name

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PG = os.path.join(ROOT, "tests", "pg.sh")
B_ID = "fleet-b"


def _pg_start(d):
    r = subprocess.run([PG, "start", d], capture_output=True, text=True)
    url_file = os.path.join(d, "url")
    if r.returncode != 0 or not os.path.exists(url_file):
        return None
    with open(url_file) as f:
        return f.read().strip()


class AuditKeystoreTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg_dir = tempfile.mkdtemp(prefix="s3seal-audit-pg-")
        url = _pg_start(cls.pg_dir)
        if not url:
            raise unittest.SkipTest("PostgreSQL's binaries are not installed")
        db = "audit_" + uuid.uuid4().hex[:8]
        subprocess.run(["psql", url, "-q", "-c", f"CREATE DATABASE {db}"], check=True,
                       capture_output=True)
        cls.url = url.rsplit("/", 1)[0] + "/" + db
        ks = "dek_cache_seconds: 0\n"
        cls.a = S3Seal(keystore_url=cls.url, keystore_extra=ks,
                       extra_yaml="audit_log: keystore\n").start()
        cls.b = S3Seal(keystore_url=cls.url, keystore_of=cls.a, keystore_extra=ks,
                       extra_yaml=f"audit_log: keystore\ninstance_id: {B_ID}\n").start()
        cls.a_id = f"{socket.gethostname()}:{cls.a.port}"
        cls.ca, cls.cb = cls.a.client(), cls.b.client()
        cls.bucket = new_bucket_name("audks")
        cls.ca.create_bucket(Bucket=cls.bucket)
        out = cls.a.cli("keys", "create", "--alias", "alias/fleet-audit", check=True).stdout
        md = json.loads(out)
        cls.key = md.get("KeyMetadata", md)

    @classmethod
    def tearDownClass(cls):
        try:
            empty_and_delete(backend_client(), cls.bucket)
            cls.a.stop()
            cls.b.stop()
        finally:
            subprocess.run([PG, "stop", cls.pg_dir], capture_output=True)

    def psql(self, sql):
        r = subprocess.run(["psql", self.url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, check=True)
        return r.stdout

    def rows(self):
        """{instance: [record, ...]} in seq order, straight from the table."""
        out = {}
        for line in self.psql("SELECT instance, seq, record FROM audit_records "
                              "ORDER BY instance, seq").splitlines():
            instance, seq, record = line.split("|", 2)
            rec = json.loads(record)
            self.assertEqual((rec["instance"], rec["seq"]), (instance, int(seq)))
            out.setdefault(instance, []).append(rec)
        return out

    def put(self, client, key, data):
        """A PUT with the key; the first may come before the server's
        snapshot has the key (a notice away): retried for a few seconds."""
        deadline = time.monotonic() + 6
        while True:
            try:
                return client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                         ServerSideEncryption="aws:kms",
                                         SSEKMSKeyId=self.key["Arn"])
            except botocore.exceptions.ClientError as e:
                if e.response["Error"]["Code"] != "KMS.NotFoundException" or \
                        time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def assert_ciphertext(self, key, data):
        raw = backend_client().get_object(Bucket=self.bucket, Key=key)
        body = raw["Body"].read()
        self.assertEqual(raw["Metadata"].get("s3seal-key"), f"kms:1:{self.key['Arn']}")
        self.assertIn("s3seal-dek", raw["Metadata"])
        self.assertGreater(len(body), len(data))
        for off in (0, len(data) // 2, len(data) - 64):
            self.assertNotIn(data[off:off + 64], body, f"plaintext of {key} on the backend")

    def verify(self, s, *args):
        r = s.cli("audit", "verify", *args)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def key_uses(self, records):
        return sorted((r["operation"], r["result"], r["bucket"], r["object"])
                      for r in records if r["operation"] in ("GenerateDataKey", "Decrypt"))

    def test_fleet_trail(self):
        da, db = os.urandom(70000), os.urandom(3000)
        self.put(self.ca, "from-a", da)
        self.put(self.cb, "from-b", db)
        self.assert_ciphertext("from-a", da)
        self.assert_ciphertext("from-b", db)
        self.assertEqual(self.cb.get_object(Bucket=self.bucket, Key="from-a")["Body"].read(), da)
        self.assertEqual(self.ca.get_object(Bucket=self.bucket, Key="from-b")["Body"].read(), db)

        # Each data-key use is a record of the instance that used it,
        # naming bucket and object; `keys create` ran with a's config.
        rows = self.rows()
        self.assertEqual(sorted(rows), sorted([self.a_id, B_ID]))
        b = self.bucket
        self.assertEqual(self.key_uses(rows[self.a_id]),
                         [("Decrypt", "Success", b, "from-b"),
                          ("GenerateDataKey", "Success", b, "from-a")])
        self.assertEqual(self.key_uses(rows[B_ID]),
                         [("Decrypt", "Success", b, "from-a"),
                          ("GenerateDataKey", "Success", b, "from-b")])
        self.assertEqual([r["operation"] for r in rows[self.a_id]
                          if r["operation"] not in ("GenerateDataKey", "Decrypt")],
                         ["CreateKey"])
        self.assertEqual(len(rows[B_ID]), 2)
        for recs in rows.values():
            self.assertEqual([r["seq"] for r in recs], list(range(1, len(recs) + 1)))
            self.assertEqual(recs[0]["prev"], "0" * 64)
            for prev, rec in zip(recs, recs[1:]):
                self.assertEqual(rec["prev"], prev["hash"])
            self.assertEqual(self.psql("SELECT seq || ' ' || hash FROM audit_heads WHERE "
                                       f"instance = '{recs[0]['instance']}'").strip(),
                             f"{len(recs)} {recs[-1]['hash']}")

        # verify: both chains, their counts and newest hashes.
        rc, out, err = self.verify(self.a)
        self.assertEqual(rc, 0, out + err)
        for instance, recs in rows.items():
            self.assertIn(f"instance {instance}: {len(recs)} records, chain intact, "
                          f"newest hash {recs[-1]['hash']}\n", out)
        self.assertIn("2 instance chains intact", out)
        rc, out, err = self.verify(self.b, "--instance", B_ID)
        self.assertEqual(rc, 0, out + err)
        self.assertIn(f"instance {B_ID}: 2 records, chain intact", out)
        self.assertNotIn(self.a_id, out)

        # A chain exported as lines is a log that `audit verify FILE` checks.
        path = os.path.join(self.a.dir, "b.jsonl")
        with open(path, "w") as f:
            f.write(self.psql(f"SELECT record FROM audit_records WHERE instance = '{B_ID}' "
                              "ORDER BY seq"))
        rc, out, err = self.verify(self.a, path)
        self.assertEqual((rc, out), (0, f"{path}: 2 records, chain intact\n"), err)

        # A field changed with psql: verify names the instance and seq.
        self.psql("UPDATE audit_records SET record = replace(record, '\"from-b\"', "
                  f"'\"elsewhere\"') WHERE instance = '{B_ID}' AND seq = 1")
        rc, out, err = self.verify(self.a)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(f"instance {B_ID}: chain broken at seq 1: its hash does not match its "
                      "contents (altered)", out)
        self.assertIn(f"instance {self.a_id}: {len(rows[self.a_id])} records, chain intact", out)
        self.assertIn("1 of 2 instance chains broken", out)

        # a's newest record changed: a uses no key until an operator looks;
        # b, whose newest record is intact, goes on.
        self.psql("UPDATE audit_records SET record = replace(record, '\"Success\"', "
                  f"'\"Fine\"') WHERE instance = '{self.a_id}' AND seq = "
                  f"{len(rows[self.a_id])}")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.ca.get_object(Bucket=self.bucket, Key="from-a")["Body"].read()
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
        self.assertEqual(self.cb.get_object(Bucket=self.bucket, Key="from-a")["Body"].read(), da)
        self.assertEqual(len(self.rows()[self.a_id]), len(rows[self.a_id]))
        self.assertEqual(len(self.rows()[B_ID]), 3)
        rc, out, err = self.verify(self.b, "--instance", self.a_id)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(f"instance {self.a_id}: chain broken at seq {len(rows[self.a_id])}", out)


class AuditSqliteKeystoreTest(unittest.TestCase):
    """One host: `audit_log: keystore` on the SQLite keystore, the server and
    the CLI run with its config writing to one chain."""

    def test_single_host(self):
        s = S3Seal(keystore_extra="dek_cache_seconds: 0\n",
                   extra_yaml="audit_log: keystore\ninstance_id: solo\n").start()
        bucket = new_bucket_name("audsq")
        c = s.client()
        try:
            c.create_bucket(Bucket=bucket)
            md = json.loads(s.cli("keys", "create", check=True).stdout)
            arn = md.get("KeyMetadata", md)["Arn"]
            data = os.urandom(10000)
            deadline = time.monotonic() + 6
            while True:
                try:
                    c.put_object(Bucket=bucket, Key="obj", Body=data,
                                 ServerSideEncryption="aws:kms", SSEKMSKeyId=arn)
                    break
                except botocore.exceptions.ClientError as e:
                    if e.response["Error"]["Code"] != "KMS.NotFoundException" or \
                            time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            raw = backend_client().get_object(Bucket=bucket, Key="obj")
            self.assertEqual(raw["Metadata"].get("s3seal-key"), f"kms:1:{arn}")
            self.assertNotIn(data[:64], raw["Body"].read())
            self.assertEqual(c.get_object(Bucket=bucket, Key="obj")["Body"].read(), data)
            s.cli("keys", "disable", arn, check=True)
            r = s.cli("audit", "verify")
            out = r.stdout.decode()
            self.assertEqual(r.returncode, 0, out + r.stderr.decode())
            # CreateKey, GenerateDataKey, Decrypt, DisableKey.
            self.assertIn("instance solo: 4 records, chain intact, newest hash ", out)
            self.assertIn("1 instance chain intact", out)
        finally:
            empty_and_delete(backend_client(), bucket)
            s.stop()


if __name__ == "__main__":
    unittest.main()
