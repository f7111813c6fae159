"""Symmetric encryption for secrets that must be readable again (legacy app secrets, provider
credentials): Fernet, keyed by FIELD_ENCRYPTION_KEY only. There is deliberately no fallback (a
key derived from SECRET_KEY would let anyone holding a copy of the database and the SECRET_KEY,
or a guessed one, decrypt offline); settings refuse to start without a valid key."""

from functools import lru_cache

from cryptography.fernet import InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

from notify.keys import fernet_keys

_PREFIX = "fernet:"


@lru_cache(maxsize=4)
def _multi_fernet(configured: str) -> MultiFernet:
    return MultiFernet(fernet_keys(configured))


def _fernet() -> MultiFernet:
    """FIELD_ENCRYPTION_KEY may list several keys, newest first: the first encrypts, every one
    decrypts, so data encrypted with an older key stays readable after a rotation."""
    return _multi_fernet(settings.FIELD_ENCRYPTION_KEY)


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
