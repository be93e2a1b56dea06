"""The examples in ``conf/`` stay true: their configs validate, their metrics exist, S3 takes the lifecycle rule."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel

from aiouploader.builtin.encryption import EncryptionSettings
from aiouploader.builtin.size_limit import SizeLimitSettings
from aiouploader.builtin.virus_scan import VirusScanSettings
from aiouploader.config import RouteConfig, S3Config, ServerConfig, TokenConfig, UploadConfig, validate
from aiouploader.config_file import load
from aiouploader.sizes import parse_size
from aiouploader.testing import MakeProxy, S3Server

from .serving import serve

CONF = Path(__file__).parent.parent / "conf"
DOCS = Path(__file__).parent.parent / "docs"
DOCKERFILE = Path(__file__).parent.parent / "Dockerfile"
MiB = 1024**2


def sidecar_example() -> tuple[dict[str, Any], dict[str, Any]]:
    """The sidecar's container and its pod template."""
    _, deployment = yaml.safe_load_all((CONF / "kubernetes-sidecar.yaml").read_text())
    template: dict[str, Any] = deployment["spec"]["template"]
    (sidecar,) = template["spec"]["initContainers"]
    return sidecar, template


def dockerfile() -> dict[str, str]:
    """The Dockerfile's instructions, the last of each kind, with continued lines joined."""
    instructions = {}
    for line in re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text()).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions[keyword.upper()] = rest.strip()
    return instructions


def compose_service() -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load((CONF / "compose.yaml").read_text())["services"]["aiouploader"]
    return service


def _family(name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count)$", "", name)


