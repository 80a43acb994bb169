"""The long-lived parts of one process: settings, store and (lazily) the models."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

from bot.config import Settings
from bot.embed import make_embedder
from bot.embed.base import Embedder
from bot.llm import make_text_model
from bot.llm.base import TextModel
from bot.spend import Ledger, make_ledger
from bot.store import make_store
from bot.store.base import Store


@dataclass
class Runtime:
    """Everything a command or a worker needs; models load on first use (or in ``warm_up``)."""

    settings: Settings
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    read_only: bool = False  # a command that only reads: an index that does not exist yet is not created

    @cached_property
    def store(self) -> Store:
        """The index store."""
        with self._lock:
            return make_store(self.settings, read_only=self.read_only)

    @cached_property
    def text_model(self) -> TextModel:
        """The summarizer and generator."""
        with self._lock:
            return make_text_model(self.settings)

    @cached_property
    def embedder(self) -> Embedder:
        """The embedder."""
        with self._lock:
            return make_embedder(self.settings)

    @cached_property
    def spend(self) -> Ledger:
        """The operations ledger: spending per installation and month (the monthly budget), runs, feedback."""
        with self._lock:
            return make_ledger(self.settings)

    def warm_up(self, *, generation: bool = True) -> None:
        """Load the store, the models and the Korean analyzer now rather than on first use
        (``generation=False``: only what answering a search needs)."""
        from bot.text import kiwi

        self.store.ping()
        self.embedder.embed_query("warm up")
        kiwi()
        if generation:
            self.text_model.usage()
            self.embedder.embed_documents(["warm up"])

    def close(self) -> None:
        """Close the store if it was opened."""
        if "store" in self.__dict__:
            self.store.close()
        if "embedder" in self.__dict__:
            self.embedder.close()
        if "spend" in self.__dict__:
            self.spend.close()
