"""Interop tests for aiouploader.age against the real age CLI and pyrage."""

from __future__ import annotations

import base64
import os
import random
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aiouploader import age, age_keys
from aiouploader.age import (
    CHUNK_SIZE,
    STORED_CHUNK_SIZE,
    AgeError,
    ChunkDecryptor,
    Encryptor,
    chunk_span,
    encrypted_size,
    generate_identity,
    identity_to_recipient,
    parse_header,
    parse_identities,
    parse_recipient,
    plaintext_size,
)

AGE = "/usr/bin/age"
AGE_KEYGEN = "/usr/bin/age-keygen"
MIB = 1024 * 1024
SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 3 * 65536 + 1, 3 * MIB + 12345]


@dataclass
class Key:
    path: Path
    recipient: str
    identity: X25519PrivateKey


@pytest.fixture
def make_key(tmp_path: Path) -> Callable[[], Key]:
    counter = iter(range(1000))

    def make() -> Key:
        path = tmp_path / f"key{next(counter)}.txt"
        subprocess.run([AGE_KEYGEN, "-o", str(path)], check=True, capture_output=True)
        recipient = run([AGE_KEYGEN, "-y", str(path)]).decode().strip()
        (identity,) = parse_identities(path.read_text())
        return Key(path, recipient, identity)

    return make


@pytest.fixture
def key(make_key: Callable[[], Key]) -> Key:
    return make_key()


