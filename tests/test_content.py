"""The shared data-URL parser the native backends use for image and file parts."""

from __future__ import annotations

import base64

from anyllm_cli.backends._content import parse_data_url


def test_parse_data_url() -> None:
    png = base64.b64encode(b"\x89PNG\r\n").decode()
    assert parse_data_url(f"data:image/PNG;base64,{png}") == ("image/png", png)
    assert parse_data_url(f"data:image/png;name=a.png;base64,{png}") == ("image/png", png)
    # not base64: percent-decoded, then encoded, as RFC 2397 allows
    assert parse_data_url("data:text/plain,hello%20world") == (
        "text/plain", base64.b64encode(b"hello world").decode())
    assert parse_data_url("data:,x") == ("", base64.b64encode(b"x").decode())
    assert parse_data_url("data:image/png;base64,not base64!") is None
    assert parse_data_url("https://example.com/a.png") is None
    assert parse_data_url("data:image/png;base64") is None
