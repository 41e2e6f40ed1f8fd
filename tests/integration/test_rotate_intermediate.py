"""`ca rotate-intermediate`: a new intermediate under the same root; leaves of the old one stay renewable."""

from __future__ import annotations

import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from stepless import authority
from stepless.admin.rotate import rotate_intermediate
from stepless.errors import ClientError
from stepless.stores import audit, revocations
from stepless.stores import authority as store
from tests.integration.test_renew import issue, renew_mtls, revoke_app
from tests.support.ca import call


def _chain_ok(leaf: x509.Certificate, intermediate: x509.Certificate, root: x509.Certificate) -> None:
    leaf.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(root)


@pytest.mark.parametrize("backend", ["secrets", "kms"])
def test_rotation_keeps_the_root_and_old_leaves_renewable(request, aws_env, backend):
    ca = request.getfixturevalue("secrets_ca" if backend == "secrets" else "test_ca")
    before = authority.get()
    root, old_inter, old_key_ref = before.roots[0], before.intermediate, before.doc["intermediateKey"]
    old_leaf, _, old_pem = issue(ca, "before.example.com")

    rotation = rotate_intermediate(outputs=aws_env)

    after = authority.get()
    new_inter = after.intermediate
    assert rotation.intermediate == new_inter and rotation.replaced == old_inter
    assert new_inter.serial_number != old_inter.serial_number and new_inter.subject == old_inter.subject
    new_inter.verify_directly_issued_by(root)
    assert after.roots[0] == root  # clients keep their pin
    assert after.doc["previousIntermediates"] == [before.intermediate_pem]
    if backend == "secrets":
        assert rotation.new_key and after.doc["intermediateKey"] != old_key_ref
        assert new_inter.public_key() != old_inter.public_key()
    else:
        assert not rotation.new_key and after.doc["intermediateKey"] == old_key_ref
        assert new_inter.public_key() == old_inter.public_key()

    # new certificates come from the new intermediate, and the response carries it
    new_leaf, _, _ = issue(ca, "after.example.com")
    _chain_ok(new_leaf, new_inter, root)

    # a leaf of the replaced intermediate renews (into the new one)
    status, body = renew_mtls(old_pem)
    assert status == 201, body
    renewed = x509.load_pem_x509_certificate(body["crt"].encode())
    _chain_ok(renewed, new_inter, root)
    assert body["ca"] == after.intermediate_pem

    # and can be revoked over mTLS, after which it no longer renews
    status, body = call(revoke_app, "POST", "/revoke", {"serial": str(old_leaf.serial_number), "reasonCode": 1},
                        client_cert_pem=old_pem)
    assert (status, body) == (200, {"status": "ok"})
    assert revocations.get(str(old_leaf.serial_number)) is not None
    assert renew_mtls(old_pem)[0] == 401

    records = [r for r in audit.records() if r["action"] == "intermediate.rotate"]
    assert len(records) == 1
    change = records[0]["change"]
    assert change["serial"] == str(new_inter.serial_number) and change["replaced"] == str(old_inter.serial_number)
    assert records[0]["version"] == rotation.version == store.load()[1]


def test_a_second_rotation_keeps_both_replaced_intermediates(secrets_ca, aws_env):
    first = authority.get().intermediate_pem
    rotate_intermediate(outputs=aws_env)
    second = authority.get().intermediate_pem
    rotate_intermediate(outputs=aws_env)
    assert authority.get().doc["previousIntermediates"] == [second, first]
    assert len(authority.get().intermediates) == 3


def test_refused_when_the_stack_root_key_is_not_the_cas(test_ca, aws_env):
    doc_before = store.load()
    outputs = {**aws_env, "RootKeyId": aws_env["IntermediateKeyId"]}
    with pytest.raises(ClientError, match="does not match the CA's root"):
        rotate_intermediate(outputs=outputs)
    assert store.load() == doc_before  # nothing changed


def test_refused_without_a_ca(aws_env):
    with pytest.raises(ClientError, match="not initialized"):
        rotate_intermediate(outputs=aws_env)