def run(args: list[str]) -> bytes:
    result = subprocess.run(args, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def age_encrypt(tmp_path: Path, data: bytes, recipients: list[str]) -> bytes:
    src, dst = tmp_path / "plain.bin", tmp_path / "cli.age"
    src.write_bytes(data)
    args = [AGE, "-o", str(dst)]
    for recipient in recipients:
        args += ["-r", recipient]
    run([*args, str(src)])
    return dst.read_bytes()


def age_decrypt(tmp_path: Path, ciphertext: bytes, key: Key) -> subprocess.CompletedProcess[bytes]:
    src = tmp_path / "ours.age"
    src.write_bytes(ciphertext)
    return subprocess.run([AGE, "-d", "-i", str(key.path), str(src)], capture_output=True)


def irregular_pieces(data: bytes, rng: random.Random) -> Iterator[bytes | memoryview]:
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        size = rng.choice([0, 1, 7, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, rng.randrange(300_000)])
        piece = view[pos : pos + size]
        yield piece if rng.random() < 0.5 else bytes(piece)
        pos += size


def encrypt(data: bytes, recipients: list[str], pieces: Iterator[bytes | memoryview]) -> bytes:
    enc = Encryptor([parse_recipient(r) for r in recipients])
    out = []
    fed = 0
    for piece in pieces:
        out.append(enc.update(piece))
        fed += len(piece)
        emitted = sum(map(len, out)) - enc.header_size
        chunks, rest = divmod(emitted, STORED_CHUNK_SIZE)
        assert rest == 0
        assert min(fed, 1) <= fed - chunks * CHUNK_SIZE <= CHUNK_SIZE
    out.append(enc.finalize())
    ciphertext = b"".join(out)
    assert len(ciphertext) == encrypted_size(len(data), enc.header_size)
    return ciphertext


def read_header(ciphertext: bytes, identities: list[X25519PrivateKey]) -> age.Header:
    length = 32
    while (header := parse_header(ciphertext[:length], identities)) is None:
        assert length < len(ciphertext), "parse_header wants more than the whole file"
        length *= 2
    return header


def read_all(ciphertext: bytes, identities: list[X25519PrivateKey]) -> bytes:
    header = read_header(ciphertext, identities)
    dec = ChunkDecryptor(header, len(ciphertext))
    payload = memoryview(ciphertext)[header.size :]
    chunks = range(0, len(payload), STORED_CHUNK_SIZE)
    return b"".join(dec.decrypt(i, payload[o : o + STORED_CHUNK_SIZE]) for i, o in enumerate(chunks))


def read_range(ciphertext: bytes, identity: X25519PrivateKey, start: int, end: int) -> bytes:
    header = read_header(ciphertext, [identity])
    lo, hi, first = chunk_span(start, end, header.size, len(ciphertext))
    fetched = ciphertext[lo:hi]
    dec = ChunkDecryptor(header, len(ciphertext))
    plain = b"".join(
        dec.decrypt(first + i, fetched[o : o + STORED_CHUNK_SIZE])
        for i, o in enumerate(range(0, len(fetched), STORED_CHUNK_SIZE))
    )
    skip = start - first * CHUNK_SIZE
    return plain[skip : skip + end - start]


def check_ranges(ciphertext: bytes, identity: X25519PrivateKey, data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    n = len(data)
    ranges = [(0, n), (n, n), (0, min(n, 1)), (max(n - 1, 0), n)]
    ranges += [(b, min(b + 1, n)) for b in (CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE) if b < n]
    for _ in range(25):
        a, b = sorted(rng.randrange(n + 1) for _ in range(2))
        ranges.append((a, b))
    for start, end in ranges:
        assert read_range(ciphertext, identity, start, end) == data[start:end], (start, end)


# --- keys -------------------------------------------------------------------


def test_identity_file_from_age_keygen(key: Key) -> None:
    assert key.recipient.startswith("age1")
    assert identity_to_recipient(key.identity) == key.recipient
    assert parse_recipient(key.recipient).public_bytes_raw() == key.identity.public_key().public_bytes_raw()


def test_generated_identity_accepted_by_age_keygen_and_pyrage(tmp_path: Path) -> None:
    secret, recipient = generate_identity()
    path = tmp_path / "generated.txt"
    path.write_text(f"# created by test\n\n{secret}\n")
    assert run([AGE_KEYGEN, "-y", str(path)]).decode().strip() == recipient
    assert str(pyrage.x25519.Identity.from_str(secret).to_public()) == recipient
    (identity,) = parse_identities(path.read_text())
    assert identity_to_recipient(identity) == recipient


def test_pyrage_keys_parse() -> None:
    identity = pyrage.x25519.Identity.generate()
    (parsed,) = parse_identities(str(identity))
    assert identity_to_recipient(parsed) == str(identity.to_public())


def test_multiple_identities_in_file(make_key: Callable[[], Key]) -> None:
    a, b = make_key(), make_key()
    text = a.path.read_text() + "\n   \n" + b.path.read_text()
    assert [identity_to_recipient(i) for i in parse_identities(text)] == [a.recipient, b.recipient]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "age1",
        "age1qqqqqq",
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwk",
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujw",
        "AGE1ZVKYG2LQZRAA2LNJVQEJ32NKUU0UES2S82HZRYE869XEEXVN73EQUNUJWJ",
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73eQUNUJWJ",
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwb",
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN",
        "age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg87pzf5zrq",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "agé1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",
    ],
)
def test_bad_recipient(text: str) -> None:
    with pytest.raises(ValueError):
        parse_recipient(text)


def test_bad_recipient_wrong_length() -> None:
    short = age_keys._bech32_encode("age", bytes(31))
    with pytest.raises(ValueError, match="length"):
        parse_recipient(short)


