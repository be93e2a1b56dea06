// The peer of configuration (l): the tus Node server with its S3 store, as its README sets it up.
//
//   node server.mjs PORT
//
// Environment: BENCH_S3_ENDPOINT, BENCH_BUCKET, BENCH_PART_SIZE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_DEFAULT_REGION; TMPDIR, where the S3 store writes each part before sending it (os.tmpdir()).
// Uploads are created at POST /uploads; GET /healthz answers 200, so that the bench waits for it as for
// the other servers.
import { createServer } from 'node:http'
import { S3Store } from '@tus/s3-store'
import { Server } from '@tus/server'

const env = process.env
const datastore = new S3Store({
  partSize: Number(env.BENCH_PART_SIZE),
  s3ClientConfig: {
    bucket: env.BENCH_BUCKET,
    endpoint: env.BENCH_S3_ENDPOINT,
    region: env.AWS_DEFAULT_REGION,
    forcePathStyle: true,
    // The SDK's default since 3.729 sends each part's CRC32 as a trailer of an aws-chunked body, which S3
    // servers other than AWS (rclone among them) refuse: MissingContentLength. This is the setting they need.
    requestChecksumCalculation: 'WHEN_REQUIRED',
  },
})
const tus = new Server({ path: '/uploads', datastore })

createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200).end('ok')
    return
  }
  tus.handle(req, res)
}).listen(Number(process.argv[2]), '127.0.0.1')
