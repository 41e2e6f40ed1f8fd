"""stepless.jose's JWK parsing and JWS verification give PyJWT's answers (what they replaced: the functions no
longer import PyJWT, whose JWKS client costs a cold start ``urllib.request`` and ``http.client``).

Every JWK of a corpus (valid keys of every type, and broken ones) is parsed by both: both refuse it, or both
give the same key. Every asymmetric algorithm verifies, with both, valid signatures, tampered ones, signatures
of other lengths and keys of other types or curves: the same verdict each time.
"""

from __future__ import annotations

import functools
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from stepless import jose

ALGS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA")
MESSAGE = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0"


@functools.cache
def keys() -> dict[str, Any]:
    """One private key of each kind."""
    return {"p256": ec.generate_private_key(ec.SECP256R1()), "p384": ec.generate_private_key(ec.SECP384R1()),
            "p521": ec.generate_private_key(ec.SECP521R1()), "k256": ec.generate_private_key(ec.SECP256K1()),
            "rsa": rsa.generate_private_key(65537, 2048), "rsa3072": rsa.generate_private_key(65537, 3072),
            "ed25519": ed25519.Ed25519PrivateKey.generate(), "ed448": ed448.Ed448PrivateKey.generate()}


def _to_jwk(key: Any, private: bool) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return jwt.algorithms.ECAlgorithm.to_jwk(key if private else key.public_key(), as_dict=True)
    if isinstance(key, rsa.RSAPrivateKey):
        return jwt.algorithms.RSAAlgorithm.to_jwk(key if private else key.public_key(), as_dict=True)
    return jwt.algorithms.OKPAlgorithm.to_jwk(key if private else key.public_key(), as_dict=True)


def corpus() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, key in keys().items():
        for private in (False, True):
            jwk = _to_jwk(key, private)
            out.append(jwk)
            own = {"p384": "ES384", "p521": "ES512", "k256": "ES256K", "ed25519": "EdDSA", "ed448": "EdDSA"}
            out.append({**jwk, "alg": own.get(name, "RS256" if jwk["kty"] == "RSA" else "ES256")})
            out.append({**jwk, "alg": "RS256" if jwk["kty"] != "RSA" else "ES256"})  # alg of another key type
            out.append({k: v for k, v in jwk.items() if k != "kty"})
            if jwk["kty"] == "EC":
                out.append({**jwk, "x": jwk["x"][:-4]})
                out.append({**jwk, "crv": "P-192"})
                out.append({k: v for k, v in jwk.items() if k != "crv"})
                out.append({k: v for k, v in jwk.items() if k != "y"})
                out.append({**jwk, "x": 12})
                if private:
                    out.append({**jwk, "d": jwk["d"][:-4]})
                    out.append({**jwk, "d": jose.b64e(b"\0" + jose.b64d(jwk["d"]))})  # the same d, one byte longer
            if jwk["kty"] == "RSA":
                out.append({k: v for k, v in jwk.items() if k != "e"})
                if private:
                    out.append({k: v for k, v in jwk.items() if k not in ("p", "q", "dp", "dq", "qi")})
                    out.append({k: v for k, v in jwk.items() if k != "qi"})
                    out.append({**jwk, "oth": []})
            if jwk["kty"] == "OKP":
                out.append({**jwk, "crv": "X25519"})
                out.append({k: v for k, v in jwk.items() if k != "x"})
                if private:
                    other = _to_jwk(keys()["ed25519" if name == "ed448" else "ed448"], False)
                    out.append({**jwk, "x": other["x"]})
                    fresh = (ed25519.Ed25519PrivateKey if name == "ed25519" else ed448.Ed448PrivateKey).generate()
                    out.append({**jwk, "x": _to_jwk(fresh, False)["x"]})  # another key's public half
    out += [{"kty": "oct", "k": "c2VjcmV0"}, {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}, {"kty": "oct"},
            {"kty": "PQ", "x": "AA"}, {}, {"kty": ""}, {"kty": "EC", "alg": "none"},
            {"kty": "EC", "crv": "P-256", "x": "!!!", "y": "AA"}]
    return out


