"""The browser example (examples/browser): Uppy's Dashboard in headless Chromium uploads resumably to another origin.

Skipped without Chromium, chromedriver, selenium or the example's node_modules, unless
``AIOUPLOADER_BROWSER_SMOKE=1`` (scripts/browser-smoke.sh) makes that a failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from aiohttp import web

from aiouploader.chain_state import StateKey
from aiouploader.testing import MakeProxy, S3Server, serve_process
from aiouploader.tus.stored import PREFIX, state_key, unseal

EXAMPLE = Path(__file__).parent.parent / "examples" / "browser"
CHROMIUM, CHROMEDRIVER, NPM = shutil.which("chromium"), shutil.which("chromedriver"), shutil.which("npm")
MISSING = [
    name
    for name, found in (
        ("chromium", CHROMIUM),
        ("chromedriver (chromium-driver)", CHROMEDRIVER),
        ("npm", NPM),
        ("examples/browser/node_modules (npm ci)", (EXAMPLE / "node_modules").is_dir()),
    )
    if not found
]
if MISSING and os.environ.get("AIOUPLOADER_BROWSER_SMOKE") != "1":
    pytest.skip(f"needs {', '.join(MISSING)}: scripts/browser-smoke.sh installs them", allow_module_level=True)
assert not MISSING, f"missing: {', '.join(MISSING)}"
pytest.importorskip("selenium", reason="pip install 'aiouploader[browser]'")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

MiB = 1024**2
WAIT = 120
"""Seconds the page may take to show its upload's outcome: a bound on a hung test, not a measurement."""


@pytest.fixture
def s3_server(moto_server: S3Server) -> S3Server:
    return moto_server


@pytest.fixture(scope="module")
def bundle() -> None:
    """The example's dist/, built as its README says."""
    assert NPM is not None
    subprocess.run([NPM, "run", "--silent", "build"], cwd=EXAMPLE, check=True, timeout=300, capture_output=True)


@pytest.fixture
async def page_origin(bundle: None) -> AsyncIterator[str]:
    """The example served from a loopback port of its own: another origin than the proxy's."""
    app = web.Application()

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(EXAMPLE / "index.html")

    app.router.add_get("/", index)
    app.router.add_static("/dist", EXAMPLE / "dist")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path}/c"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()  # ends the chromium and chromedriver it started


def upload_through_the_dashboard(driver: webdriver.Chrome, url: str, path: Path) -> list[dict[str, Any]]:
    """Open the page, add ``path`` with the Dashboard's file input, press Upload; what the page reports."""
    driver.get(url)
    wait = WebDriverWait(driver, WAIT)
    chooser = wait.until(
        expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, "input.uppy-Dashboard-input[type=file]:not([webkitdirectory])")
        )
    )
    chooser.send_keys(str(path))
    wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, ".uppy-StatusBar-actionBtn--upload")))
    driver.find_element(By.CSS_SELECTOR, ".uppy-StatusBar-actionBtn--upload").click()
    try:
        wait.until(lambda d: d.find_element(By.ID, "results").text.strip())
    except Exception as exc:
        console = driver.execute("getLog", {"type": "browser"})["value"]
        raise AssertionError(f"the page reported nothing; its console: {console}") from exc
    text = driver.find_element(By.ID, "results").text
    return [json.loads(line) for line in text.splitlines()]


async def test_uppys_dashboard_uploads_a_file_resumably_from_another_origin(
    make_proxy: MakeProxy,
    s3_server: S3Server,
    bucket: str,
    page_origin: str,
    browser: webdriver.Chrome,
    tmp_path: Path,
) -> None:
    (route,) = tomllib.loads((EXAMPLE / "aiouploader.toml").read_text())["routes"]
    route |= {"bucket": bucket, "prefix": "browser/", "cors": route["cors"] | {"allow_origins": [page_origin]}}
    proxy = await make_proxy(routes=[route], s3={"part_size": "5MiB"})
    assert proxy.url != page_origin
    data = os.urandom(12 * MiB + 321)
    path = tmp_path / "holiday.mov"
    path.write_bytes(data)

    url = f"{page_origin}/?endpoint={quote(proxy('/uploads/'), safe='')}"
    reports = await asyncio.to_thread(upload_through_the_dashboard, browser, url, path)

    assert len(reports) == 1 and "error" not in reports[0], reports
    result = reports[0]["result"]  # from the Upload-Result header, which CORS must expose to the page
    assert result["key"] == "browser/holiday.mov" and result["size"] == len(data)
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert reports[0]["uploadURL"].startswith(proxy("/uploads/.tus/"))
    assert result["plugins"]["virus_scan"]["verdict"] == "clean"  # the example route's plugins ran
    assert s3_server.get(bucket, "browser/holiday.mov") == data
    assert s3_server.multipart_uploads(bucket) == []


