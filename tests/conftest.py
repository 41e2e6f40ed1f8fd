"""Fixtures shared by every test directory."""

from __future__ import annotations

import os

import pytest

from tests.support import ca as support


@pytest.fixture
def aws_env():
    """moto in-process, with the functions' environment variables set; yields the stack-like outputs."""
    with support.moto_environment():
        yield support.create_resources()


@pytest.fixture
def test_ca(aws_env) -> support.TestCA:
    """An initialized CA (KMS backend, SSH enabled)."""
    return support.initialize(aws_env)


@pytest.fixture
def secrets_ca(aws_env) -> support.TestCA:
    """An initialized CA with the Secrets Manager key backend."""
    return support.initialize(aws_env, backend="secrets")


os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