def _same_key(a: Any, b: Any) -> bool:
    if isinstance(a, bytes | bytearray):
        return a == b
    if type(a) is not type(b) and not (isinstance(a, type(b).__mro__[1]) and isinstance(b, type(a).__mro__[1])):
        return False
    if hasattr(a, "private_numbers"):
        return a.private_numbers() == b.private_numbers()
    if hasattr(a, "public_numbers"):
        return a.public_numbers() == b.public_numbers()
    if hasattr(a, "private_bytes_raw"):
        return a.private_bytes_raw() == b.private_bytes_raw()
    return a.public_bytes(Encoding.Raw, PublicFormat.Raw) == b.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _pyjwt_key(jwk: dict[str, Any]) -> Any:
    try:
        return jwt.PyJWK(jwk).key
    except Exception as e:  # noqa: BLE001 - every refusal counts the same
        return e


def test_key_from_jwk_gives_pyjwts_keys() -> None:
    jwks = corpus()
    assert len(jwks) > 100
    for jwk in jwks:
        theirs = _pyjwt_key(jwk)
        try:
            ours: Any = jose.key_from_jwk(jwk)
        except ValueError as e:
            assert isinstance(theirs, Exception), (jwk, e)
            continue
        assert not isinstance(theirs, Exception), (jwk, theirs)
        assert _same_key(ours, theirs), jwk


def _pyjwt_verify(alg: str, key: Any, msg: bytes, sig: bytes) -> bool:
    try:
        return bool(jwt.get_algorithm_by_name(alg).verify(msg, key, sig))
    except Exception:  # noqa: BLE001 - what stepless.tokens made of PyJWT's exceptions: invalid
        return False


def _signers(alg: str) -> list[Any]:
    k = keys()
    return {"ES": [k["p256"], k["p384"], k["p521"]], "RS": [k["rsa"], k["rsa3072"]], "PS": [k["rsa"], k["rsa3072"]],
            "Ed": [k["ed25519"], k["ed448"]]}[alg[:2]]


@pytest.mark.parametrize("alg", ALGS)
def test_verify_gives_pyjwts_verdicts(alg: str) -> None:
    verdicts = []
    for signer in _signers(alg):
        good = jwt.get_algorithm_by_name(alg).sign(MESSAGE, signer)
        candidates = [good, good[:-1], good + b"\0", bytes(len(good)), b"", bytes([good[0] ^ 1]) + good[1:],
                      good[:-1] + bytes([good[-1] ^ 0x80])]
        if alg.startswith("PS"):  # PSS with another salt length than the digest's: not this algorithm's
            digest = jwt.get_algorithm_by_name(alg).hash_alg()
            candidates.append(signer.sign(MESSAGE, padding.PSS(padding.MGF1(digest), padding.PSS.MAX_LENGTH), digest))
        for key in [k.public_key() for k in keys().values()]:
            for sig in candidates:
                for msg in (MESSAGE, MESSAGE + b"x"):
                    ours = jose.verify(alg, key, msg, sig)
                    assert ours == _pyjwt_verify(alg, key, msg, sig), (alg, type(key).__name__, sig.hex()[:16])
                    verdicts.append(ours)
        assert jose.verify(alg, signer.public_key(), MESSAGE, good)
    assert True in verdicts and False in verdicts


def test_verify_refuses_other_algorithms() -> None:
    key = keys()["p256"]
    sig = jwt.get_algorithm_by_name("ES256").sign(MESSAGE, key)
    for alg in ("none", "HS256", "ES256K", "RS1", "es256", ""):
        assert not jose.verify(alg, key.public_key(), MESSAGE, sig)


@settings(max_examples=200, deadline=None)
@given(alg=st.sampled_from(ALGS), sig=st.binary(max_size=600), msg=st.binary(max_size=64))
def test_verify_arbitrary_signatures(alg: str, sig: bytes, msg: bytes) -> None:
    for signer in _signers(alg):
        key = signer.public_key()
        assert jose.verify(alg, key, msg, sig) == _pyjwt_verify(alg, key, msg, sig) is False
