"""The configuration surface: TOML, environment overrides, one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from aiouploader.builtin.size_limit import SizeLimitSettings
from aiouploader.config import ConfigError, parse_settings, validate
from aiouploader.config_file import apply_env, load
from aiouploader.sizes import format_size, parse_size

ROUTE = '[[routes]]\npath = "/uploads"\nbucket = "incoming"\n'
HUGE = "9" * 400 + "TiB"
TOKEN = f'[[auth.tokens]]\nname = "t"\nsha256 = "{"0" * 64}"\n'


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("8MiB", 8 * 1024**2),
        ("100MB", 100 * 10**6),
        ("5GiB", 5 * 1024**3),
        (" 1 KiB ", 1024),
        (42, 42),
        ("1.5KiB", 1536),
    ],
)
def test_sizes_are_read_as_people_write_them(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "8 MiBs", "-1", True, -5, 1.5, "MiB"])
def test_what_is_no_size_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


@pytest.mark.parametrize("text", [HUGE, "8388608TiB", 2**64, "9" * 5000])
def test_a_size_too_large_to_compute_is_refused_like_any_bad_size(text: object) -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_size(text)


def test_format_size_round_trips() -> None:
    for size in (1, 1024, 5 * 1024**2, 3 * 1024**4, 1536):
        assert parse_size(format_size(size)) == size


def test_environment_overrides_every_kind_of_setting(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE + '[s3]\npart_size = "8MiB"\n')
    config = load(
        path,
        {
            "AIOUPLOADER_S3__ENDPOINT_URL": "http://127.0.0.1:9000",
            "AIOUPLOADER_S3__PART_SIZE": "16MiB",
            "AIOUPLOADER_SERVER__PORT": "9090",
            "AIOUPLOADER_ROUTES__0__BUCKET": "other",
            "AIOUPLOADER_ROUTES__0__PLUGINS": '["checksum"]',
            "AIOUPLOADER_PLUGINS__SIZE_LIMIT__MAX_SIZE": "1GiB",
            "UNRELATED": "x",
        },
    )
    assert config.s3.endpoint_url == "http://127.0.0.1:9000"
    assert config.s3.part_size == 16 * 1024**2
    assert config.server.port == 9090
    assert config.routes[0].bucket == "other" and config.routes[0].plugins == ["checksum"]
    assert config.plugins["size_limit"] == {"max_size": "1GiB"}


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE)
    assert load(None, {"AIOUPLOADER_CONFIG": str(path)}).routes[0].bucket == "incoming"


def test_route_settings_override_plugin_defaults() -> None:
    config = validate(
        {
            "routes": [
                {
                    "path": "/a",
                    "bucket": "bbb",
                    "plugins": ["size_limit", "virus_scan"],
                    "plugin_settings": {"size_limit": {"max_size": "1MiB"}},
                }
            ],
            "plugins": {"size_limit": {"max_size": "1GiB"}, "virus_scan": {"backend": "stub"}},
        }
    )
    assert config.plugin_settings(config.routes[0], "size_limit") == {"max_size": "1MiB"}
    assert config.plugin_settings(config.routes[0], "virus_scan") == {"backend": "stub"}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (ROUTE + '[s3]\npart_size = "1MiB"\n', "s3.part_size"),
        (ROUTE + "[s3]\nparts_in_flight = 0\n", "s3.parts_in_flight"),
        (ROUTE + "[server]\nport = 70000\n", "server.port"),
        (ROUTE + "[server]\nprot = 80\n", "server.prot"),
        ('[[routes]]\npath = "uploads"\nbucket = "incoming"\n', "routes[0].path"),
        ('[[routes]]\npath = "/u"\n', "routes[0].bucket"),
        ("", "routes"),
        (ROUTE + '[[routes]]\npath = "/uploads/inner"\nbucket = "incoming"\n', "routes"),
        (ROUTE.replace("]\n", "]\nplugins = ['nope']\n", 1), "nope"),
        (ROUTE + '[plugins.size_limit]\nmax_size = "lots"\n', "max_size"),
        (ROUTE + "[s3\n", "not valid TOML"),
        (ROUTE + '[server]\nmax_buffered = "32MiB"\n', "server.max_buffered"),  # one upload needs 33MiB
        (ROUTE.replace("]\n", ']\nauth = ["token"]\n', 1), "routes[0].auth"),
        (ROUTE.replace("]\n", ']\nauth = ["signed"]\n', 1), "routes[0].auth"),
        (ROUTE + f'[[auth.tokens]]\nname = "t"\nsha256 = "{"0" * 64}"\nroutes = ["/nope"]\n', "auth.tokens[0].routes"),
        (ROUTE + TOKEN + TOKEN.replace('"t"', '"u"'), "auth.tokens: [0] ('t') and [1] ('u') have the same sha256"),
        (ROUTE.replace("]\n", "]\ndirect_upload = true\nif_none_match = true\n", 1), "routes[0]"),
        (
            ROUTE.replace("]\n", ']\nauth = ["token"]\n', 1)
            + '[[routes]]\npath = "/other"\nbucket = "incoming"\n'
            + TOKEN
            + 'routes = ["/other"]\n',
            "routes[0].auth",
        ),
    ],
)
def test_an_invalid_setting_stops_start_up_with_one_line(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text.replace("plugins = ['nope']", 'plugins = ["nope", "size_limit"]'))
    if named == "max_size":
        path.write_text(
            ROUTE.replace("]\n", ']\nplugins = ["size_limit"]\n', 1) + '[plugins.size_limit]\nmax_size = "lots"\n'
        )
    assert_refused(["check-config", str(path)], named)


def assert_refused(command: list[str], named: str, env: dict[str, str] | None = None, *also: str) -> str:
    """Run ``aiouploader COMMAND``: status 2 and one line naming ``named`` (and ``also``); the line."""
    run = subprocess.run(
        [sys.executable, "-m", "aiouploader", *command], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aiouploader: invalid config: "), run.stderr
    for text in (named, *also):
        assert text in lines[0]
    return lines[0]


def test_serve_without_a_config_says_how_to_give_one(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    assert_refused(["serve"], "no configuration: give --config PATH or set AIOUPLOADER_CONFIG", env)


def test_serve_refuses_an_invalid_setting_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE)
    env = {"PATH": "/usr/bin:/bin", "AIOUPLOADER_S3__PART_SIZE": "4MiB"}
    assert_refused(["serve", "--config", str(path)], "s3.part_size", env)


def test_unknown_plugin_lists_the_installed_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE.replace("]\n", ']\nplugins = ["nope"]\n', 1))
    run = subprocess.run(
        [sys.executable, "-m", "aiouploader", "check-config", str(path)], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "unknown plugin 'nope'" in run.stderr and "checksum" in run.stderr and "size_limit" in run.stderr


def test_a_misspelt_plugin_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE.replace("]\n", ']\nplugins = ["size_limit", "virusscan"]\n', 1))
    line = assert_refused(["check-config", str(path)], "unknown plugin 'virusscan'")
    assert line.endswith("(did you mean virus_scan?)")


def test_every_bad_setting_is_named_on_the_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE.replace("]\n", "]\nplugin_timeout = 0\n", 1) + "[server]\nport = 70000\nprot = 80\n")
    line = assert_refused(["check-config", str(path)], "server.port", None, "server.prot", "routes[0].plugin_timeout")
    assert line.count("; ") == 2
    with pytest.raises(ValueError, match=r"^max_size: .*; reject: Extra inputs are not permitted$"):
        parse_settings(SizeLimitSettings, {"max_size": "lots", "reject": True})


def test_env_override_of_a_missing_list_entry_is_an_error() -> None:
    with pytest.raises(ConfigError, match="ROUTES__3__BUCKET"):
        apply_env({"routes": [{}]}, {"AIOUPLOADER_ROUTES__3__BUCKET": "x"})


def test_check_config_prints_the_effective_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE)
    run = subprocess.run(
        [sys.executable, "-m", "aiouploader", "check-config", str(path)],
        capture_output=True,
        text=True,
        env={"AIOUPLOADER_S3__REGION": "eu-west-1", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    assert '"region": "eu-west-1"' in run.stdout and '"part_size": 8388608' in run.stdout


SIZE_LIMITED = ROUTE + 'plugins = ["size_limit"]\n'


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        (ROUTE + f'[server]\nmax_buffered = "{HUGE}"\n', {}, "server.max_buffered"),
        (ROUTE, {"AIOUPLOADER_UPLOAD__BLOCK_SIZE": HUGE}, "upload.block_size"),
        (SIZE_LIMITED + f'[plugins.size_limit]\nmax_size = "{HUGE}"\n', {}, "max_size"),
        (SIZE_LIMITED + f'[routes.plugin_settings.size_limit]\nmax_size = "{HUGE}"\n', {}, "max_size"),
        (SIZE_LIMITED, {"AIOUPLOADER_PLUGINS__SIZE_LIMIT__MAX_SIZE": HUGE}, "max_size"),
    ],
    ids=["file", "environment", "plugin", "route-plugin", "plugin-environment"],
)
def test_a_size_too_large_to_compute_stops_start_up_with_one_line(
    tmp_path: Path, text: str, env: dict[str, str], named: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert_refused(["check-config", str(path)], named, {"PATH": "/usr/bin:/bin", **env}, "too large")


def test_a_config_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(ROUTE.encode() + "# Größe\n".encode("latin-1"))
    assert_refused(["check-config", str(path)], str(path), None, "not UTF-8")
    with pytest.raises(ConfigError, match=r"latin1\.toml: not UTF-8"):
        load(path, {})


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (ROUTE + '[s3]\nendpoint_url = "not a url"\n', "s3.endpoint_url"),
        (ROUTE + '[s3]\nendpoint_url = "ftp://files.example"\n', "s3.endpoint_url"),
        (ROUTE + '[s3]\nendpoint_url = "http://:9000"\n', "s3.endpoint_url"),
        (ROUTE + '[s3]\nendpoint_url = "http://127.0.0.1:99999"\n', "s3.endpoint_url"),
        (ROUTE + '[s3]\nregion = "bad region!"\n', "s3.region"),
        (ROUTE + '[s3]\nregion = ""\n', "s3.region"),
        ('[[routes]]\npath = "/u"\nbucket = "In_Valid Bucket!"\n', "routes[0].bucket"),
        (ROUTE + '[server]\nhost = "bad host!"\n', "server.host"),
        (ROUTE + '[server]\nhost = ""\n', "server.host"),
    ],
)
def test_what_the_s3_client_or_the_listener_would_refuse_is_refused_first(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert_refused(["check-config", str(path)], named)


def test_what_the_s3_client_accepts_is_accepted() -> None:
    """botocore's rules, not AWS's stricter ones: other S3 stores take upper case and underscores."""
    config = validate(
        {
            "server": {"host": "::1"},
            "s3": {"endpoint_url": "https://[::1]:9000", "region": "eu-west-1"},
            "routes": [{"path": "/a", "bucket": "Team_Uploads.2025"}],
        }
    )
    assert config.routes[0].bucket == "Team_Uploads.2025"
    assert validate({"server": {"host": "s3.internal"}, "routes": [{"path": "/a", "bucket": "abc"}]})


def test_a_plugin_table_for_no_installed_plugin_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(SIZE_LIMITED + '[plugins.size-limit]\nmax_size = "1MiB"\n')
    line = assert_refused(["check-config", str(path)], "[plugins.size-limit]")
    assert "installed: checksum, " in line and "did you mean size_limit?" in line


def test_a_route_plugin_table_for_a_plugin_the_route_does_not_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(SIZE_LIMITED + '[routes.plugin_settings.sizelimit]\nmax_size = "1MiB"\n')
    line = assert_refused(["check-config", str(path)], "[routes.plugin_settings.sizelimit]")
    assert "routes[0].plugin_settings" in line and "its plugins: size_limit" in line


def test_a_plugin_table_for_an_installed_plugin_no_route_lists_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(SIZE_LIMITED + '[plugins.virus_scan]\nbackend = "stub"\n')
    run = subprocess.run(
        [sys.executable, "-m", "aiouploader", "check-config", str(path)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


def test_a_signing_key_id_from_the_environment_is_lowercase(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE)
    env = {"PATH": "/usr/bin:/bin", "AIOUPLOADER_AUTH__SIGNING_KEYS__K2025": "s" * 32}
    assert load(path, env).auth.signing_keys.keys() == {"k2025"}
    sign = ["sign", "--config", str(path), "--route", "/uploads", "--key", "a", "--key-id"]
    assert_refused([*sign, "K2025"], "--key-id k2025", env)
    run = subprocess.run([sys.executable, "-m", "aiouploader", *sign, "k2025"], capture_output=True, env=env)
    assert run.returncode == 0, run.stderr


def test_a_signed_url_must_expire_in_the_future(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE)
    env = {"PATH": "/usr/bin:/bin", "AIOUPLOADER_AUTH__SIGNING_KEYS__K1": "s" * 32}
    sign = ["sign", "--config", str(path), "--route", "/uploads", "--key", "a", "--key-id", "k1"]
    assert_refused([*sign, "--expires-in", "-5"], "--expires-in", env)


def test_check_config_checks_the_tls_files_as_serve_does(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE + f'[server]\ntls_cert = "{tmp_path}/none.crt"\ntls_key = "{tmp_path}/none.key"\n')
    assert_refused(["check-config", str(path)], "server.tls_cert")


@pytest.mark.parametrize("origin", ["https://app.example/", "app.example", "*.example.com", "https://App.Example"])
def test_an_origin_no_browser_sends_stops_start_up(tmp_path: Path, origin: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE + f'[routes.cors]\nallow_origins = ["https://ok.example", "{origin}"]\n')
    assert_refused(["check-config", str(path)], "routes[0].cors.allow_origins", None, origin, "scheme://host[:port]")


def test_origins_as_browsers_send_them_are_accepted() -> None:
    origins = ["*", "https://app.example", "http://localhost:3000", "https://[::1]:8443"]
    config = validate({"routes": [{"path": "/a", "bucket": "abc", "cors": {"allow_origins": origins}}]})
    assert config.routes[0].cors and config.routes[0].cors.allow_origins == origins


@pytest.mark.parametrize(("option", "value"), [("--key", "x/../y"), ("--key", "a//b"), ("--prefix", "x/../")])
def test_sign_refuses_a_key_or_prefix_no_request_can_use(tmp_path: Path, option: str, value: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE)
    env = {"PATH": "/usr/bin:/bin", "AIOUPLOADER_AUTH__SIGNING_KEYS__K1": "s" * 32}
    sign = ["sign", "--config", str(path), "--route", "/uploads", "--key-id", "k1", option, value]
    assert_refused(sign, option, env, "segment")


OPEN_AND_TOKEN = (
    TOKEN
    + '[[routes]]\npath = "/openab"\nbucket = "bk1"\nprefix = "to"\n'
    + '[[routes]]\npath = "/tok"\nbucket = "bk1"\nprefix = "tok/"\nauth = ["token"]\n'
)


def test_routes_that_reach_the_same_objects_under_other_rules_stop_start_up(tmp_path: Path) -> None:
    """An open route whose prefix starts a token route's would let anyone overwrite what the token guards."""
    path = tmp_path / "c.toml"
    path.write_text(OPEN_AND_TOKEN)
    line = assert_refused(["check-config", str(path)], "routes /openab and /tok", None, "'to'", "'tok/'", "auth")
    assert "bk1" in line


