// The client of configurations (k) and (l): tus-js-client uploading files, in a process of its own.
//
//   node client.mjs ENDPOINT CHUNK_SIZE
//
// Started once per measurement, before it is timed, so that neither its start-up nor its CPU counts as the
// server's. It speaks JSON lines like bench/direct.py: one command on stdin, one answer on stdout.
//
//   {"op": "upload", "path": "/dev/shm/.../payload", "names": ["k1", ...], "concurrency": 16}
//       one tus upload of the file per name (Upload-Metadata filename), `concurrency` at once, each sent in
//       PATCHes of CHUNK_SIZE bytes from an fs.ReadStream;
//       answer {"ok": true, "uploads": [{"url", "result"}, ...]} (result: the Upload-Result header, if any)
//   {"op": "quit"}
import { createReadStream, statSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { Upload } from 'tus-js-client'

const [endpoint, chunkSize] = [process.argv[2], Number(process.argv[3])]

function upload(path, name) {
  return new Promise((resolve, reject) => {
    let result = null
    const tus = new Upload(createReadStream(path), {
      endpoint,
      chunkSize,
      uploadSize: statSync(path).size,
      metadata: { filename: name, filetype: 'application/octet-stream' },
      retryDelays: null,
      storeFingerprintForResuming: false,
      onAfterResponse(_req, res) {
        result = res.getHeader('Upload-Result') ?? result
      },
      onSuccess() {
        resolve({ url: tus.url, result })
      },
      onError: reject,
    })
    tus.start()
  })
}

async function uploadAll(path, names, concurrency) {
  const uploads = new Array(names.length)
  let next = 0
  async function worker() {
    while (next < names.length) {
      const i = next++
      uploads[i] = await upload(path, names[i])
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, names.length) }, worker))
  return uploads
}

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line)
  if (command.op === 'quit') break
  let answer
  try {
    if (command.op !== 'upload') throw new Error(`unknown op ${command.op}`)
    answer = { ok: true, uploads: await uploadAll(command.path, command.names, command.concurrency ?? 1) }
  } catch (err) {
    answer = { ok: false, error: String(err) }
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`)
}
process.exit(0)
