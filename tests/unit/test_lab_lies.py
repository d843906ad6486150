"""The lab's lies are the lies they claim to be: each tamper switch changes exactly what it
says, so an attack test that passes proves the check it names."""

from __future__ import annotations

import json

import pytest

from tofu3.digest import Digest, digest_bytes, is_digest
from tofu3.errors import MalformedManifest, UnsupportedManifest
from tofu3.lab import lies
from tofu3.lab.content import WGET, build_store
from tofu3.lab.tamper import ALL_CLIENTS, DESCRIPTIONS, TAMPER_KINDS, TamperMode, mode_for
from tofu3.oci import media_types as mt
from tofu3.oci.manifest import Index, is_schema1, parse_manifest


def _wget_index() -> tuple[Digest, bytes]:
    store = build_store()
    digest = store.tags[WGET]
    return digest, store.manifests[digest].body


def test_a_vantage_own_switch_wins_over_the_all_clients_switch() -> None:
    table = {ALL_CLIENTS: "long", "127.0.0.12": "stall"}

    assert mode_for(table, "127.0.0.12") is TamperMode.STALL
    assert mode_for(table, "127.0.0.11") is TamperMode.LONG
    assert mode_for({}, "127.0.0.11") is None
    assert mode_for({"127.0.0.11": "no-such-lie"}, "127.0.0.11") is None


def test_every_switch_has_a_description_and_a_cli_name() -> None:
    assert set(TAMPER_KINDS) == {mode.value for mode in TamperMode}
    assert set(DESCRIPTIONS) == set(TamperMode)
    assert all(text.strip() for text in DESCRIPTIONS.values())


def test_longer_and_shorter_blobs_change_the_length_and_so_the_digest() -> None:
    data = bytes(range(256)) * 8

    longer, shorter = lies.longer_blob(data), lies.shorter_blob(data)

    assert len(longer) > len(data) and longer.startswith(data)
    assert 0 < len(shorter) < len(data) and data.startswith(shorter)
    assert len({digest_bytes(data), digest_bytes(longer), digest_bytes(shorter)}) == 3


@pytest.mark.parametrize(
    "mode",
    [
        TamperMode.DIGEST_PATH,
        TamperMode.DIGEST_CASE,
        TamperMode.DIGEST_ALGO,
        TamperMode.DIGEST_LENGTH,
    ],
)
def test_bad_child_digests_break_the_grammar_and_only_the_grammar(mode: TamperMode) -> None:
    _, body = _wget_index()

    served = lies.with_bad_child_digest(body, mode)

    document = json.loads(served)
    assert not is_digest(document["manifests"][0]["digest"])
    assert all(is_digest(entry["digest"]) for entry in document["manifests"][1:])
    with pytest.raises(MalformedManifest, match="invalid digest"):
        parse_manifest(served, mt.OCI_INDEX)


def test_ambiguous_document_is_both_an_index_and_a_manifest() -> None:
    _, body = _wget_index()

    document = json.loads(lies.ambiguous(body))

    assert {"manifests", "layers", "config"} <= set(document)
    with pytest.raises(MalformedManifest, match="ambiguous"):
        parse_manifest(lies.ambiguous(body), mt.OCI_INDEX)


def test_padded_manifest_is_the_same_document_only_bigger() -> None:
    _, body = _wget_index()

    big = lies.padded(body, lies.BIG_MANIFEST_BYTES)

    assert len(big) == lies.BIG_MANIFEST_BYTES
    assert json.loads(big) == json.loads(body)


def test_schema1_manifest_is_recognised_and_its_registry_digest_is_not_of_its_bytes() -> None:
    signed, registry_digest = lies.schema1_manifest(
        "homebrew/core/wget", "1.24.5", digest_bytes(b"layer")
    )

    assert registry_digest != digest_bytes(signed)
    assert is_schema1(signed, mt.DOCKER_SCHEMA1_SIGNED)
    assert is_schema1(signed, "application/json")  # by its schemaVersion alone
    with pytest.raises(UnsupportedManifest, match="schema 1"):
        parse_manifest(signed, mt.DOCKER_SCHEMA1_SIGNED)


def test_deep_index_chain_is_deeper_than_tofu3_follows_and_every_digest_holds() -> None:
    honest = build_store()
    deep = lies.build_deep_store(honest)

    digest = deep.tags[WGET]
    levels = 0
    while digest in deep.manifests:
        media_type, body = deep.manifests[digest]
        assert digest_bytes(body) == digest
        parsed = parse_manifest(body, media_type)
        assert isinstance(parsed, Index)
        digest = parsed.manifests[0].digest
        levels += 1

    assert levels == lies.DEEP_INDEX_LEVELS > 3
    assert digest == honest.tags[WGET]


def test_self_index_answers_a_child_with_its_parent_under_the_childs_digest() -> None:
    store = build_store()
    index_digest = store.tags[WGET]
    index = store.manifests[index_digest]
    child_digest = Digest(json.loads(index.body)["manifests"][0]["digest"])

    answer = lies.manifest_answer(
        TamperMode.SELF_INDEX,
        store.manifests[child_digest],
        digest=child_digest,
        reference=child_digest,
        repository=WGET[0],
        tag_target=index,
    )

    assert answer.body == index.body
    assert answer.docker_content_digest == child_digest
    assert digest_bytes(answer.body) != child_digest


def test_consistent_lies_carry_a_digest_header_that_matches_their_bytes() -> None:
    store = build_store()
    digest = store.tags[WGET]
    for mode in (TamperMode.AMBIGUOUS, TamperMode.BAD_JSON, TamperMode.DIGEST_PATH):
        answer = lies.manifest_answer(
            mode,
            store.manifests[digest],
            digest=digest,
            reference=WGET[1],
            repository=WGET[0],
            tag_target=None,
        )
        assert answer.body != store.manifests[digest].body
        assert answer.docker_content_digest == digest_bytes(answer.body)


def test_big_token_response_holds_a_good_token_and_is_over_the_cap() -> None:
    response = lies.big_token_response("abc.def")

    assert len(response) == lies.BIG_TOKEN_BYTES
    assert json.loads(response)["token"] == "abc.def"
