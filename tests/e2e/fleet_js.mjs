// The JavaScript SDK's lib-storage Upload through a fleet's load balancer
// while the fleet is being disturbed (test_fleet.py): a parallel multipart
// upload with the SDK's standard retries and bounded waits, then the object
// read back. Prints `ok SHA256` of what it uploaded; exits non-zero on a
// failure.
// Usage: node fleet_js.mjs ENDPOINT BUCKET KEY ACCESS_KEY SECRET_KEY SIZE [KMS_KEY_ID]
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { createHash, randomBytes } from "node:crypto";
import { S3Client, GetObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

const [endpoint, bucket, key, accessKeyId, secretAccessKey, size, kmsKeyId] = process.argv.slice(2);
const client = new S3Client({ endpoint, region: process.env.S3_REGION || "us-east-1",
  forcePathStyle: true, credentials: { accessKeyId, secretAccessKey },
  maxAttempts: 6, retryMode: "standard",
  requestHandler: { connectionTimeout: 3000, requestTimeout: 30000 } });

const body = randomBytes(Number(size));
const sse = kmsKeyId ? { ServerSideEncryption: "aws:kms", SSEKMSKeyId: kmsKeyId }
                     : { ServerSideEncryption: "AES256" };
await new Upload({ client, params: { Bucket: bucket, Key: key, Body: Readable.from([body]), ...sse },
  queueSize: 3, partSize: 5 * 1024 * 1024 }).done();
// Read back; a body cut off midway (the instance sending it was killed) is
// read again, as an application would.
let got;
for (let attempt = 1; ; attempt++) {
  try {
    const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    got = Buffer.from(await r.Body.transformToByteArray());
    break;
  } catch (e) {
    if (attempt === 3 || e.$metadata?.httpStatusCode) throw e;
  }
}
assert.ok(got.equals(body), `${key}: read back as uploaded`);
console.log(`ok ${createHash("sha256").update(body).digest("hex")}`);
