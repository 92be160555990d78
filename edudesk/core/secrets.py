"""Passwords on their way to a requester, sealed at rest (Fernet) so the database never holds them in clear."""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError

# No look-alikes (0/O, 1/l/I): the password is typed from a mail, often on a phone.
_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
_SYMBOLS = "@#%+=-"


def generate_password(length: int = 12) -> str:
    """A random password with upper, lower, digit and symbol (directory policies ask for all four)."""
    length = max(length, 8)
    while True:
        body = [secrets.choice(_ALPHABET) for _ in range(length - 1)]
        body.insert(secrets.randbelow(length), secrets.choice(_SYMBOLS))
        pw = "".join(body)
        if any(c.islower() for c in pw) and any(c.isupper() for c in pw) and any(c.isdigit() for c in pw):
            return pw


class SecretBox:
    """Seal and open short secrets with one key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, secret: str) -> str:
        """Encrypt a secret for storage."""
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """Decrypt a stored secret."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise EdudeskError("Không giải mã được mật khẩu đã lưu (khoá bí mật đã thay đổi?).",
                               code="secret_key") from None


def load_secret_box(settings: Settings) -> SecretBox:
    """The key from the variable named in config (read at start-up), else `<data_dir>/secret.key` (made once,
    0600)."""
    key = settings.secret(settings.general.secret_key_env)
    if key:
        return SecretBox(key.encode())
    path = Path(settings.data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
    return SecretBox(path.read_bytes().strip())
