"""The hooks a plugin can implement: the whole extension surface of aiouploader.

A plugin is a module or object whose functions are marked with :data:`hookimpl`
and named after the specs below. It is registered under a name (a built-in's
module name, or its entry-point name in the ``aiouploader`` group), and it
takes part only when a route lists that name in ``plugins``. Every hook but
:func:`aiouploader_configure` receives that name as ``name``: it is the key
of the plugin's entry in ``upload.reports``.

:func:`aiouploader_startup` and :func:`aiouploader_shutdown` are called once
per server, :func:`aiouploader_configure` once per route at start-up, and the
others once per upload or download, in the route's order. Bytes flow through
the :class:`UploadStage` objects the plugins return.

A plugin rejects an upload by raising an :class:`aiouploader.errors.UploadError`
subclass (for example :class:`~aiouploader.errors.PayloadTooLarge`); the S3
upload is then aborted and the client gets that error's status. Any other
exception is answered with 500 ``plugin_error`` naming the plugin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import pluggy

from .errors import UploadError

PROJECT = "aiouploader"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Fetch = Callable[[int, int], AsyncIterator[bytes]]
"""Reads bytes ``[start, end)`` of the layer below: the stored object, or the next stage."""


@dataclass
class Upload:
    """One upload, as the plugins see it."""

    request_id: str
    route: str
    bucket: str
    prefix: str
    key: str
    """The key under the route's prefix. ``upload_started`` and ``upload_stage`` may change it; a change made
    later, by a stage's ``feed`` or ``finish``, is refused (500 ``plugin_error`` naming the plugin, nothing stored),
    as S3 already has the key."""
    content_type: str
    """Stored with the object; may change until the same point as ``key``."""
    content_length: int | None
    """The body's length where the client stated it before sending: ``Content-Length``, a resumable upload's
    ``Upload-Length`` (once stated); ``None`` for a chunked body and a form's file."""
    headers: Mapping[str, str]
    """The request headers (read-only)."""
    metadata: dict[str, str] = field(default_factory=dict)
    """User metadata stored with the object (``x-amz-meta-*``); plugins may add to it until the same point as
    ``key``. What is known only at the end of the body (a digest, a verdict) goes in ``tags`` (stored with the
    object), ``checksums`` or ``reports``: a change to ``metadata`` in ``feed`` or ``finish`` is refused like a
    late ``key``."""
    tags: dict[str, str] = field(default_factory=dict)
    """Object tags (S3's PutObjectTagging), written once S3 has completed the object and before the client's
    2xx; plugins may change them until the last stage's ``finish``. At most 10; keys of 1 to 128 characters,
    values of up to 256; letters, digits, spaces and ``+-=._:/@``; no key starting ``aws:``. Tags S3 would
    refuse are the error of the plugin that set them (500 ``plugin_error``, nothing stored). When S3 fails to
    write them, the object is removed and the client gets 502 (504 when S3 did not answer). The ``sha256``
    tag (hex) is answered as ``Repr-Digest`` on GET and HEAD."""
    keeps_tags: bool | None = None
    """Whether the bucket keeps ``tags``, known from ``upload_stage`` on (``None`` before). On a store that keeps
    none, tags fail the upload (502 ``upstream_error`` naming the plugin, nothing stored): a plugin whose value
    may be left out records it only when this is ``True``."""
    checksums: dict[str, str] = field(default_factory=dict)
    """Digests for the upload result, e.g. ``{"sha256": "..."}``; until the last stage's ``finish``."""
    reports: dict[str, Any] = field(default_factory=dict)
    """Per-plugin results for the upload result's ``plugins`` object, keyed by plugin name; until the last
    stage's ``finish`` (``upload_completed`` and ``upload_failed`` see them, the client no longer does)."""
    size: int = 0
    """Bytes received from the client so far; in a stage's ``feed``, the block it is given included."""
    form_field: str | None = None
    """For a file field of a ``multipart/form-data`` POST, its name: ``headers``
    (and any digest in them) then describe the whole form, not this file."""

    @property
    def s3_key(self) -> str:
        return self.prefix + self.key


