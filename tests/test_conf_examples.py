"""The examples in ``conf/`` stay true: their configs validate, their metrics exist, S3 takes the lifecycle rule."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from aiouploader.config import validate
from aiouploader.testing import MakeProxy, S3Server

CONF = Path(__file__).parent.parent / "conf"


def _family(name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count)$", "", name)


def test_the_kubernetes_sidecar_config_validates_and_is_locked_down() -> None:
    config_map, deployment = yaml.safe_load_all((CONF / "kubernetes-sidecar.yaml").read_text())
    config = validate(tomllib.loads(config_map["data"]["config.toml"]))
    pod = deployment["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["terminationGracePeriodSeconds"] > config.server.shutdown_grace


def test_the_compose_config_validates() -> None:
    compose: dict[str, Any] = yaml.safe_load((CONF / "compose.yaml").read_text())
    config = validate(tomllib.loads(compose["configs"]["aiouploader"]["content"]))
    assert config.s3.endpoint_url == "http://s3:9000"
    assert compose["services"]["aiouploader"]["read_only"] is True


async def test_every_metric_on_the_dashboard_is_exported(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket, "plugins": []}])
    async with proxy.session.get(proxy("/metrics")) as response:
        exported = {_family(name) for name in re.findall(r"^# TYPE (\w+)", await response.text(), re.M)}
    dashboard = (CONF / "grafana-dashboard.json").read_text()
    json.loads(dashboard)
    used = {_family(name) for name in re.findall(r"aiouploader_\w+", dashboard)}
    assert used <= exported


def test_s3_accepts_the_lifecycle_rule(moto_server: S3Server) -> None:
    """rclone has no lifecycle rules; moto checks the document against the S3 API."""
    bucket = moto_server.create_bucket()
    rules = json.loads((CONF / "lifecycle.json").read_text())
    moto_server.client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules)
    (rule,) = moto_server.client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