def test_the_kubernetes_sidecar_config_validates_and_is_locked_down() -> None:
    config_map, deployment = yaml.safe_load_all((CONF / "kubernetes-sidecar.yaml").read_text())
    config = validate(tomllib.loads(config_map["data"]["config.toml"]))
    pod = deployment["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] > config.server.shutdown_grace


def test_the_sidecar_probes_run_inside_the_container() -> None:
    """The server listens on the pod's loopback; the kubelet's httpGet to 127.0.0.1 would reach the node's."""
    sidecar, _ = sidecar_example()
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert "httpGet" not in sidecar[probe] and "tcpSocket" not in sidecar[probe]
        assert sidecar[probe]["exec"]["command"][0] == "python"
        assert f"'http://127.0.0.1:8080{path}'" in sidecar[probe]["exec"]["command"][-1]


def run_probe(command: list[str], port: int) -> int:
    argv = [sys.executable, *command[1:-1], command[-1].replace(":8080/", f":{port}/")]
    return subprocess.run(argv, capture_output=True, timeout=30).returncode


def test_the_sidecar_probes_pass_only_while_the_server_is_ready(tmp_path: Path, moto_server: S3Server) -> None:
    sidecar, _ = sidecar_example()
    liveness, readiness = (sidecar[probe]["exec"]["command"] for probe in ("livenessProbe", "readinessProbe"))
    ready = serve(tmp_path, moto_server, moto_server.create_bucket())
    missing = serve(tmp_path, moto_server, "no-such-bucket-for-the-probe")
    try:
        for served, is_ready in ((ready, True), (missing, False)):
            port = int(served.url.rsplit(":", 1)[1])
            assert run_probe(liveness, port) == 0
            assert (run_probe(readiness, port) == 0) is is_ready
    finally:
        ready.stop()
        missing.stop()
    assert run_probe(liveness, port) != 0, "nothing listens any more"


def test_the_sidecar_has_no_scrape_annotations_for_a_server_prometheus_cannot_reach() -> None:
    config_map, _ = yaml.safe_load_all((CONF / "kubernetes-sidecar.yaml").read_text())
    sidecar, template = sidecar_example()
    env = {variable["name"]: variable["value"] for variable in sidecar.get("env", [])}
    config = load(None, env, default=tomllib.loads(config_map["data"]["config.toml"]))
    annotations = template["metadata"].get("annotations", {})
    if config.server.host.startswith("127."):
        assert not any(name.startswith("prometheus.io/") for name in annotations)


def test_the_sidecar_memory_limit_is_the_one_docs_operations_gives() -> None:
    config_map, _ = yaml.safe_load_all((CONF / "kubernetes-sidecar.yaml").read_text())
    config = validate(tomllib.loads(config_map["data"]["config.toml"]))
    sidecar, _ = sidecar_example()
    limit = parse_size(sidecar["resources"]["limits"]["memory"].replace("Mi", "MiB"))
    operations = (DOCS / "operations.md").read_text().replace("\n", " ")
    process = int(re.search(r"about (\d+) MiB for the process", operations)[1]) * MiB  # type: ignore[index]
    found = re.search(r'examples allow (\d+) \(`max_buffered = "(\d+)MiB"`, (\d+) MiB\)', operations)
    assert found, "docs/operations.md no longer says what the examples allow"
    uploads, buffered, documented = (int(n) for n in found.groups())
    per_upload = config.upload_memory()
    assert limit == documented * MiB
    assert config.server.max_buffered == buffered * MiB == uploads * per_upload  # no more uploads than fit
    assert limit >= config.server.max_buffered + process
    request = parse_size(sidecar["resources"]["requests"]["memory"].replace("Mi", "MiB"))
    assert process <= request <= limit
    compose: dict[str, Any] = yaml.safe_load((CONF / "compose.yaml").read_text())
    composed = validate(tomllib.loads(compose["configs"]["aiouploader"]["content"]))
    assert composed.server.max_buffered == uploads * composed.upload_memory()  # as many uploads, at its own bound
    assert parse_size(compose["services"]["aiouploader"]["mem_limit"].replace("m", "MiB")) == limit
    comment = re.search(r"about\s+#?\s*(\d+)MiB for the process", (CONF / "kubernetes-sidecar.yaml").read_text())
    assert comment and int(comment[1]) * MiB == process


@pytest.mark.parametrize("version", ["1.29", kubernetes_validate.latest_version()])
def test_the_kubernetes_manifest_matches_the_api_schema(version: str) -> None:
    """Strict: a misspelt field (``readOnlyRootFilesytem``) would otherwise be ignored by the API server."""
    for resource in yaml.safe_load_all((CONF / "kubernetes-sidecar.yaml").read_text()):
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_examples_run_as_the_images_user() -> None:
    user = dockerfile()["USER"]
    uid, gid = (int(n) for n in user.split(":"))
    assert uid != 0
    _, template = sidecar_example()
    pod = template["spec"]["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (uid, gid, gid)
    assert compose_service()["user"] == user


def test_the_examples_mount_the_config_where_the_image_reads_it() -> None:
    image = dockerfile()
    cmd = json.loads(image["CMD"])
    config = Path(cmd[cmd.index("--config") + 1])
    assert f"mkdir -m 0755 {config.parent}" in image["RUN"], "the image has the mount point"
    sidecar, template = sidecar_example()
    assert sidecar.get("args", cmd) == cmd and "command" not in sidecar
    (mount,) = (m for m in sidecar["volumeMounts"] if m["mountPath"] == str(config.parent))
    assert mount["readOnly"] is True
    (volume,) = (v for v in template["spec"]["volumes"] if v["name"] == mount["name"])
    config_map, _ = yaml.safe_load_all((CONF / "kubernetes-sidecar.yaml").read_text())
    assert volume["configMap"]["name"] == config_map["metadata"]["name"] and config.name in config_map["data"]
    (compose_config,) = compose_service()["configs"]
    assert compose_config["target"] == str(config)


def test_the_examples_listen_and_probe_on_the_images_port() -> None:
    image = dockerfile()
    port = int(image["EXPOSE"])
    assert f"'http://127.0.0.1:{port}/healthz'" in image["HEALTHCHECK"]
    sidecar, _ = sidecar_example()
    assert [p["containerPort"] for p in sidecar["ports"]] == [port]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert f"'http://127.0.0.1:{port}/" in sidecar[probe]["exec"]["command"][-1]
    config_map, _ = yaml.safe_load_all((CONF / "kubernetes-sidecar.yaml").read_text())
    compose: dict[str, Any] = yaml.safe_load((CONF / "compose.yaml").read_text())
    for text in (config_map["data"]["config.toml"], compose["configs"]["aiouploader"]["content"]):
        assert validate(tomllib.loads(text)).server.port == port
    service = compose_service()
    assert "healthcheck" not in service, "Compose runs the image's HEALTHCHECK"
    assert [p.rsplit(":", 1)[1] for p in service["ports"]] == [str(port)]


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


SETTINGS: dict[str, type[BaseModel]] = {
    "server": ServerConfig,
    "s3": S3Config,
    "upload": UploadConfig,
    "routes": RouteConfig,
    "auth.tokens": TokenConfig,
    "plugins.size_limit": SizeLimitSettings,
    "routes.plugin_settings.size_limit": SizeLimitSettings,
    "plugins.virus_scan": VirusScanSettings,
    "plugins.encryption": EncryptionSettings,
}


def _normal(value: Any, default: Any) -> Any:
    return parse_size(value) if isinstance(default, int) and isinstance(value, str) else value


def test_the_full_example_marks_every_value_that_is_not_the_default() -> None:
    """conf/aiouploader.toml says it shows every setting with its default, except the lines marked "example"."""
    text = (CONF / "aiouploader.toml").read_text()
    validate(tomllib.loads(text))
    table, header = "", ""
    unmarked = []
    for line in text.splitlines():
        if heading := re.match(r"\[\[?([\w.]+)\]\]?", line):
            table, header = heading[1], line
            continue
        if not re.match(r"\w+ =", line):
            continue
        ((key, value),) = tomllib.loads(line).items()
        field = SETTINGS[table].model_fields[key]
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if (field.is_required() or _normal(value, default) != default) and "example" not in line + header:
            unmarked.append(f"[{table}] {line}")
    assert unmarked == []


def test_the_signing_key_example_of_the_full_example_works(tmp_path: Path) -> None:
    comment = (CONF / "aiouploader.toml").read_text()
    variable = re.search(r"(AIOUPLOADER_AUTH__SIGNING_KEYS__\w+)=", comment)[1]  # type: ignore[index]
    key_id = re.search(r"sign --key-id (\S+)", comment)[1]  # type: ignore[index]
    config = tmp_path / "c.toml"
    config.write_text('[[routes]]\npath = "/uploads"\nbucket = "incoming"\n')
    env = {**os.environ, variable: "s" * 32}
    command = ["sign", "--config", str(config), "--key-id", key_id, "--route", "/uploads", "--key", "a.pdf"]
    run = subprocess.run([sys.executable, "-m", "aiouploader", *command], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("path", [DOCS / "configuration.md", DOCS.parent / "README.md"], ids=lambda path: path.name)
def test_the_docs_name_signing_key_ids_in_lowercase(path: Path) -> None:
    """Ids set through the environment are lowercase: an example with an uppercase one would not work."""
    key_ids = re.findall(r"--key-id (\S+)", path.read_text())
    assert key_ids and all(key_id == key_id.lower() for key_id in key_ids)


def test_the_commented_s3_api_example_of_the_full_example_validates() -> None:
    """Uncommented, the [s3_api] tables and the route's s3_api_bucket make a config that starts."""
    text = (CONF / "aiouploader.toml").read_text()
    text = text.replace("# s3_api_bucket = ", "s3_api_bucket = ")
    start, end = text.index("# [s3_api]\n"), text.index("\n\n", text.index("# [s3_api]\n"))
    block = "\n".join(line.removeprefix("#").removeprefix(" ") for line in text[start:end].splitlines())
    config = validate(tomllib.loads(text[:start] + block + text[end:]))
    assert config.s3_api is not None and config.routes[0].s3_api_bucket == "uploads"
    assert config.s3_api.port == 8081 and config.s3_api.credentials[0].access_key_id == "AKIDUPLOADS"
