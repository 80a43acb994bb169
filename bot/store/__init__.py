"""Index stores: one module per backend behind ``Store``."""

from __future__ import annotations

from bot.config import Settings
from bot.store.base import Store


def make_store(settings: Settings, *, read_only: bool = False) -> Store:
    """The store that ``RAGCODE_STORE`` names (``read_only``: the embedded index is only read, and one that does
    not exist yet reads as empty instead of being created)."""
    if settings.store == "opensearch":
        from bot.store.opensearch import OpenSearchStore

        return OpenSearchStore(settings)
    from bot.store.local import LocalStore

    return LocalStore(settings.home / "index", cache_bytes=settings.index_cache_mb * 1024 * 1024,
                      read_only=read_only)