def bech32_from_words(hrp: str, words: list[int]) -> str:
    def polymod(values: list[int]) -> int:
        chk = 1
        for value in values:
            top = chk >> 25
            chk = (chk & 0x1FFFFFF) << 5 ^ value
            for i, gen in enumerate([0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]):
                chk ^= gen if (top >> i) & 1 else 0
        return chk

    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    chk = polymod(expanded + words + [0] * 6) ^ 1
    words = words + [(chk >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join("qpzry9x8gf2tvdw0s3jn54khce6mua7l"[w] for w in words)


def test_bech32_padding_must_be_zero() -> None:
    good = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"
    words = ["qpzry9x8gf2tvdw0s3jn54khce6mua7l".index(c) for c in good[4:-6]]
    assert bech32_from_words("age", words) == good
    parse_recipient(good)
    with pytest.raises(ValueError, match="padding"):
        parse_recipient(bech32_from_words("age", [*words[:-1], words[-1] | 1]))


def test_spec_example_recipient() -> None:
    identities = parse_identities("AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX")
    expected = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"
    assert identity_to_recipient(identities[0]) == expected
    assert parse_recipient(f"  {expected}\n").public_bytes_raw() == identities[0].public_key().public_bytes_raw()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# created: 2024-01-01\n\n# public key: age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj\n",
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEY",
        "age-secret-key-1gfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpq4egaex",
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\nnot a key",
        "AGE-PLUGIN-YUBIKEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQ",
    ],
)
def test_bad_identities(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_identities(text)
    assert "GFPYYSJZ" not in str(info.value)


# --- Encryptor -> age / pyrage ---------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("feed", ["whole", "chunks", "irregular"])
def test_encryptor_output_decrypts_with_age_and_pyrage(tmp_path: Path, key: Key, size: int, feed: str) -> None:
    data = random.Random(size).randbytes(size)
    if feed == "whole":
        pieces: Iterator[bytes | memoryview] = iter([data])
    elif feed == "chunks":
        pieces = (data[o : o + CHUNK_SIZE] for o in range(0, size, CHUNK_SIZE))
    else:
        pieces = irregular_pieces(data, random.Random(size + 1))
    ciphertext = encrypt(data, [key.recipient], pieces)

    result = age_decrypt(tmp_path, ciphertext, key)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == data
    identity = pyrage.x25519.Identity.from_str(key.path.read_text().splitlines()[-1])
    assert pyrage.decrypt(ciphertext, [identity]) == data
    assert read_all(ciphertext, [key.identity]) == data


def test_header_comes_with_first_output(tmp_path: Path, key: Key) -> None:
    enc = Encryptor([parse_recipient(key.recipient)])
    head = enc.update(b"")
    assert len(head) == enc.header_size
    assert head.startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert enc.update(b"x" * 10) == b""
    ciphertext = head + enc.finalize()
    assert age_decrypt(tmp_path, ciphertext, key).stdout == b"x" * 10


def test_finalize_without_update_is_empty_file(tmp_path: Path, key: Key) -> None:
    enc = Encryptor([parse_recipient(key.recipient)])
    ciphertext = enc.finalize()
    assert len(ciphertext) == enc.header_size + 16
    result = age_decrypt(tmp_path, ciphertext, key)
    assert result.returncode == 0 and result.stdout == b""


def test_each_file_gets_fresh_keys(key: Key) -> None:
    recipient = parse_recipient(key.recipient)
    first = Encryptor([recipient]).update(b"same")
    second = Encryptor([recipient]).update(b"same")
    assert first != second


def test_encryptor_misuse(key: Key) -> None:
    with pytest.raises(ValueError):
        Encryptor([])
    enc = Encryptor([parse_recipient(key.recipient)])
    enc.finalize()
    with pytest.raises(RuntimeError):
        enc.finalize()
    with pytest.raises(RuntimeError):
        enc.update(b"more")


def test_multiple_recipients(tmp_path: Path, make_key: Callable[[], Key]) -> None:
    keys = [make_key() for _ in range(3)]
    outsider = make_key()
    data = random.Random(3).randbytes(200_000)
    ciphertext = encrypt(data, [k.recipient for k in keys], irregular_pieces(data, random.Random(4)))
    assert ciphertext.count(b"\n-> X25519 ") == 3
    for k in keys:
        result = age_decrypt(tmp_path, ciphertext, k)
        assert result.returncode == 0 and result.stdout == data
        assert read_all(ciphertext, [outsider.identity, k.identity]) == data
    assert age_decrypt(tmp_path, ciphertext, outsider).returncode != 0
    with pytest.raises(AgeError, match="no identity"):
        read_all(ciphertext, [outsider.identity])

    from_cli = age_encrypt(tmp_path, data, [k.recipient for k in keys])
    for k in keys:
        assert read_all(from_cli, [k.identity]) == data


# --- age / pyrage -> parse_header + ChunkDecryptor ------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_read_age_cli_file(tmp_path: Path, key: Key, size: int) -> None:
    data = random.Random(size).randbytes(size)
    ciphertext = age_encrypt(tmp_path, data, [key.recipient])
    assert read_all(ciphertext, [key.identity]) == data
    check_ranges(ciphertext, key.identity, data, seed=size)


@pytest.mark.parametrize("size", SIZES)
def test_read_pyrage_file(key: Key, size: int) -> None:
    data = random.Random(size).randbytes(size)
    ciphertext = pyrage.encrypt(data, [pyrage.x25519.Recipient.from_str(key.recipient)])
    assert b"-grease" in ciphertext[: read_header(ciphertext, [key.identity]).size]
    assert read_all(ciphertext, [key.identity]) == data
    check_ranges(ciphertext, key.identity, data, seed=size + 7)


def test_header_size_and_prefixes(tmp_path: Path, key: Key) -> None:
    ciphertext = age_encrypt(tmp_path, b"hello", [key.recipient])
    mac_line = ciphertext.index(b"\n--- ") + 1
    expected = ciphertext.index(b"\n", mac_line) + 1 + 16
    assert len(ciphertext) == expected + 5 + 16
    for length in range(expected):
        assert parse_header(ciphertext[:length], [key.identity]) is None
        with pytest.raises(AgeError):
            parse_header(ciphertext[:length], [key.identity], eof=True)
    header = parse_header(ciphertext[:expected], [key.identity], eof=True)
    assert header is not None and header.size == expected
    assert plaintext_size(len(ciphertext), header.size) == 5
    assert "payload_key" not in repr(header)


def test_header_larger_than_limit_rejected() -> None:
    head = b"age-encryption.org/v1\n-> grease\n" + (b"A" * 64 + b"\n") * 2000
    assert parse_header(head[:60_000], []) is None
    with pytest.raises(AgeError, match="larger"):
        parse_header(head, [])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x01binary junk", "not an age file"),
        (b"age-encryption.org/v2\n", "version"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\n", "armor"),
        (b"age-encryption.org/v1\nX25519\n", "unexpected line"),
        (b"age-encryption.org/v1\n--- " + b"A" * 43 + b"\n" + bytes(16), "no recipient stanzas"),
        (b"age-encryption.org/v1\n->  X25519\n", "bad stanza line"),
        (b"age-encryption.org/v1\n-> g\n\n--- " + b"A" * 44 + b"\n" + bytes(16), "MAC"),
    ],
)
def test_not_an_age_header(data: bytes, message: str, key: Key) -> None:
    with pytest.raises(AgeError, match=message):
        parse_header(data, [key.identity])


