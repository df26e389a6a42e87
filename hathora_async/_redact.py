"""Removing the client's own token from what a server sends back.

A gateway or a misconfigured server may echo the request's ``Authorization``
header in its answer (an error message, a reflected header, a body that fails
decoding). Every error the client builds from an answer goes through a
``Redactor`` first, so the token never reaches ``str(error)``, its
``message``/``body``/``headers`` or a log line.

Forms looked for: the token as sent, its UTF-8 form (a server decoding the
header as Latin-1 and answering in UTF-8), its JSON-escaped forms (with and
without ``\\/``) and its percent-encoded forms (either hex case, ``+`` or
``%20``). A decoded ``message`` is redacted after decoding, so any JSON
escaping of it is covered too. Other re-encodings (base64 of the header, a
token cut in two by the server) are not recognised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import quote, quote_plus

from multidict import CIMultiDict

__all__ = ["REDACTED", "Redactor"]

REDACTED = "<redacted>"
_REDACTED_BYTES = REDACTED.encode()


def _forms(token: str) -> set[str]:
    escaped = json.dumps(token)[1:-1]
    encoded = {quote(token, safe=""), quote_plus(token, safe="")}
    lower_hex = {re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), e) for e in encoded}
    return {token, escaped, escaped.replace("/", "\\/"), *encoded, *lower_hex}


class Redactor:
    """Replaces every known form of one secret with ``<redacted>``, in text and bytes.

    ``overlap`` is the longest form's length: a reader cutting a body keeps that
    many bytes more, redacts, then cuts, so no head of the token survives a cut.
    Used only on error paths: nothing here runs for a successful call.
    """

    __slots__ = ("_bytes", "_text", "overlap")

    def __init__(self, secret: str | None) -> None:
        forms = _forms(secret) if secret else set()
        byte_forms = {f.encode("latin-1") for f in forms} | {f.encode() for f in forms}
        # Longest first: a form containing another is replaced whole.
        texts = sorted(forms, key=len, reverse=True)
        raw = sorted(byte_forms - {b""}, key=len, reverse=True)
        self._text = re.compile("|".join(map(re.escape, texts))) if texts else None
        self._bytes = re.compile(b"|".join(map(re.escape, raw))) if raw else None
        self.overlap = max((len(f) for f in byte_forms), default=0)

    def text(self, text: str) -> str:
        """``text`` with every form of the secret replaced."""
        pattern = self._text
        return text if pattern is None else pattern.sub(REDACTED, text)

    def found_in(self, text: str) -> bool:
        """Whether ``text`` shows the secret in one of its forms."""
        return self._text is not None and self._text.search(text) is not None

    def bytes(self, data: bytes) -> bytes:
        """``data`` with every form of the secret replaced."""
        pattern = self._bytes
        return data if pattern is None else pattern.sub(_REDACTED_BYTES, data)

    def headers(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """``headers`` as given when no value shows the secret, else a redacted copy."""
        if not any(self.found_in(v) for v in headers.values()):
            return headers
        return CIMultiDict((k, self.text(v)) for k, v in headers.items())

    def __repr__(self) -> str:
        return "Redactor(<redacted>)"
