"""Signed request ids: the id a server makes for a prediction carries everything its feedback
needs, so any replica that shares the key accepts the Feedback RPC without a shared database.

    d1.<base64url( issued_at u32 | nonce 8 bytes | version | model | experiment | arm | count
                   | one 4-bit digit per image | HMAC-SHA256(key, all before)[:16] )>

Numbers are unsigned varints, names a varint length then UTF-8. Each image's nibble is its
predicted digit, or 0xF when its true digit came with the request (no feedback is taken for it).
`issued_at` is wall-clock seconds, so replicas need roughly synchronised clocks (NTP) for the
age limit. The key comes from `--feedback-key-file` or `DIGITS_SERVER_FEEDBACK_KEY`; without
one each process draws a random key, and only the server that made an id accepts it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import os
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits_server.core.domain import ServedBy
from digits_server.core.errors import ConfigurationError, InvalidInput

PREFIX = "d1."
MAC_BYTES = 16
LABELLED_IN_REQUEST = 0xF
MIN_KEY_BYTES = 16
KEY_ENV = "DIGITS_SERVER_FEEDBACK_KEY"
# The longest signed id a Feedback request may carry: three 256-character names in UTF-8 and
# 1,024 images fit well inside it.
MAX_SIGNED_ID_CHARS = 8192
_HEAD = struct.Struct(">I8s")
_HEAD_NUMBERS = struct.Struct(">IQ")  # the same 12 bytes, packed from the nonce as a number
_ONE_IMAGE = b"\x01"  # _varint(1)
_B64URL = bytes.maketrans(b"+/", b"-_")
_MASK64 = (1 << 64) - 1
_SERVED_CACHE = 4096  # encoded (version, model, experiment, arm) blocks kept per RequestIds


@dataclass(frozen=True)
class SignedPrediction:
    """What a verified signed id says: who served, when, and each image's nibble."""

    served_by: ServedBy
    issued_at: int
    nibbles: bytes  # per image: predicted digit 0-9, or LABELLED_IN_REQUEST
    mac: bytes  # identifies the id (the seen-feedback memory is keyed by it)


def is_signed(request_id: str) -> bool:
    """Whether an id has the form of a server-made signed id (not whether it verifies)."""
    return request_id.startswith(PREFIX)


