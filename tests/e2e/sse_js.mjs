// SSE-S3 with the JavaScript clients through s3seal, into a bucket encrypted
// by default: the AWS SDK v3 (PutObject from a string and from a stream with
// a trailing CRC32 checksum, GetObject with checksum mode), lib-storage's
// parallel multipart Upload, and minio-js (putObject of a buffer, a
// multipart fPutObject, statObject, getObject, getPartialObject). Each
// object is read back through s3seal and checked straight on the backend to
// hold s3seal's metadata and no plaintext. Exits non-zero on the first
// failure. Usage: node sse_js.mjs ENDPOINT BUCKET ACCESS_KEY SECRET_KEY
// (backend: S3_* env)
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import * as Minio from "minio";

const [endpoint, bucket, accessKeyId, secretAccessKey] = process.argv.slice(2);
const region = process.env.S3_REGION || "us-east-1";
const sdk = new S3Client({ endpoint, region, forcePathStyle: true,
  credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 });
const backend = new S3Client({ endpoint: process.env.S3_ENDPOINT, region, forcePathStyle: true,
  credentials: { accessKeyId: process.env.S3_ACCESS_KEY, secretAccessKey: process.env.S3_SECRET_KEY } });
const url = new URL(endpoint);
const minio = new Minio.Client({ endPoint: url.hostname, port: Number(url.port), useSSL: false,
  accessKey: accessKeyId, secretKey: secretAccessKey, region, pathStyle: true });

const md5 = (b) => createHash("md5").update(b).digest("hex");

async function readBack(key, want) {
  const r = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  assert.equal(r.ServerSideEncryption, "AES256", `${key}: SSE header on GET`);
  const got = Buffer.from(await r.Body.transformToByteArray());
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

const data = randomBytes(300 * 1000);
// AWS SDK: a string, and a stream with a trailing CRC32 (aws-chunked).
const s1 = await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: "sdk-string", Body: "x".repeat(5000) }));
assert.equal(s1.ServerSideEncryption, "AES256");
assert.equal(s1.ETag, `"${md5(Buffer.from("x".repeat(5000)))}"`, "PutObject ETag is the plaintext MD5");
await readBack("sdk-string", Buffer.from("x".repeat(5000)));
const s2 = await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: "sdk-stream", Body: Readable.from([data]),
  ContentLength: data.length, ChecksumAlgorithm: "CRC32" }));
assert.ok(s2.ChecksumCRC32, "trailing checksum answered");
await readBack("sdk-stream", data);
const withSum = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: "sdk-stream", ChecksumMode: "ENABLED" }));
assert.equal(withSum.ChecksumCRC32, s2.ChecksumCRC32, "stored checksum returned");
await withSum.Body.transformToByteArray();
// The trailer checksum is stored by rewriting the object's metadata, which
// also stores the plaintext's MD5: HEAD gives the same ETag as the PUT.
const h2 = await sdk.send(new HeadObjectCommand({ Bucket: bucket, Key: "sdk-stream" }));
assert.equal(h2.ETag, `"${md5(data)}"`, "HEAD ETag after a trailer upload");
console.log("ok AWS SDK PutObject (string, stream with trailing CRC32), GetObject, HEAD");

// lib-storage: parallel multipart Upload.
const big = randomBytes(21 * 1024 * 1024 + 333);
await new Upload({ client: sdk, params: { Bucket: bucket, Key: "lib-storage", Body: Readable.from([big]) },
  queueSize: 4, partSize: 5 * 1024 * 1024 }).done();
await readBack("lib-storage", big);
const ranged = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: "lib-storage",
  Range: "bytes=5242000-5243999" }));
assert.ok(Buffer.from(await ranged.Body.transformToByteArray()).equals(big.subarray(5242000, 5244000)));
console.log("ok lib-storage Upload 21 MB in parallel parts, ranged GET across a part boundary");

// minio-js: a buffer (single PUT; its ETag is checked), a file above its
// 64 MiB part size (multipart), stat, get, partial get.
const m1 = await minio.putObject(bucket, "minio-buffer", data, data.length);
assert.equal(m1.etag, md5(data), "minio putObject etag");
const st = await minio.statObject(bucket, "minio-buffer");
assert.equal(st.size, data.length);
await readBack("minio-buffer", data);
const dir = mkdtempSync(join(tmpdir(), "s3seal-minio-"));
try {
  const file = join(dir, "big.bin");
  const bigger = randomBytes(70 * 1024 * 1024 + 5);
  writeFileSync(file, bigger);
  await minio.fPutObject(bucket, "minio-file", file);
  assert.equal((await minio.statObject(bucket, "minio-file")).size, bigger.length);
  const chunks = [];
  for await (const c of await minio.getObject(bucket, "minio-file")) chunks.push(c);
  assert.ok(Buffer.concat(chunks).equals(bigger), "minio getObject");
  const part = [];
  for await (const c of await minio.getPartialObject(bucket, "minio-file", 67108860, 100)) part.push(c);
  assert.ok(Buffer.concat(part).equals(bigger.subarray(67108860, 67108960)), "minio getPartialObject");
  await readBack("minio-file", bigger);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log("ok minio-js putObject, fPutObject (multipart), statObject, getObject, getPartialObject");
