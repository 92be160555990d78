"""The `[records]` section of config.toml: digital school records, signing deadlines, reminders, signers.

Kept beside the signing code (core/config.py composes it into `Settings`); secrets are named by
environment variable, never written here.
"""

from __future__ import annotations

from typing import Literal

from edudesk.core.configbase import NonNegFloat, NonNegInt, Section


class IssuerSettings(Section):
    """The school's organisation credential for the issuing signature (PKCS#11 token, or a PKCS#12 file)."""

    kind: Literal["pkcs11", "pkcs12"] = "pkcs12"
    pkcs11_module: str = "/usr/lib/softhsm/libsofthsm2.so"
    token_label: str = ""
    key_label: str = ""
    pin_env: str = "EDUDESK_ISSUER_PIN"
    pkcs12_path: str = ""
    passphrase_env: str = "EDUDESK_ISSUER_PASSPHRASE"


class SmartCaSettings(Section):
    """VNPT SmartCA (remote signing, not CSC): the service provider's credentials."""

    url: str = ""
    sp_id: str = ""
    sp_password_env: str = "EDUDESK_SMARTCA_SP_PASSWORD"
    poll_seconds: NonNegFloat = 5.0


class CscSettings(Section):
    """A Cloud Signature Consortium API v1 provider."""

    url: str = ""
    token_env: str = "EDUDESK_CSC_TOKEN"


class RecordsSettings(Section):
    school: str = ""  # "" = [institution].name (core/signing/recordtext.py school_name; a roster may only repeat it)
    place: str = ""  # the signature page's date line: "Hà Nội" -> "Hà Nội, ngày 05 tháng 3 năm 2026"
    year: str = ""
    stage_days: NonNegFloat = 7.0  # each teacher's time to sign once their turn opens
    remind_before_hours: NonNegFloat = 24.0
    quiet_hours: str = "21:00-07:00"  # local time; reminders wait for the morning
    notice_delay_seconds: NonNegFloat = 30.0  # turns opening within this time make one "sign now" message
    warn_days: NonNegInt = 14  # pre-flight: a certificate expiring sooner is warned about
    # Inside the leadership stage: "principal_last" (seed 004: vice principals in parallel, then the principal,
    # marked "Hiệu trưởng" in the roster's Chức vụ column) or "parallel" (everyone at once).
    leadership_order: Literal["parallel", "principal_last"] = "principal_last"
    trusted_roots: tuple[str, ...] = ()  # CA certificates (PEM/DER files) signatures must chain to
    crls: tuple[str, ...] = ()
    demo_dir: str = "{data_dir}/records-demo"  # `records demo` keeps its CA and keys here
    # PAdES baseline level (core/signing/pades.py): "" = B-LT when tsa_url is set, else B-B. Teachers' signatures
    # reach at most B-LT; "B-LTA" adds a document timestamp after the issuing signature (renewed by refresh-ltv).
    ltv: Literal["", "B-B", "B-T", "B-LT", "B-LTA"] = ""
    tsa_url: str = ""  # RFC 3161 timestamping authority
    tsa_username: str = ""  # HTTP basic authentication at the TSA, when it asks for it
    tsa_password_env: str = "EDUDESK_TSA_PASSWORD"
    tsa_timeout_seconds: NonNegFloat = 10.0
    refresh_before_days: NonNegInt = 180  # refresh-ltv: a new archival timestamp this long before the last expires
    issuer: IssuerSettings = IssuerSettings()
    smartca: SmartCaSettings = SmartCaSettings()
    csc: CscSettings = CscSettings()