def test_the_cli_command(secrets_ca, aws_env, monkeypatch):
    from click.testing import CliRunner

    from stepless.admin import stack
    from stepless.cli import main as cli_main

    tables = {output: os.environ[var] for var, output in stack.TABLE_OUTPUTS.items()}
    monkeypatch.setattr(stack, "outputs", lambda name: {**aws_env, **tables})
    cli_main._register()
    old = authority.get().intermediate.serial_number
    res = CliRunner().invoke(cli_main.cli, ["ca", "rotate-intermediate", "--stack", "test"])
    assert res.exit_code == 0, (res.output, res.exception)
    new = authority.get().intermediate.serial_number
    assert new != old
    assert f"Intermediate: serial {new}" in res.output and f"Replaced: serial {old}" in res.output
    assert "Key: new" in res.output


def test_expired_leaf_renews_by_token_after_a_kms_rotation(test_ca, aws_env):
    """Same key, new certificate: the new intermediate was not valid when the leaf was, the old one was."""
    import datetime as dt

    from stepless import clock
    from tests.integration.test_renew import renew_bearer, renew_token, set_claims

    old, key, _ = issue(test_ca, "expired.example.com", notAfter="5m")
    set_claims("admin", {"allowRenewalAfterExpiry": True})
    with clock.shift(dt.timedelta(minutes=30)):
        rotate_intermediate(outputs=aws_env)
        assert authority.get().intermediate.not_valid_before_utc > old.not_valid_after_utc
        status, body = renew_bearer(renew_token(old, key))
        assert status == 201, body


def test_mtls_revoke_needs_the_recorded_certificate(test_ca):
    """A certificate with a recorded serial but other bytes (e.g. forged with a leaked, replaced key) is refused."""
    from cryptography.hazmat.primitives import hashes

    from stepless.signers import as_private_key
    from stepless.stores import certificates

    cert, _, pem = issue(test_ca, "victim.example.com")
    serial = str(cert.serial_number)
    assert certificates.get(serial).fingerprint == cert.fingerprint(hashes.SHA256()).hex()
    # the same serial, subject and key, signed again by our issuer: other bytes
    signer = authority.get().intermediate_signer

    twin = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
            .public_key(cert.public_key()).serial_number(cert.serial_number)
            .not_valid_before(cert.not_valid_before_utc).not_valid_after(cert.not_valid_after_utc))
    for ext in cert.extensions:
        twin = twin.add_extension(ext.value, ext.critical)
    twin_cert = twin.sign(as_private_key(signer), hashes.SHA256())
    assert twin_cert.fingerprint(hashes.SHA256()) != cert.fingerprint(hashes.SHA256())
    twin_pem = twin_cert.public_bytes(Encoding.PEM).decode()
    status, body = call(revoke_app, "POST", "/revoke", {"serial": serial, "reasonCode": 1}, client_cert_pem=twin_pem)
    assert status == 401 and "not the certificate recorded" in body["message"]
    assert revocations.get(serial) is None


def test_distrust_previous_after_a_key_compromise(secrets_ca, aws_env):
    old_leaf, _, old_pem = issue(secrets_ca, "leaked.example.com")
    rotate_intermediate(outputs=aws_env, distrust_previous=True)
    assert authority.get().doc["previousIntermediates"] == []
    assert len(authority.get().intermediates) == 1
    status, body = renew_mtls(old_pem)
    assert status == 401 and body["message"]
    status, _ = call(revoke_app, "POST", "/revoke", {"serial": str(old_leaf.serial_number)}, client_cert_pem=old_pem)
    assert status == 401


def test_expired_previous_intermediates_are_not_trusted(secrets_ca, aws_env):
    import datetime as dt

    from stepless import clock

    rotate_intermediate(outputs=aws_env)
    replaced = authority.Authority(*store.load()).intermediates[1]
    with clock.shift(replaced.not_valid_after_utc - clock.now() + dt.timedelta(days=1)):
        assert authority.Authority(*store.load()).intermediates == [authority.get().intermediate]


def test_distrust_previous_is_refused_when_the_key_stays(test_ca, aws_env):
    before = store.load()
    with pytest.raises(ClientError, match="needs a new intermediate key"):
        rotate_intermediate(outputs=aws_env, distrust_previous=True)
    assert store.load() == before
