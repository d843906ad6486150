"""The allowed_signers file of ``ssh-keygen -Y verify`` (ssh-keygen(1), ALLOWED SIGNERS).

Each line: ``PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]``. PRINCIPALS is a comma-separated
pattern list (``*`` and ``?``, ``!`` negates), optionally in double quotes. OPTIONS are
``cert-authority``, ``namespaces="LIST"``, ``valid-after="TIME"``, ``valid-before="TIME"``
(TIME is YYYYMMDD[HHMM[SS]], UTC with a trailing Z, else local time). Matching follows
OpenSSH's sshsig.c: the principal must match, the key must be equal (certificate-authority
lines never match a plain key), the namespace must be listed when a list is given, and the
time must be inside the validity window. One difference: a malformed line anywhere is an
error here, where ssh-keygen only notices lines whose principals match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from tofu3.errors import AllowedSignersError, SignatureError
from tofu3.signing.keys import KEY_TYPES, PublicKey

# Key types OpenSSH knows but tofu3 cannot verify with: their lines never match.
_OTHER_KEY_TYPES = frozenset(
    {"ssh-dss", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"}
)
_TIME_RE = re.compile(r"(\d{8}|\d{12}|\d{14})(Z?)")
MAX_LINE = 8192


@dataclass(frozen=True)
class AllowedSigner:
    """One line of an allowed_signers file."""

    line: int
    principals: str
    key: PublicKey | None  # None: a key type tofu3 cannot use (the line never matches)
    cert_authority: bool = False
    namespaces: str | None = None
    valid_after: datetime | None = None
    valid_before: datetime | None = None

    def permits(self, key: PublicKey, namespace: str, when: datetime) -> bool:
        """Whether this line lets ``key`` sign in ``namespace`` at ``when``."""
        if self.cert_authority or self.key is None or self.key.blob != key.blob:
            return False
        if self.namespaces is not None and not match_pattern_list(namespace, self.namespaces):
            return False
        if self.valid_after is not None and when < self.valid_after:
            return False
        return self.valid_before is None or when <= self.valid_before


def match_pattern(text: str, pattern: str) -> bool:
    """OpenSSH's match_pattern: ``*`` any run, ``?`` any one character, case-sensitive."""
    expression = "".join(
        ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern
    )
    return re.fullmatch(expression, text, flags=re.DOTALL) is not None


def match_pattern_list(text: str, patterns: str) -> bool:
    """OpenSSH's match_pattern_list: some pattern matches and no negated one does."""
    positive = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        if match_pattern(text, pattern[1:] if negated else pattern):
            if negated:
                return False
            positive = True
    return positive


def parse_allowed_signers(text: str, source: str) -> list[AllowedSigner]:
    """Every signer in an allowed_signers file's text; raise AllowedSignersError naming the
    line of the first malformed one."""
    signers = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip(" \t\r\n")
        if not line or line.startswith("#"):
            continue
        if len(line) > MAX_LINE:
            raise AllowedSignersError(f"{source}:{number}: line too long")
        try:
            signers.append(_parse_line(line, number))
        except ValueError as exc:
            raise AllowedSignersError(f"{source}:{number}: {exc}") from None
    return signers


def _parse_line(line: str, number: int) -> AllowedSigner:
    principals, rest = _principals(line)
    if not principals:
        raise ValueError("empty principals")
    fields = rest.split(maxsplit=1)
    options = ""
    if fields and not _is_key_type(fields[0]):
        options, rest = _split_options(rest)
        fields = rest.split(maxsplit=1)
    if not fields:
        raise ValueError("missing key")
    key_fields = rest.split()
    if not _is_key_type(key_fields[0]) or len(key_fields) < 2:
        raise ValueError("invalid key")
    key: PublicKey | None = None
    if key_fields[0] in KEY_TYPES:
        try:
            key = PublicKey.from_openssh(" ".join(key_fields[:2]))
        except SignatureError as exc:
            raise ValueError(f"invalid key: {exc}") from None
    signer = AllowedSigner(line=number, principals=principals, key=key)
    return _with_options(signer, options)


