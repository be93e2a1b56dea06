# A slim image that runs as a non-root user and writes nothing at run time,
# so it runs with a read-only root filesystem. Mount the config at
# /etc/aiouploader/config.toml (or set AIOUPLOADER_CONFIG) and pass S3
# credentials through the standard AWS environment or a web identity.
#
# BASE is any Debian-like image with python3, pip and ca-certificates on the
# PATH as `python` and `pip` (the official Python images are); CI builds this
# file on a Debian base of its own (scripts/image-smoke.sh).
ARG BASE=python:3.12-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    AIOUPLOADER_SERVER__HOST=0.0.0.0

COPY pyproject.toml setup.cfg README.md /src/
COPY aiouploader /src/aiouploader
# /etc/aiouploader is the config's mount point: empty and read-only to the user.
RUN pip install --no-compile /src && rm -rf /src \
    && useradd --uid 10001 --user-group --no-create-home --no-log-init --shell /usr/sbin/nologin aiouploader \
    && mkdir -m 0755 /etc/aiouploader

USER 10001:10001
WORKDIR /
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["aiouploader"]
CMD ["serve", "--config", "/etc/aiouploader/config.toml"]
