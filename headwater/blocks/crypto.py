"""The key that encrypts block secrets at rest, kept in a file beside the database.

Secret fields are stored as Fernet tokens (AES-128-CBC with an HMAC-SHA256, from the
``cryptography`` package): a copied database file alone does not reveal them. The key lives in
``blocks.key`` next to the SQLite file (``<HEADWATER_HOME>/blocks.key`` by default), so every
process that shares the database shares the key. It is created on the first save of a secret,
readable by its owner only (mode 0600), and refused if anyone else may read it: a key that
others can read protects nothing, and saying so beats encrypting with it silently.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from headwater.exceptions import BlockKeyError
from headwater.settings import Settings, get_settings
from headwater.storage.sqlite import database_path

__all__ = ["KEY_FILE_NAME", "decrypt", "encrypt", "key_path", "load_fernet"]

KEY_FILE_NAME = "blocks.key"


def key_path(settings: Settings | None = None) -> Path:
    """Where the key for the current database lives: beside the database file."""
    return database_path(settings or get_settings()).parent / KEY_FILE_NAME


def load_fernet(*, create: bool, settings: Settings | None = None) -> Fernet | None:
    """Read the key file (creating it with mode 0600 when ``create``) and return its cipher.

    Returns:
        The cipher, or None when the file does not exist and ``create`` is False.

    Raises:
        BlockKeyError: the file is readable or writable by others, cannot be read, or does
            not hold a key; the message names the file and what to do, never the key.
    """
    path = key_path(settings)
    if not path.exists():
        if not create:
            return None
        _create(path)
    _check_permissions(path)
    try:
        raw = path.read_bytes().strip()
    except OSError as exc:
        raise BlockKeyError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    try:
        return Fernet(raw)
    except (ValueError, TypeError):
        raise BlockKeyError(
            str(path),
            "does not hold a valid key (expected 32 url-safe base64-encoded bytes); "
            "restore the original file, or remove it only if no secret was ever saved",
        ) from None


def encrypt(fernet: Fernet, plaintext: bytes) -> str:
    """Encrypt ``plaintext`` into a printable token."""
    return fernet.encrypt(plaintext).decode("ascii")


def decrypt(fernet: Fernet, token: str, *, what: str, settings: Settings | None = None) -> bytes:
    """Decrypt a token made by :func:`encrypt`.

    Args:
        what: what the token belongs to, for the error message (e.g. "secret block 'db'").

    Raises:
        BlockKeyError: the token was made with another key (the key file was replaced).
    """
    try:
        return fernet.decrypt(token.encode("ascii"))
    except (InvalidToken, ValueError, UnicodeEncodeError):
        raise BlockKeyError(
            str(key_path(settings)),
            f"cannot decrypt the secret fields of the {what}: they were saved with another "
            "key (was the key file replaced or deleted?)",
        ) from None


def _check_permissions(path: Path) -> None:
    if os.name == "nt":  # POSIX modes mean nothing there; NTFS ACLs guard the profile
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise BlockKeyError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    if mode & 0o077:
        raise BlockKeyError(
            str(path),
            f"has permissions {mode:04o}, so other users may read the key that protects block "
            f"secrets; make it private with: chmod 600 {path}",
        )


def _create(path: Path) -> None:
    # Written under a unique temporary name, then linked into place: another process
    # creating the key at the same moment either wins (and we use its key) or loses, but
    # nobody ever reads a half-written file.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(descriptor, 0o600)  # the umask may only have narrowed it; be exact
            os.write(descriptor, Fernet.generate_key() + b"\n")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    except OSError as exc:
        raise BlockKeyError(str(path), f"cannot be created ({exc.strerror or exc})") from None
