"""RFC 6962 Merkle trees and digests, checked against published vectors
(transparency-dev/merkle, FIPS 180-2, BLAKE3 test vectors) and hashlib /
rfc8785 as independent references."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import rfc8785

import agent_bom
from agent_bom import _core

VECTORS = Path(__file__).parent / "vectors"
TREE = json.loads((VECTORS / "rfc6962" / "tree_hashes.json").read_text())
DIGESTS = json.loads((VECTORS / "digests.json").read_text())
LEAVES = [bytes.fromhex(h) for h in TREE["leaves_hex"]]
ROOTS = {int(k): v for k, v in TREE["roots_hex"].items()}
PROOFS = TREE["inclusion_proofs"]
BLAKE3_CASES = DIGESTS["blake3"]["cases"]


def _blake3_input(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def _strip(tagged: str, alg: str) -> str:
    prefix = f"{alg}:"
    assert tagged.startswith(prefix), tagged
    return tagged[len(prefix) :]


def _leaf_hash(data: bytes) -> str:
    return hashlib.sha256(b"\x00" + data).hexdigest()


def _flip(hex_digest: str, byte: int = 0) -> str:
    raw = bytearray(bytes.fromhex(hex_digest))
    raw[byte] ^= 0x01
    return raw.hex()


# --------------------------------------------------------------------------
# RFC 6962 tree heads
# --------------------------------------------------------------------------


def test_vectors_cover_sizes_zero_to_eight() -> None:
    assert len(LEAVES) == 8
    assert sorted(ROOTS) == list(range(9))


@pytest.mark.parametrize("size", range(9))
def test_merkle_root_matches_rfc6962_tree_head(size: int) -> None:
    assert _core.merkle_root(LEAVES[:size]) == ROOTS[size]


@pytest.mark.parametrize("size", range(9))
def test_merkle_root_with_explicit_sha256(size: int) -> None:
    assert _core.merkle_root(LEAVES[:size], "sha256") == ROOTS[size]


def test_empty_tree_head_is_sha256_of_empty_string() -> None:
    assert _core.merkle_root([]) == hashlib.sha256(b"").hexdigest() == ROOTS[0]


def test_single_leaf_tree_head_is_the_leaf_hash() -> None:
    # an empty leaf input is still a leaf: H(0x00), not the empty-tree hash
    assert _core.merkle_root([b""]) == _leaf_hash(b"") == ROOTS[1]


def test_merkle_root_is_order_sensitive() -> None:
    swapped = [LEAVES[1], LEAVES[0], *LEAVES[2:]]
    assert _core.merkle_root(swapped) != ROOTS[8]


# --------------------------------------------------------------------------
# Inclusion proofs
# --------------------------------------------------------------------------


def _proof_id(p: dict) -> str:
    return f"leaf{p['leaf_index']}-of-{p['tree_size']}"


@pytest.mark.parametrize("proof", PROOFS, ids=_proof_id)
def test_inclusion_proof_matches_published_path(proof: dict) -> None:
    size, index = proof["tree_size"], proof["leaf_index"]
    assert _core.inclusion_proof(LEAVES[:size], index) == proof["audit_path_hex"]


@pytest.mark.parametrize("proof", PROOFS, ids=_proof_id)
def test_root_from_published_inclusion_proof(proof: dict) -> None:
    size, index = proof["tree_size"], proof["leaf_index"]
    leaf = _leaf_hash(LEAVES[index])
    assert (
        _core.root_from_inclusion_proof(leaf, index, size, proof["audit_path_hex"]) == ROOTS[size]
    )
    assert (
        _core.root_from_inclusion_proof(leaf, index, size, proof["audit_path_hex"], "sha256")
        == ROOTS[size]
    )


@pytest.mark.parametrize("proof", [p for p in PROOFS if p["audit_path_hex"]], ids=_proof_id)
def test_tampered_inclusion_path_does_not_give_the_root(proof: dict) -> None:
    size, index = proof["tree_size"], proof["leaf_index"]
    leaf = _leaf_hash(LEAVES[index])
    path = proof["audit_path_hex"]
    for i in range(len(path)):
        for byte in (0, 31):
            bad = list(path)
            bad[i] = _flip(bad[i], byte)
            got = _core.root_from_inclusion_proof(leaf, index, size, bad)
            assert got is None or got != ROOTS[size], (i, byte)


@pytest.mark.parametrize("proof", PROOFS, ids=_proof_id)
def test_tampered_leaf_hash_does_not_give_the_root(proof: dict) -> None:
    size, index = proof["tree_size"], proof["leaf_index"]
    leaf = _flip(_leaf_hash(LEAVES[index]))
    got = _core.root_from_inclusion_proof(leaf, index, size, proof["audit_path_hex"])
    assert got is None or got != ROOTS[size]


@pytest.mark.parametrize("proof", [p for p in PROOFS if p["tree_size"] > 1], ids=_proof_id)
def test_inclusion_path_of_wrong_length_is_refused(proof: dict) -> None:
    size, index = proof["tree_size"], proof["leaf_index"]
    leaf = _leaf_hash(LEAVES[index])
    path = proof["audit_path_hex"]
    for bad in (path[:-1], [*path, path[-1]]):
        got = _core.root_from_inclusion_proof(leaf, index, size, bad)
        assert got is None or got != ROOTS[size]


def test_inclusion_proof_index_beyond_size_is_not_accepted() -> None:
    leaf = _leaf_hash(LEAVES[0])
    try:
        got = _core.root_from_inclusion_proof(leaf, 8, 8, PROOFS[1]["audit_path_hex"])
    except ValueError:
        return
    assert got is None or got != ROOTS[8]


@pytest.mark.parametrize("size", range(1, 9))
def test_every_inclusion_proof_round_trips_to_the_published_root(size: int) -> None:
    for index in range(size):
        path = _core.inclusion_proof(LEAVES[:size], index)
        assert (
            _core.root_from_inclusion_proof(_leaf_hash(LEAVES[index]), index, size, path)
            == ROOTS[size]
        )


# --------------------------------------------------------------------------
# Digests
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", DIGESTS["sha256"], ids=lambda c: repr(c["input_ascii"][:8]))
def test_sha256_known_answers(case: dict) -> None:
    data = case["input_ascii"].encode("ascii")
    assert _strip(_core.hash_bytes(data, "sha256"), "sha256") == case["hex"]
    assert _core.hash_bytes(data) == "sha256:" + case["hex"]


@pytest.mark.parametrize("case", BLAKE3_CASES, ids=lambda c: f"len{c['len']}")
def test_blake3_known_answers(case: dict) -> None:
    data = _blake3_input(case["len"])
    assert _strip(_core.hash_bytes(data, "blake3"), "blake3") == case["hex"]


def test_unknown_hash_algorithm_is_rejected() -> None:
    with pytest.raises(ValueError):
        _core.hash_bytes(b"abc", "md5")


# --------------------------------------------------------------------------
# content_hash = H(JCS(obj))
# --------------------------------------------------------------------------

CONTENT_OBJECTS = [
    {},
    [],
    {"b": 1, "a": [1.5, None, True, "x"], "€": {"\U0001f602": -0.0}},
    {"numbers": [333333333.3333333, 1e30, 4.5, 0.002, 1e-27], "literals": [None, True, False]},
    "plain string",
    0.30000000000000004,
]


@pytest.mark.parametrize("obj", CONTENT_OBJECTS, ids=lambda o: json.dumps(o)[:24])
def test_content_hash_is_sha256_of_rfc8785_bytes(obj) -> None:
    expected = "sha256:" + hashlib.sha256(rfc8785.dumps(obj)).hexdigest()
    assert agent_bom.content_hash(obj) == expected
    assert agent_bom.content_hash(obj, "sha256") == expected
    assert _core.content_hash(obj) == expected


def test_content_hash_ignores_key_order_and_whitespace_differences() -> None:
    a = {"x": 1, "y": {"q": [1, 2], "p": "s"}}
    b = json.loads('{ "y" : { "p":"s", "q":[1,2.0] }, "x":1.0 }')
    assert agent_bom.content_hash(a) == agent_bom.content_hash(b)


@pytest.mark.parametrize("obj", CONTENT_OBJECTS, ids=lambda o: json.dumps(o)[:24])
def test_content_hash_blake3_is_blake3_of_rfc8785_bytes(obj) -> None:
    # No canonical JSON text equals a BLAKE3 vector input (bytes i % 251), so
    # hash_bytes(.., "blake3") is pinned to the published vectors above and
    # content_hash must be that digest over the reference JCS bytes.
    for case in BLAKE3_CASES:
        assert _core.hash_bytes(_blake3_input(case["len"]), "blake3") == "blake3:" + case["hex"]
    expected = _core.hash_bytes(rfc8785.dumps(obj), "blake3")
    assert agent_bom.content_hash(obj, "blake3") == expected
    assert _core.content_hash(obj, "blake3") == expected


def test_content_hash_rejects_what_json_cannot_carry() -> None:
    with pytest.raises(ValueError):
        agent_bom.content_hash({"n": float("nan")})
    with pytest.raises(ValueError):
        agent_bom.content_hash({"n": 2**53})
