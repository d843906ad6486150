"""The terminal view shows each bottle's layer digest beside the sha256 Homebrew pins."""

from __future__ import annotations

from tofu3.digest import Digest, digest_bytes
from tofu3.observation import ArtifactKind, Expected, Observation, VantageRun
from tofu3.reference import parse_reference
from tofu3.report.terminal import bottle_lines
from tofu3.verdict import decide

BOTTLE = digest_bytes(b"bottle bytes")
MANIFEST = digest_bytes(b"manifest bytes")
INDEX = digest_bytes(b"index bytes")


def _runs(annotation: str) -> list[VantageRun]:
    def obs(key: str, kind: ArtifactKind, digest: Digest, **extra: object) -> Observation:
        return Observation(
            key=key,
            kind=kind,
            platform="darwin/arm64 (arm64_sonoma)",
            expected=Expected(digest if key != "root" else None, None, None),
            digest=digest,
            size=10,
            **extra,  # type: ignore[arg-type]
        )

    tree = (
        obs("root", ArtifactKind.INDEX, INDEX),
        obs(
            "darwin/arm64 (arm64_sonoma)",
            ArtifactKind.MANIFEST,
            MANIFEST,
            annotations={"sh.brew.bottle.digest": annotation},
        ),
        obs("darwin/arm64 (arm64_sonoma)/layer[0]", ArtifactKind.LAYER, BOTTLE),
    )
    return [VantageRun(name=n, host=f"{n}:22", observations=tree) for n in ("a", "b", "c")]


def test_a_bottle_whose_annotation_names_its_layer_is_shown_as_matching() -> None:
    verdict = decide(parse_reference("ghcr.io/homebrew/core/wget:1.24.5"), _runs(BOTTLE[7:]))

    lines = bottle_lines(verdict)

    assert len(lines) == 1
    assert BOTTLE[7:] in lines[0] and "✓" in lines[0] and "DIFFERS" not in lines[0]


def test_a_bottle_whose_annotation_names_other_bytes_is_flagged() -> None:
    other = digest_bytes(b"what the formula pins")[7:]
    verdict = decide(parse_reference("ghcr.io/homebrew/core/wget:1.24.5"), _runs(other))

    lines = bottle_lines(verdict)

    assert len(lines) == 1
    assert "DIFFERS" in lines[0] and other in lines[0] and BOTTLE[7:] in lines[0]


def test_an_image_without_bottles_shows_none() -> None:
    runs = [
        VantageRun(name=run.name, host=run.host, observations=run.observations[:1])
        for run in _runs("x")
    ]

    assert bottle_lines(decide(parse_reference("alpine:3.19"), runs)) == []
