"""The lab's ``homebrew/core/wget:1.24.5``: an OCI index of 7 bottles shaped like ghcr.io's.

Platforms, annotation keys, the order of entries and the ``sh.brew.tab`` text follow the
index ghcr.io served in March 2024 (the ghcr-homebrew-wget-1.24.5 fixture); the image
manifests and configs follow Homebrew's ``github_packages.rb``. Only the bottles differ: small
deterministic tarballs, not the real 1.6 MB ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tofu3.digest import Digest, hex_of
from tofu3.lab.store import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    StoreBuilder,
    TarMember,
    compact_json,
    descriptor,
    oci_json,
    pseudo_random,
    tarball,
)
from tofu3.oci.media_types import OCI_INDEX, OCI_MANIFEST

REPOSITORY = "homebrew/core/wget"
VERSION = "1.24.5"
SOURCE_MODIFIED_TIME = 1710079849
REVISION = "f75f052e8146cf2e2a19b78f2d25b8e1e905bba9"

# The index-level annotations, as ghcr.io served them.
FORMULA_ANNOTATIONS: dict[str, str] = {
    "com.github.package.type": "homebrew_bottle",
    "org.opencontainers.image.created": "2024-03-11",
    "org.opencontainers.image.description": "Internet file retriever",
    "org.opencontainers.image.documentation": "https://formulae.brew.sh/formula/wget",
    "org.opencontainers.image.license": "GPL-3.0-or-later",
    "org.opencontainers.image.ref.name": VERSION,
    "org.opencontainers.image.revision": REVISION,
    "org.opencontainers.image.source": (
        f"https://github.com/homebrew/homebrew-core/blob/{REVISION}/Formula/w/wget.rb"
    ),
    "org.opencontainers.image.title": "wget",
    "org.opencontainers.image.url": "https://www.gnu.org/software/wget/",
    "org.opencontainers.image.vendor": "homebrew",
    "org.opencontainers.image.version": VERSION,
}

_DARWIN_DEPENDENCIES = (
    ("libunistring", "1.2", False),
    ("gettext", "0.22.5", False),
    ("libidn2", "2.3.7", True),
    ("ca-certificates", "2023-12-12", False),
    ("openssl@3", "3.2.1", True),
)
_LINUX_DEPENDENCIES = (
    ("libunistring", "1.2", False),
    ("libidn2", "2.3.7", True),
    ("ca-certificates", "2023-12-12", False),
    ("openssl@3", "3.2.1", True),
    ("libxcrypt", "4.4.36", False),
    ("ncurses", "6.4", False),
    ("zlib", "1.3.1", False),
    ("readline", "8.2.10", False),
    ("util-linux", "2.39.3", True),
)
# Files Homebrew rewrote while pouring the Intel macOS bottles (part of their tab).
_INTEL_CHANGED_FILES = (
    ".bottle/etc/wgetrc",
    "ChangeLog",
    "NEWS",
    "README",
    "share/man/man1/wget.1",
)
# macOS version -> (Xcode, command line tools, preferred perl) of the machine that built it.
_XCODE = {
    "macOS 12.6": ("14.2", "14.2.0.0.1.1668646533", "5.30"),
    "macOS 13.6": ("15.1", "15.1.0.0.1.1700200546", "5.30"),
    "macOS 14": ("15.1", "15.1.0.0.1.1700200546", "5.34"),
}


@dataclass(frozen=True)
class BottleTag:
    """One platform of the index: Homebrew's bottle tag and its OCI platform."""

    tag: str
    architecture: str
    os: str
    os_version: str


# In the order ghcr.io lists them (sorted by bottle tag).
BOTTLE_TAGS: tuple[BottleTag, ...] = (
    BottleTag("arm64_monterey", "arm64", "darwin", "macOS 12.6"),
    BottleTag("arm64_sonoma", "arm64", "darwin", "macOS 14"),
    BottleTag("arm64_ventura", "arm64", "darwin", "macOS 13.6"),
    BottleTag("monterey", "amd64", "darwin", "macOS 12.6"),
    BottleTag("sonoma", "amd64", "darwin", "macOS 14"),
    BottleTag("ventura", "amd64", "darwin", "macOS 13.6"),
    BottleTag("x86_64_linux", "amd64", "linux", "Ubuntu 22.04.3"),
)

# The bottle the "tag" tamper swaps: the one a Linux user of the lab would install.
SWAPPED_BOTTLE = "x86_64_linux"


def tab_text(bottle: BottleTag) -> str:
    """The ``sh.brew.tab`` annotation: the bottle's install receipt as compact JSON."""
    linux = bottle.os == "linux"
    built_on: dict[str, str]
    if linux:
        built_on = {
            "os": "Linux",
            "os_version": bottle.os_version,
            "cpu_family": "zen3",
            "glibc_version": "2.35",
            "oldest_cpu_family": "core2",
        }
    else:
        xcode, clt, perl = _XCODE[bottle.os_version]
        built_on = {
            "os": "Macintosh",
            "os_version": bottle.os_version,
            "cpu_family": "dunno" if bottle.architecture == "arm64" else "penryn",
            "xcode": xcode,
            "clt": clt,
            "preferred_perl": perl,
        }
    intel_mac = bottle.os == "darwin" and bottle.architecture == "amd64"
    tab = {
        "homebrew_version": "4.2.11-105-gae0ceee",
        "changed_files": list(_INTEL_CHANGED_FILES) if intel_mac else [],
        "source_modified_time": SOURCE_MODIFIED_TIME,
        "compiler": "gcc-11" if linux else "clang",
        "runtime_dependencies": [
            {
                "full_name": name,
                "version": version,
                "revision": 0,
                "pkg_version": version,
                "declared_directly": direct,
            }
            for name, version, direct in (_LINUX_DEPENDENCIES if linux else _DARWIN_DEPENDENCIES)
        ],
        "arch": "arm64" if bottle.architecture == "arm64" else "x86_64",
        "built_on": built_on,
    }
    return compact_json(tab).decode()


