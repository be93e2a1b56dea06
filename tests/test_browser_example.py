"""The browser example (examples/browser): Uppy's Dashboard in headless Chromium uploads resumably to another origin.

Skipped without Chromium, chromedriver, selenium or the example's node_modules, unless
``AIOUPLOADER_BROWSER_SMOKE=1`` (scripts/browser-smoke.sh) makes that a failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from aiouploader.testing import MakeProxy, S3Server

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