def test_armored_age_file_rejected(tmp_path: Path, key: Key) -> None:
    src = tmp_path / "p"
    src.write_bytes(b"x")
    armored = run([AGE, "-a", "-r", key.recipient, str(src)])
    with pytest.raises(AgeError, match="armor"):
        parse_header(armored, [key.identity])


# --- tampering, truncation, wrong key ----------------------------------------


@pytest.fixture
def sample(tmp_path: Path, key: Key) -> tuple[bytes, bytes]:
    data = random.Random(9).randbytes(3 * CHUNK_SIZE + 100)
    return data, age_encrypt(tmp_path, data, [key.recipient])


def test_wrong_identity(sample: tuple[bytes, bytes], make_key: Callable[[], Key]) -> None:
    with pytest.raises(AgeError, match="no identity"):
        parse_header(sample[1], [make_key().identity])


@pytest.mark.parametrize("where", [0, 1, 2, 3])
def test_flipped_payload_byte(sample: tuple[bytes, bytes], key: Key, where: int) -> None:
    data, ciphertext = sample
    header = read_header(ciphertext, [key.identity])
    position = header.size + where * STORED_CHUNK_SIZE + 50
    tampered = bytearray(ciphertext)
    tampered[position] ^= 0x01
    with pytest.raises(AgeError, match=f"chunk {where} failed"):
        read_all(bytes(tampered), [key.identity])
    if where:
        assert read_range(bytes(tampered), key.identity, 0, 10) == data[:10]


