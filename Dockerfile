# A slim image that runs as a non-root user and writes nothing at run time,
# so it runs with a read-only root filesystem. Mount the config at
# /etc/aiouploader/config.toml (or set AIOUPLOADER_CONFIG) and pass S3
# credentials through the standard AWS environment or a web identity.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    AIOUPLOADER_SERVER__HOST=0.0.0.0

WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY aiouploader ./aiouploader
RUN pip install --no-compile . && rm -rf /src \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin aiouploader

USER 10001
WORKDIR /
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["aiouploader"]
CMD ["serve", "--config", "/etc/aiouploader/config.toml"]