@pytest.mark.parametrize(
    ("first", "second", "differ"),
    [
        ('prefix = "a/"\nplugins = ["size_limit"]', 'prefix = "a/b/"', "plugins"),
        ('plugins = ["size_limit"]', 'plugins = ["size_limit"]\nplugin_settings.size_limit.max_size = 1', "settings"),
        ('prefix = "x"', 'prefix = "x"\nallow_delete = true', "allow_delete"),
        ("", "if_none_match = true", "if_none_match"),
    ],
)
def test_any_rule_two_overlapping_routes_differ_in_is_named(first: str, second: str, differ: str) -> None:
    text = f'[[routes]]\npath = "/one"\nbucket = "bk1"\n{first}\n[[routes]]\npath = "/two"\nbucket = "bk1"\n{second}\n'
    with pytest.raises(ConfigError, match=f"/one and /two .* differ in .*{differ}"):
        validate(tomllib.loads(text))


def test_routes_apart_or_alike_start(tmp_path: Path) -> None:
    apart = (
        '[[routes]]\npath = "/a"\nbucket = "bk1"\nprefix = "a/"\n'
        '[[routes]]\npath = "/b"\nbucket = "bk1"\nprefix = "b/"\nauth = ["token"]\n'
        '[[routes]]\npath = "/c"\nbucket = "bk2"\n'
    )
    assert validate(tomllib.loads(TOKEN + apart)).warnings() == []
    alike = '[[routes]]\npath = "/a"\nbucket = "bk1"\n[[routes]]\npath = "/b"\nbucket = "bk1"\nprefix = "b/"\n'
    path = tmp_path / "c.toml"
    path.write_text(alike)
    run = subprocess.run(
        [sys.executable, "-m", "aiouploader", "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "warning: routes /a and /b reach the same objects" in run.stderr


def test_a_metrics_port_of_its_own_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"server\.metrics_port"):
        validate(tomllib.loads(ROUTE + "[server]\nmetrics_port = 70000\n"))
    with pytest.raises(ConfigError, match=r"server\.metrics_host"):
        validate(tomllib.loads(ROUTE + '[server]\nmetrics_port = 9100\nmetrics_host = "bad host!"\n'))


WITHOUT_AWSCRT = "import sys; sys.modules['awscrt'] = None; from aiouploader.cli import main; sys.exit(main())"


@pytest.mark.parametrize("awscrt", [True, False], ids=["with-awscrt", "without-awscrt"])
def test_crc64nvme_is_taken_only_where_awscrt_is_installed(tmp_path: Path, awscrt: bool) -> None:
    path = tmp_path / "c.toml"
    path.write_text(ROUTE + '[s3]\nchecksum_algorithm = "crc64nvme"\n')
    code = "from aiouploader.cli import main; import sys; sys.exit(main())" if awscrt else WITHOUT_AWSCRT
    run = subprocess.run(
        [sys.executable, "-c", code, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    if awscrt:
        pytest.importorskip("awscrt")
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["s3"]["checksum_algorithm"] == "crc64nvme"
        return
    assert run.returncode == 2, run.stderr
    line = run.stderr.strip()
    assert line.startswith("aiouploader: invalid config: s3.checksum_algorithm: crc64nvme needs the awscrt package")
    assert "pip install 'aiouploader[crt]'" in line and "\n" not in line


def test_content_md5_is_off_by_default() -> None:
    config = validate(tomllib.loads(ROUTE))
    assert config.s3.content_md5 is False and config.s3.checksum_algorithm == "crc32c"
