"""Fixtures shared by integration test modules."""

from __future__ import annotations

import pytest

from stepless import oidc_discovery
from tests.support.oidc_provider import Provider


@pytest.fixture
def idp():
    """An OpenID provider on loopback (tests.support.oidc_provider), discovery caches reset around it."""
    oidc_discovery.reset()
    with Provider() as provider:
        yield provider
    oidc_discovery.reset()
