// The AWS SDK for JavaScript v3 (and lib-storage) through s3seal, with its
// default flexible checksums: PutObject from a string and from a stream
// (aws-chunked with a trailing checksum), each checksum algorithm,
// requestChecksumCalculation WHEN_REQUIRED, and a 40 MB parallel multipart
// Upload. Reads each object back through s3seal and straight from the
// backend. Exits non-zero on the first failure.
// Usage: node sdk_js.mjs ENDPOINT BUCKET ACCESS_KEY SECRET_KEY (backend: S3_* env)
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { createHash } from "node:crypto";
import { S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

const [endpoint, bucket, accessKeyId, secretAccessKey] = process.argv.slice(2);
const region = process.env.S3_REGION || "us-east-1";
const client = (extra = {}) => new S3Client({ endpoint, region, forcePathStyle: true,
  credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1, ...extra });
const backend = new S3Client({ endpoint: process.env.S3_ENDPOINT, region, forcePathStyle: true,
  credentials: { accessKeyId: process.env.S3_ACCESS_KEY, secretAccessKey: process.env.S3_SECRET_KEY } });

async function readBack(key, want) {
  const r = await client().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const got = Buffer.from(await r.Body.transformToByteArray());
  assert.equal(got.length, want.length, key);
  assert.ok(got.equals(want), key);
  const h = await backend.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  assert.equal(h.ContentLength, want.length, `${key}: backend holds the decoded body`);
  assert.ok(!(h.ContentEncoding || "").includes("aws-chunked"), `${key}: no aws-chunked on the backend`);
}

const data = Buffer.from(createHash("sha256").update("seed").digest().toString("hex").repeat(4000));
const c = client();
await c.send(new PutObjectCommand({ Bucket: bucket, Key: "string", Body: "hello from the JS SDK" }));
await readBack("string", Buffer.from("hello from the JS SDK"));
console.log("ok PutObject string");

for (const alg of ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]) {
  const key = `stream-${alg}`;
  const put = await c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Readable.from([data]),
    ContentLength: data.length, ChecksumAlgorithm: alg, ContentType: "text/x-test",
    Metadata: { colour: "green" } }));
  const field = `Checksum${alg}`;
  assert.ok(put[field], `${key}: PutObject answers with the checksum`);
  await readBack(key, data);
  // The trailer checksum is kept with the object, with its metadata intact.
  const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" }));
  assert.equal(got[field], put[field], `${key}: GetObject returns the stored checksum`);
  assert.equal(got.ContentType, "text/x-test");
  assert.deepEqual(got.Metadata, { colour: "green" });
  await got.Body.transformToByteArray();
  console.log(`ok PutObject stream ${alg} (aws-chunked, trailing checksum kept)`);
}

const lazy = client({ requestChecksumCalculation: "WHEN_REQUIRED" });
await lazy.send(new PutObjectCommand({ Bucket: bucket, Key: "when-required", Body: Readable.from([data]),
  ContentLength: data.length }));
await readBack("when-required", data);
console.log("ok PutObject WHEN_REQUIRED");

const big = Buffer.alloc(40 * 1000 * 1000);
for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
const up = new Upload({ client: c, params: { Bucket: bucket, Key: "upload-40mb", Body: Readable.from([big]) },
  queueSize: 4, partSize: 5 * 1024 * 1024 });
await up.done();
await readBack("upload-40mb", big);
console.log("ok lib-storage Upload 40 MB in parallel parts");
