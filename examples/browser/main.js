// Uppy's Dashboard sending files resumably (tus 1.0.0) to an aiouploader route with `resumable = true`.
// The route's URL comes from the page's query string: index.html?endpoint=http://127.0.0.1:8080/uploads/
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import Tus from '@uppy/tus'

import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'

const params = new URLSearchParams(window.location.search)
const endpoint = params.get('endpoint') ?? 'http://127.0.0.1:8080/uploads/'
const results = document.getElementById('results')

function show(entry) {
  results.textContent += `${JSON.stringify(entry)}\n`
}

new Uppy({ debug: params.has('debug') })
  .use(Dashboard, { inline: true, target: '#uploader', proudlyDisplayPoweredByUppy: false })
  .use(Tus, {
    endpoint,
    chunkSize: 5 * 1024 * 1024, // bytes per PATCH; a cut connection costs at most this much again
    retryDelays: [0, 1000, 3000, 5000, 10000, 20000], // ms before each retry: through a restart of the server
    removeFingerprintOnSuccess: true,
    // headers: { Authorization: 'Bearer ...' },  // when the route has auth = ["token"]
  })
  .on('upload-success', (file, response) => {
    // The last PATCH answers with the upload result (the JSON a PUT answers with), base64 in Upload-Result.
    const header = response.body.xhr.getResponseHeader('Upload-Result')
    show({ file: file.name, uploadURL: response.uploadURL, result: header && JSON.parse(atob(header)) })
  })
  .on('upload-error', (file, error, response) => {
    show({ file: file?.name, error: error.message, status: response?.status ?? null })
  })
