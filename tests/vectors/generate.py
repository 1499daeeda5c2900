"""Write the protocol's known-answer vectors: ``python -m tests.vectors.generate``.

The file lets another implementation check itself against ours: for fixed seeds, the public
keys and peer IDs; for tagged plain values, their canonical encodings; for one example of every
object type (built by ``protocol.examples``), its encoding, CID, signed payload and signature.
Bytes are hex; in plain values a byte string is written ``{"$bytes": "<hex>"}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from protocol import examples
from protocol.encoding import encode
from protocol.keys import domain
from protocol.objects import SignedObject

PATH = Path(__file__).with_name("protocol-v1.json")

PLAIN_VALUES: list[Any] = [
    None, True, False, 0, 127, 128, 255, 256, 65535, 65536, 2**32, 2**64 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63),
    "", "a", "é", "x" * 31, "x" * 32, "x" * 256, b"", b"\x00\xff", bytes(256),
    [], [1, [2, [3]]], list(range(16)), {}, {"b": 1, "a": 2, "aa": 3, "é": 4, "Z": 5},
    {"nested": {"z": [b"\x01", None], "a": {"": 0}}},
]


def to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def vectors() -> dict[str, Any]:
    keys = []
    for index in range(4):
        key = examples.key(index)
        keys.append({"seed_preimage": f"poi-example-key-{index}", "seed": key.seed.hex(),
                     "public_key": key.public_key.hex(), "peer_id": key.peer_id})
    plain = [{"value": to_json(v), "encoding": encode(v).hex()} for v in PLAIN_VALUES]
    objects = {}
    for name, obj in examples.all_objects().items():
        entry: dict[str, Any] = {"type": getattr(obj, "TYPE", "blob"),
                                 "encoding": obj.encode().hex(), "cid": str(obj.cid)}
        if isinstance(obj, SignedObject):
            entry["signer"] = obj.signer.hex()
            entry["signed_message"] = (domain(obj.TYPE) + obj.signing_payload()).hex()
            entry["sig"] = obj.sig.hex()
        objects[name] = entry
    return {
        "about": "poi protocol v1 known-answer vectors; see docs/PROTOCOL.md and "
                 "tests/vectors/generate.py",
        "keys": keys,
        "plain_values": plain,
        "objects": objects,
    }


def render() -> str:
    return json.dumps(vectors(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    PATH.write_text(render())
    sys.stdout.write(f"wrote {PATH}\n")
