"""Symmetric encryption for secrets that must be readable again (legacy app secrets, provider
credentials): Fernet, keyed by FIELD_ENCRYPTION_KEY or, failing that, a key derived from
SECRET_KEY."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

_PREFIX = "fernet:"


def _fernet() -> MultiFernet:
    """FIELD_ENCRYPTION_KEY may list several keys, newest first: data encrypted with an older
    key stays readable while `rotate` re-encrypts it."""
    configured = [key.strip() for key in settings.FIELD_ENCRYPTION_KEY.split(",") if key.strip()]
    if configured:
        return MultiFernet([Fernet(key.encode()) for key in configured])
    digest = hashlib.sha256(("field-encryption:" + settings.SECRET_KEY).encode()).digest()
    return MultiFernet([Fernet(base64.urlsafe_b64encode(digest))])


def encrypt(plaintext: str) -> str:
    return _PREFIX + _fernet().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(_PREFIX):
        return stored
    try:
        return _fernet().decrypt(stored[len(_PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise ValueError("encrypted field cannot be read with the configured key") from exc


class EncryptedTextField(models.TextField):
    """Stores `fernet:<token>`; Python code sees the plaintext."""

    def from_db_value(self, value, expression, connection):  # noqa: ANN001, ANN201
        return None if value is None else decrypt(value)

    def get_prep_value(self, value):  # noqa: ANN001, ANN201
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)
