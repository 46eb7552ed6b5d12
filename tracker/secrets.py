"""Credentials for git remotes, stored encrypted (never in plain text in the database).

The key is derived from SECRET_KEY, so a database dump alone does not reveal them; rotating
SECRET_KEY means entering the credentials again.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class CredentialsError(Exception):
    """Stored credentials cannot be decrypted (SECRET_KEY changed, or the value is damaged)."""


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"forkhealth git credentials:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_credentials(username: str, password: str) -> str:
    if not username and not password:
        return ""
    payload = json.dumps({"u": username, "p": password}).encode()
    return _fernet().encrypt(payload).decode()


def decrypt_credentials(token: str) -> tuple[str, str]:
    if not token:
        return "", ""
    try:
        data = json.loads(_fernet().decrypt(token.encode()))
    except (InvalidToken, ValueError):
        raise CredentialsError(
            "stored git credentials cannot be decrypted (was SECRET_KEY changed?); enter them again"
        ) from None
    return data.get("u", ""), data.get("p", "")