def test_flipped_header_mac(sample: tuple[bytes, bytes], key: Key) -> None:
    ciphertext = sample[1]
    position = ciphertext.index(b"\n--- ") + 10
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    tampered = bytearray(ciphertext)
    tampered[position] = alphabet[(alphabet.index(tampered[position]) + 1) % 64]
    with pytest.raises(AgeError, match="MAC"):
        parse_header(bytes(tampered), [key.identity])


def test_flipped_stanza_body(sample: tuple[bytes, bytes], key: Key) -> None:
    ciphertext = sample[1]
    body = ciphertext.index(b"\n", ciphertext.index(b"-> X25519")) + 5
    tampered = bytearray(ciphertext)
    tampered[body] = ord("A") if tampered[body] != ord("A") else ord("B")
    with pytest.raises(AgeError):
        parse_header(bytes(tampered), [key.identity])


def test_flipped_nonce(sample: tuple[bytes, bytes], key: Key) -> None:
    ciphertext = sample[1]
    header = read_header(ciphertext, [key.identity])
    tampered = bytearray(ciphertext)
    tampered[header.size - 1] ^= 0x80
    with pytest.raises(AgeError, match="chunk 0"):
        read_all(bytes(tampered), [key.identity])


def test_non_canonical_base64_share_rejected_like_age(tmp_path: Path, key: Key, sample: tuple[bytes, bytes]) -> None:
    ciphertext = sample[1]
    end = ciphertext.index(b"\n", ciphertext.index(b"-> X25519 "))
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    tampered = bytearray(ciphertext)
    tampered[end - 1] = alphabet[alphabet.index(tampered[end - 1]) ^ 1]
    share = base64.b64decode(ciphertext[end - 43 : end] + b"=")
    assert base64.b64decode(bytes(tampered[end - 43 : end]) + b"=") == share
    assert age_decrypt(tmp_path, bytes(tampered), key).returncode != 0
    with pytest.raises(AgeError, match="canonical"):
        parse_header(bytes(tampered), [key.identity])


def test_reordered_chunks(sample: tuple[bytes, bytes], key: Key) -> None:
    ciphertext = sample[1]
    header = read_header(ciphertext, [key.identity])
    dec = ChunkDecryptor(header, len(ciphertext))
    first = ciphertext[header.size : header.size + STORED_CHUNK_SIZE]
    second = ciphertext[header.size + STORED_CHUNK_SIZE : header.size + 2 * STORED_CHUNK_SIZE]
    dec.decrypt(0, first)
    with pytest.raises(AgeError):
        dec.decrypt(1, first)
    with pytest.raises(AgeError):
        dec.decrypt(0, second)


@pytest.mark.parametrize("size", [3 * CHUNK_SIZE + 100, 3 * CHUNK_SIZE, CHUNK_SIZE + 1])
def test_dropped_last_chunk(tmp_path: Path, key: Key, size: int) -> None:
    data = random.Random(size).randbytes(size)
    ciphertext = age_encrypt(tmp_path, data, [key.recipient])
    last = (len(ciphertext) - read_header(ciphertext, [key.identity]).size) % STORED_CHUNK_SIZE
    truncated = ciphertext[: len(ciphertext) - (last or STORED_CHUNK_SIZE)]
    header = read_header(truncated, [key.identity])
    assert (len(truncated) - header.size) % STORED_CHUNK_SIZE == 0
    with pytest.raises(AgeError, match="final chunk"):
        read_all(truncated, [key.identity])
    assert age_decrypt(tmp_path, truncated, key).returncode != 0


