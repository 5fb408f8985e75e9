"""Keep freed request buffers in the process instead of handing them back to the kernel.

A large review (a 200 KB ConfigMap makes a 412 KB AdmissionReview: object and
oldObject) is copied a dozen times between the socket, gunicorn's parser and
``json.loads``. With glibc's default thresholds each copy lands in memory
that was just returned to the kernel (munmap, or a trimmed arena), so it is
page-faulted in again, 4 KiB at a time. Measured on the webhook alone (one
keep-alive client, chart settings): p50 for the 412 KB review 2.15 ms with the
defaults, 1.10-1.30 ms with freed memory kept; 5 KB and 55 KB reviews
unchanged (bench/RESULTS.md).

The price is resident memory: after a burst of large reviews each process keeps
up to ``limit`` bytes of free heap for the next ones, instead of returning it.

>>> retain_freed_memory(32 * 1024 * 1024)  # doctest: +SKIP
True
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

# mallopt() parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit).
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def retain_freed_memory(limit: int) -> bool:
    """Let glibc malloc keep up to ``limit`` bytes of freed memory; False if not applied.

    Allocations below ``min(limit, 32 MiB)`` come from the heap rather than
    their own mmap, and free memory at the top of a heap is trimmed only
    beyond ``limit``. Call it before forking workers: they inherit it. Not
    glibc (musl, macOS) or ``limit`` <= 0: nothing is changed.
    """
    if limit <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        log.info("malloc thresholds left alone: this C library has no mallopt")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    limit = min(limit, 2**31 - 1)
    applied = bool(mallopt(_M_MMAP_THRESHOLD, min(limit, _MMAP_THRESHOLD_MAX))
                   and mallopt(_M_TRIM_THRESHOLD, limit))
    if not applied:
        log.warning("mallopt refused the malloc thresholds for %d bytes", limit)
    return applied
