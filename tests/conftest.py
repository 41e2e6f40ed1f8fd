"""Fixtures shared by every test directory."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.support import ca as support

# The gate is deterministic: the same examples on every run. `HYPOTHESIS_PROFILE=explore make test` searches anew.
settings.register_profile("gate", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=1000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gate"))


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
def sqlite_ca(tmp_path) -> support.TestCA:
    """An initialized CA on the local engine: SQLite store, encrypted key files under ``tmp_path``."""
    with support.sqlite_environment(tmp_path) as outputs:
        yield support.initialize(outputs, backend="files")


@pytest.fixture
def secrets_ca(aws_env) -> support.TestCA:
    """An initialized CA with the Secrets Manager key backend."""
    return support.initialize(aws_env, backend="secrets")


os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