@pytest.mark.parametrize("drop", [1, 15, 16, 17, 100, 111, 100 + 16, STORED_CHUNK_SIZE - 1])
def test_dropped_bytes(sample: tuple[bytes, bytes], key: Key, drop: int) -> None:
    ciphertext = sample[1]
    with pytest.raises(AgeError):
        read_all(ciphertext[:-drop], [key.identity])


def test_payload_dropped_entirely(sample: tuple[bytes, bytes], key: Key) -> None:
    ciphertext = sample[1]
    header = read_header(ciphertext, [key.identity])
    for size in (header.size, header.size + 15):
        with pytest.raises(AgeError, match="chunk layout"):
            ChunkDecryptor(header, size)


def test_short_chunk_passed_to_decrypt(sample: tuple[bytes, bytes], key: Key) -> None:
    ciphertext = sample[1]
    header = read_header(ciphertext, [key.identity])
    dec = ChunkDecryptor(header, len(ciphertext))
    with pytest.raises(AgeError, match="expected"):
        dec.decrypt(0, ciphertext[header.size : header.size + STORED_CHUNK_SIZE - 1])
    with pytest.raises(ValueError):
        dec.decrypt(4, b"")
    with pytest.raises(ValueError):
        dec.decrypt(-1, b"")


# --- sizes and spans -----------------------------------------------------------


