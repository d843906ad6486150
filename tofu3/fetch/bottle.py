"""Homebrew bottles: which index entry is one, and the file name brew gives it (pure).

brew saves ``ghcr.io/homebrew/core/wget:1.24.5`` for macOS 14 on arm64 as
``wget--1.24.5.arm64_sonoma.bottle.tar.gz``: the formula name (the repository's last path
component), the version (the tag), the bottle tag (from the index entry's
``org.opencontainers.image.ref.name`` annotation, ``1.24.5.arm64_sonoma``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tofu3.errors import ConfigurationError, MalformedManifest
from tofu3.oci.manifest import ANNOTATION_REF_NAME, Descriptor, ImageManifest
from tofu3.reference import Reference

# What brew's names are made of; anything else is refused rather than put in a file name.
_FORMULA_RE = re.compile(r"[a-z0-9][a-z0-9._+-]{0,127}")
_VERSION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


def single_bottle(chosen: Sequence[Descriptor]) -> Descriptor | None:
    """The bottle entry when the platform selection chose exactly one, and it is a bottle."""
    if len(chosen) == 1 and chosen[0].bottle_tag is not None:
        return chosen[0]
    return None


def bottle_version(reference: Reference, entry: Descriptor) -> str:
    """The formula version: the tag, or (for a reference by digest) what the entry's ref.name
    annotation says before the bottle tag."""
    if reference.tag is not None:
        return reference.tag
    ref_name = entry.annotations.get(ANNOTATION_REF_NAME, "")
    version, _, tag = ref_name.rpartition(".")
    if not version or tag != entry.bottle_tag:
        raise ConfigurationError(
            "cannot name the bottle: the reference has no tag and the index entry's "
            "ref.name annotation gives no version; fetch it by tag"
        )
    return version


def bottle_file_name(reference: Reference, entry: Descriptor) -> str:
    """``FORMULA--VERSION.BOTTLE_TAG.bottle.tar.gz``, as brew names the file."""
    formula = reference.path.rpartition("/")[2]
    version = bottle_version(reference, entry)
    bottle_tag = entry.bottle_tag
    if bottle_tag is None:
        raise ConfigurationError("the selected index entry is not a Homebrew bottle")
    if not _FORMULA_RE.fullmatch(formula) or not _VERSION_RE.fullmatch(version):
        raise ConfigurationError(
            f"cannot name the bottle from formula {formula[:80]!r} and version {version[:80]!r}"
        )
    return f"{formula}--{version}.{bottle_tag}.bottle.tar.gz"


def bottle_layer(manifest: ImageManifest, entry: Descriptor) -> Descriptor:
    """The one layer of a bottle's image manifest: the bottle itself. When the index entry
    carries Homebrew's ``sh.brew.bottle.digest``, it must name that layer."""
    if len(manifest.layers) != 1:
        raise MalformedManifest(
            f"bottle {entry.bottle_tag}: its manifest has {len(manifest.layers)} layers, not 1"
        )
    layer = manifest.layers[0]
    claimed = entry.annotations.get("sh.brew.bottle.digest")
    if claimed is not None and f"sha256:{claimed}" != layer.digest:
        raise MalformedManifest(
            f"bottle {entry.bottle_tag}: the index says sh.brew.bottle.digest {claimed[:80]} "
            f"but the manifest's layer is {layer.digest}"
        )
    return layer
