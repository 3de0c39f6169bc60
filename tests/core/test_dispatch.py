"""Dispatcher: lookup, batches, counters and error reporting, in-memory frames."""
import struct

import pytest

from corral._core.envelope import (BATCH_TYPE, DEFAULT_MAX_FRAME_SIZE, DispatchError, Dispatcher, Envelope, Route, encode,
                                   encode_batch)

SENDER = b"tcp://127.0.0.1:15050"
ZERO = {"received": 0, "dispatched": 0, "malformed": 0, "unknown_type": 0, "oversized": 0,
        "handler_failed": 0, "refused": 0}


def counts(d, **changed):
    return {**ZERO, **changed} == d.counters()


class Recorder:
    def __init__(self):
        self.errors = []

    def __call__(self, kind, detail, exc):
        assert isinstance(detail, str) and detail
        self.errors.append((kind, exc))

    @property
    def kinds(self):
        return [kind for kind, _ in self.errors]


@pytest.fixture
def rec():
    return Recorder()


@pytest.fixture
def got():
    return []


@pytest.fixture
def d(rec, got):
    d = Dispatcher(on_error=rec)
    d.register(1, got.append)
    return d


def test_defaults():
    d = Dispatcher()
    assert d.max_frame_size == DEFAULT_MAX_FRAME_SIZE == 16 * 1024 * 1024
    assert d.counters() == ZERO
    assert d.dispatch(encode(1, 0, b"", b"")) == 0  # no on_error: counted only
    assert counts(d, received=1, unknown_type=1)


def test_dispatch_calls_handler_with_envelope(d, got):
    assert d.dispatch(encode(1, 9, SENDER, b"hello")) == 1
    [env] = got
    assert isinstance(env, Envelope)
    assert (env.type, env.seq, env.sender, env.body) == (1, 9, SENDER, b"hello")
    assert counts(d, received=1, dispatched=1)


def test_lookup_by_type(rec):
    seen = []
    d = Dispatcher(on_error=rec)
    d.register(0, lambda env: seen.append(("zero", env.seq)))
    d.register(300, lambda env: seen.append(("big", env.seq)))
    d.register(0xFFFE, lambda env: seen.append(("max", env.seq)))
    for t, seq in ((300, 1), (0, 2), (0xFFFE, 3), (299, 4), (301, 5), (5000, 6)):
        d.dispatch(encode(t, seq, SENDER, b""))
    assert seen == [("big", 1), ("zero", 2), ("max", 3)]
    assert rec.kinds == [DispatchError.UNKNOWN_TYPE] * 3
    assert counts(d, received=6, dispatched=3, unknown_type=3)


def test_register_replaces_and_validates(d, got):
    other = []
    d.register(1, other.append)
    d.dispatch(encode(1, 0, SENDER, b""))
    assert got == [] and len(other) == 1
    for bad in (-1, BATCH_TYPE, 0x10000):
        with pytest.raises(ValueError):
            d.register(bad, print)
    with pytest.raises(TypeError):
        d.register(2, "not callable")


def test_unknown_type_reported(d, rec):
    assert d.dispatch(encode(2, 0, SENDER, b"")) == 0
    assert rec.errors == [(DispatchError.UNKNOWN_TYPE, None)]
    assert counts(d, received=1, unknown_type=1)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc7\x01\x01\x00",
        b"\x00" + encode(1, 0, SENDER, b"x")[1:],
        b"\xc7\x09" + encode(1, 0, SENDER, b"x")[2:],
        encode(1, 0, SENDER, b"")[:-1],
        struct.pack("<BBHIHH", 0xC7, 1, 1, 0, 500, 0) + b"short",
    ],
    ids=["empty", "short", "magic", "version", "sender-past-end", "sender-len-huge"],
)
def test_malformed_frames_counted_not_raised(d, rec, got, frame):
    assert d.dispatch(frame) == 0
    assert got == []
    assert rec.errors == [(DispatchError.MALFORMED, None)]
    assert counts(d, received=1, malformed=1)
    assert d.dispatch(encode(1, 0, SENDER, b"")) == 1  # keeps working