def test_sizes_round_trip() -> None:
    header = 200
    for size in [0, 1, 2, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * CHUNK_SIZE, 5 * CHUNK_SIZE + 3, 10**9]:
        stored = encrypted_size(size, header)
        assert stored == header + size + 16 * max(1, -(-size // CHUNK_SIZE))
        assert plaintext_size(stored, header) == size


@pytest.mark.parametrize(
    "payload",
    [-1, 0, 1, 15, STORED_CHUNK_SIZE + 1, STORED_CHUNK_SIZE + 15, STORED_CHUNK_SIZE + 16, 2 * STORED_CHUNK_SIZE + 16],
)
def test_impossible_stored_size(payload: int) -> None:
    with pytest.raises(AgeError):
        plaintext_size(100 + payload, 100)


def test_chunk_span_boundaries() -> None:
    h = 100
    empty = encrypted_size(0, h)
    assert chunk_span(0, 0, h, empty) == (h, h + 16, 0)
    stored = encrypted_size(3 * CHUNK_SIZE + 10, h)
    assert chunk_span(0, 1, h, stored) == (h, h + STORED_CHUNK_SIZE, 0)
    assert chunk_span(CHUNK_SIZE - 1, CHUNK_SIZE + 1, h, stored) == (h, h + 2 * STORED_CHUNK_SIZE, 0)
    assert chunk_span(CHUNK_SIZE, 2 * CHUNK_SIZE, h, stored) == (h + STORED_CHUNK_SIZE, h + 2 * STORED_CHUNK_SIZE, 1)
    assert chunk_span(3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 10, h, stored) == (h + 3 * STORED_CHUNK_SIZE, stored, 3)
    assert chunk_span(0, 3 * CHUNK_SIZE + 10, h, stored) == (h, stored, 0)
    full = encrypted_size(2 * CHUNK_SIZE, h)
    assert chunk_span(2 * CHUNK_SIZE, 2 * CHUNK_SIZE, h, full) == (h + STORED_CHUNK_SIZE, full, 1)
    for start, end in [(-1, 2), (5, 4), (0, 3 * CHUNK_SIZE + 11)]:
        with pytest.raises(ValueError):
            chunk_span(start, end, h, stored)
    with pytest.raises(AgeError):
        chunk_span(0, 1, h, stored - 20)


# --- hand-built headers, judged by the real age CLI ------------------------------


def b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(SHA256(), 32, salt, info).derive(ikm)


def stanza(args: bytes, body: bytes, final_line: bool = True) -> bytes:
    text = b64(body)
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    if final_line and (not lines or len(lines[-1]) == 64):
        lines.append(b"")
    return b"-> " + args + b"\n" + b"".join(line + b"\n" for line in lines)


def build_file(recipient: X25519PublicKey, before: bytes, after: bytes, x25519_args: bytes, body_extra: bytes) -> bytes:
    file_key = os.urandom(16)
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    salt = share + recipient.public_bytes_raw()
    wrap_key = hkdf(ephemeral.exchange(recipient), salt, b"age-encryption.org/v1/X25519")
    body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None) + body_extra
    ours = stanza(b"X25519 " + b64(share) + x25519_args, body)
    header = b"age-encryption.org/v1\n" + before + ours + after + b"---"
    mac = HMAC(hkdf(file_key, b"", b"header"), SHA256())
    mac.update(header)
    nonce = os.urandom(16)
    payload = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload")).encrypt(bytes(11) + b"\x01", b"crafted", None)
    return header + b" " + b64(mac.finalize()) + b"\n" + nonce + payload


CRAFTED = {
    "grease first": (stanza(b"x.org/grease a b", bytes(10)), b"", b"", b"", None),
    "body of 48 bytes ends with empty line": (b"", stanza(b"g", bytes(48)), b"", b"", None),
    "final line of 63 chars": (stanza(b"g", bytes(47)), b"", b"", b"", None),
    "two full lines then short": (b"", stanza(b"g", bytes(100)), b"", b"", None),
    "empty body": (stanza(b"g", b""), b"", b"", b"", None),
    "missing final line": (b"", stanza(b"g", bytes(48), final_line=False), b"", b"", "malformed"),
    "body line too long": (b"-> g\n" + b"A" * 65 + b"\n", b"", b"", b"", "malformed"),
    "stanza without arguments": (b"-> \n\n", b"", b"", b"", "malformed"),
    "argument with trailing space": (b"-> g \n\n", b"", b"", b"", "malformed"),
    "X25519 with extra argument": (b"", b"", b" extra", b"", "X25519 stanza"),
    "X25519 body too long": (b"", b"", b"", b"\x00", "X25519 stanza"),
    "scrypt stanza ignored": (b"", stanza(b"scrypt " + b64(bytes(16)) + b" 10", bytes(32)), b"", b"", None),
    "padding in body": (b"-> g\nAA==\n", b"", b"", b"", "malformed"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_header_agrees_with_age(tmp_path: Path, key: Key, case: str) -> None:
    before, after, x25519_args, body_extra, error = CRAFTED[case]
    ciphertext = build_file(parse_recipient(key.recipient), before, after, x25519_args, body_extra)
    result = age_decrypt(tmp_path, ciphertext, key)
    if error is None:
        assert result.returncode == 0 and result.stdout == b"crafted", result.stderr.decode()
        assert read_all(ciphertext, [key.identity]) == b"crafted"
    else:
        assert result.returncode != 0
        with pytest.raises(AgeError, match=error):
            parse_header(ciphertext, [key.identity])


def test_passphrase_file_rejected_with_clear_error(key: Key) -> None:
    ciphertext = pyrage.passphrase.encrypt(b"secret", "correct horse")
    with pytest.raises(AgeError, match="passphrase"):
        parse_header(ciphertext, [key.identity])


def test_low_order_share_rejected_like_age(tmp_path: Path, key: Key, sample: tuple[bytes, bytes]) -> None:
    ciphertext = sample[1]
    start = ciphertext.index(b"-> X25519 ") + len(b"-> X25519 ")
    tampered = ciphertext[:start] + b64(bytes(32)) + ciphertext[start + 43 :]
    assert age_decrypt(tmp_path, tampered, key).returncode != 0
    with pytest.raises(AgeError, match="low-order"):
        parse_header(tampered, [key.identity])


def test_low_order_recipient_refused() -> None:
    recipient = parse_recipient(bech32_from_words("age", [0] * 52))
    with pytest.raises(ValueError, match="low-order"):
        Encryptor([recipient])
