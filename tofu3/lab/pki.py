"""The lab's certificate authority and the server certificate its registry presents.

The lab registry answers for the real names (ghcr.io, registry-1.docker.io, ...), so vantages
verify it with curl's ``--cacert`` pointing at this CA, never with ``--insecure``. Keys are
EC P-256; every file is written atomically and keys are readable by their owner only.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tofu3.atomic import write_atomic

# Every host name the lab impersonates: registries, Docker's token realm and both CDNs.
LAB_NAMES: tuple[str, ...] = (
    "ghcr.io",
    "registry-1.docker.io",
    "auth.docker.io",
    "pkg-containers.githubusercontent.com",
    "production.cloudflare.docker.com",
    "localhost",
)
LAB_IPS: tuple[str, ...] = ("127.0.0.1",)

CA_VALIDITY = datetime.timedelta(days=3650)
SERVER_VALIDITY = datetime.timedelta(days=825)
# Backdate notBefore so a vantage whose clock runs a little behind still accepts the cert.
CLOCK_SKEW = datetime.timedelta(hours=1)
# A server certificate this close to expiry is reissued rather than reused.
RENEW_BEFORE = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Pki:
    """Paths of the lab CA and of the registry's server certificate and key."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class ServerCertificate:
    """Paths of one issued server certificate and its key."""

    cert: Path
    key: Path


def ensure_pki(
    directory: Path, extra_names: Sequence[str] = (), extra_ips: Sequence[str] = ()
) -> Pki:
    """Create (or reuse) the lab CA and the registry certificate in ``directory``.

    Existing files are reused when they still serve: the CA as long as both its files exist,
    the server certificate as long as the CA signed it, it covers every wanted name and
    address, and it is not about to expire. Otherwise the missing piece is (re)issued.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert_path, ca_key_path = directory / "ca.pem", directory / "ca-key.pem"
    if ca_cert_path.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _make_ca(ca_key)
        write_atomic(ca_key_path, _key_pem(ca_key), 0o600)
        write_atomic(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)

    names = _unique([*LAB_NAMES, *extra_names])
    ips = _unique([*LAB_IPS, *extra_ips])
    server_cert_path, server_key_path = directory / "server.pem", directory / "server-key.pem"
    if not (
        server_key_path.exists()
        and server_cert_path.exists()
        and _still_serves(server_cert_path, ca_cert, names, ips)
    ):
        issue_server_cert(directory, ca_cert=ca_cert_path, ca_key=ca_key_path, names=names, ips=ips)
    return Pki(ca_cert_path, ca_key_path, server_cert_path, server_key_path)


def issue_server_cert(
    directory: Path,
    *,
    ca_cert: Path,
    ca_key: Path,
    names: Sequence[str],
    ips: Sequence[str] = (),
    stem: str = "server",
) -> ServerCertificate:
    """Issue a TLS server certificate signed by the CA at ``ca_cert``/``ca_key``.

    Written to ``directory/STEM.pem`` and ``directory/STEM-key.pem``. Tests use another
    ``stem`` to make an impostor that the lab CA vouches for, as a mis-issued certificate
    would be vouched for by a public CA.
    """
    if not names and not ips:
        raise ValueError("a server certificate needs at least one name or address")
    issuer_cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    issuer_key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    if not isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca_key} is not an EC private key")

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    common_name = names[0] if names else ips[0]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + SERVER_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    result = ServerCertificate(directory / f"{stem}.pem", directory / f"{stem}-key.pem")
    # Key first: a certificate on disk without its key would be reused by nobody anyway,
    # but a key without a matching certificate is simply overwritten next time.
    write_atomic(result.key, _key_pem(key), 0o600)
    write_atomic(result.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return result


def _make_ca(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tofu3 lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, "tofu3 lab CA"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=False, cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _key_usage(*, digital_signature: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _still_serves(
    cert_path: Path, ca_cert: x509.Certificate, names: Sequence[str], ips: Sequence[str]
) -> bool:
    """True when the certificate at ``cert_path`` can be reused as it is."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        cert.verify_directly_issued_by(ca_cert)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    have_names = set(sans.get_values_for_type(x509.DNSName))
    have_ips = set(sans.get_values_for_type(x509.IPAddress))
    soon = datetime.datetime.now(datetime.timezone.utc) + RENEW_BEFORE
    return (
        set(names) <= have_names
        and {ipaddress.ip_address(ip) for ip in ips} <= have_ips
        and cert.not_valid_after_utc > soon
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))
