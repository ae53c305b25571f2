// SSE-KMS with the AWS SDK for JavaScript v3 through s3seal: PutObject of a
// buffer and of a stream (aws-chunked with the SDK's trailing CRC32) with
// ServerSideEncryption aws:kms, an alias as SSEKMSKeyId and an encryption
// context; GetObject and HeadObject back. The answers name the key by its
// ARN, repeat the context on PutObject only, and the backend holds
// ciphertext with s3seal's KMS metadata. Exits non-zero on the first
// failure. Usage: node sse_kms_js.mjs ENDPOINT BUCKET ACCESS_KEY SECRET_KEY
// ALIAS KEY_ARN (backend: S3_* env)
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { randomBytes } from "node:crypto";
import { S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";

const [endpoint, bucket, accessKeyId, secretAccessKey, alias, keyArn] = process.argv.slice(2);
const region = process.env.S3_REGION || "us-east-1";
const sdk = new S3Client({ endpoint, region, forcePathStyle: true,
  credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 });
const backend = new S3Client({ endpoint: process.env.S3_ENDPOINT, region, forcePathStyle: true,
  credentials: { accessKeyId: process.env.S3_ACCESS_KEY, secretAccessKey: process.env.S3_SECRET_KEY } });

const SEG = 65536;
const cipherSize = (n) => n + 16 * Math.max(1, Math.ceil(n / SEG));
const context = { project: "js", team: "storage" };
const contextB64 = Buffer.from(JSON.stringify(context)).toString("base64");

async function check(key, want, put) {
  assert.equal(put.ServerSideEncryption, "aws:kms", `${key}: PutObject SSE`);
  assert.equal(put.SSEKMSKeyId, keyArn, `${key}: PutObject names the key's ARN`);
  assert.ok(put.SSEKMSEncryptionContext, `${key}: PutObject repeats the context`);
  const answered = JSON.parse(Buffer.from(put.SSEKMSEncryptionContext, "base64").toString());
  for (const [k, v] of Object.entries(context)) assert.equal(answered[k], v, `${key}: context ${k}`);

  const got = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  assert.equal(got.ServerSideEncryption, "aws:kms", `${key}: GetObject SSE`);
  assert.equal(got.SSEKMSKeyId, keyArn, `${key}: GetObject key ARN`);
  assert.equal(got.SSEKMSEncryptionContext, undefined, `${key}: GetObject never gives the context`);
  const body = Buffer.from(await got.Body.transformToByteArray());
  assert.ok(body.equals(want), `${key}: plaintext back`);

  const head = await sdk.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  assert.equal(head.ServerSideEncryption, "aws:kms", `${key}: HeadObject SSE`);
  assert.equal(head.SSEKMSKeyId, keyArn, `${key}: HeadObject key ARN`);
  assert.equal(head.SSEKMSEncryptionContext, undefined, `${key}: HeadObject never gives the context`);
  assert.equal(head.ContentLength, want.length, `${key}: plaintext size`);

  const raw = await backend.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const stored = Buffer.from(await raw.Body.transformToByteArray());
  assert.equal(raw.ServerSideEncryption, undefined, `${key}: the backend's own SSE is not used`);
  assert.equal(raw.Metadata["s3seal-key"], `kms:1:${keyArn}`, `${key}: backend key reference`);
  const storedContext = JSON.parse(Buffer.from(raw.Metadata["s3seal-context"], "base64").toString());
  assert.deepEqual(storedContext, { ...context, "aws:s3:arn": `arn:aws:s3:::${bucket}/${key}` },
    `${key}: stored context`);
  assert.equal(stored.length, cipherSize(want.length), `${key}: ciphertext size`);
  for (const off of [0, Math.floor(want.length / 2), want.length - 64]) {
    assert.equal(stored.indexOf(want.subarray(off, off + 64)), -1, `${key}: plaintext on the backend`);
  }
}

const small = randomBytes(5000);
const p1 = await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: "js-buffer", Body: small,
  ServerSideEncryption: "aws:kms", SSEKMSKeyId: alias, SSEKMSEncryptionContext: contextB64 }));
await check("js-buffer", small, p1);
console.log("ok PutObject buffer aws:kms alias, GetObject, HeadObject");

const data = randomBytes(3 * SEG + 777);
const p2 = await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: "js-stream",
  Body: Readable.from([data]), ContentLength: data.length, ChecksumAlgorithm: "CRC32",
  ServerSideEncryption: "aws:kms", SSEKMSKeyId: alias, SSEKMSEncryptionContext: contextB64 }));
assert.ok(p2.ChecksumCRC32, "trailing checksum answered");
await check("js-stream", data, p2);
const ranged = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: "js-stream",
  Range: `bytes=${SEG - 10}-${SEG + 9}` }));
assert.equal(ranged.SSEKMSKeyId, keyArn);
assert.ok(Buffer.from(await ranged.Body.transformToByteArray()).equals(data.subarray(SEG - 10, SEG + 10)),
  "ranged GET across a segment edge");
console.log("ok PutObject stream with trailing CRC32 aws:kms, ranged GetObject");
