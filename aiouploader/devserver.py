"""An S3 server inside the process, for trying aiouploader without an AWS account."""

from __future__ import annotations

import logging
import os

import boto3

from .config import Config


def start(config: Config) -> tuple[Config, object]:
    """Start moto's S3 server on a free loopback port, create every route's bucket.

    Returns the config pointed at it, and the server (``.stop()`` it).
    """
    try:
        from moto.moto_server.werkzeug_app import BackendRequest
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise SystemExit("aiouploader: --dev needs moto's server: pip install 'aiouploader[dev]'") from None
    # moto reads a PUT body typed as a form (curl -d's default) as form fields: the object came out empty.
    BackendRequest.want_form_data_parsed = property(lambda request: request.method != "PUT")  # type: ignore[method-assign,assignment]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "dev")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=config.s3.region)
    for bucket in sorted({route.bucket for route in config.routes}):
        s3.create_bucket(Bucket=bucket)
    return config.model_copy(update={"s3": config.s3.model_copy(update={"endpoint_url": endpoint})}), server