STATE_KEY = "the-browser-example-s-state-key-" + "k" * 16


async def part_in_s3(s3_server: S3Server, bucket: str) -> str:
    """Poll ``bucket`` until an upload kept there has its first part in S3; that upload's id."""
    deadline = time.monotonic() + WAIT
    while not await asyncio.to_thread(s3_server.multipart_uploads, bucket):
        assert time.monotonic() < deadline, "the upload never started a multipart upload"
        await asyncio.sleep(0.05)
    keys = await asyncio.to_thread(s3_server.keys, bucket)
    (upload,) = [key[len(PREFIX) :] for key in keys if re.fullmatch(re.escape(PREFIX) + "[A-Za-z0-9_-]{32}", key)]
    return upload


async def test_uppys_upload_completes_with_the_server_restarted_mid_upload(
    s3_server: S3Server, bucket: str, page_origin: str, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "AIOUPLOADER_SERVER__STATE_KEY": STATE_KEY,  # the upload's state is kept in the bucket
        "AIOUPLOADER_SERVER__SHUTDOWN_GRACE": "0",  # the drain cuts the PATCH in flight at once, keeping its bytes
        "AIOUPLOADER_S3__ENDPOINT_URL": s3_server.endpoint_url,
        "AIOUPLOADER_S3__ORPHAN_TTL": "0",
        "AIOUPLOADER_S3__PART_SIZE": "6MiB",  # the first part is full 1 MiB into the page's second PATCH (5 MiB)
        "AIOUPLOADER_ROUTES__0__BUCKET": bucket,
        "AIOUPLOADER_ROUTES__0__PREFIX": "browser/",
        "AIOUPLOADER_ROUTES__0__CORS__ALLOW_ORIGINS": json.dumps([page_origin]),
    }
    config = (EXAMPLE / "aiouploader.toml").read_text()
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = await asyncio.to_thread(serve_process, tmp_path / "first", config, env)
    data = os.urandom(28 * MiB + 321)
    path = tmp_path / "holiday.mov"
    path.write_bytes(data)
    url = f"{page_origin}/?endpoint={quote(first.url + '/uploads/', safe='')}"
    # The page sends 4 MiB a second: the stop is likely to come while a PATCH's body is on its way.
    browser.set_network_conditions(latency=0, download_throughput=-1, upload_throughput=4 * MiB)
    uploading = asyncio.create_task(asyncio.to_thread(upload_through_the_dashboard, browser, url, path))
    second = None
    try:
        upload = await part_in_s3(s3_server, bucket)  # 6 MiB came: the page's second PATCH runs
        first.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.process.wait, 30) == 0
        kept = unseal(s3_server.get(bucket, state_key(upload)), StateKey(STATE_KEY), upload)
        assert 0 < kept.offset < len(data) and kept.result is None and kept.lease is None, kept  # mid-upload
        assert len(s3_server.multipart_uploads(bucket)) == 1  # kept, not aborted

        port = urlsplit(first.url).port
        second = await asyncio.to_thread(serve_process, tmp_path / "second", config, env, port=port)
        reports = await uploading
    finally:
        first.stop()
        if second is not None:
            second.stop()
        if not uploading.done():
            uploading.cancel()

    assert len(reports) == 1 and "error" not in reports[0], reports
    result = reports[0]["result"]
    assert result["key"] == "browser/holiday.mov" and result["size"] == len(data)
    assert result["checksums"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert reports[0]["uploadURL"] == f"{second.url}/uploads/.tus/{upload}"
    assert s3_server.get(bucket, "browser/holiday.mov") == data
    assert s3_server.multipart_uploads(bucket) == []
    assert s3_server.keys(bucket) == [state_key(upload), "browser/holiday.mov"]  # no tail; the state: the result
    assert unseal(s3_server.get(bucket, state_key(upload)), StateKey(STATE_KEY), upload).result == result
