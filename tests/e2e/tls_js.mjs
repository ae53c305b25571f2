// The AWS SDK v3 for JavaScript over HTTPS, trusting s3seal's CA through a
// custom https.Agent: PutObject of a stream (aws-chunked with a trailing
// CRC32, as the SDK sends by default) with SSE-S3, GetObject byte-identical
// with its checksum, and lib-storage's parallel multipart Upload; each object
// is checked straight on the backend to hold ciphertext. A client without
// the CA is refused. Exits non-zero on the first failure.
// Usage: node tls_js.mjs ENDPOINT BUCKET ACCESS_KEY SECRET_KEY CA_FILE (backend: S3_* env)
import assert from "node:assert/strict";
import https from "node:https";
import { Readable } from "node:stream";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

const [endpoint, bucket, accessKeyId, secretAccessKey, caFile] = process.argv.slice(2);
assert.ok(endpoint.startsWith("https://"), "an https:// endpoint");
const region = process.env.S3_REGION || "us-east-1";
const credentials = { accessKeyId, secretAccessKey };
const agent = new https.Agent({ ca: readFileSync(caFile), keepAlive: true, maxSockets: 8 });
const sdk = new S3Client({ endpoint, region, forcePathStyle: true, credentials, maxAttempts: 1,
  requestHandler: { httpsAgent: agent } });
const backend = new S3Client({ endpoint: process.env.S3_ENDPOINT, region, forcePathStyle: true,
  credentials: { accessKeyId: process.env.S3_ACCESS_KEY, secretAccessKey: process.env.S3_SECRET_KEY } });

const md5 = (b) => createHash("md5").update(b).digest("hex");

async function readBack(key, want) {
  const r = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  assert.equal(r.ServerSideEncryption, "AES256", `${key}: SSE header on GET`);
  const got = Buffer.from(await r.Body.transformToByteArray());
  assert.equal(got.length, want.length, `${key}: length back`);
  assert.ok(got.equals(want), `${key}: plaintext back`);
  const raw = await backend.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const stored = Buffer.from(await raw.Body.transformToByteArray());
  assert.equal(raw.Metadata["s3seal-version"], "1", `${key}: s3seal metadata on the backend`);
  assert.ok(stored.length > want.length, `${key}: stored ciphertext is longer`);
  for (const off of [0, Math.floor(want.length / 2), Math.max(0, want.length - 64)]) {
    const w = want.subarray(off, off + 64);
    if (w.length === 64) assert.equal(stored.indexOf(w), -1, `${key}: plaintext on the backend`);
  }
}

// PutObject of a stream: the SDK sends it aws-chunked with a CRC32 trailer.
const data = randomBytes(3 * 1024 * 1024 + 777);
const put = await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: "tls-stream",
  Body: Readable.from([data]), ContentLength: data.length, ServerSideEncryption: "AES256" }));
assert.equal(put.ServerSideEncryption, "AES256");
assert.ok(put.ChecksumCRC32, "trailing CRC32 answered");
const withSum = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: "tls-stream",
  ChecksumMode: "ENABLED" }));
assert.equal(withSum.ChecksumCRC32, put.ChecksumCRC32, "stored checksum returned");
assert.ok(Buffer.from(await withSum.Body.transformToByteArray()).equals(data), "GET byte-identical");
await readBack("tls-stream", data);
const head = await sdk.send(new HeadObjectCommand({ Bucket: bucket, Key: "tls-stream" }));
assert.equal(head.ETag, `"${md5(data)}"`, "HEAD ETag is the plaintext's MD5");
console.log("ok PutObject stream (aws-chunked, CRC32 trailer) SSE-S3, GetObject over TLS");

// lib-storage: a parallel multipart Upload over the same agent.
const big = randomBytes(12 * 1024 * 1024 + 4321);
await new Upload({ client: sdk, params: { Bucket: bucket, Key: "tls-upload",
  Body: Readable.from([big]), ServerSideEncryption: "AES256" },
  queueSize: 3, partSize: 5 * 1024 * 1024 }).done();
await readBack("tls-upload", big);
const ranged = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: "tls-upload",
  Range: "bytes=5242000-5243999" }));
assert.ok(Buffer.from(await ranged.Body.transformToByteArray()).equals(big.subarray(5242000, 5244000)));
console.log("ok lib-storage Upload over TLS");

// Without the CA the certificate is refused.
const untrusting = new S3Client({ endpoint, region, forcePathStyle: true, credentials, maxAttempts: 1,
  requestHandler: { httpsAgent: new https.Agent({ keepAlive: false }) } });
await assert.rejects(untrusting.send(new HeadObjectCommand({ Bucket: bucket, Key: "tls-stream" })),
  (e) => /certificate/i.test(String(e.message) + String(e.code)), "an unknown CA is refused");
console.log("ok unknown CA refused");
agent.destroy();
