"""The layer ships bytecode for the runtime's Python, hash-based and unchecked (layers/common/Makefile).

/opt is read-only in Lambda: without .pyc, every cold start compiles botocore, powertools, stepless, ...
Timestamp-checked .pyc would not do either (the zip does not keep the sources' mtimes exactly, so they
would be stale and recompiled on each cold start): PEP 552 hash-based .pyc, source never checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stepless.local.template import load_template
from tests.infrastructure import test_template as shared

# Every module of these has a .pyc in the built layer (the ones a cold start imports the most of).
PACKAGES = ("stepless", "botocore", "jwt", "aws_lambda_powertools")
# PEP 552: the 4-byte little-endian flags after the magic number; bit 0 hash-based, bit 1 check_source.
UNCHECKED_HASH = 0b01


def _cache_tag() -> str:
    """cpython-313 for the template's python3.13."""
    runtime = load_template(shared.TEMPLATE_PATH)["Globals"]["Function"]["Runtime"]
    return "cpython-" + runtime.removeprefix("python").replace(".", "")


def _pyc(source: Path, tag: str) -> Path:
    return source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"


def test_makefile_compiles_after_removing_stale_pycache() -> None:
    makefile = (shared.LAYER / "Makefile").read_text()
    removal = makefile.index("-name __pycache__ -type d -prune -exec rm -rf {} +")
    compile_ = makefile.index("-m compileall -q -j 0 --invalidation-mode unchecked-hash")
    assert removal < compile_, "bytecode must be compiled after the copied tree's stale __pycache__ is removed"
    assert "PYC_PYTHON ?= python$(PYTHON_VERSION)" in makefile


def test_built_layer_has_unchecked_hash_pyc_for_the_runtime() -> None:
    built = shared._built_layer()
    if not built.is_dir():
        pytest.skip(f"layer not built ({built} missing): run `sam build` to check its bytecode")
    tag = _cache_tag()
    if not any(built.glob(f"stepless/__pycache__/*.{tag}.pyc")):
        pytest.skip(f"layer built without a {tag} interpreter (no {tag}.pyc in {built}/stepless; the build printed "
                    "a WARNING): build on a host with python3.13, or with `sam build --use-container`")
    missing = []
    for package in PACKAGES:
        sources = list((built / package).rglob("*.py"))
        assert sources, f"{package} not in the layer"
        missing += [str(p.relative_to(built)) for p in sources if not _pyc(p, tag).is_file()]
    assert not missing, f"{len(missing)} modules without a {tag}.pyc, e.g. {missing[:5]}"

    pycs = list(built.rglob("*.pyc"))
    other = [str(p.relative_to(built)) for p in pycs if not p.name.endswith(f".{tag}.pyc")]
    assert not other, f".pyc for another interpreter: {other[:5]}"
    checked = []
    for pyc in pycs:
        header = pyc.read_bytes()[:16]
        if int.from_bytes(header[4:8], "little") != UNCHECKED_HASH:
            checked.append(f"{pyc.relative_to(built)}: flags {header[4:8].hex()}")
    assert not checked, f"{len(checked)} .pyc not unchecked-hash (0b01), e.g. {checked[:5]}"
    assert len({p.read_bytes()[:4] for p in pycs}) == 1, "the .pyc come from more than one Python (magic numbers)"
