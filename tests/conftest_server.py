"""Pytest fixtures for the loopback replay server (a plugin module).

Load with ``pytest_plugins = ["tests.conftest_server"]`` in conftest.py, or ``-p
tests.conftest_server`` on the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import ReplayServer

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def replay_server() -> Iterator[ReplayServer]:
    """A started ReplayServer on a free 127.0.0.1 port, closed after the test."""
    with ReplayServer() as server:
        yield server


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``tests/fixtures``: copied provider recordings (see its SOURCES.md)."""
    return FIXTURES_DIR
