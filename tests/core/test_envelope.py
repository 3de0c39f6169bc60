"""Envelope codec: frame layout, batches, malformed frames."""
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral._core.envelope import BATCH_TYPE, HEADER_SIZE, Envelope, EnvelopeError, decode, encode, encode_batch

SENDER = b"tcp://127.0.0.1:15050"


def test_layout_is_little_endian_header_sender_body():
    frame = encode(0x0102, 0x0A0B0C0D, SENDER, b"body")
    assert HEADER_SIZE == 12
    assert frame[:HEADER_SIZE] == struct.pack("<BBHIHH", 0xC7, 1, 0x0102, 0x0A0B0C0D,
                                              len(SENDER), 0)
    assert frame[HEADER_SIZE:] == SENDER + b"body"


def test_decode_roundtrip():
    env = decode(encode(42, 7, SENDER, b"\x00payload\xff"))
    assert isinstance(env, Envelope)
    assert (env.type, env.seq, env.sender, env.body) == (42, 7, SENDER, b"\x00payload\xff")


@given(
    msg_type=st.integers(0, 0xFFFE),
    seq=st.integers(0, 0xFFFFFFFF),
    sender=st.binary(max_size=300),
    body=st.binary(max_size=300),
)
def test_roundtrip_property(msg_type, seq, sender, body):
    env = decode(encode(msg_type, seq, sender, body))
    assert (env.type, env.seq, env.sender, env.body) == (msg_type, seq, sender, body)


def test_empty_sender_and_body():
    env = decode(encode(0, 0, b"", b""))
    assert (env.type, env.seq, env.sender, env.body) == (0, 0, b"", b"")


def test_envelope_fields_are_read_only():
    env = decode(encode(1, 2, SENDER, b"x"))
    for name in ("type", "seq", "sender", "body"):
        with pytest.raises(AttributeError):
            setattr(env, name, 5)
    assert "type=1" in repr(env) and "seq=2" in repr(env)


def test_flags_are_ignored_on_decode():
    frame = bytearray(encode(1, 2, SENDER, b"x"))
    frame[10:12] = b"\xff\xff"
    env = decode(bytes(frame))
    assert (env.type, env.seq, env.sender, env.body) == (1, 2, SENDER, b"x")


@pytest.mark.parametrize(
    "frame, message",
    [
        (b"", "shorter"),
        (encode(1, 2, b"", b"")[:11], "shorter"),
        (b"\xc6" + encode(1, 2, SENDER, b"x")[1:], "magic"),
        (b"\xc7\x02" + encode(1, 2, SENDER, b"x")[2:], "version"),
        (encode(1, 2, SENDER, b"x")[: HEADER_SIZE + len(SENDER) - 1], "sender_len"),
        (struct.pack("<BBHIHH", 0xC7, 1, 1, 0, 0xFFFF, 0) + b"abc", "sender_len"),
    ],
)
def test_decode_rejects_malformed(frame, message):
    with pytest.raises(EnvelopeError, match=message):
        decode(frame)
    assert issubclass(EnvelopeError, ValueError)


def test_decode_requires_bytes():
    with pytest.raises(TypeError):
        decode("not bytes")
    with pytest.raises(TypeError):
        decode(None)


@pytest.mark.parametrize(
    "args",
    [(-1, 0, b"", b""), (0xFFFF, 0, b"", b""), (0x10000, 0, b"", b""),
     (1, -1, b"", b""), (1, 2**32, b"", b""), (1, 0, b"x" * 0x10000, b"")],
)
def test_encode_rejects_out_of_range(args):
    with pytest.raises(EnvelopeError):
        encode(*args)


@pytest.mark.parametrize("args", [(1, 0, "str", b""), (1, 0, b"", "str"), (1, 0, None, b""),
                                  (1, 0, b"", None), (1, 0, bytearray(b"x"), b"")])
def test_encode_requires_bytes(args):
    with pytest.raises(TypeError):
        encode(*args)


def test_encode_accepts_max_sender():
    sender = b"s" * 0xFFFF
    assert decode(encode(1, 0, sender, b"b")).sender == sender


def test_encode_batch_layout():
    a = encode(1, 1, SENDER, b"a")
    b = encode(2, 2, SENDER, b"bb")
    batch = encode_batch([a, b])
    assert batch[:HEADER_SIZE] == struct.pack("<BBHIHH", 0xC7, 1, BATCH_TYPE, 0, 0, 0)
    assert batch[HEADER_SIZE:] == struct.pack("<I", len(a)) + a + struct.pack("<I", len(b)) + b
    env = decode(batch)
    assert env.type == BATCH_TYPE and env.sender == b""
    assert encode_batch(iter([a, b])) == batch  # any iterable
    assert encode_batch([]) == batch[:HEADER_SIZE]


def test_encode_batch_requires_bytes():
    with pytest.raises(TypeError):
        encode_batch([b"ok", "nope"])
