"""The SSH wire encoding (RFC 4251 section 5): uint32, string, mpint; and the armor of SSHSIG.

Everything read here is untrusted: the reader is bounded and raises SignatureError on any
malformed input rather than IndexError or struct.error.
"""

from __future__ import annotations

import base64
import binascii
import struct

from tofu3.errors import SignatureError

# No field tofu3 reads is anywhere near this (an RSA-16384 key is 2 KiB).
MAX_FIELD_BYTES = 64 * 1024


def uint32(value: int) -> bytes:
    """A big-endian uint32."""
    return struct.pack(">I", value)


def string(value: bytes | str) -> bytes:
    """An SSH string: uint32 length, then the bytes."""
    data = value.encode() if isinstance(value, str) else value
    return uint32(len(data)) + data


def mpint(value: int) -> bytes:
    """An SSH mpint: two's complement, big-endian, minimal, as a string."""
    if value == 0:
        return string(b"")
    length = (value.bit_length() + 8) // 8  # one spare bit keeps positive numbers positive
    return string(value.to_bytes(length, "big", signed=True))


class Reader:
    """Reads SSH wire fields from ``data``, refusing to run past its end."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._at = 0
        self._what = what

    def _take(self, count: int) -> bytes:
        if count < 0 or self._at + count > len(self._data):
            raise SignatureError(f"{self._what} is truncated")
        chunk = self._data[self._at : self._at + count]
        self._at += count
        return chunk

    def raw(self, count: int) -> bytes:
        """``count`` bytes as they are."""
        return self._take(count)

    def uint32(self) -> int:
        """A big-endian uint32."""
        value: int = struct.unpack(">I", self._take(4))[0]
        return value

    def string(self) -> bytes:
        """An SSH string's bytes."""
        length = self.uint32()
        if length > MAX_FIELD_BYTES:
            raise SignatureError(f"{self._what} has a field of {length} bytes")
        return self._take(length)

    def text(self) -> str:
        """An SSH string that must be UTF-8."""
        try:
            return self.string().decode()
        except UnicodeDecodeError:
            raise SignatureError(f"{self._what} has a field that is not UTF-8") from None

    def mpint(self) -> int:
        """A non-negative SSH mpint."""
        data = self.string()
        value = int.from_bytes(data, "big", signed=True)
        if value < 0:
            raise SignatureError(f"{self._what} has a negative number")
        return value

    def end(self) -> None:
        """Require that everything was read."""
        if self._at != len(self._data):
            raise SignatureError(f"{self._what} has {len(self._data) - self._at} trailing bytes")


_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_LINE = 70  # what ssh-keygen writes (PROTOCOL.sshsig allows up to 76)


def armor(blob: bytes) -> bytes:
    """The armored form of an SSHSIG blob, as ``ssh-keygen -Y sign`` writes it."""
    encoded = base64.b64encode(blob).decode()
    lines = [encoded[i : i + _LINE] for i in range(0, len(encoded), _LINE)]
    return ("\n".join([_BEGIN, *lines, _END]) + "\n").encode()


def dearmor(text: bytes) -> bytes:
    """The SSHSIG blob inside an armored signature."""
    try:
        lines = text.decode("ascii").strip().splitlines()
    except UnicodeDecodeError:
        raise SignatureError("the signature file is not ASCII") from None
    if len(lines) < 3 or lines[0].strip() != _BEGIN or lines[-1].strip() != _END:
        raise SignatureError(f"the signature file is not between {_BEGIN} and {_END}")
    try:
        return base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("the signature file is not valid base64") from None