def test_dispatch_requires_bytes(d):
    with pytest.raises(TypeError):
        d.dispatch("text")
    with pytest.raises(TypeError):
        d.dispatch(None)


def test_oversized_frames_dropped_unread(rec, got):
    d = Dispatcher(max_frame_size=64, on_error=rec)
    d.register(1, got.append)
    assert d.dispatch(encode(1, 0, SENDER, b"x" * (64 - 12 - len(SENDER)))) == 1
    assert d.dispatch(encode(1, 0, SENDER, b"x" * (65 - 12 - len(SENDER)))) == 0
    assert d.dispatch(b"\x00" * 100) == 0  # oversized wins: not even parsed
    assert rec.kinds == [DispatchError.OVERSIZED, DispatchError.OVERSIZED]
    assert counts(d, received=3, dispatched=1, oversized=2)
    with pytest.raises(ValueError):
        Dispatcher(max_frame_size=11)


def test_handler_exception_counted_reported_and_dispatch_continues(d, rec, got):
    boom = RuntimeError("boom")

    def bad(env):
        raise boom

    d.register(2, bad)
    batch = encode_batch([encode(1, 1, SENDER, b""), encode(2, 2, SENDER, b""),
                          encode(1, 3, SENDER, b"")])
    assert d.dispatch(batch) == 2
    assert [env.seq for env in got] == [1, 3]
    assert rec.errors == [(DispatchError.HANDLER_FAILED, boom)]
    assert counts(d, received=1, dispatched=2, handler_failed=1)


def test_on_error_that_raises_is_logged_not_propagated(got, caplog):
    def on_error(kind, detail, exc):
        raise ValueError("observer broke")

    d = Dispatcher(on_error=on_error)
    d.register(1, got.append)
    assert d.dispatch(b"garbage") == 0
    assert d.dispatch(encode(1, 0, b"", b"")) == 1
    assert "on_error" in caplog.text
    assert counts(d, received=2, dispatched=1, malformed=1)


def test_base_exceptions_from_handlers_propagate(d):
    def interrupt(env):
        raise KeyboardInterrupt

    d.register(3, interrupt)
    with pytest.raises(KeyboardInterrupt):
        d.dispatch(encode(3, 0, b"", b""))


def test_batch_unpacked_in_order(d, got):
    frames = [encode(1, i, SENDER, bytes([i]) * i) for i in range(10)]
    assert d.dispatch(encode_batch(frames)) == 10
    assert [(e.seq, e.body, e.sender) for e in got] == [(i, bytes([i]) * i, SENDER)
                                                         for i in range(10)]
    assert counts(d, received=1, dispatched=10)


def test_empty_batch(d):
    assert d.dispatch(encode_batch([])) == 0
    assert counts(d, received=1)


def test_batch_with_bad_members_dispatches_the_rest(d, rec, got):
    batch = encode_batch([encode(1, 1, SENDER, b""), b"junk", encode(7, 2, SENDER, b""),
                          encode(1, 3, SENDER, b"")])
    assert d.dispatch(batch) == 2
    assert [e.seq for e in got] == [1, 3]
    assert rec.kinds == [DispatchError.MALFORMED, DispatchError.UNKNOWN_TYPE]
    assert counts(d, received=1, dispatched=2, malformed=1, unknown_type=1)


@pytest.mark.parametrize("cut", [1, 2, 3, 4 + 5])
def test_truncated_batch(d, rec, got, cut):
    good = encode(1, 1, SENDER, b"ok")
    batch = encode_batch([good, encode(1, 2, SENDER, b"lost")])
    assert d.dispatch(batch[:-cut] if cut > 4 else batch + b"\x01" * cut) == (
        1 if cut > 4 else 2)
    assert [e.seq for e in got] == ([1] if cut > 4 else [1, 2])
    assert rec.kinds == [DispatchError.MALFORMED]
    assert d.counters()["malformed"] == 1


def test_batch_length_past_end(d, rec, got):
    batch = encode_batch([]) + struct.pack("<I", 0xFFFFFFFF) + encode(1, 0, b"", b"")
    assert d.dispatch(batch) == 0
    assert got == [] and rec.kinds == [DispatchError.MALFORMED]