class UploadResult(TypedDict):
    """What the client gets for one stored object (``201``, or one entry of a form's ``uploads``), as JSON."""

    bucket: str
    key: str
    """The S3 key, the route's prefix included."""
    size: int
    """Body bytes the client sent."""
    stored_size: int
    """Bytes S3 stores (after the stages: an encrypted object is larger)."""
    etag: str
    version_id: str | None
    content_type: str
    checksums: dict[str, str]
    """``upload.checksums``: digests of what the client sent, by algorithm, hex."""
    stored_checksums: dict[str, str]
    """The checksums S3 computed of what it stores."""
    plugins: dict[str, Any]
    """``upload.reports``: each plugin's results by its name."""


@dataclass
class Download:
    """One GET or HEAD, as the plugins see it."""

    request_id: str
    route: str
    bucket: str
    key: str
    metadata: Mapping[str, str]
    """The object's user metadata, as the upload stored it."""
    headers: dict[str, str] = field(default_factory=dict)
    """The response's representation headers as S3 stored them (``Content-Type``,
    ``Content-Encoding``, ..., and ``Repr-Digest`` from the object's ``sha256`` tag); a stage's
    :meth:`DownloadStage.open` may change them, and one that does not give back the client's bytes
    drops ``Repr-Digest``."""


class UploadStage:
    """A plugin's view of one upload's bytes. Subclass and override what you need.

    The host calls :meth:`feed` for each block in order, then :meth:`finish`
    once after the last byte; :meth:`close` always runs last, on success or
    failure. A stage's output is the next stage's input, and the last stage's
    output is what S3 stores. A :meth:`feed` or :meth:`finish` that takes longer
    than the route's ``plugin_timeout`` is cancelled and fails the upload with
    ``plugin_error``, as an exception would. The timeout cannot interrupt code
    that does not await; each stretch of it that holds the event loop for
    0.1 seconds or more is logged as a warning naming the plugin.
    """

    async def feed(self, block: bytes) -> bytes:
        """Return the bytes to pass on for ``block`` (may be empty); raise to veto."""
        return block

    async def finish(self) -> bytes:
        """Called after the last block: return trailing bytes to pass on; raise to veto."""
        return b""

    async def close(self) -> None:
        """Release what the stage holds (connections, buffers). Called exactly once."""

    # Saving and restoring: an upload whose requests come apart (resumable uploads) goes on in another request,
    # maybe in another process, with new stages that take up the old ones' state.

    movable: bool = True
    """``False``: the stage's state lives where it cannot follow the upload (clamd's INSTREAM, in one clamd):
    the upload must go on in this process, with this object, or start again."""

    def save(self) -> bytes | None:
        """This stage's state between two :meth:`feed` calls, as bytes that :meth:`restore` takes up.

        ``None`` (the default): the stage cannot save its state, and an upload through it cannot go on in
        another request. Return ``b""`` when the stage keeps nothing between blocks. Include a version of the
        layout, so that a later release of the plugin can refuse what it does not read. Secrets may be in it:
        the chain seals what the stages save.
        """
        return None

    def restore(self, state: bytes) -> None:
        """Take up ``state``, which :meth:`save` returned, on a new stage from ``aiouploader_upload_stage`` for the
        same upload, before its first :meth:`feed`. Raise ``ValueError`` for a state this stage cannot read: the
        upload is then refused, and the client told to start it again."""
        raise ValueError(f"{type(self).__name__} does not restore saved state")


class DownloadStage:
    """Undoes a plugin's transformation on GET. The default passes bytes through.

    Stages are stacked in reverse chain order: the one nearest the stored bytes
    opens first. :meth:`open` gets a :data:`Fetch` for the layer below and its
    size, and returns the size of what this stage presents;
    :meth:`read` yields bytes ``[start, end)`` of that presentation. An
    :meth:`open` that takes longer than the route's ``plugin_timeout`` is a
    ``plugin_error``.
    """

    def __init__(self) -> None:
        self._fetch: Fetch | None = None

    async def open(self, fetch: Fetch, size: int) -> int:
        self._fetch = fetch
        return size

    def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        assert self._fetch is not None, "open() first"
        return self._fetch(start, end)


# -------------------------------------------------------------------------
# The server's life: settings, start-up and shutdown
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def aiouploader_configure(settings: dict[str, Any]) -> Any:
    """Validate this plugin's settings for one route, at start-up.

    Called once per route that lists the plugin, with the plugin's
    ``[plugins.NAME]`` defaults overlaid by the route's
    ``[routes.plugin_settings.NAME]``.

    :param settings: the raw settings (TOML values).
    :return: the parsed settings object that every other hook of this plugin
        receives as ``settings`` on that route (``None`` is fine). Raise
        ``ValueError`` naming the setting to stop start-up with exit status 2.
    """


