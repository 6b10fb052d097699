"""Encryption at rest: AES-256-GCM resource bodies and HMAC blind indexes.

Every stored body (current and historical versions) is sealed as
``MAGIC | key id | nonce | ciphertext+tag`` with AES-256-GCM under the keyring's active
key. The resource's ``type/id/version`` is the associated data, so a sealed body copied
onto another row fails to open instead of passing for that row's content. A body that
does not start with the magic byte is plain JSON (written before encryption was on) and
is returned as it is; ``medfusion keys rotate`` seals such rows too.

Search index values of identifying parameters are stored as *blind indexes*: a keyed
HMAC-SHA256 of the normalised value, truncated to 128 bits. Equality still works (the
query value is hashed the same way), and the default string search (prefix) works
because a value is indexed under the hash of each of its prefixes.

The keyring lives in a JSON file created with mode 0600 on first use (or comes from
``MEDFUSION_ENCRYPTION_KEY``); older keys stay in it so that reads continue while
``keys rotate`` re-seals rows under a new active key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medfusion.errors import EncryptionError

__all__ = ["MAGIC", "Keyring", "load_keyring"]

MAGIC = b"\x01"  # never the first byte of a JSON document
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_HEADER = len(MAGIC) + _KEY_ID_BYTES + _NONCE_BYTES


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise EncryptionError(f"{what} is not valid base64") from None
    if len(raw) != 32:
        raise EncryptionError(f"{what} must be 32 bytes (256 bits), not {len(raw)}")
    return raw


@dataclass
class Keyring:
    """The data keys and the blind-index key.

    Parameters
    ----------
    keys
        Key id (8 hex digits) to 32-byte AES key; every one can decrypt.
    active
        Id of the key new bodies are sealed with.
    index_key
        32-byte HMAC key of the blind indexes (not rotated: that would rewrite every index row).
    """

    keys: dict[str, bytes]
    active: str
    index_key: bytes
    _aead: dict[bytes, AESGCM] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise EncryptionError(f"the active key {self.active} is not in the keyring")
        self._aead = {bytes.fromhex(kid): AESGCM(key) for kid, key in self.keys.items()}
        self._active_id = bytes.fromhex(self.active)
        self._active = self._aead[self._active_id]

    @classmethod
    def generate(cls) -> Keyring:
        """A fresh keyring with one random data key and a random index key."""
        kid = secrets.token_hex(_KEY_ID_BYTES)
        return cls({kid: AESGCM.generate_key(bit_length=256)}, kid, secrets.token_bytes(32))

    @classmethod
    def from_secret(cls, secret: bytes) -> Keyring:
        """A keyring derived from one 32-byte secret (``MEDFUSION_ENCRYPTION_KEY``)."""
        data = hmac.new(secret, b"medfusion data key", hashlib.sha256).digest()
        index = hmac.new(secret, b"medfusion blind index key", hashlib.sha256).digest()
        kid = hashlib.sha256(data).hexdigest()[: 2 * _KEY_ID_BYTES]
        return cls({kid: data}, kid, index)

    # -- bodies ---------------------------------------------------------------------
    def seal(self, body: bytes, aad: bytes) -> bytes:
        """Encrypt ``body`` under the active key, bound to ``aad`` (``type/id/version``)."""
        nonce = os.urandom(_NONCE_BYTES)
        return MAGIC + self._active_id + nonce + self._active.encrypt(nonce, body, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a sealed body; plain JSON (written before encryption) passes through."""
        if not blob.startswith(MAGIC):
            return blob
        aead = self._aead.get(blob[1 : 1 + _KEY_ID_BYTES])
        if aead is None:
            raise EncryptionError("a stored body is sealed with a key that is not in the keyring")
        try:
            return aead.decrypt(blob[1 + _KEY_ID_BYTES : _HEADER], blob[_HEADER:], aad)
        except InvalidTag:
            raise EncryptionError("a stored body failed its integrity check") from None

    def knows(self, blob: bytes) -> bool:
        """True when ``blob`` is plain JSON or sealed under a key of this keyring."""
        return not blob.startswith(MAGIC) or blob[1 : 1 + _KEY_ID_BYTES] in self._aead

    def sealed_with_active(self, blob: bytes) -> bool:
        """True when ``blob`` is sealed under the active key (nothing for rotation to do)."""
        return blob.startswith(MAGIC) and blob[1 : 1 + _KEY_ID_BYTES] == self._active_id

    # -- blind indexes --------------------------------------------------------------
    def blind(self, value: str) -> str:
        """The blind index of a normalised value: 32 hex digits of HMAC-SHA256."""
        # hmac.digest: OpenSSL's one-shot HMAC, a third of the cost of an hmac.new object
        return hmac.digest(self.index_key, value.encode(), "sha256").hex()[:32]

    # -- rotation and storage -------------------------------------------------------
    def rotated(self) -> Keyring:
        """A keyring with a new active data key; the old keys stay readable."""
        kid = secrets.token_hex(_KEY_ID_BYTES)
        return Keyring({**self.keys, kid: AESGCM.generate_key(bit_length=256)}, kid, self.index_key)

    def retire_others(self) -> Keyring:
        """Only the active key (once no row is sealed under the others)."""
        return Keyring({self.active: self.keys[self.active]}, self.active, self.index_key)

    def to_json(self) -> bytes:
        document = {
            "active": self.active,
            "keys": {kid: _b64(key) for kid, key in self.keys.items()},
            "index_key": _b64(self.index_key),
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, raw: bytes, source: str) -> Keyring:
        try:
            document = orjson.loads(raw)
            keys: Mapping[str, str] = document["keys"]
            return cls(
                {kid: _unb64(key, f"key {kid} in {source}") for kid, key in keys.items()},
                str(document["active"]),
                _unb64(document["index_key"], f"index_key in {source}"),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise EncryptionError(f"the keyring {source} is not a medfusion key file") from None

    def save(self, path: Path) -> None:
        """Write the keyring atomically, readable by the owner only (mode 0600)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(self.to_json())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)


def load_keyring(*, secret: str | None, key_file: Path) -> Keyring:
    """The keyring from ``secret`` (base64 of 32 bytes) or ``key_file``, creating the file.

    A missing key file is created (mode 0600) with fresh keys; concurrent first starts
    agree on one file because it is published with an exclusive hard link.
    """
    if secret:
        return Keyring.from_secret(_unb64(secret, "MEDFUSION_ENCRYPTION_KEY"))
    if not key_file.exists():
        fresh = Keyring.generate()
        staging = key_file.with_name(f".{key_file.name}.{secrets.token_hex(4)}.new")
        fresh.save(staging)
        try:
            os.link(staging, key_file)  # fails if another process published first
        except FileExistsError:
            pass
        finally:
            staging.unlink(missing_ok=True)
    mode = key_file.stat().st_mode & 0o777
    if mode & 0o077:
        raise EncryptionError(f"the key file {key_file} is readable by others (mode {mode:o}); chmod 600 it")
    return Keyring.from_json(key_file.read_bytes(), str(key_file))
