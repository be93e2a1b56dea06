"""glibc's allocator, tuned for streaming: fast while uploads run, memory given back when they stop; the start-up's
objects kept out of Python's garbage collections."""

from __future__ import annotations

import ctypes
import functools
import gc

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
HEAP_LIMIT = 4 * 1024 * 1024


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has mallopt and malloc_trim), else None."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def tune() -> None:
    """Keep glibc from holding on to freed large buffers, without faulting in fresh pages for every read.

    glibc raises its mmap threshold to the size of the largest block freed,
    after which freed large buffers (blocks of a large ``block_size``, a
    paused upload's tail) stay in the heap: RSS then grows to about twice the
    live ones. A fixed threshold returns them, and everything smaller (the
    default 1 MiB blocks the parts are sent from) is reused from the heap. One
    arena: blocks hashed or encrypted in worker threads otherwise come from
    per-thread heaps that are trimmed and faulted in again block after block.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, 1)
        libc.mallopt(M_MMAP_THRESHOLD, HEAP_LIMIT)
        libc.mallopt(M_TRIM_THRESHOLD, HEAP_LIMIT)


def give_back() -> None:
    """Return the heap's free pages to the system: what many uploads freed is scattered through the heap."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def settle() -> None:
    """Once start-up is done: the objects it made (modules, the config, the S3 client's models) live as long as the
    process, so the garbage collector's full collections need not walk them again and again while requests run."""
    gc.collect()
    gc.freeze()
