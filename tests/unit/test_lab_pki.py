"""The lab CA vouches for every name the lab impersonates, keeps its keys private, is reused
rather than remade, and can issue an impostor certificate for attack tests."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509

from tofu3.lab.pki import LAB_NAMES, ensure_pki, issue_server_cert


def san(path: Path) -> tuple[set[str], set[str]]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        set(names.get_values_for_type(x509.DNSName)),
        {str(ip) for ip in names.get_values_for_type(x509.IPAddress)},
    )


def test_server_certificate_covers_every_lab_name_and_is_signed_by_the_ca(
    tmp_path: Path,
) -> None:
    pki = ensure_pki(tmp_path, extra_names=["registry.lab.test"], extra_ips=["10.200.0.1"])
    names, ips = san(pki.server_cert)
    assert set(LAB_NAMES) | {"registry.lab.test"} <= names
    assert ips == {"127.0.0.1", "10.200.0.1"}
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    x509.load_pem_x509_certificate(pki.server_cert.read_bytes()).verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_keys_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    for key in (pki.ca_key, pki.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp"))


def test_existing_files_are_reused_and_reissued_only_for_new_names(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path)
    ca, server = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
    again = ensure_pki(tmp_path)
    assert (again.ca_cert.read_bytes(), again.server_cert.read_bytes()) == (ca, server)
    widened = ensure_pki(tmp_path, extra_ips=["127.0.0.9"])
    assert widened.ca_cert.read_bytes() == ca
    assert widened.server_cert.read_bytes() != server
    assert "127.0.0.9" in san(widened.server_cert)[1]


def test_impostor_certificate_from_the_same_ca_is_a_different_key(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    impostor = issue_server_cert(
        tmp_path, ca_cert=pki.ca_cert, ca_key=pki.ca_key, names=["ghcr.io"], stem="impostor"
    )
    assert impostor.cert == tmp_path / "impostor.pem"
    assert impostor.key.read_bytes() != pki.server_key.read_bytes()
    assert san(impostor.cert) == ({"ghcr.io"}, set())
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    x509.load_pem_x509_certificate(impostor.cert.read_bytes()).verify_directly_issued_by(ca)
    # The lab's own certificate is untouched.
    assert "127.0.0.1" in san(pki.server_cert)[1]
