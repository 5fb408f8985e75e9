"""webhook/allocator.py: glibc keeps freed memory when asked, nothing happens when not."""

from __future__ import annotations

import platform

import pytest

from webhook.allocator import retain_freed_memory

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


@pytest.mark.parametrize("limit", [0, -1])
def test_no_limit_changes_nothing(limit: int) -> None:
    assert retain_freed_memory(limit) is False


@glibc
@pytest.mark.parametrize("limit", [1 << 20, 16 << 20, 1 << 30, 1 << 40])
def test_glibc_takes_any_positive_limit(limit: int) -> None:
    # Above 32 MiB the mmap threshold is capped (glibc refuses more), above 2 GiB the
    # trim threshold too (an int): neither may turn into a refusal.
    assert retain_freed_memory(limit) is True