@hookspec
async def aiouploader_startup(settings: dict[str, Any], name: str) -> None:
    """The server starts: open what the plugin keeps for the life of the process.

    Called once per server, before it listens, for each plugin that a route
    lists, in the order the routes first list them; each is awaited before
    the next is called, with no time limit. Implement it as ``async def``.

    :param settings: what :func:`aiouploader_configure` returned, by the path of
        each route that lists the plugin.
    :param name: the name the plugin is registered under.
    :raise: anything, to stop start-up: the server exits with status 2 and one
        line naming the plugin, after the ``aiouploader_shutdown`` of the
        plugins started before it.
    """


@hookspec
async def aiouploader_shutdown(settings: dict[str, Any], name: str, grace: float) -> None:
    """The server stops: finish the plugin's own work (deliveries, flushes) and close what it holds.

    Called once per server for each plugin a route lists (when a start-up
    failed, for those started before it), after the uploads in flight
    finished or were cancelled (on SIGTERM or SIGINT, after the drain), all
    plugins at once. Implement it as ``async def``.

    :param settings: as for :func:`aiouploader_startup`.
    :param name: the name the plugin is registered under.
    :param grace: the seconds left of ``server.shutdown_grace``. A hook still
        running then is cancelled (at once on a second signal), and its
        warning logged; an exception is logged, and the other plugins still
        shut down.
    """


# -------------------------------------------------------------------------
# One upload, and one download
# -------------------------------------------------------------------------


@hookspec
def aiouploader_upload_limit(settings: Any, name: str) -> int | None:
    """The largest upload, in bytes, that this plugin lets through with ``settings``; ``None`` for no limit of its own.

    Asked once per route at start-up. The server tells clients the smallest limit of a route's plugins before they
    send (tus's ``Tus-Max-Size``). It only announces the limit: the plugin still refuses what is over it.

    :param settings: what :func:`aiouploader_configure` returned for this route.
    :param name: the name the plugin is registered under.
    """


@hookspec
def aiouploader_upload_started(upload: Upload, settings: Any, name: str) -> None:
    """An upload is about to start; no body byte has been read yet.

    May reject the upload by raising an :class:`~aiouploader.errors.UploadError`,
    choose another key by setting ``upload.key``, and add ``upload.metadata``.

    :param upload: the upload.
    :param settings: what :func:`aiouploader_configure` returned for this route.
    :param name: the name the plugin is registered under, and listed by in the route's ``plugins``.
    """


@hookspec
def aiouploader_upload_stage(upload: Upload, settings: Any, name: str) -> UploadStage | None:
    """Return the stage that sees this upload's bytes, or ``None`` to stay out of the stream.

    Called once per upload, after every ``upload_started`` hook, in chain order.

    :param upload: the upload.
    :param settings: what :func:`aiouploader_configure` returned for this route.
    :param name: the name the plugin is registered under: give it to the stage
        that reports its results in ``upload.reports[name]``.
    """


@hookspec
def aiouploader_upload_completed(upload: Upload, result: UploadResult, settings: Any, name: str) -> None:
    """S3 confirmed the object; ``result`` is the JSON the client is about to get.

    Runs before the response is sent: do slow work (notifications) in a task
    of your own so as not to delay the client.

    :param upload: the upload.
    :param result: the upload result.
    :param settings: what :func:`aiouploader_configure` returned for this route.
    :param name: the name the plugin is registered under.
    """


@hookspec
def aiouploader_upload_failed(upload: Upload, error: UploadError, settings: Any, name: str) -> None:
    """The upload failed and was aborted; nothing is stored at the key.

    :param upload: the upload.
    :param error: what the client is told.
    :param settings: what :func:`aiouploader_configure` returned for this route.
    :param name: the name the plugin is registered under.
    """


@hookspec
def aiouploader_download_stage(download: Download, settings: Any, name: str) -> DownloadStage | None:
    """Return a stage that transforms the stored bytes on GET (e.g. decrypts), or ``None``.

    :param download: the GET or HEAD.
    :param settings: what :func:`aiouploader_configure` returned for this route.
    :param name: the name the plugin is registered under.
    """