def _is_key_type(word: str) -> bool:
    return word in KEY_TYPES or word in _OTHER_KEY_TYPES or word.endswith("-cert-v01@openssh.com")


def _principals(line: str) -> tuple[str, str]:
    if line.startswith('"'):
        end = line.find('"', 1)
        if end < 0:
            raise ValueError("unterminated quoted principals")
        return line[1:end], line[end + 1 :].lstrip(" \t")
    fields = line.split(maxsplit=1)
    return fields[0], fields[1] if len(fields) > 1 else ""


def _split_options(text: str) -> tuple[str, str]:
    """The options word (spaces allowed only inside double quotes) and what follows."""
    quoted = False
    index = 0
    while index < len(text):
        ch = text[index]
        if ch == "\\" and quoted and text[index + 1 : index + 2] == '"':
            index += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch in " \t" and not quoted:
            return text[:index], text[index:].lstrip(" \t")
        index += 1
    if quoted:
        raise ValueError("unterminated quote in options")
    return text, ""


def _with_options(signer: AllowedSigner, options: str) -> AllowedSigner:
    values: dict[str, str] = {}
    ca = False
    rest = options
    while rest:
        if rest[: len("cert-authority")].lower() == "cert-authority":
            ca = True
            rest = rest[len("cert-authority") :]
        else:
            match = re.match(
                r"(namespaces|valid-after|valid-before)=\"((?:[^\"\\]|\\.)*)\"", rest, re.I
            )
            if match is None:
                raise ValueError(f"unknown or malformed option at {rest[:40]!r}")
            name = match.group(1).lower()
            if name in values:
                raise ValueError(f'multiple "{name}" clauses')
            values[name] = match.group(2).replace('\\"', '"')
            rest = rest[match.end() :]
        if rest:
            if not rest.startswith(",") or rest == ",":
                raise ValueError(f"malformed options near {rest[:40]!r}")
            rest = rest[1:]
    after = _time(values["valid-after"]) if "valid-after" in values else None
    before = _time(values["valid-before"]) if "valid-before" in values else None
    if after is not None and before is not None and before <= after:
        raise ValueError('"valid-before" time is before "valid-after"')
    return AllowedSigner(
        line=signer.line,
        principals=signer.principals,
        key=signer.key,
        cert_authority=ca,
        namespaces=values.get("namespaces"),
        valid_after=after,
        valid_before=before,
    )


def _time(text: str) -> datetime:
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid time {text!r} (YYYYMMDD[HHMM[SS]][Z])")
    digits = match.group(1).ljust(14, "0")
    try:
        naive = datetime.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        raise ValueError(f"invalid time {text!r}") from None
    if match.group(2):
        return naive.replace(tzinfo=timezone.utc)
    return naive.astimezone()  # local time, as ssh-keygen reads it


def principals_for(
    signers: list[AllowedSigner],
    key: PublicKey,
    namespace: str,
    *,
    identity: str | None,
    when: datetime,
) -> list[str]:
    """The principals that may sign with ``key`` in ``namespace`` at ``when``: ``[identity]``
    when an identity is given and allowed; with no identity, every principal list that
    allows the key. Raise SignatureError when there is none."""
    if identity is not None:
        for signer in signers:
            if match_pattern_list(identity, signer.principals) and signer.permits(
                key, namespace, when
            ):
                return [identity]
        raise SignatureError(
            f"no allowed signer lets {identity!r} sign with {key.label} key {key.fingerprint} "
            f"in namespace {namespace!r}"
        )
    found = [s.principals for s in signers if s.permits(key, namespace, when)]
    if not found:
        raise SignatureError(
            f"no allowed signer holds {key.label} key {key.fingerprint} for namespace {namespace!r}"
        )
    return found