def feedback_key(path: Path | None, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The shared HMAC key: the file's contents (stripped), else $DIGITS_SERVER_FEEDBACK_KEY, else None.

    ConfigurationError (the server stops at start) for an unreadable file or a key shorter
    than MIN_KEY_BYTES."""
    env = os.environ if environ is None else environ
    if path is not None:
        try:
            key, origin = Path(path).read_bytes().strip(), f"feedback_key_file: {path}"
        except OSError as exc:
            raise ConfigurationError(f"feedback_key_file: cannot read {path} ({exc.strerror or exc})") from None
    elif env.get(KEY_ENV):
        key, origin = env[KEY_ENV].strip().encode(), KEY_ENV
    else:
        return None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"{origin}: the feedback key has {len(key)} bytes, at least {MIN_KEY_BYTES} are needed "
            "(e.g. `head -c 32 /dev/urandom | base64`)"
        )
    return key


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _text(value: str) -> bytes:
    raw = value.encode()
    return _varint(len(raw)) + raw


def pack_nibbles(digits: np.ndarray, true_labels: Sequence[int | None]) -> bytes:
    """Each image's predicted digit (or LABELLED_IN_REQUEST) in 4 bits, two images a byte."""
    count = len(digits)
    if count == 1:
        nibble = LABELLED_IN_REQUEST if true_labels and true_labels[0] is not None else int(digits[0])
        return bytes((nibble << 4,))
    values = np.asarray(digits, dtype=np.uint8)
    if any(label is not None for label in true_labels):
        values = values.copy()
        values[[i for i, label in enumerate(true_labels) if label is not None]] = LABELLED_IN_REQUEST
    if count % 2:
        values = np.append(values, np.uint8(0))
    return ((values[0::2] << 4) | values[1::2]).astype(np.uint8).tobytes()


def unpack_nibbles(packed: bytes, count: int) -> bytes:
    """The inverse of pack_nibbles: one byte per image."""
    values = np.frombuffer(packed, dtype=np.uint8)
    out = np.empty(len(values) * 2, dtype=np.uint8)
    out[0::2], out[1::2] = values >> 4, values & 0x0F
    return out[:count].tobytes()


class RequestIds:
    """Makes and verifies signed request ids with one key (shared by a fleet, or random per process)."""

    def __init__(self, key: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self.shared = key is not None
        key = key if key is not None else os.urandom(32)
        if len(key) > 64:  # RFC 2104: longer keys are hashed first
            key = hashlib.sha256(key).digest()
        padded = key.ljust(64, b"\0")
        # HMAC-SHA256 with its two padded-key blocks hashed once (RFC 2104): ~2x cheaper than hmac.digest.
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
        self._served: dict[ServedBy, bytes] = {}
        self._clock = clock
        self._base = int.from_bytes(os.urandom(8), "big")  # ids of different replicas never collide
        self._counter = itertools.count()

    def issue(self, served_by: ServedBy, digits: np.ndarray, true_labels: Sequence[int | None]) -> str:
        """A signed id for a live prediction of `len(digits)` images."""
        nonce = (self._base + next(self._counter)) & _MASK64
        served = self._served.get(served_by)
        if served is None:
            if len(self._served) >= _SERVED_CACHE:
                self._served.clear()
            served = self._served[served_by] = b"".join((
                _varint(served_by.version), _text(served_by.model), _text(served_by.experiment), _text(served_by.arm),
            ))
        count = len(digits)
        payload = b"".join((
            _HEAD_NUMBERS.pack(int(self._clock()) & 0xFFFFFFFF, nonce), served,
            _ONE_IMAGE if count == 1 else _varint(count), pack_nibbles(digits, true_labels),
        ))
        # urlsafe_b64encode without its wrapper calls; the same characters
        encoded = binascii.b2a_base64(payload + self._mac(payload), newline=False).translate(_B64URL)
        return PREFIX + encoded.rstrip(b"=").decode("ascii")

    def _mac(self, payload: bytes) -> bytes:
        """HMAC-SHA256(key, payload) truncated to MAC_BYTES."""
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:MAC_BYTES]

    def verify(self, request_id: str) -> SignedPrediction:
        """Decode a signed id; InvalidInput naming request_id when it is malformed, forged or tampered with."""
        if len(request_id) > MAX_SIGNED_ID_CHARS:
            raise InvalidInput(f"request_id: {len(request_id)} characters, longer than any id this server makes")
        body = request_id[len(PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise InvalidInput("request_id: not an id this server made (bad encoding)") from None
        payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if len(raw) <= _HEAD.size + MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidInput(
                "request_id: signature does not verify (forged or altered, or made by a server with another "
                "feedback key: replicas must share --feedback-key-file)"
            )
        try:
            return self._decode(payload, mac)
        except (IndexError, UnicodeDecodeError, ValueError):  # signed but not ours: a key reused elsewhere
            raise InvalidInput("request_id: signed, but not in the form this server makes") from None

    def now(self) -> float:
        """Wall-clock seconds, as issue times are written."""
        return self._clock()

    def age(self, prediction: SignedPrediction) -> float:
        """Seconds since the id was issued (by this replica's clock)."""
        return self._clock() - prediction.issued_at

    @staticmethod
    def _decode(payload: bytes, mac: bytes) -> SignedPrediction:
        issued_at, _nonce = _HEAD.unpack_from(payload)
        reader = _Reader(payload, _HEAD.size)
        version = reader.varint()
        model, experiment, arm = reader.text(), reader.text(), reader.text()
        count = reader.varint()
        packed = reader.rest()
        if count == 0 or len(packed) != (count + 1) // 2:
            raise ValueError("image count does not match the digits")
        served_by = ServedBy(model, version, experiment, arm)
        return SignedPrediction(served_by, issued_at, unpack_nibbles(packed, count), mac)


class _Reader:
    """Reads varints and length-prefixed UTF-8 from a payload."""

    def __init__(self, data: bytes, offset: int) -> None:
        self.data, self.offset = data, offset

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.data[self.offset]
            self.offset += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def text(self) -> str:
        length = self.varint()
        end = self.offset + length
        if end > len(self.data):
            raise ValueError("text runs past the end")
        value = self.data[self.offset:end].decode()
        self.offset = end
        return value

    def rest(self) -> bytes:
        return self.data[self.offset:]
