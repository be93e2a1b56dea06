"""age's X25519 keys as text: ``age1...`` recipients and ``AGE-SECRET-KEY-1...`` identities (bech32)."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

_RECIPIENT_HRP = "age"
_IDENTITY_HRP = "AGE-SECRET-KEY-"
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_VALUES = {c: i for i, c in enumerate(_BECH32_CHARSET)}
_BECH32_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


class AgeError(Exception):
    """An age file is malformed, tampered with, truncated, or not for our keys."""


# --- bech32 (BIP 173, without the 90 character limit) ---------------------


def _bech32_polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_BECH32_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: Sequence[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out = []
    mask = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & mask)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & mask)
    elif bits >= from_bits or (acc << (to_bits - bits)) & mask:
        raise ValueError("invalid padding")
    return out


def _bech32_encode(hrp: str, data: bytes) -> str:
    words = _convert_bits(data, 8, 5, pad=True)
    chk = _bech32_polymod(_hrp_expand(hrp) + words + [0] * 6) ^ 1
    words += [(chk >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32_CHARSET[w] for w in words)


def _bech32_decode(text: str) -> tuple[str, bytes]:
    if not text.isascii() or (text.lower() != text and text.upper() != text):
        raise ValueError("not a Bech32 string (non-ASCII or mixed case)")
    lower = text.lower()
    sep = lower.rfind("1")
    if sep < 1 or len(lower) - sep - 1 < 6:
        raise ValueError("not a Bech32 string (no separator or too short)")
    hrp = lower[:sep]
    if any(not 33 <= ord(c) <= 126 for c in hrp):
        raise ValueError("invalid character in Bech32 prefix")
    try:
        words = [_BECH32_VALUES[c] for c in lower[sep + 1 :]]
    except KeyError as exc:
        raise ValueError(f"invalid Bech32 character {exc.args[0]!r}") from None
    if _bech32_polymod(_hrp_expand(hrp) + words) != 1:
        raise ValueError("Bech32 checksum mismatch (typo or truncated key?)")
    return text[:sep], bytes(_convert_bits(words[:-6], 5, 8, pad=False))


# --- keys -------------------------------------------------------------------


def parse_recipient(text: str) -> X25519PublicKey:
    """Parse an ``age1...`` X25519 recipient; ValueError if it is not one."""
    text = text.strip()
    if text.startswith("ssh-"):
        raise ValueError("SSH public keys are not supported as age recipients; use an age1... key")
    try:
        hrp, data = _bech32_decode(text)
    except ValueError as exc:
        raise ValueError(f"invalid age recipient {text[:80]!r}: {exc}") from None
    if hrp != _RECIPIENT_HRP:
        if hrp.lower() == _RECIPIENT_HRP:
            raise ValueError(f"invalid age recipient {text[:80]!r}: must be lowercase")
        if hrp.startswith("age1"):
            raise ValueError(f"unsupported age recipient type {hrp!r}: only X25519 (age1...) keys work")
        raise ValueError(f"invalid age recipient {text[:80]!r}: expected an age1... key")
    if len(data) != 32:
        raise ValueError(f"invalid age recipient {text[:80]!r}: wrong key length")
    return X25519PublicKey.from_public_bytes(data)


def _parse_identity(line: str) -> X25519PrivateKey:
    if line.startswith(("AGE-PLUGIN-", "AGE-SECRET-KEY-PQ-")):
        raise ValueError("unsupported identity type: only AGE-SECRET-KEY-1... keys work")
    hrp, data = _bech32_decode(line)
    if hrp != _IDENTITY_HRP or len(data) != 32:
        raise ValueError("not an AGE-SECRET-KEY-1... identity (must be uppercase)")
    return X25519PrivateKey.from_private_bytes(data)


def parse_identities(text: str) -> list[X25519PrivateKey]:
    """Parse an age identity file: one key a line, ``#`` comments and blank lines ignored."""
    identities = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(_parse_identity(line))
        except ValueError as exc:
            raise ValueError(f"identity file line {number}: {exc}") from None
    if not identities:
        raise ValueError("no AGE-SECRET-KEY-1... identity found in identity file")
    return identities


def identity_to_recipient(identity: X25519PrivateKey) -> str:
    return _bech32_encode(_RECIPIENT_HRP, identity.public_key().public_bytes_raw())


def generate_identity() -> tuple[str, str]:
    """Return a new ``(AGE-SECRET-KEY-1..., age1...)`` pair."""
    identity = X25519PrivateKey.generate()
    secret = _bech32_encode(_IDENTITY_HRP.lower(), identity.private_bytes_raw()).upper()
    return secret, identity_to_recipient(identity)
