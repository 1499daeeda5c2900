"""The keystore directory: a node's signing key on disk (docs/PROTOCOL.md §Keystore).

The key is sealed with a passphrase by default. ``--dev-unencrypted`` writes the seed in clear to
a file whose name says so, for throw-away local networks; every load of such a key warns.
Files are written atomically (temp file, fsync, rename) with mode 0600, so a crash never leaves
a half-written key and other users cannot read it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from protocol.errors import KeystoreError
from protocol.keys import SigningKey
from protocol.keystore import (
    NONCE_BYTES,
    SALT_BYTES,
    SCRYPT_DEFAULT,
    OpenedKey,
    ScryptParams,
    open_key,
    seal_key,
    seal_key_unencrypted,
)

log = logging.getLogger(__name__)

SEALED_NAME = "node.key"
UNENCRYPTED_NAME = "node.UNENCRYPTED-DEV-ONLY.key"
PASSPHRASE_ENV = "POI_KEY_PASSPHRASE"


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def create_key(directory: Path, passphrase: str | None, *, dev_unencrypted: bool = False,
               params: ScryptParams = SCRYPT_DEFAULT, key: SigningKey | None = None) -> Path:
    """Generate (or take) a key and write it into ``directory``; refuse to overwrite one."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = [p for p in (directory / SEALED_NAME, directory / UNENCRYPTED_NAME) if p.exists()]
    if existing:
        raise KeystoreError(f"a key already exists at {existing[0]}; refusing to overwrite it")
    key = key or SigningKey.generate()
    if dev_unencrypted:
        path = directory / UNENCRYPTED_NAME
        write_atomic(path, seal_key_unencrypted(key))
        log.warning("wrote an UNENCRYPTED development key to %s: never bond real stake to it",
                    path)
        return path
    if not passphrase:
        raise KeystoreError(f"a passphrase is needed (set {PASSPHRASE_ENV}), or choose the "
                            "unencrypted development mode explicitly")
    path = directory / SEALED_NAME
    write_atomic(path, seal_key(key, passphrase, salt=os.urandom(SALT_BYTES),
                                nonce=os.urandom(NONCE_BYTES), params=params))
    return path


def load_key(directory: Path, passphrase: str | None) -> OpenedKey:
    """Open the node's key; warn loudly when it is an unencrypted development key."""
    sealed, clear = directory / SEALED_NAME, directory / UNENCRYPTED_NAME
    if sealed.exists() and clear.exists():
        raise KeystoreError(f"both {sealed.name} and {clear.name} exist in {directory}: "
                            "remove the one you do not mean")
    path = sealed if sealed.exists() else clear
    if not path.exists():
        raise KeystoreError(f"no key in {directory}: run `poi init` first")
    opened = open_key(path.read_bytes(), passphrase)
    if opened.unencrypted:
        log.warning("using an UNENCRYPTED development key from %s", path)
    return opened