def bottle_filename(bottle: BottleTag) -> str:
    """The file name Homebrew gives the bottle: ``wget--1.24.5.ventura.bottle.tar.gz``."""
    return f"wget--{VERSION}.{bottle.tag}.bottle.tar.gz"


def add_wget(builder: StoreBuilder, *, swapped: str | None = None) -> Digest:
    """Add the wget index, its 7 image manifests and their blobs; tag and return the index.

    With ``swapped`` naming a bottle tag, that platform gets a different bottle (and so a
    different manifest and index): a consistent tree a targeted attacker could serve.
    """
    entries = []
    for bottle in BOTTLE_TAGS:
        manifest, annotations = _add_bottle(builder, bottle, swapped=bottle.tag == swapped)
        digest = builder.add_manifest(REPOSITORY, OCI_MANIFEST, manifest)
        entry = descriptor(OCI_MANIFEST, digest, len(manifest))
        entry["platform"] = {
            "architecture": bottle.architecture,
            "os": bottle.os,
            "os.version": bottle.os_version,
        }
        entry["annotations"] = annotations
        entries.append(entry)
    # Homebrew writes no top-level mediaType in its index or manifests; ghcr.io sends it as
    # the Content-Type instead.
    index = oci_json({"schemaVersion": 2, "manifests": entries, "annotations": FORMULA_ANNOTATIONS})
    digest = builder.add_manifest(REPOSITORY, OCI_INDEX, index)
    builder.add_tag(REPOSITORY, VERSION, digest)
    return digest


def _add_bottle(
    builder: StoreBuilder, bottle: BottleTag, *, swapped: bool
) -> tuple[bytes, dict[str, str]]:
    """Add one bottle and its config; return its image manifest and its index annotations."""
    tab = tab_text(bottle)
    layer = tarball(_bottle_files(bottle, tab, swapped=swapped), SOURCE_MODIFIED_TIME)
    layer_digest = builder.add_blob(REPOSITORY, layer.gzipped, layer=True)
    platform: dict[str, Any] = {
        "architecture": bottle.architecture,
        "os": bottle.os,
        "os.version": bottle.os_version,
    }
    config = oci_json({**platform, "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}})
    config_digest = builder.add_blob(REPOSITORY, config, layer=False)

    bottle_annotations = {
        "org.opencontainers.image.ref.name": f"{VERSION}.{bottle.tag}",
        "sh.brew.bottle.digest": hex_of(layer_digest),
        "sh.brew.bottle.size": str(len(layer.gzipped)),
        "sh.brew.tab": tab,
    }
    if bottle.os == "linux":
        bottle_annotations["sh.brew.bottle.cpu.variant"] = "core2"
        bottle_annotations["sh.brew.bottle.glibc.version"] = "2.35"
    bottle_annotations = dict(sorted(bottle_annotations.items()))

    # As github_packages.rb does: the formula's annotations, then the bottle's, then a title
    # naming the platform; sorted by key.
    manifest_annotations = {
        **FORMULA_ANNOTATIONS,
        **bottle_annotations,
        "org.opencontainers.image.title": f"wget {bottle.tag}",
    }
    layer_descriptor = descriptor(OCI_LAYER_GZIP, layer_digest, len(layer.gzipped))
    layer_descriptor["annotations"] = {"org.opencontainers.image.title": bottle_filename(bottle)}
    manifest = oci_json(
        {
            "schemaVersion": 2,
            "config": descriptor(OCI_CONFIG, config_digest, len(config)),
            "layers": [layer_descriptor],
            "annotations": dict(sorted(manifest_annotations.items())),
        }
    )
    return manifest, bottle_annotations


def _bottle_files(bottle: BottleTag, tab: str, *, swapped: bool) -> list[TarMember]:
    prefix = f"wget/{VERSION}"
    seed = f"tofu3 lab wget {VERSION} {bottle.tag}"
    # A few tens of KiB, a little different per platform, as real bottles are.
    binary_size = 24 * 1024 + 1024 * BOTTLE_TAGS.index(bottle)
    binary = pseudo_random(seed + (" swapped" if swapped else ""), binary_size)
    members = [
        TarMember(f"{prefix}/.brew/wget.rb", _FORMULA.encode()),
        TarMember(f"{prefix}/INSTALL_RECEIPT.json", tab.encode()),
        TarMember(f"{prefix}/README", _README.encode()),
        TarMember(f"{prefix}/bin/wget", binary, 0o755),
        TarMember(f"{prefix}/share/man/man1/wget.1", _MAN_PAGE.encode()),
    ]
    if swapped:
        # What a targeted attacker adds; the same name on every platform would not matter.
        members.append(TarMember(f"{prefix}/bin/.wget-helper", pseudo_random(seed, 4096), 0o755))
    return members


_FORMULA = """class Wget < Formula
  desc "Internet file retriever"
  homepage "https://www.gnu.org/software/wget/"
  url "https://ftp.gnu.org/gnu/wget/wget-1.24.5.tar.gz"
  license "GPL-3.0-or-later"
end
"""
_README = "GNU Wget 1.24.5 (tofu3 lab bottle: not the real program)\n"
_MAN_PAGE = '.TH WGET 1 "2024-03-10" "GNU Wget 1.24.5" "GNU Wget"\n.SH NAME\nWget - downloader\n'
