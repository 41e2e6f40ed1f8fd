"""Building, parsing and verifying SSH certificates (without ssh-keygen)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import SSHCertificate as CryptoCert
from cryptography.hazmat.primitives.serialization import load_ssh_public_identity

from stepless.errors import BadRequest, ConfigError
from stepless.signers.memory import MemorySigner
from stepless.ssh import certificate as cert_mod
from stepless.ssh import keys, wire
from stepless.ssh.certificate import (
    DEFAULT_USER_EXTENSIONS,
    HOST,
    USER,
    build_and_sign,
    option_value,
    parse_certificate,
    to_b64,
    to_line,
    verify_signature,
)

NOW = 1_700_000_000


def _user_cert(signer, key, **overrides):  # noqa: ANN001, ANN202
    args = {
        "serial": 1234567890123,
        "cert_type": USER,
        "key_id": "alice@example.com",
        "principals": ["alice", "root"],
        "valid_after": NOW - 60,
        "valid_before": NOW + 16 * 3600,
        "critical_options": {},
        "extensions": dict(DEFAULT_USER_EXTENSIONS),
        "signer": signer,
    }
    args.update(overrides)
    return build_and_sign(key, **args)


def test_fields_and_round_trip(ec_ca: MemorySigner, subject_keys: dict) -> None:
    key = subject_keys["ecdsa-sha2-nistp256"]
    cert = _user_cert(ec_ca, key, critical_options={"source-address": option_value("10.0.0.0/8")})
    assert cert.key_type == "ecdsa-sha2-nistp256-cert-v01@openssh.com"
    assert len(cert.nonce) == 32
    assert cert.public_key == key
    assert cert.serial == 1234567890123
    assert cert.is_user and not cert.is_host
    assert cert.principals == ("alice", "root")
    assert cert.extensions == dict(DEFAULT_USER_EXTENSIONS)
    assert cert.critical_options == {"source-address": wire.string("10.0.0.0/8")}
    assert cert.signature_key == ec_ca.public_key()
    assert cert.signature_algorithm == "ecdsa-sha2-nistp256"
    assert cert.ca_fingerprint == keys.fingerprint(ec_ca.public_key())
    assert verify_signature(cert)
    line = to_line(cert, "comment")
    assert line.split() == [cert.key_type, to_b64(cert), "comment"]
    for form in (cert.raw, to_b64(cert), line, line.encode(), to_line(cert)):
        assert parse_certificate(form) == cert


def test_nonce_is_random(ec_ca: MemorySigner, subject_keys: dict) -> None:
    key = subject_keys["ssh-ed25519"]
    assert _user_cert(ec_ca, key).nonce != _user_cert(ec_ca, key).nonce


def test_options_sorted_by_name(ec_ca: MemorySigner, subject_keys: dict) -> None:
    extensions = {"permit-pty": b"", "a-ext": b"", "Z-upper": b"", "permit-X11-forwarding": b""}
    cert = _user_cert(ec_ca, subject_keys["ssh-ed25519"], extensions=extensions)
    assert list(cert.extensions) == sorted(extensions)


def test_matches_cryptography_parser(ec_ca: MemorySigner, subject_keys: dict) -> None:
    for key in subject_keys.values():
        cert = _user_cert(ec_ca, key, cert_type=HOST, principals=["a.example", "b.example"], extensions={})
        parsed = load_ssh_public_identity(to_line(cert).encode())
        assert isinstance(parsed, CryptoCert)
        parsed.verify_cert_signature()
        assert parsed.serial == cert.serial
        assert parsed.valid_principals == [b"a.example", b"b.example"]
        assert parsed.key_id == b"alice@example.com"
        assert parsed.nonce == cert.nonce


@pytest.mark.parametrize("what", ["signature", "body"])
def test_verify_detects_flipped_byte(ec_ca: MemorySigner, ed_ca, subject_keys: dict, what: str) -> None:  # noqa: ANN001
    rsa_ca = MemorySigner(rsa.generate_private_key(65537, 2048))
    for signer in (ec_ca, ed_ca, rsa_ca):
        cert = _user_cert(signer, subject_keys["ssh-ed25519"])
        assert verify_signature(cert)
        raw = bytearray(cert.raw)
        index = len(raw) - 5 if what == "signature" else 60  # inside the signature blob / the public key
        raw[index] ^= 0x01
        assert not verify_signature(parse_certificate(bytes(raw)))


def test_verify_rejects_wrong_algorithm(ec_ca: MemorySigner, subject_keys: dict) -> None:
    cert = _user_cert(ec_ca, subject_keys["ssh-ed25519"])
    _, _, sig_blob = cert.signature.partition(b"ecdsa-sha2-nistp256")
    forged = cert.signed_data + wire.string(wire.string("ecdsa-sha2-nistp384") + sig_blob)
    assert not verify_signature(parse_certificate(forged))


def test_ca_algorithms(ed_ca, rsa512_ca, subject_keys: dict) -> None:  # noqa: ANN001
    rsa256_ca = MemorySigner(rsa.generate_private_key(65537, 2048))
    p384_ca = MemorySigner(ec.generate_private_key(ec.SECP384R1()))
    p521_ca = MemorySigner(ec.generate_private_key(ec.SECP521R1()))
    expected = [
        (ed_ca, "ssh-ed25519"),
        (rsa512_ca, "rsa-sha2-512"),
        (rsa256_ca, "rsa-sha2-256"),
        (p384_ca, "ecdsa-sha2-nistp384"),
        (p521_ca, "ecdsa-sha2-nistp521"),
    ]
    for signer, algorithm in expected:
        cert = _user_cert(signer, subject_keys["ecdsa-sha2-nistp384"])
        assert cert.signature_algorithm == algorithm
        assert verify_signature(cert)


def test_ca_hash_mismatch_is_config_error() -> None:
    class WrongHash(MemorySigner):
        def hash_algorithm(self) -> hashes.HashAlgorithm:
            return hashes.SHA384()

    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ConfigError):
        _user_cert(WrongHash(key), key.public_key())
    rsa_key = rsa.generate_private_key(65537, 2048)
    with pytest.raises(ConfigError):
        _user_cert(WrongHash(rsa_key), key.public_key())


@pytest.mark.parametrize(
    "overrides",
    [
        {"cert_type": 3},
        {"serial": -1},
        {"serial": 2**64},
        {"valid_after": NOW, "valid_before": NOW},
        {"valid_before": 2**64},
    ],
)
def test_invalid_arguments(ec_ca: MemorySigner, subject_keys: dict, overrides: dict) -> None:
    with pytest.raises(BadRequest):
        _user_cert(ec_ca, subject_keys["ssh-ed25519"], **overrides)


def test_small_rsa_subject_refused(ec_ca: MemorySigner) -> None:
    with pytest.raises(BadRequest, match="at least 2048 bits"):
        _user_cert(ec_ca, rsa.generate_private_key(65537, 1024).public_key())


def test_parse_rejects_non_certificates(ec_ca: MemorySigner, subject_keys: dict) -> None:
    key_line = keys.to_authorized_key(subject_keys["ssh-ed25519"])
    with pytest.raises(BadRequest, match="not an SSH certificate"):
        parse_certificate(key_line)
    cert = _user_cert(ec_ca, subject_keys["ssh-ed25519"])
    with pytest.raises(BadRequest):
        parse_certificate(cert.raw[:-1])
    with pytest.raises(BadRequest):
        parse_certificate(cert.raw + b"\x00")
    with pytest.raises(BadRequest, match="does not match"):
        parse_certificate("ssh-rsa-cert-v01@openssh.com " + to_b64(cert))
    with pytest.raises(BadRequest):
        parse_certificate(base64.b64encode(b"garbage").decode())


def test_duplicate_extension_rejected(ec_ca: MemorySigner, subject_keys: dict) -> None:
    cert = _user_cert(ec_ca, subject_keys["ssh-ed25519"], extensions={"permit-pty": b""})
    ext = wire.string("permit-pty") + wire.string(b"")
    raw = cert.raw.replace(wire.string(ext), wire.string(ext + ext))
    with pytest.raises(BadRequest, match="duplicate"):
        parse_certificate(raw)


def test_module_constants() -> None:
    assert (cert_mod.USER, cert_mod.HOST) == (1, 2)
    assert set(DEFAULT_USER_EXTENSIONS) == {
        "permit-X11-forwarding",
        "permit-agent-forwarding",
        "permit-port-forwarding",
        "permit-pty",
        "permit-user-rc",
    }
    assert all(value == b"" for value in DEFAULT_USER_EXTENSIONS.values())


def test_built_certificate_equals_its_parsed_wire_form():
    """build_and_sign returns its fields without re-parsing: they must be exactly what the wire says."""
    from cryptography.hazmat.primitives.asymmetric import ec as _ec

    from stepless.signers.memory import MemorySigner as _Signer
    from stepless.ssh.certificate import DEFAULT_USER_EXTENSIONS as _EXT
    from stepless.ssh.certificate import build_and_sign as _build
    from stepless.ssh.certificate import parse_certificate as _parse

    ca = _Signer(_ec.generate_private_key(_ec.SECP256R1()))
    key = _ec.generate_private_key(_ec.SECP384R1()).public_key()
    cert = _build(key, serial=7, cert_type=1, key_id="alice", principals=["alice", "root"], valid_after=1,
                  valid_before=2**40, extensions={"z-last": b"", **dict(_EXT)},
                  critical_options={"source-address": b"\x00\x00\x00\x0810.0.0.1"}, signer=ca)
    assert _parse(cert.raw) == cert
    assert list(cert.extensions) == sorted(cert.extensions)
