"""Whether a test may skip for a missing server or browser: yes on a newcomer's machine, never in CI."""

from __future__ import annotations

import os

import pytest

REQUIRE_SERVICES = os.environ.get("CONTACTD_TEST_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Skip on a newcomer's machine; fail in CI, where PostgreSQL, Redis and Chromium must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)
