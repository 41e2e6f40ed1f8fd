"""Fixtures shared by every test directory."""

from __future__ import annotations

import os

import pytest

from tests.support import ca as support


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch):
    """moto in-process, with the functions' environment variables set."""
    from moto import mock_aws

    for k, v in support.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        from stepless import authority, aws

        aws.reset()
        authority.reset()
        yield support.create_resources()
        aws.reset()
        authority.reset()


@pytest.fixture
def test_ca(aws_env) -> support.TestCA:
    """An initialized CA (KMS backend, SSH enabled)."""
    return support.initialize(aws_env)


@pytest.fixture
def secrets_ca(aws_env) -> support.TestCA:
    """An initialized CA with the Secrets Manager key backend."""
    return support.initialize(aws_env, backend="secrets")


os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
