// The AWS SDK for JavaScript v3, with its default settings, as a client of an S3 endpoint:
//   node s3.mjs OPERATION BUCKET [KEY [FILE [CHECKSUM_ALGORITHM]]]
// put (PutObject, a Buffer body), put-stream (PutObject, a file stream of known length), upload (lib-storage's
// Upload of a file stream), get (GetObject into FILE), head, list (ListObjectsV2, KEY: the prefix), delete.
// The uploads take the SDK's default checksum (CRC32) unless CHECKSUM_ALGORITHM names another.
// Endpoint and credentials come from S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Prints the
// response as JSON (without its body) and exits 0; or prints {"error": {name, status, message}} and exits 1.
import { createReadStream, createWriteStream, readFileSync, statSync } from "node:fs";
import { pipeline } from "node:stream/promises";

import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

const [operation, Bucket, Key, file, ChecksumAlgorithm] = process.argv.slice(2);
const client = new S3Client({ endpoint: process.env.S3_ENDPOINT, region: "us-east-1", forcePathStyle: true, maxAttempts: 1 });

// What the SDK sent: each request's method, query and the headers that show its payload mode; and the most
// requests it had in flight at once.
const sent = [];
let inFlight = 0;
let mostInFlight = 0;
client.middlewareStack.add(
  (next) => async (args) => {
    const { method, query, headers } = args.request;
    const shown = Object.keys(headers).filter((h) => /^(content-encoding|x-amz-(content-sha256|trailer|checksum-.*))$/.test(h));
    sent.push({ method, query, headers: Object.fromEntries(shown.map((h) => [h, headers[h]])) });
    mostInFlight = Math.max(mostInFlight, ++inFlight);
    try {
      return await next(args);
    } finally {
      inFlight--;
    }
  },
  { step: "deserialize", name: "recordSent" },
);

const operations = {
  put: () => client.send(new PutObjectCommand({ Bucket, Key, Body: readFileSync(file), ChecksumAlgorithm })),
  "put-stream": () =>
    client.send(
      new PutObjectCommand({ Bucket, Key, Body: createReadStream(file), ContentLength: statSync(file).size, ChecksumAlgorithm }),
    ),
  upload: async () => {
    const upload = new Upload({ client, params: { Bucket, Key, Body: createReadStream(file), ChecksumAlgorithm } });
    const parts = new Set();
    upload.on("httpUploadProgress", (progress) => parts.add(progress.part));
    return { ...(await upload.done()), parts: parts.size };
  },
  get: async () => {
    const { Body, ...rest } = await client.send(new GetObjectCommand({ Bucket, Key }));
    await pipeline(Body, createWriteStream(file));
    return rest;
  },
  head: () => client.send(new HeadObjectCommand({ Bucket, Key })),
  list: () => client.send(new ListObjectsV2Command({ Bucket, Prefix: Key })),
  delete: () => client.send(new DeleteObjectCommand({ Bucket, Key })),
};

try {
  const answer = await operations[operation]();
  console.log(JSON.stringify({ ...answer, sent, mostInFlight }));
} catch (error) {
  const status = error.$metadata?.httpStatusCode;
  console.log(JSON.stringify({ error: { name: error.name, status, message: error.message }, sent, mostInFlight }));
  process.exitCode = 1;
}
