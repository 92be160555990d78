"""A private SoftHSM2 for tests: its own token folder and config (SOFTHSM2_CONF set for the test only), so
nothing touches the machine's tokens; and the `softhsm` fixture with a helper to load a key and certificate."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edudesk.core.signing.pkcs11 import SOFTHSM_MODULE, Pkcs11Signer, load_into_softhsm, write_softhsm_conf
from edudesk.core.signing.pki import Credential


@dataclass
class SoftHsm:
    """One test's SoftHSM2: where its tokens live, its config, and the PINs of the tokens it makes."""

    root: Path
    conf: Path
    module: str = SOFTHSM_MODULE
    token_label: str = "edudesk-test"
    pin: str = "123456"
    so_pin: str = "12345678"

    async def load(self, cred: Credential, *, token_label: str | None = None, key_label: str = "signer",
                   with_chain: bool = True) -> str:
        """Make a token holding `cred`'s key, certificate (and CA chain); returns the token label."""
        label = token_label or self.token_label
        await load_into_softhsm(conf=self.conf, module=self.module, token_label=label, so_pin=self.so_pin,
                                pin=self.pin, key_der=cred.key_der, cert_der=cred.der,
                                chain=cred.chain_der if with_chain else (), key_label=key_label)
        return label

    def signer(self, *, token_label: str | None = None, key_label: str = "signer",
               pin: str | None = None) -> Pkcs11Signer:
        """A `Pkcs11Signer` on one of this SoftHSM's tokens."""
        return Pkcs11Signer(module=self.module, token_label=token_label or self.token_label,
                            key_label=key_label, pin=self.pin if pin is None else pin)


@pytest.fixture(name="softhsm")
def softhsm_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    """A private SoftHSM2 token folder and SOFTHSM2_CONF for this test; skipped (failed on CI) without it."""
    if not os.path.exists(SOFTHSM_MODULE) or shutil.which("softhsm2-util") is None:
        message = f"SoftHSM2 is not installed ({SOFTHSM_MODULE}, softhsm2-util): apt-get install softhsm2"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path / "softhsm"
    conf = write_softhsm_conf(root / "tokens")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    yield SoftHsm(root, conf, token_label=f"edudesk-{secrets.token_hex(3)}")
