"""Helpers for OpenAI content parts that several native backends share."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:<mime>[;base64],<data>`` (RFC 2397) -> ``(mime, base64 data)``.

    The media type is lower-cased ("" when absent); data that is not base64 is
    percent-decoded and encoded. None for any other URL, or base64 that does not decode.
    """
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep:
        return None
    mime, *attrs = head.split(";")
    if "base64" in attrs:
        data = data.strip()
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        data = base64.b64encode(unquote(data).encode()).decode()
    return mime.strip().lower(), data
