"""Hashes whose running state is data, to save between two requests and take up in another process.

Python's ``hashlib`` keeps a hash's state out of reach. The hashes here call the OpenSSL ``libcrypto``
that ``hashlib`` itself uses, through its ``MD5``, ``SHA1``, ``SHA256`` and ``SHA512`` ``_Init``,
``_Update`` and ``_Final`` functions, whose context is a plain struct of integers and buffered bytes:
those bytes are the state. The assembly that does the work is the one ``hashlib`` runs.

A saved state is the context's bytes in this machine's layout and byte order; :meth:`SavedHash.restore`
refuses one of another size or byte order, or whose buffered count is out of bounds, so that a state
from an unlike machine fails plainly instead of giving a wrong digest.
"""

from __future__ import annotations

import ctypes
import importlib
import sys
from typing import Any

from .checksums import Data

_BYTE_ORDER = sys.byteorder.encode()[:1]
"""``l`` or ``b``: the first byte of every saved state."""


def _context(h: int, word: type[Any], block: int, md_len: bool) -> type[ctypes.Structure]:
    """OpenSSL's ``MD5_CTX``/``SHA_CTX``/``SHA256_CTX``/``SHA512_CTX``: chaining words, bit length, buffer."""
    fields: list[tuple[str, Any]] = [
        ("h", word * h),
        ("Nl", word),
        ("Nh", word),
        ("data", ctypes.c_ubyte * block),
        ("num", ctypes.c_uint),
    ]
    if md_len:
        fields.append(("md_len", ctypes.c_uint))
    return type("Context", (ctypes.Structure,), {"_fields_": fields})


_ALGORITHMS = {
    # name: (OpenSSL prefix, context, block size, digest size)
    "md5": ("MD5", _context(4, ctypes.c_uint32, 64, False), 64, 16),
    "sha1": ("SHA1", _context(5, ctypes.c_uint32, 64, False), 64, 20),
    "sha256": ("SHA256", _context(8, ctypes.c_uint32, 64, True), 64, 32),
    "sha512": ("SHA512", _context(8, ctypes.c_uint64, 128, True), 128, 64),
}


class _Functions:
    """One algorithm's ``_Init``, ``_Update`` and ``_Final`` in ``lib``, typed."""

    def __init__(self, lib: ctypes.CDLL, prefix: str) -> None:
        self.init = getattr(lib, f"{prefix}_Init")
        self.init.argtypes = [ctypes.c_void_p]
        self.update = getattr(lib, f"{prefix}_Update")
        self.update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        self.final = getattr(lib, f"{prefix}_Final")
        self.final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]


class SavedHash:
    """An incremental hash (``update``, ``digest``) whose state :meth:`save` returns as bytes."""

    def __init__(self, functions: _Functions, algorithm: str) -> None:
        _, self._context, self._block, self._size = _ALGORITHMS[algorithm]
        self.algorithm = algorithm
        self._functions = functions
        self._ctx = self._context()
        if functions.init(ctypes.byref(self._ctx)) != 1:
            raise RuntimeError(f"libcrypto: {algorithm} init failed")

    def update(self, data: Data, /) -> None:
        chunk = data if isinstance(data, bytes) else bytes(data)
        self._functions.update(ctypes.byref(self._ctx), chunk, len(chunk))

    def digest(self) -> bytes:
        """The digest of what was fed so far; the hash goes on (``Final`` runs on a copy)."""
        ctx = self._context.from_buffer_copy(self._ctx)
        out = ctypes.create_string_buffer(self._size)
        self._functions.final(out, ctypes.byref(ctx))
        return out.raw

    def save(self) -> bytes:
        return _BYTE_ORDER + bytes(self._ctx)

    def restore(self, state: bytes) -> None:
        """Take up a state :meth:`save` returned; a ``ValueError`` when it is not one of this machine's."""
        if state[:1] != _BYTE_ORDER or len(state) != 1 + ctypes.sizeof(self._context):
            raise ValueError(f"not a saved {self.algorithm} state of this machine's libcrypto")
        ctx = self._context.from_buffer_copy(state, 1)
        if ctx.num >= self._block:
            raise ValueError(f"a saved {self.algorithm} state out of bounds")
        self._ctx = ctx


def _bind() -> dict[str, _Functions]:
    """The functions of the libcrypto ``hashlib`` uses (a symbol looked up through ``_hashlib`` is found in what it
    links), else of the system's; none where neither has them all."""
    try:
        hashlib_module: str | None = getattr(importlib.import_module("_hashlib"), "__file__", None)
    except ImportError:
        hashlib_module = None
    for name in (hashlib_module, "libcrypto.so.3"):
        try:
            if name is not None:
                lib = ctypes.CDLL(name)  # which releases the GIL during each call
                return {algorithm: _Functions(lib, prefix) for algorithm, (prefix, *_) in _ALGORITHMS.items()}
        except (OSError, AttributeError):
            continue
    return {}


_FUNCTIONS = _bind()


def saved_hash(algorithm: str) -> SavedHash | None:
    """A new :class:`SavedHash`, ``None`` for an algorithm it does not cover or where libcrypto is not found."""
    functions = _FUNCTIONS.get(algorithm)
    return None if functions is None else SavedHash(functions, algorithm)
