"""Where clmace keeps its per-user caches (compiled programs, driver-check verdicts, driver caches)."""

from __future__ import annotations

import os

import platformdirs


def default_cache_dir() -> str:
    """clmace's cache directory: $CLMACE_CACHE_DIR, else the platform's user cache dir."""
    return os.environ.get("CLMACE_CACHE_DIR") or platformdirs.user_cache_dir("clmace")
