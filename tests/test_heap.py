"""model/heap.reused_heap: large temporaries come from the heap inside the block and from fresh mappings after
it (glibc's own accounting, mallinfo2); the memory they free is kept while the block runs and given back when it
ends (resident set)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest
import torch

from auditor.model import heap

BLOCK = 64 * 2**20  # a 4,096 x 4,096 float32 similarity block


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def mallinfo2() -> MallInfo2:
    libc = heap._glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc 2.33 or later (mallinfo2)")
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2()


def mapped_bytes_of_a_block() -> int:
    """How much glibc's mmapped total grows while one BLOCK-byte tensor is alive."""
    before = mallinfo2().hblkhd
    t = torch.empty(BLOCK // 4, dtype=torch.float32)
    grown = mallinfo2().hblkhd - before
    del t
    return grown


def test_large_temporaries_come_from_the_heap_only_inside_the_block():
    mallinfo2()  # skips without glibc
    with heap.reused_heap():
        assert mapped_bytes_of_a_block() == 0
    assert mapped_bytes_of_a_block() >= BLOCK  # after it, glibc's usual threshold (32 MiB) maps it again


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_the_blocks_freed_memory_is_kept_for_reuse_and_given_back_when_it_ends():
    mallinfo2()
    before = resident_bytes()
    with heap.reused_heap():
        held = [torch.ones(BLOCK // 4) for _ in range(4)]
        del held
        assert resident_bytes() - before >= 3 * BLOCK  # freed, and kept for the next temporaries
    assert resident_bytes() - before < BLOCK  # returned to the system when the block ends
