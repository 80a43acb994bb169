"""Index stores: one module per backend behind ``Store``."""

from __future__ import annotations

from bot.config import Settings
from bot.store.base import Store


def make_store(settings: Settings, *, create: bool = True) -> Store:
    """The store that ``RAGCODE_STORE`` names (``create=False``: an embedded index that does not exist yet is
    read as empty, not created)."""
    if settings.store == "opensearch":
        from bot.store.opensearch import OpenSearchStore

        return OpenSearchStore(settings)
    from bot.store.local import LocalStore

    return LocalStore(settings.home / "index", cache_bytes=settings.index_cache_mb * 1024 * 1024, create=create)
