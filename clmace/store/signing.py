"""Ed25519 signatures for compiled-program files: key files, sign, verify, and a file's signature status.

The signature block (docs/FORMAT.md) is `u32 algorithm (1 = Ed25519)`, the 32-byte sha256 of the signer's raw
public key (its fingerprint), then the 64-byte signature of every file byte before the block.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from clmace.core.errors import ClmaceError
from clmace.store.format import ProgramFile, signed_part

ALGORITHM_ED25519 = 1
_BLOCK = struct.Struct("<I32s64s")
BLOCK_SIZE = _BLOCK.size

PublicKeyLike = Ed25519PublicKey | str | os.PathLike
PrivateKeyLike = Ed25519PrivateKey | str | os.PathLike


class SigningKeyError(ClmaceError, ValueError):
    """A key file is missing, unreadable, or not an Ed25519 key in PEM form."""


class SignatureError(ClmaceError):
    """A signature block is malformed, made by an untrusted key, or does not match the signed bytes."""


# ---------------------------------------------------------------- keys


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_fingerprint(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """sha256 hex of the raw 32-byte public key: how files, logs and `inspect` name a key."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return hashlib.sha256(_raw_public(key)).hexdigest()


def _write_new(path: str, data: bytes, mode: int, overwrite: bool) -> None:
    """Create `path` with `mode` from the start, so a private key is never readable by others, even briefly."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask, and ignored for an existing file
        os.write(fd, data)
    finally:
        os.close(fd)


def generate_keypair(private_path: str | os.PathLike, public_path: str | os.PathLike,
                     overwrite: bool = False) -> str:
    """Write a new Ed25519 key pair as PEM files (private one mode 0600); returns the key's fingerprint."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(os.fspath(private_path), private_pem, 0o600, overwrite)
    _write_new(os.fspath(public_path), public_pem, 0o644, overwrite)
    return key_fingerprint(key)


def _read_pem(path: str | os.PathLike, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise SigningKeyError(f"{what} {os.fspath(path)}: cannot read ({e.strerror or e})") from None


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """Read an unencrypted PEM (PKCS#8) Ed25519 private key."""
    try:
        key = serialization.load_pem_private_key(_read_pem(path, "private key"), password=None)
    except (ValueError, TypeError) as e:
        raise SigningKeyError(f"private key {os.fspath(path)}: not a PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"private key {os.fspath(path)}: {type(key).__name__}, not Ed25519")
    return key


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    """Read a PEM (SubjectPublicKeyInfo) Ed25519 public key."""
    try:
        key = serialization.load_pem_public_key(_read_pem(path, "public key"))
    except (ValueError, TypeError) as e:
        raise SigningKeyError(f"public key {os.fspath(path)}: not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"public key {os.fspath(path)}: {type(key).__name__}, not Ed25519")
    return key


def trusted_key_paths(paths: Sequence[str | os.PathLike] | None = None) -> list[str]:
    """`paths` plus those in $CLMACE_TRUSTED_KEYS (os.pathsep-separated), duplicates dropped."""
    env = os.environ.get("CLMACE_TRUSTED_KEYS", "")
    return list(dict.fromkeys([*(os.fspath(p) for p in paths or []), *(p for p in env.split(os.pathsep) if p)]))


def _public(key: PublicKeyLike) -> Ed25519PublicKey:
    return key if isinstance(key, Ed25519PublicKey) else load_public_key(key)


# ---------------------------------------------------------------- signing and verifying


def sign(data: bytes, private_key: PrivateKeyLike) -> bytes:
    """The signature block for `data`: algorithm, signer's key fingerprint, Ed25519 signature."""
    key = private_key if isinstance(private_key, Ed25519PrivateKey) else load_private_key(private_key)
    return _BLOCK.pack(ALGORITHM_ED25519, bytes.fromhex(key_fingerprint(key)), key.sign(bytes(data)))


def signer(private_key: PrivateKeyLike) -> Callable[[bytes], bytes]:
    """A `bytes -> signature block` function for `format.dumps(..., signer=)` (the key is read once, now)."""
    key = private_key if isinstance(private_key, Ed25519PrivateKey) else load_private_key(private_key)
    return lambda data: sign(data, key)


def block_key_id(signature: bytes) -> str:
    """The signer's key fingerprint recorded in a signature block; SignatureError if the block is malformed."""
    if len(signature) != BLOCK_SIZE:
        raise SignatureError(f"malformed signature block ({len(signature)} bytes, expected {BLOCK_SIZE})")
    algorithm, key_id, _ = _BLOCK.unpack(signature)
    if algorithm != ALGORITHM_ED25519:
        raise SignatureError(f"signature algorithm {algorithm} is unknown (this clmace knows 1 = Ed25519)")
    return key_id.hex()


def verify(data: bytes, signature: bytes, public_keys: Sequence[PublicKeyLike]) -> str:
    """Check a signature block over `data` against trusted keys; the signer's fingerprint, or SignatureError."""
    key_id = block_key_id(signature)
    _, _, sig = _BLOCK.unpack(signature)
    keys = {key_fingerprint(k): k for k in map(_public, public_keys)}
    key = keys.get(key_id)
    if key is None:
        raise SignatureError(f"signed by key {key_id}, which is not among the {len(keys)} trusted key(s)")
    try:
        key.verify(sig, bytes(data))
    except InvalidSignature:
        raise SignatureError(f"signature by key {key_id} does not match the file's contents "
                             "(modified after signing)") from None
    return key_id


# ---------------------------------------------------------------- a file's status


@dataclass(frozen=True)
class SignatureStatus:
    """Signature verdict of one file: 'unsigned', 'valid', 'invalid' or 'unverified' (no trusted key given)."""

    state: str
    key_id: str | None = None
    reason: str = ""

    def describe(self) -> str:
        """One line for logs and `clmace inspect`."""
        if self.state == "unsigned":
            return "unsigned"
        who = f"signed by {self.key_id}" if self.key_id else "signature block present"
        if self.state == "unverified":
            return f"{who}, unverified (no trusted key given)"
        return f"{who}, {self.state}" + (f" ({self.reason})" if self.reason else "")


def file_status(data: bytes, pf: ProgramFile, public_keys: Sequence[PublicKeyLike] | None) -> SignatureStatus:
    """Signature status of file bytes `data` that parsed as `pf`; no keys given means 'unverified'."""
    if not pf.signature:
        return SignatureStatus("unsigned", reason="the file carries no signature")
    try:
        key_id = block_key_id(pf.signature)
    except SignatureError as e:
        return SignatureStatus("invalid", None, str(e))
    if not public_keys:
        return SignatureStatus("unverified", key_id)
    try:
        verify(signed_part(data, pf), pf.signature, public_keys)
    except SignatureError as e:
        return SignatureStatus("invalid", key_id, str(e))
    return SignatureStatus("valid", key_id)
