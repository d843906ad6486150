"""Signing with a key held by ssh-agent (through paramiko's agent client).

The private key never enters this process. RSA keys are asked for rsa-sha2-512 signatures
(the agent's SSH_AGENT_RSA_SHA2_512 flag); an agent that answers with anything else is
refused, and every signature the agent returns is checked before it is used.
"""

from __future__ import annotations

import os
from types import TracebackType

import paramiko

from tofu3.errors import SignatureError, SigningKeyError
from tofu3.signing import wire
from tofu3.signing.keys import RSA, RSA_SHA512, PublicKey, verify_signature


class AgentSigner:
    """One key of the running ssh-agent (``$SSH_AUTH_SOCK``)."""

    def __init__(self, agent: paramiko.Agent, key: paramiko.AgentKey, public: PublicKey) -> None:
        self._agent = agent
        self._key = key
        self._public = public

    @classmethod
    def select(cls, wanted: PublicKey | str | None) -> AgentSigner:
        """The agent's key equal to ``wanted`` (a public key, or a ``SHA256:`` fingerprint);
        with None, the agent's only key."""
        if not os.environ.get("SSH_AUTH_SOCK"):
            raise SigningKeyError("no ssh-agent: SSH_AUTH_SOCK is not set")
        try:
            agent = paramiko.Agent()
            keys = agent.get_keys()
        except (paramiko.SSHException, OSError) as exc:
            raise SigningKeyError(f"cannot talk to ssh-agent: {exc}") from None
        usable: list[tuple[paramiko.AgentKey, PublicKey]] = []
        for key in keys:
            try:
                usable.append((key, PublicKey.from_blob(key.asbytes())))
            except SignatureError:
                continue  # certificates, FIDO keys, short RSA keys
        if isinstance(wanted, PublicKey):
            chosen = [pair for pair in usable if pair[1].blob == wanted.blob]
            what = f"{wanted.label} key {wanted.fingerprint}"
        elif wanted is not None:
            chosen = [pair for pair in usable if pair[1].fingerprint == wanted]
            what = f"key {wanted}"
        else:
            chosen = usable
            what = "usable key"
        if len(chosen) != 1:
            agent.close()
            if not chosen:
                raise SigningKeyError(f"ssh-agent holds no {what} (it has {len(usable)} usable)")
            raise SigningKeyError(
                "ssh-agent holds several keys: choose one with --sign-key agent:SHA256:... "
                "or a .pub file"
            )
        key, public = chosen[0]
        return cls(agent, key, public)

    @property
    def public_key(self) -> PublicKey:
        """The public half."""
        return self._public

    def sign(self, data: bytes) -> bytes:
        """An SSH signature blob over ``data``, made by the agent and checked here."""
        algorithm = RSA_SHA512 if self._public.key_type == RSA else None
        try:
            answer: object = self._key.sign_ssh_data(data, algorithm)
        except (paramiko.SSHException, OSError) as exc:
            raise SigningKeyError(f"ssh-agent would not sign: {exc}") from None
        if not isinstance(answer, bytes):  # paramiko returns the signature blob as bytes
            raise SigningKeyError("ssh-agent answered with something that is not a signature")
        blob = answer
        made = wire.Reader(blob, "the agent's signature").text()
        if made != (algorithm or self._public.key_type):
            raise SigningKeyError(f"ssh-agent signed with {made!r}, not {algorithm!r}")
        try:
            verify_signature(self._public, data, blob)
        except SignatureError as exc:
            raise SigningKeyError(f"ssh-agent returned a bad signature: {exc}") from None
        return blob

    def close(self) -> None:
        """Close the connection to the agent."""
        self._agent.close()

    def __enter__(self) -> AgentSigner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
