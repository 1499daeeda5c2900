"""A p2p node in a child process, driven by JSON lines on stdin, reporting JSON lines on stdout.

Used by tests/test_p2p_network.py and benchmarks/p2p_burst.py. Start it with
``python -m tests.p2p_support.runner --seed <hex> [--bootstrap ADDR]... [--topic T]...``.

Validator policy (every topic): data starting with ``R`` is REJECTed, ``I`` is IGNOREd,
anything else ACCEPTed. Request handlers: ``/poi/test/echo/1`` (echo), ``/poi/test/slow/1``
(sleep ``ms``), ``/poi/test/error/1`` (raise), ``/poi/test/big/1`` (``n`` blobs of ``chunk``
bytes).

Gossip payloads made by the ``publish`` command are ``<prefix>|<tag>|<seq>|<monotonic ns>|``
padded to ``size``; CLOCK_MONOTONIC is system-wide on Linux, so a receiver's clock minus the
embedded one is the propagation delay.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from typing import Any

import trio

from node.p2p import (
    ACCEPT,
    Ignore,
    P2PConfig,
    P2PError,
    Reject,
    open_p2p,
    quiet_libp2p_logging,
)
from protocol.keys import SigningKey

ECHO, SLOW, ERROR, BIG = "/poi/test/echo/1", "/poi/test/slow/1", "/poi/test/error/1", \
    "/poi/test/big/1"


def emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def validator(peer_id: str, data: bytes) -> Any:
    if data[:1] == b"R":
        return Reject("test payload marked R")
    if data[:1] == b"I":
        return Ignore("test payload marked I")
    return ACCEPT


def payload(prefix: str, tag: str, seq: int, size: int) -> bytes:
    head = f"{prefix}|{tag}|{seq}|{time.monotonic_ns()}|".encode()
    return head + b"." * max(0, size - len(head))


class Runner:
    def __init__(self, p2p: Any, report_messages: bool) -> None:
        self.p2p = p2p
        self.report_messages = report_messages
        self.latencies: dict[str, list[tuple[int, int]]] = {}
        self.counts: dict[str, int] = {}
        self.seqs: dict[str, set[int]] = {}

    async def consume(self, sub: Any) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._messages, sub)
            nursery.start_soon(self._ignored, sub)

    async def _messages(self, sub: Any) -> None:
        async for msg in sub.messages:
            now = time.monotonic_ns()
            parts = msg.data[:96].split(b"|")
            tag, seq, sent = "", -1, 0
            if len(parts) >= 4:
                tag, seq, sent = parts[1].decode(), int(parts[2]), int(parts[3])
                self.latencies.setdefault(tag, []).append((seq, now - sent))
                self.counts[tag] = self.counts.get(tag, 0) + 1
                self.seqs.setdefault(tag, set()).add(seq)
            if self.report_messages:
                emit(ev="msg", topic=msg.topic, id=msg.msg_id.hex(), origin=msg.origin,
                     forwarder=msg.forwarder, tag=tag, seq=seq, lat_ns=now - sent if sent else 0,
                     size=len(msg.data), head=msg.data[:40].decode(errors="replace"))

    async def _ignored(self, sub: Any) -> None:
        async for msg in sub.ignored:
            emit(ev="ignored", topic=msg.topic, id=msg.msg_id.hex(), origin=msg.origin,
                 forwarder=msg.forwarder, reason=msg.reason,
                 head=msg.data[:40].decode(errors="replace"))

    async def peer_events(self) -> None:
        async with self.p2p.open_peer_events() as events:
            async for event in events:
                emit(ev="peer", kind=event.kind.value, peer=event.peer_id)

    async def command(self, cmd: dict[str, Any]) -> None:
        name = cmd.get("cmd")
        p2p = self.p2p
        if name == "publish":
            await self.publish(cmd)
        elif name == "publish_raw":
            try:
                result = await p2p.publish(cmd["topic"], bytes.fromhex(cmd["data_hex"]))
                emit(ev="published_raw", id=result.msg_id.hex(), duplicate=result.duplicate,
                     subscribers=result.subscribers)
            except P2PError as exc:
                emit(ev="publish_error", type=type(exc).__name__, error=str(exc))
        elif name == "peers":
            topic = cmd.get("topic", "")
            emit(ev="peers", peers=sorted(p2p.connected_peers()), tag=cmd.get("tag"),
                 topic_peers=sorted(p2p.topic_peers(topic)) if topic else [],
                 mesh=sorted(p2p.mesh_peers(topic)) if topic else [])
        elif name == "connect":
            try:
                emit(ev="connected", tag=cmd.get("tag"), peer=await p2p.connect(cmd["addr"]))
            except Exception as exc:
                emit(ev="connected", tag=cmd.get("tag"), error=repr(exc))
        elif name == "request":
            await self.request(cmd)
        elif name == "req_bench":
            await self.req_bench(cmd)
        elif name == "summary":
            tag = cmd["tag"]
            emit(ev="summary", tag=tag, count=self.counts.get(tag, 0),
                 distinct=len(self.seqs.get(tag, ())),
                 lat_ns=[ns for _, ns in self.latencies.get(tag, [])]
                 if cmd.get("latencies", True) else [],
                 seq_lat_ns=self.latencies.get(tag, []) if cmd.get("by_seq") else [])
        elif name == "stats":
            times = os.times()
            emit(ev="stats", stats=p2p.stats(), cpu_s=times.user + times.system,
                 max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                 tag=cmd.get("tag"))
        elif name == "subscribe":
            sub = await p2p.subscribe(cmd["topic"], validator)
            self.nursery.start_soon(self.consume, sub)
            emit(ev="subscribed", topic=cmd["topic"])
        else:
            emit(ev="error", error=f"unknown command {name!r}")

    async def publish(self, cmd: dict[str, Any]) -> None:
        topic, tag = cmd["topic"], cmd.get("tag", "t")
        count, size = cmd.get("count", 1), cmd.get("size", 64)
        interval = 1.0 / cmd["rate"] if cmd.get("rate") else 0.0
        start = time.perf_counter()
        cpu0 = sum(os.times()[:2])
        subscribers = []
        for seq in range(count):
            if interval:
                await trio.sleep_until(trio.current_time() + interval)
            result = await self.p2p.publish(topic, payload(cmd.get("prefix", "B"), tag, seq, size))
            subscribers.append(result.subscribers)
        emit(ev="published", tag=tag, count=count, secs=time.perf_counter() - start,
             cpu_s=sum(os.times()[:2]) - cpu0, min_subscribers=min(subscribers, default=0))

    async def request(self, cmd: dict[str, Any]) -> None:
        start = time.perf_counter()
        try:
            resp = await self.p2p.request(cmd["peer"], cmd["protocol"], cmd.get("body", {}),
                                          timeout=cmd.get("timeout", 10))
        except P2PError as exc:
            emit(ev="reply", id=cmd.get("id"), ok=False, type=type(exc).__name__,
                 error=str(exc), secs=time.perf_counter() - start)
            return
        size = sum(len(b) for b in resp.get("blobs", ()))
        emit(ev="reply", id=cmd.get("id"), ok=True, secs=time.perf_counter() - start,
             blob_bytes=size, resp=None if size else resp)

    async def req_bench(self, cmd: dict[str, Any]) -> None:
        """``n`` requests, ``concurrency`` at a time; report each latency and failures."""
        latencies: list[float] = []
        failures: list[str] = []
        limiter = trio.CapacityLimiter(cmd.get("concurrency", 1))

        async def one(i: int) -> None:
            async with limiter:
                start = time.perf_counter()
                try:
                    await self.p2p.request(cmd["peer"], cmd["protocol"],
                                           dict(cmd.get("body", {}), i=i),
                                           timeout=cmd.get("timeout", 10))
                    latencies.append(time.perf_counter() - start)
                except P2PError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i in range(cmd.get("n", 100)):
                nursery.start_soon(one, i)
        emit(ev="bench", id=cmd.get("id"), latencies=latencies, failures=failures,
             secs=time.perf_counter() - start)


async def serve_handlers(p2p: Any) -> None:
    async def echo(peer: str, request: dict[str, Any]) -> dict[str, Any]:
        return {"echo": request, "from": peer}

    async def slow(peer: str, request: dict[str, Any]) -> dict[str, Any]:
        await trio.sleep(request.get("ms", 100) / 1000)
        return {"slept_ms": request.get("ms", 100), "i": request.get("i", 0)}

    async def error(peer: str, request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError(request.get("msg", "handler failed on purpose"))

    async def big(peer: str, request: dict[str, Any]) -> dict[str, Any]:
        chunk = bytes(range(256)) * (request.get("chunk", 1 << 20) // 256)
        return {"blobs": [chunk] * request.get("n", 16)}

    for proto, handler in ((ECHO, echo), (SLOW, slow), (ERROR, error), (BIG, big)):
        p2p.set_handler(proto, handler)


async def read_commands(runner: Runner) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = b""
    async with stdin:
        while True:
            chunk = await stdin.receive_some(65536)
            if not chunk:
                return  # parent went away
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                cmd = json.loads(line)
                if cmd.get("cmd") == "exit":
                    return
                runner.nursery.start_soon(runner.command, cmd)


async def main(args: argparse.Namespace) -> None:
    config = P2PConfig(
        key=SigningKey(bytes.fromhex(args.seed)),
        listen=(args.listen,),
        bootstrap=tuple(args.bootstrap),
        peer_exchange=not args.no_px,
        reject_threshold=args.reject_threshold,
        max_frame_bytes=args.max_frame,
        reconnect_max_backoff_s=args.max_backoff,
        gossip_protocols=tuple(args.meshsub.split(",")),
        mesh_degree=args.degree[1], mesh_degree_low=args.degree[0],
        mesh_degree_high=args.degree[2],
    )
    async with open_p2p(config) as p2p, trio.open_nursery() as nursery:
        runner = Runner(p2p, report_messages=not args.quiet_messages)
        runner.nursery = nursery  # type: ignore[attr-defined]
        await serve_handlers(p2p)
        nursery.start_soon(runner.peer_events)
        for topic in args.topic:
            sub = await p2p.subscribe(topic, validator)
            nursery.start_soon(runner.consume, sub)
        emit(ev="ready", peer_id=p2p.peer_id, addrs=p2p.listen_addrs, pid=os.getpid())
        await read_commands(runner)
        nursery.cancel_scope.cancel()
    emit(ev="exited")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", required=True)
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    parser.add_argument("--bootstrap", action="append", default=[])
    parser.add_argument("--topic", action="append", default=[])
    parser.add_argument("--no-px", action="store_true")
    parser.add_argument("--reject-threshold", type=int, default=10)
    parser.add_argument("--max-frame", type=int, default=32 << 20)
    parser.add_argument("--max-backoff", type=float, default=2.0)
    parser.add_argument("--quiet-messages", action="store_true")
    parser.add_argument("--meshsub", default=",".join(P2PConfig.gossip_protocols))
    parser.add_argument("--degree", type=lambda s: [int(x) for x in s.split(",")],
                        default=[P2PConfig.mesh_degree_low, P2PConfig.mesh_degree,
                                 P2PConfig.mesh_degree_high], help="low,D,high")
    parser.add_argument("--log", default="WARNING")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    logging.basicConfig(level=arguments.log, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    quiet_libp2p_logging()
    trio.run(main, arguments)
