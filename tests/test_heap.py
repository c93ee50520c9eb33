"""model/heap.reused_heap, in a fresh process (a long-lived one may hold freed heap blocks large enough to serve
any request, wherever the thresholds stand): a large temporary comes from a fresh mapping before the block, from
the heap inside it (glibc's own accounting, mallinfo2) and from a mapping again after it; the memory freed inside
is kept while the block runs and given back when it ends (resident set)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from auditor.model import heap

PROBE = r"""
import ctypes, json, os, torch
from auditor.model import heap

BLOCK = 64 * 2**20  # a 4,096 x 4,096 float32 similarity block


class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


libc = heap._glibc()
libc.mallinfo2.restype = MallInfo2


def mapped_while_alive():
    before = libc.mallinfo2().hblkhd
    t = torch.empty(BLOCK // 4)
    grown = libc.mallinfo2().hblkhd - before
    del t
    return grown


def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


out = {"block": BLOCK, "mapped_before": mapped_while_alive()}
with heap.reused_heap():
    out["mapped_inside"] = mapped_while_alive()
out["mapped_after"] = mapped_while_alive()
start = resident()
with heap.reused_heap():
    held = [torch.ones(BLOCK // 4) for _ in range(4)]
    del held
    out["kept_inside"] = resident() - start
out["kept_after"] = resident() - start
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe() -> dict:
    libc = heap._glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc 2.33 or later (mallinfo2)")
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_large_temporaries_come_from_the_heap_only_inside_the_block(probe):
    assert probe["mapped_before"] >= probe["block"]  # glibc's own threshold: at most 32 MiB
    assert probe["mapped_inside"] == 0
    assert probe["mapped_after"] >= probe["block"]


def test_the_blocks_freed_memory_is_kept_for_reuse_and_given_back_when_it_ends(probe):
    assert probe["kept_inside"] >= 3 * probe["block"]  # freed, and kept for the next temporaries
    assert probe["kept_after"] < probe["block"]  # returned to the system when the block ends