def test_nested_batch_and_batch_with_sender_are_malformed(d, rec, got):
    inner = encode_batch([encode(1, 1, b"", b"")])
    assert d.dispatch(encode_batch([inner, encode(1, 2, b"", b"")])) == 1
    assert [e.seq for e in got] == [2]
    with_sender = struct.pack("<BBHIHH", 0xC7, 1, BATCH_TYPE, 0, 1, 0) + b"s"
    assert d.dispatch(with_sender) == 0
    assert rec.kinds == [DispatchError.MALFORMED, DispatchError.MALFORMED]


def test_batch_members_keep_their_fields_after_the_call(d, got):
    d.dispatch(encode_batch([encode(1, 5, b"a", b"first"), encode(1, 6, b"bb", b"second")]))
    assert [(e.type, e.seq, e.sender, e.body) for e in got] == [
        (1, 5, b"a", b"first"), (1, 6, b"bb", b"second")]


def test_return_values_sum_to_dispatched(d):
    total = 0
    for frame in (encode(1, 0, b"", b""), b"bad", encode_batch([encode(1, 0, b"", b"")] * 3)):
        total += d.dispatch(frame)
    assert total == d.counters()["dispatched"] == 4


# -- routes: parsed messages, no Envelope -------------------------------------------------
class BadBody(ValueError):
    pass


def parse(body):
    if body.startswith(b"bad"):
        raise BadBody(f"cannot parse {body!r}")
    if body.startswith(b"boom"):
        raise KeyError("a parser bug")
    return body.upper()


def route_to(got, undecodable):
    return Route(parse, lambda sender, msg, now: got.append((sender, msg, now)), lambda: 42.5, BadBody,
                 lambda sender, exc: undecodable.append((sender, str(exc))))


def test_a_route_hands_over_the_parsed_message_the_sender_as_str_and_the_time(d, rec, got):
    undecodable = []
    d.register(9, route_to(got, undecodable))
    frames = [encode(9, 1, SENDER, b"one"), encode(9, 2, b"tcp://h\xc3\xa9:1", b"two"),
              encode_batch([encode(9, 3, SENDER, b"three"), encode(9, 4, b"", b"")])]
    assert [d.dispatch(f) for f in frames] == [1, 1, 2]
    assert got == [(SENDER.decode(), b"ONE", 42.5), ("tcp://hé:1", b"TWO", 42.5), (SENDER.decode(), b"THREE", 42.5),
                   ("", b"", 42.5)]
    assert undecodable == [] and rec.errors == []
    assert counts(d, received=3, dispatched=4)


def test_a_body_the_route_cannot_parse_goes_to_undecodable_and_the_rest_goes_on(d, rec, got):
    undecodable = []
    d.register(9, route_to(got, undecodable))
    assert d.dispatch(encode_batch([encode(9, 1, SENDER, b"bad body"), encode(9, 2, SENDER, b"ok")])) == 2
    assert undecodable == [(SENDER.decode(), "cannot parse b'bad body'")]
    assert got == [(SENDER.decode(), b"OK", 42.5)]
    assert counts(d, received=1, dispatched=2) and rec.errors == []


def test_a_route_whose_parser_or_handler_fails_or_whose_sender_is_not_utf8_counts_a_failure(d, rec, got):
    undecodable = []
    d.register(9, route_to(got, undecodable))
    assert d.dispatch(encode(9, 1, SENDER, b"boom")) == 0  # not one of parse_errors
    assert d.dispatch(encode(9, 2, b"tcp://\xff", b"x")) == 0
    d.register(10, Route(parse, lambda sender, msg, now: 1 / 0, lambda: 0.0, BadBody, lambda s, e: None))
    assert d.dispatch(encode(10, 3, SENDER, b"x")) == 0
    assert rec.kinds == [DispatchError.HANDLER_FAILED] * 3
    assert isinstance(rec.errors[0][1], KeyError) and "not UTF-8" in str(rec.errors[1][1])
    assert isinstance(rec.errors[2][1], ZeroDivisionError)
    assert got == [] and undecodable == []
    assert counts(d, received=3, handler_failed=3)
    with pytest.raises(TypeError, match="clock must be callable"):
        Route(parse, print, None, BadBody, print)
