"""services.context.check_x5c_path: an X5C chain through this CA's own PKI (no AWS: the revocation read is
counted through a stand-in)."""

from __future__ import annotations

import datetime as dt
import types

import pytest

from stepless import tokens
from stepless.claims import Claims
from stepless.errors import Unauthorized
from stepless.provisioners import build
from stepless.services import context as ctx_module
from tests.support.x5c import NOW, PKI, certificate, ec_key, make_token, x5c_claims


@pytest.fixture
def reads(monkeypatch) -> dict[str, list[str]]:
    """Serials looked up in the revocations table; ``revoked`` lists those that are."""
    state: dict[str, list[str]] = {"read": [], "revoked": []}
    monkeypatch.setattr(ctx_module.revocations, "get",
                        lambda serial: state["read"].append(serial) or ({"serial": serial}
                                                                        if serial in state["revoked"] else None))
    return state


def ours() -> tuple[PKI, types.SimpleNamespace]:
    pki = PKI("Ours")
    return pki, types.SimpleNamespace(intermediates=[pki.inter], roots=[pki.root])


def test_a_leaf_of_ours_costs_one_read_and_is_refused_when_revoked(reads) -> None:
    pki, auth = ours()
    leaf, _ = pki.leaf()
    ctx_module.check_x5c_path(auth, [leaf, pki.inter, pki.root])
    assert reads["read"] == [str(leaf.serial_number)]
    reads["revoked"].append(str(leaf.serial_number))
    with pytest.raises(Unauthorized, match="has been revoked"):
        ctx_module.check_x5c_path(auth, [leaf, pki.inter, pki.root])


def test_our_intermediate_as_the_x5c_root_is_ours_too(reads) -> None:
    pki, auth = ours()
    leaf, _ = pki.leaf()
    reads["revoked"].append(str(leaf.serial_number))
    with pytest.raises(Unauthorized, match="has been revoked"):
        ctx_module.check_x5c_path(auth, [leaf, pki.inter])


def test_a_foreign_chain_costs_nothing(reads) -> None:
    _, auth = ours()
    other = PKI("Devices")
    leaf, _ = other.leaf()
    ctx_module.check_x5c_path(auth, [leaf, other.inter, other.root])
    assert reads["read"] == []


def test_an_intermediate_under_our_root_that_we_distrust_is_refused(reads) -> None:
    """``ca rotate-intermediate --distrust-previous`` drops the old intermediate: its leaves sign no X5C token."""
    pki, auth = ours()
    old_key = ec_key()
    old = certificate("Ours Old Intermediate", old_key, issuer=(pki.root, pki.root_key), ca=True, path_length=0)
    leaf = certificate("dev1.example.com", ec_key(), issuer=(old, old_key), sans=["dev1.example.com"])
    with pytest.raises(Unauthorized, match="no longer trusts"):
        ctx_module.check_x5c_path(auth, [leaf, old, pki.root])
    assert reads["read"] == []


def test_the_provisioner_runs_the_check_on_the_verified_path(reads) -> None:
    pki, auth = ours()
    prov = build({"type": "X5C", "name": "devices", "roots": pki.roots_value()}, Claims.defaults())
    leaf, key = pki.leaf()
    token = make_token([leaf, pki.inter], key, x5c_claims("dev1.example.com"))
    reads["revoked"].append(str(leaf.serial_number))
    context = ctx_module.Context(frozenset({"ca.example.com"}), NOW + dt.timedelta(seconds=1),
                                 lambda path: ctx_module.check_x5c_path(auth, path))
    with pytest.raises(Unauthorized, match="has been revoked"):
        prov.authorize_sign(token, *tokens.unverified(token), context)
