// Drives one tus-js-client Upload as a Node program would, and prints what happened as one JSON line.
//
//   node upload.mjs '{"endpoint": "http://127.0.0.1:8080/uploads/", "file": "/tmp/data", ...}'
//
// Plan (JSON, first argument):
//   endpoint              where uploads are created (POST)
//   uploadUrl             an upload to resume instead (HEAD, then PATCH from its offset)
//   file                  the bytes to send
//   source                "buffer" (the file read into a Buffer), "file" (an fs.ReadStream: a file source
//                         of known size) or "stream" (a plain Readable: size unknown, so uploadLengthDeferred)
//   chunkSize             bytes per PATCH
//   metadata              Upload-Metadata, e.g. {"filename": "a.bin"}
//   uploadLengthDeferred  creation with Upload-Defer-Length: 1
//   retryDelays           milliseconds between retries (default: none)
//   abortAt               once this many bytes were sent, abort() (mid-PATCH)
//   terminate             with abortAt: abort(true), which also DELETEs the upload
//   protocol              "tus-v1" (default), "ietf-draft-03" or "ietf-draft-05"
//   overridePatchMethod   send each PATCH as a POST with X-HTTP-Method-Override: PATCH
//
// Output: {"outcome": "success" | "error" | "aborted" | "terminated", "url", "error", "status", "body",
//          "requests": [{"method", "offset", "length", "complete", "status", "responseOffset",
//          "responseComplete"}], "uploadResult"}
// (offset, length and complete: the request's Upload-Offset, Upload-Length and Upload-Complete headers,
// responseComplete the response's; uploadResult: the last
// Upload-Result header seen)
import { createReadStream, readFileSync } from 'node:fs'
import { PassThrough } from 'node:stream'
import { Upload } from 'tus-js-client'

const plan = JSON.parse(process.argv[2])
const requests = []
let uploadResult = null

function source() {
  if (plan.source === 'file') return createReadStream(plan.file)
  if (plan.source === 'stream') return createReadStream(plan.file).pipe(new PassThrough())
  return readFileSync(plan.file)
}

const outcome = await new Promise((resolve) => {
  let aborting = false
  const upload = new Upload(source(), {
    endpoint: plan.endpoint,
    uploadUrl: plan.uploadUrl ?? null,
    chunkSize: plan.chunkSize ?? Number.POSITIVE_INFINITY,
    metadata: plan.metadata ?? {},
    uploadLengthDeferred: plan.uploadLengthDeferred ?? false,
    retryDelays: plan.retryDelays ?? null,
    protocol: plan.protocol ?? 'tus-v1',
    overridePatchMethod: plan.overridePatchMethod ?? false,
    onAfterResponse(req, res) {
      requests.push({
        method: req.getMethod(),
        offset: req.getHeader('Upload-Offset') ?? null,
        length: req.getHeader('Upload-Length') ?? null,
        complete: req.getHeader('Upload-Complete') ?? null,
        status: res.getStatus(),
        responseOffset: res.getHeader('Upload-Offset') ?? null,
        responseComplete: res.getHeader('Upload-Complete') ?? null,
      })
      uploadResult = res.getHeader('Upload-Result') ?? uploadResult
    },
    onProgress(sent) {
      if (plan.abortAt == null || aborting || sent < plan.abortAt) return
      aborting = true
      upload.abort(plan.terminate ?? false).then(
        () => resolve({ outcome: plan.terminate ? 'terminated' : 'aborted', url: upload.url }),
        (err) => resolve({ outcome: 'error', url: upload.url, error: String(err), ...responseOf(err) }),
      )
    },
    onSuccess() {
      resolve({ outcome: 'success', url: upload.url })
    },
    onError(err) {
      resolve({ outcome: 'error', url: upload.url, error: String(err), ...responseOf(err) })
    },
  })
  upload.start()
})

// The status and body of the answer that ended the upload (none after a network error).
function responseOf(err) {
  const res = err.originalResponse
  return res ? { status: res.getStatus(), body: res.getBody() } : { status: null, body: null }
}

process.stdout.write(`${JSON.stringify({ ...outcome, requests, uploadResult })}\n`, () => process.exit(0))
