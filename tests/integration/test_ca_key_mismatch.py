"""A CA key that is not the one its configuration states never yields a certificate.

The functions take a CA key's public half from the configuration (the intermediate certificate, the SSH CA
public key lines): a cold start makes no kms:GetPublicKey. The key itself is then checked against it — a
KMS key on the container's first signature, a Secrets Manager or file key when it is loaded — so a
configuration naming the wrong key (``intermediateKey``, ``ssh.userKey``) is a 500 "not configured
correctly" with nothing recorded, not a certificate whose signature does not verify.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from moto.kms.models import KmsBackend

from stepless import authority
from stepless.api import sign as sign_api
from stepless.api import ssh as ssh_api
from stepless.ssh import encode_public_key
from stepless.stores import authority as config_store
from tests.integration.test_ssh_sign import ssh_token
from tests.support import ca as support
from tests.support.ca import call, make_csr

NOT_CONFIGURED = {"status": 500, "message": "The certificate authority is not configured correctly."}


def _count(table: str) -> int:
    return len(boto3.client("dynamodb").scan(TableName=f"test-{table}")["Items"])


def _recorded() -> tuple[int, int]:
    return _count("certificates"), _count("tokens")


def _configure(change: Any) -> dict[str, Any]:
    """Store the configuration ``change(doc)`` makes, on a cold container; returns the original document."""
    original = json.loads(json.dumps(authority.get().doc))
    doc = json.loads(json.dumps(original))
    change(doc)
    config_store.overwrite(doc)
    authority.reset()
    return original


def _sign(ca: support.TestCA, cn: str = "svc.example.com") -> tuple[int, Any]:
    return call(sign_api.app, "POST", "/1.0/sign", {"csr": make_csr(cn)[0], "ott": ca.token(cn)})


def _ssh_sign(ca: support.TestCA) -> tuple[int, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    body = {"publicKey": base64.b64encode(encode_public_key(key.public_key())).decode(),
            "ott": ssh_token(ca, "alice@example.com")}
    return call(ssh_api.app, "POST", "/1.0/ssh/sign", body)


def _swap(section: str, a: str, b: str) -> Any:
    def change(doc: dict[str, Any]) -> None:
        target = doc[section] if section else doc
        source = doc["ssh"]
        target[a] = source[b]

    return change


@pytest.fixture
def get_public_key_calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = KmsBackend.get_public_key

    def counted(self, key_id, *args, **kwargs):
        calls.append(key_id)
        return original(self, key_id, *args, **kwargs)

    monkeypatch.setattr(KmsBackend, "get_public_key", counted)
    return calls


def test_a_cold_start_reads_no_public_key_from_kms(test_ca, get_public_key_calls):
    authority.reset()
    status, body = _sign(test_ca)
    assert status == 201, body
    leaf = x509.load_pem_x509_certificate(body["crt"].encode())
    leaf.verify_directly_issued_by(authority.get().intermediate)
    status, body = _ssh_sign(test_ca)
    assert status == 201, body
    assert get_public_key_calls == []


def test_kms_intermediate_key_not_the_certificates_signs_nothing(test_ca, get_public_key_calls):
    """intermediateKey names another KMS key (the SSH user CA's, also P-256): refused on the first signature."""
    before = _recorded()
    original = _configure(_swap("", "intermediateKey", "userKey"))
    for _ in range(2):  # and again: the check is not a one-off
        status, body = _sign(test_ca)
        assert (status, body) == (500, NOT_CONFIGURED)
    assert _recorded() == before
    assert get_public_key_calls == []
    config_store.overwrite(original)  # the right key again: this container signs
    status, body = _sign(test_ca)
    assert status == 201, body


def test_kms_ssh_key_not_the_configured_public_key_signs_nothing(test_ca):
    """ssh.userKey names the host CA's KMS key while userPublicKey is the user CA's: no SSH certificate."""
    before = _recorded()
    _configure(_swap("ssh", "userKey", "hostKey"))
    status, body = _ssh_sign(test_ca)
    assert (status, body) == (500, NOT_CONFIGURED)
    assert _recorded() == before


def test_secrets_intermediate_key_not_the_certificates_signs_nothing(secrets_ca):
    """With the Secrets Manager backend the loaded key is compared with the certificate's."""
    before = _recorded()
    _configure(_swap("", "intermediateKey", "userKey"))
    status, body = _sign(secrets_ca)
    assert (status, body) == (500, NOT_CONFIGURED)
    assert _recorded() == before


def test_file_intermediate_key_not_the_certificates_signs_nothing(sqlite_ca):
    """The local CA's encrypted key files: the same check when the key is decrypted."""
    _configure(_swap("", "intermediateKey", "userKey"))
    status, body = _sign(sqlite_ca)
    assert (status, body) == (500, NOT_CONFIGURED)
