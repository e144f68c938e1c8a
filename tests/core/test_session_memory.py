"""Creating a session hands the heap pages that onnxruntime freed while loading back to the
operating system, so they do not count in the process's footprint."""

from __future__ import annotations

import ctypes
import json
import platform
import subprocess
import sys

import pytest

from edgembed.session import return_freed_memory

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="malloc_trim is glibc's")

# Run in a fresh interpreter: the test process's own heap would blur a few megabytes.
LOAD_THEN_TRIM = """
import ctypes, json
def resident_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))
from edgembed import Encoder
encoder = Encoder.load(threads=1)
loaded = resident_mb()
ctypes.CDLL(None).malloc_trim(0)
print(json.dumps({"loaded": loaded, "trimmed": resident_mb()}))
"""


def resident_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))


def test_freed_heap_pages_are_returned():
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(1024) for _ in range(40_000)]  # small: from the heap, not mmap
    for block in blocks:
        ctypes.memset(block, 1, 1024)
    keeper = libc.malloc(1024)  # pins the heap's top, so free() alone cannot shrink it
    for block in blocks:
        libc.free(block)
    before = resident_mb()
    assert return_freed_memory()
    assert before - resident_mb() > 20
    libc.free(keeper)


def test_loading_a_package_leaves_no_freed_pages_resident():
    done = subprocess.run([sys.executable, "-c", LOAD_THEN_TRIM], capture_output=True,
                          text=True, check=True, timeout=120)
    sizes = json.loads(done.stdout)
    # Without the trim in create_session, a trim here gives back about 7 MB.
    assert sizes["loaded"] - sizes["trimmed"] < 2, sizes
