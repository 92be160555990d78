"""The `[records]` section of config.toml: digital school records, signing deadlines, reminders, signers.

Kept beside the signing code (core/config.py composes it into `Settings`); secrets are named by
environment variable, never written here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class IssuerSettings:
    """The school's organisation credential for the issuing signature (PKCS#11 token, or a PKCS#12 file)."""

    kind: str = "pkcs12"  # "pkcs11" | "pkcs12"
    pkcs11_module: str = "/usr/lib/softhsm/libsofthsm2.so"
    token_label: str = ""
    key_label: str = ""
    pin_env: str = "EDUDESK_ISSUER_PIN"
    pkcs12_path: str = ""
    passphrase_env: str = "EDUDESK_ISSUER_PASSPHRASE"


@dataclass(frozen=True)
class SmartCaSettings:
    """VNPT SmartCA (remote signing, not CSC): the service provider's credentials."""

    url: str = ""
    sp_id: str = ""
    sp_password_env: str = "EDUDESK_SMARTCA_SP_PASSWORD"
    poll_seconds: float = 5.0


@dataclass(frozen=True)
class CscSettings:
    """A Cloud Signature Consortium API v1 provider."""

    url: str = ""
    token_env: str = "EDUDESK_CSC_TOKEN"


@dataclass(frozen=True)
class RecordsSettings:
    school: str = ""
    year: str = ""
    stage_days: float = 7.0  # each teacher's time to sign once their turn opens
    remind_before_hours: float = 24.0
    quiet_hours: str = "21:00-07:00"  # local time; reminders wait for the morning
    notice_delay_seconds: float = 30.0  # turns opening within this time make one "sign now" message
    warn_days: int = 14  # pre-flight: a certificate expiring sooner is warned about
    trusted_roots: tuple[str, ...] = ()  # CA certificates (PEM/DER files) signatures must chain to
    crls: tuple[str, ...] = ()
    demo_dir: str = "{data_dir}/records-demo"  # `records demo` keeps its CA and keys here
    issuer: IssuerSettings = field(default_factory=IssuerSettings)
    smartca: SmartCaSettings = field(default_factory=SmartCaSettings)
    csc: CscSettings = field(default_factory=CscSettings)
