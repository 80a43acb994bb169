"""A gidgethub-style router: handlers registered per event and action turn a delivery into jobs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.queue import JobSpec


class BadPayload(ValueError):
    """The body lacks what the event needs; the message says what."""


@dataclass(frozen=True)
class Event:
    """One verified delivery."""

    event: str
    delivery: str
    data: dict[str, Any]

    @property
    def action(self) -> str | None:
        """The payload's ``action``, if any."""
        action = self.data.get("action")
        return action if isinstance(action, str) else None


Handler = Callable[[Event], list[JobSpec]]


class Router:
    """Maps (event, action) to handlers; routers combine like gidgethub's ``Router(*routers)``."""

    def __init__(self, *others: Router) -> None:
        self._routes: dict[tuple[str, str | None], list[Handler]] = {}
        for other in others:
            for key, handlers in other._routes.items():
                self._routes.setdefault(key, []).extend(handlers)

    def register(self, event: str, action: str | None = None) -> Callable[[Handler], Handler]:
        """Decorator: call the handler for ``event`` (only for ``action`` when given)."""

        def decorate(handler: Handler) -> Handler:
            self._routes.setdefault((event, action), []).append(handler)
            return handler

        return decorate

    def handlers(self, event: Event) -> list[Handler]:
        """Handlers that apply to ``event``: those for any action, then those for its action."""
        found = list(self._routes.get((event.event, None), []))
        if event.action is not None:
            found += self._routes.get((event.event, event.action), [])
        return found

    def dispatch(self, event: Event) -> list[JobSpec] | None:
        """Jobs for ``event``; None when no handler applies (ignored)."""
        handlers = self.handlers(event)
        if not handlers:
            return None
        return [spec for handler in handlers for spec in handler(event)]


def field(data: Any, *path: str, kind: type | tuple[type, ...] = str) -> Any:
    """``data[path[0]][path[1]]…`` of type ``kind``, or BadPayload naming the missing field."""
    value = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise BadPayload(f"missing field {'.'.join(path)}")
        value = value[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise BadPayload(f"field {'.'.join(path)} has the wrong type")
    if isinstance(value, int) and not 0 < value < 2**63:  # GitHub's ids and numbers are positive 64-bit
        raise BadPayload(f"field {'.'.join(path)} is out of range")
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: not text GitHub sends
            raise BadPayload(f"field {'.'.join(path)} is not valid text") from None
    return value
