"""The ``X-Hub-Signature-256`` check: HMAC-SHA256 of the raw body, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, body: bytes) -> str:
    """The header value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the signature of ``body`` with ``secret``."""
    verifier = Verifier(secret, header)
    verifier.update(body)
    return verifier.valid()


class Verifier:
    """The signature check fed chunk by chunk, as the body streams in."""

    def __init__(self, secret: str, header: str | None) -> None:
        self.header = (header or "").strip()
        self._mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256) if secret and self.header else None

    @property
    def possible(self) -> bool:
        """False when there is no secret or no signature: the body need not be read at all."""
        return self._mac is not None

    def update(self, chunk: bytes) -> None:
        """Feed the next part of the body."""
        if self._mac is not None:
            self._mac.update(chunk)

    def valid(self) -> bool:
        """True when the header is the signature of everything fed."""
        if self._mac is None:
            return False
        expected = ("sha256=" + self._mac.hexdigest()).encode("ascii")
        return hmac.compare_digest(expected, self.header.encode("utf-8", "replace"))
