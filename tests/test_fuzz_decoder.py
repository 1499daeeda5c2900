"""Fuzz the decoders: every input is a valid object or a ProtocolError, nothing else escapes."""

from __future__ import annotations

import contextlib
import random

from protocol import examples
from protocol.encoding import decode
from protocol.errors import ProtocolError
from protocol.objects import PoiObject, SignedObject, decode_object

ROUNDS = 24_000


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a bit
            buf[pos % len(buf)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # set a byte to an interesting value
            buf[pos % len(buf)] = rng.choice([0x00, 0x7F, 0x80, 0xC1, 0xCA, 0xD4, 0xDC, 0xDE,
                                              0xDF, 0xFF, 0x90, 0x9F, 0xA0, 0xBF])
        elif op == 2:  # insert random bytes
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and buf:  # delete a run
            del buf[pos : pos + rng.randint(1, 8)]
        elif op == 4:  # truncate
            del buf[pos:]
        else:  # splice a chunk of itself
            start = rng.randrange(len(buf) + 1)
            buf[pos:pos] = buf[start : start + rng.randint(1, 16)]
    return bytes(buf)


def test_random_and_mutated_inputs_never_escape_the_error_type():
    rng = random.Random(20261123)
    seeds = [obj.encode() for obj in examples.all_objects().values()
             if isinstance(obj, PoiObject)]
    outcomes = {"decoded": 0, "refused": 0}
    for round_ in range(ROUNDS):
        if round_ % 4 == 0:
            data = rng.randbytes(rng.randint(0, 64))
        else:
            data = _mutate(rng, rng.choice(seeds))
        try:
            obj = decode_object(data)
        except ProtocolError:
            outcomes["refused"] += 1
            with contextlib.suppress(ProtocolError):  # the plain decoder: same error type
                decode(data)
            continue
        # Accepted: it must be a valid object whose encoding is exactly the input.
        assert obj.encode() == data
        if isinstance(obj, SignedObject):
            with contextlib.suppress(ProtocolError):
                obj.verify()
        outcomes["decoded"] += 1
    assert sum(outcomes.values()) == ROUNDS
    assert outcomes["refused"] > ROUNDS // 2
