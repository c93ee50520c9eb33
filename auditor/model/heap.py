"""Keep freed memory for reuse while a block makes and drops large temporaries (the per-clip InfoNCE's chunks).

glibc's malloc serves a request of M_MMAP_THRESHOLD bytes or more by a fresh ``mmap``, and gives it back to the
kernel on ``free``; the threshold adapts upward to the size of freed blocks, but never beyond 32 MiB on 64-bit
systems. A tensor above that (a 4,096 x 4,096 float32 similarity block is 64 MiB) is therefore mapped, faulted in
page by page, zeroed by the kernel and unmapped again every time it is made. :func:`reused_heap` raises the
threshold to REUSE_MMAP_THRESHOLD and the heap's trim threshold to REUSE_TRIM_THRESHOLD for its block, so such
tensors come from the heap and the memory one frees is the next one's; on exit it sets both back to the values
glibc's own adaptation ends at (DEFAULT_MMAP_THRESHOLD_MAX and twice it) and returns every whole free page of the
heap to the kernel (``malloc_trim(0)``), so what the block freed does not stay with the process.

The numbers computed inside are unchanged: only where memory comes from. Without glibc (macOS, Windows, musl)
the block runs as it is.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
from collections.abc import Iterator

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Inside the block: requests below 256 MiB from the heap, up to 1 GiB of free memory at its top kept.
REUSE_MMAP_THRESHOLD = 256 * 2**20
REUSE_TRIM_THRESHOLD = 2**30
# After it: glibc's 64-bit DEFAULT_MMAP_THRESHOLD_MAX, the most its adaptive threshold reaches, and the trim
# threshold the adaptation sets with it (twice).
DEFAULT_MMAP_THRESHOLD_MAX = 32 * 2**20


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has mallopt and malloc_trim), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextlib.contextmanager
def reused_heap() -> Iterator[None]:
    """Run the block with freed memory kept for reuse (module docstring). Process-wide while it runs; a block
    nested in another ends the reuse for the rest of the outer one."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, REUSE_MMAP_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, REUSE_TRIM_THRESHOLD)
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, 2 * DEFAULT_MMAP_THRESHOLD_MAX)
        libc.malloc_trim(0)
