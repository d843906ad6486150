"""Turn ``--sign-key KEY`` into a Signer.

KEY is one of:

- a private key file (OpenSSH or PEM; ed25519, ecdsa, rsa), readable by its owner only, as
  ssh requires; its passphrase, if any, is asked for through a callback, never taken from argv;
- a public key file (``KEY.pub``): the matching key is used from ssh-agent, as with
  ``ssh-keygen -Y sign -f KEY.pub``;
- ``agent:SHA256:FINGERPRINT``: the agent's key with that fingerprint; ``agent`` alone: the
  agent's only key.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

from tofu3.errors import SignatureError, SigningKeyError
from tofu3.signing.agent import AgentSigner
from tofu3.signing.keys import KEY_TYPES, PublicKey, Signer, private_key_from_bytes

AGENT = "agent"
MAX_KEY_FILE_BYTES = 64 * 1024


def load_signer(spec: str, passphrase: Callable[[], bytes] | None = None) -> Signer:
    """The signer ``spec`` names (see the module docstring)."""
    if spec == AGENT or spec.startswith(f"{AGENT}:"):
        return AgentSigner.select(spec[len(AGENT) + 1 :] or None)
    path = Path(spec).expanduser()
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
            mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise SigningKeyError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise SigningKeyError(f"{path} is too large to be a key")
    first = data.split(maxsplit=1)[0].decode(errors="replace") if data.strip() else ""
    if first in KEY_TYPES:
        try:
            public = PublicKey.from_openssh(data.decode(errors="replace").splitlines()[0])
        except SignatureError as exc:
            raise SigningKeyError(f"{path}: {exc}") from None
        return AgentSigner.select(public)
    if mode & 0o077:
        raise SigningKeyError(
            f"permissions {mode:04o} for {path} are too open: a private key must be readable "
            f"by its owner only (chmod 600 {path})"
        )
    return private_key_from_bytes(data, passphrase, str(path))
