"""node.p2p with several nodes in one trio run on 127.0.0.1 (fast checks of each behaviour).

The multi-process stories (5 nodes, bursts, SIGKILL and restart) are in test_p2p_network.py.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.keys import KeyPair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.security.secio import transport as secio
from multiaddr import Multiaddr

from node.devnet.layout import free_ports
from node.p2p import (
    ACCEPT,
    MAX_GOSSIP_BYTES,
    FrameTooLarge,
    Ignore,
    MessageTooLarge,
    P2PConfig,
    PeerEventKind,
    PeerUnreachable,
    ProtocolNotSupported,
    Reject,
    RemoteError,
    RequestTimeout,
    StreamBroken,
    message_id,
    open_p2p,
    quiet_libp2p_logging,
)
from node.p2p._node import build_host
from protocol.keys import SigningKey

quiet_libp2p_logging()
TOPIC = "poi/test/1"


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 60) -> None:
    async def main() -> None:
        with trio.fail_after(timeout):
            await scenario()

    trio.run(main)


def config(**overrides: Any) -> P2PConfig:
    return P2PConfig(key=SigningKey.generate(), **overrides)


async def wait_for(condition: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.02)


async def start(nursery: trio.Nursery, cfg: P2PConfig) -> tuple[Any, trio.CancelScope]:
    """Run a node in its own task; cancel the returned scope to stop just that node."""

    async def serve(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            async with open_p2p(cfg) as p2p:
                task_status.started((p2p, scope))
                await trio.sleep_forever()

    return await nursery.start(serve)


async def accept_all(peer: str, data: bytes) -> Any:
    return ACCEPT


async def by_prefix(peer: str, data: bytes) -> Any:
    if data.startswith(b"R"):
        return Reject("marked R")
    if data.startswith(b"I"):
        return Ignore("marked I")
    return ACCEPT


async def mesh_ready(*nodes: Any, topic: str = TOPIC) -> None:
    """Every node has every other as a gossip peer on ``topic``."""
    ids = {n.peer_id for n in nodes}

    def ready() -> bool:
        for node in nodes:
            subscribed = {p.to_base58() for p in node._gossip.pubsub.peer_topics.get(topic, ())}
            if not (ids - {node.peer_id}) <= subscribed:
                return False
        return True

    await wait_for(ready, 15, "gossip peers")


# --- identity and transport ---------------------------------------------------------------------
def test_peer_id_is_the_signing_key_and_listen_addrs_carry_the_bound_port():
    async def scenario() -> None:
        key = SigningKey(bytes(range(32)))
        async with open_p2p(P2PConfig(key=key)) as p2p:
            assert p2p.peer_id == key.peer_id
            (addr,) = p2p.listen_addrs
            assert addr.startswith("/ip4/127.0.0.1/tcp/")
            assert addr.endswith(f"/p2p/{key.peer_id}")
            assert int(addr.split("/")[4]) > 0  # port 0 became a real port

    run(scenario)


def test_gossip_sequence_numbers_start_at_the_clock_in_nanoseconds():
    """py-libp2p starts them at the clock in seconds: a node restarted within N seconds of
    publishing N messages would reuse (origin, seqno) pairs that peers drop as equivocation."""
    async def scenario() -> None:
        before = time.time_ns()
        async with open_p2p(P2PConfig(key=SigningKey(bytes(range(32))))) as p2p:
            assert p2p._gossip.pubsub.counter >= before

    run(scenario)


def _foreign_host(sec_opt_for: Callable[[KeyPair], dict[TProtocol, Any]]) -> Any:
    private = Ed25519PrivateKey.from_bytes(os.urandom(32))
    key_pair = KeyPair(private, private.get_public_key())
    return new_host(key_pair=key_pair, sec_opt=sec_opt_for(key_pair),
                    listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")])


@pytest.mark.parametrize("security", ["plaintext", "secio"])
def test_a_dialer_without_noise_cannot_connect(security):
    options = {
        "plaintext": lambda kp: {TProtocol(PLAINTEXT_PROTOCOL_ID): InsecureTransport(kp)},
        "secio": lambda kp: {TProtocol(secio.ID): secio.Transport(kp)},
    }[security]

    async def scenario() -> None:
        async with open_p2p(config()) as node:
            intruder = _foreign_host(options)
            target, addr = ID.from_base58(node.peer_id), Multiaddr(node.listen_addrs[0])
            async with intruder.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
                with pytest.raises(Exception), trio.fail_after(10):  # noqa: B017 (any failure)
                    await intruder.get_network().dial_addr(addr, target)
                assert intruder.get_connected_peers() == []
            assert node.connected_peers() == []

    run(scenario)


def test_noise_dialer_connects_in_milliseconds_not_the_250ms_of_host_connect():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, _ = await start(nursery, config())
            b, _ = await start(nursery, config())
            began = time.perf_counter()
            assert await b.connect(a.listen_addrs[0]) == a.peer_id
            elapsed = time.perf_counter() - began
            assert a.peer_id in b.connected_peers()
            assert elapsed < 0.2, f"dial took {elapsed:.3f}s"
            nursery.cancel_scope.cancel()

    run(scenario)


def test_build_host_refuses_a_listen_address_that_is_not_tcp():
    from node.p2p import ConfigError

    with pytest.raises(ConfigError, match="not TCP"):
        build_host(config(listen=("/ip4/127.0.0.1/udp/0/quic-v1",)))


# --- bootstrap and peer exchange -----------------------------------------------------------------
def test_bootstrap_peer_down_at_start_is_connected_when_it_comes_up_and_after_restarts():
    async def scenario() -> None:
        port = next(free_ports())
        key_a = SigningKey.generate()
        listen = (f"/ip4/127.0.0.1/tcp/{port}",)
        boot = f"/ip4/127.0.0.1/tcp/{port}/p2p/{key_a.peer_id}"
        async with trio.open_nursery() as nursery:
            b, _ = await start(nursery, config(bootstrap=(boot,), reconnect_max_backoff_s=0.5))
            await wait_for(lambda: b.stats()["peers_dial_failures"] >= 3, 10, "failed dials")
            assert b.connected_peers() == []
            for _round in range(2):  # first start, then a restart on the same port
                _a, a_scope = await start(nursery, P2PConfig(key=key_a, listen=listen))
                await wait_for(lambda: key_a.peer_id in b.connected_peers(), 10, "reconnect")
                a_scope.cancel()
                await wait_for(lambda: key_a.peer_id not in b.connected_peers(), 10, "drop")
            nursery.cancel_scope.cancel()

    run(scenario)


def test_peer_exchange_connects_nodes_that_only_know_the_bootstrap_node():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            hub, _ = await start(nursery, config())
            cfg = {"bootstrap": (hub.listen_addrs[0],), "peer_exchange_interval_s": 0.5}
            leaves = [(await start(nursery, config(**cfg)))[0] for _ in range(3)]
            for leaf in leaves:
                others = {n.peer_id for n in [hub, *leaves]} - {leaf.peer_id}
                await wait_for(lambda leaf=leaf, others=others:
                               others <= set(leaf.connected_peers()), 15, "peer exchange")
            nursery.cancel_scope.cancel()

    run(scenario)


def test_peer_events_report_connect_and_disconnect():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, _ = await start(nursery, config())
            events = a.open_peer_events()
            b, b_scope = await start(nursery, config(bootstrap=(a.listen_addrs[0],)))
            with trio.fail_after(10):
                first = await events.receive()
            assert (first.kind, first.peer_id) == (PeerEventKind.CONNECTED, b.peer_id)
            b_scope.cancel()
            with trio.fail_after(10):
                second = await events.receive()
            assert (second.kind, second.peer_id) == (PeerEventKind.DISCONNECTED, b.peer_id)
            assert a.connected_peers() == []
            nursery.cancel_scope.cancel()

    run(scenario)


# --- gossip -------------------------------------------------------------------------------------
async def _pair(nursery: trio.Nursery, validator: Any = accept_all, **cfg: Any
                ) -> tuple[Any, Any, Any, Any]:
    a, _ = await start(nursery, config(**cfg))
    b, _ = await start(nursery, config(bootstrap=(a.listen_addrs[0],), **cfg))
    sub_a = await a.subscribe(TOPIC, validator)
    sub_b = await b.subscribe(TOPIC, validator)
    await mesh_ready(a, b)
    return a, b, sub_a, sub_b


def test_own_publish_is_not_delivered_back_and_a_repeat_is_a_duplicate():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, b, sub_a, sub_b = await _pair(nursery)
            result = await a.publish(TOPIC, b"hello")
            assert result.msg_id == message_id(TOPIC, b"hello")
            assert (result.duplicate, result.subscribers) == (False, 1)
            with trio.fail_after(10):
                got = await sub_b.messages.receive()
            assert (got.data, got.origin, got.forwarder) == (b"hello", a.peer_id, a.peer_id)
            assert (await a.publish(TOPIC, b"hello")).duplicate
            # IHAVE gossip advertises what the seen-caches dedupe on: the content message ID
            assert a._gossip.router.mcache.get(result.msg_id) is not None
            await b.publish(TOPIC, b"from b")
            with trio.fail_after(10):
                assert (await sub_a.messages.receive()).data == b"from b"
            with pytest.raises(trio.WouldBlock):
                sub_a.messages.receive_nowait()  # a never got its own "hello"
            with pytest.raises(trio.WouldBlock):
                sub_b.messages.receive_nowait()  # nor b its "from b", nor a second "hello"
            nursery.cancel_scope.cancel()

    run(scenario)


def test_largest_message_arrives_and_one_byte_more_is_refused_loudly():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, _b, _sa, sub_b = await _pair(nursery)
            biggest = os.urandom(MAX_GOSSIP_BYTES)
            await a.publish(TOPIC, biggest)
            with trio.fail_after(15):
                assert (await sub_b.messages.receive()).data == biggest
            with pytest.raises(MessageTooLarge, match="over the"):
                await a.publish(TOPIC, biggest + b"x")
            nursery.cancel_scope.cancel()

    run(scenario)


def test_slow_consumer_gets_back_pressure_not_drops():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, _b, _sa, sub_b = await _pair(nursery, delivery_buffer=4)
            count = 300
            for i in range(count):  # nobody reads sub_b meanwhile
                await a.publish(TOPIC, b"m%d" % i)
            received = []
            with trio.fail_after(60):
                while len(received) < count:
                    received.append((await sub_b.messages.receive()).data)
            assert sorted(received) == sorted(b"m%d" % i for i in range(count))
            nursery.cancel_scope.cancel()

    run(scenario, timeout=120)


def test_reject_and_ignore_are_not_delivered_as_messages_and_ignore_reaches_its_channel():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, b, _sa, sub_b = await _pair(nursery, by_prefix)
            await a.publish(TOPIC, b"R bad")
            await a.publish(TOPIC, b"I later")
            await a.publish(TOPIC, b"ok")
            with trio.fail_after(10):
                ignored = await sub_b.ignored.receive()
                accepted = await sub_b.messages.receive()
            assert (ignored.data, ignored.reason) == (b"I later", "marked I")
            assert accepted.data == b"ok"
            await wait_for(lambda: b.stats()["gossip_rejected"] == 1, 5, "reject counted")
            nursery.cancel_scope.cancel()

    run(scenario)


def test_an_ignored_message_is_judged_again_when_it_comes_back_later(monkeypatch):
    import node.p2p._gossip as gossip_module

    monkeypatch.setattr(gossip_module, "RECENT_VERDICT_S", 0.3)
    ready = trio.Event()

    async def parents_needed(peer: str, data: bytes) -> Any:
        return ACCEPT if ready.is_set() else Ignore("parent missing")

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, b, _sa, sub_b = await _pair(nursery, parents_needed, heartbeat_s=0.2)
            await a.publish(TOPIC, b"child")
            with trio.fail_after(10):
                assert (await sub_b.ignored.receive()).reason == "parent missing"
            ready.set()  # b fetched the parent meanwhile
            mid = message_id(TOPIC, b"child")
            await wait_for(lambda: mid not in b._gossip._verdicts
                           and b._gossip.pubsub.validation_cache.get(mid) is None, 5,
                           "the ignore to be forgotten")
            c, _ = await start(nursery, config(bootstrap=(b.listen_addrs[0],), heartbeat_s=0.2))
            await c.subscribe(TOPIC, accept_all)
            await mesh_ready(b, c)
            await c.publish(TOPIC, b"child")  # the same bytes again, from another node
            with trio.fail_after(10):
                again = await sub_b.messages.receive()
            assert (again.data, again.origin) == (b"child", c.peer_id)
            nursery.cancel_scope.cancel()

    run(scenario)


def test_validator_errors_and_timeouts_count_as_ignore_not_reject():
    async def flaky(peer: str, data: bytes) -> Any:
        if data == b"boom":
            raise RuntimeError("validator bug")
        if data == b"slow":
            await trio.sleep(5)
        return ACCEPT

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, b, _sa, sub_b = await _pair(nursery, flaky, validator_timeout_s=0.3)
            await a.publish(TOPIC, b"boom")
            await a.publish(TOPIC, b"slow")
            with trio.fail_after(10):
                reasons = sorted([(await sub_b.ignored.receive()).reason for _ in range(2)])
            assert "validator error" in reasons[0] and "RuntimeError" in reasons[0]
            assert "validator took over" in reasons[1]
            assert b.stats()["gossip_rejected"] == 0 and not b.is_banned(a.peer_id)
            nursery.cancel_scope.cancel()

    run(scenario)


def test_repeated_rejects_ban_the_forwarder_which_cannot_reconnect_until_the_ban_ends():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, b, _sa, _sb = await _pair(nursery, by_prefix, reject_threshold=3, ban_s=3.0)
            for i in range(3):
                await a.publish(TOPIC, b"R%d" % i)
            await wait_for(lambda: b.is_banned(a.peer_id), 10, "ban")
            await wait_for(lambda: b.peer_id not in a.connected_peers(), 10, "disconnect")
            # a dials b again: b closes the connection at once and counts a refusal
            refused = b.stats()["peers_refused"]
            with contextlib.suppress(Exception):
                await a.connect(b.listen_addrs[0])
            await wait_for(lambda: b.stats()["peers_refused"] > refused, 10, "refusal")
            await wait_for(lambda: b.peer_id not in a.connected_peers(), 10, "closed")
            # when the ban ends, b's bootstrap loop (b bootstraps from a) reconnects
            await wait_for(lambda: not b.is_banned(a.peer_id), 10, "ban expiry")
            await wait_for(lambda: a.peer_id in b.connected_peers(), 15, "reconnect")
            nursery.cancel_scope.cancel()

    run(scenario)


# --- request/response --------------------------------------------------------------------------
async def _served_pair(nursery: trio.Nursery, **cfg: Any) -> tuple[Any, Any]:
    a, _ = await start(nursery, config(**cfg))
    b, _ = await start(nursery, config(bootstrap=(a.listen_addrs[0],), **cfg))

    async def echo(peer: str, request: dict[str, Any]) -> dict[str, Any]:
        return {"echo": request, "peer": peer}

    async def fail(peer: str, request: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("no such object")

    async def not_a_map(peer: str, request: dict[str, Any]) -> Any:
        return [1, 2]

    async def slow(peer: str, request: dict[str, Any]) -> dict[str, Any]:
        await trio.sleep(request["ms"] / 1000)
        return {"done": True}

    async def blob(peer: str, request: dict[str, Any]) -> dict[str, Any]:
        return {"data": bytes(request["n"])}

    for name, handler in (("echo", echo), ("fail", fail), ("bad", not_a_map), ("slow", slow),
                          ("blob", blob)):
        a.set_handler(f"/t/{name}/1", handler)
    await wait_for(lambda: a.peer_id in b.connected_peers(), 10, "connect")
    return a, b


def test_request_round_trip_errors_and_unsupported_protocol():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, b = await _served_pair(nursery)
            reply = await b.request(a.peer_id, "/t/echo/1", {"x": [1, b"\x00"]}, timeout=5)
            assert reply == {"echo": {"x": [1, b"\x00"]}, "peer": b.peer_id}
            with pytest.raises(RemoteError, match="KeyError") as info:
                await b.request(a.peer_id, "/t/fail/1", {}, timeout=5)
            assert info.value.remote_type == "KeyError"
            with pytest.raises(RemoteError, match="not a dict"):
                await b.request(a.peer_id, "/t/bad/1", {}, timeout=5)
            with pytest.raises(ProtocolNotSupported):
                await b.request(a.peer_id, "/t/missing/1", {}, timeout=5)
            # the pooled stream still works after the errors
            assert (await b.request(a.peer_id, "/t/echo/1", {}, timeout=5))["echo"] == {}
            nursery.cancel_scope.cancel()

    run(scenario)


def test_request_timeout_is_clean_and_the_next_request_works():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, b = await _served_pair(nursery)
            began = time.perf_counter()
            with pytest.raises(RequestTimeout):
                await b.request(a.peer_id, "/t/slow/1", {"ms": 5000}, timeout=0.3)
            assert time.perf_counter() - began < 1.5
            assert (await b.request(a.peer_id, "/t/slow/1", {"ms": 0}, timeout=5)) == {"done": True}
            nursery.cancel_scope.cancel()

    run(scenario)


def test_slow_handlers_serve_concurrent_requests():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, b = await _served_pair(nursery)
            began = time.perf_counter()
            async with trio.open_nursery() as requests:
                for _ in range(20):
                    requests.start_soon(
                        lambda: b.request(a.peer_id, "/t/slow/1", {"ms": 500}, timeout=10))
            assert time.perf_counter() - began < 4  # 20 x 0.5 s one at a time would be 10 s
            nursery.cancel_scope.cancel()

    run(scenario)


def test_frames_over_the_cap_are_refused_on_both_sides():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, b = await _served_pair(nursery, max_frame_bytes=1 << 20)
            with pytest.raises(FrameTooLarge):  # the request itself: refused before sending
                await b.request(a.peer_id, "/t/echo/1", {"x": bytes(2 << 20)}, timeout=5)
            with pytest.raises(RemoteError, match="FrameTooLarge"):  # the server's reply
                await b.request(a.peer_id, "/t/blob/1", {"n": 2 << 20}, timeout=10)
            assert (await b.request(a.peer_id, "/t/blob/1", {"n": 1000}, timeout=5))["data"]
            nursery.cancel_scope.cancel()

    run(scenario)


def test_an_oversized_request_frame_from_a_peer_is_refused_and_the_stream_reset():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, _ = await start(nursery, config(max_frame_bytes=1000))

            async def echo(peer: str, request: dict[str, Any]) -> dict[str, Any]:
                return request

            a.set_handler("/t/echo/1", echo)
            b, _ = await start(nursery, config(bootstrap=(a.listen_addrs[0],)))
            await wait_for(lambda: a.peer_id in b.connected_peers(), 10, "connect")
            with pytest.raises((RemoteError, StreamBroken)) as info:
                await b.request(a.peer_id, "/t/echo/1", {"x": bytes(5000)}, timeout=5)
            if isinstance(info.value, RemoteError):  # the error frame won the race to the reset
                assert info.value.remote_type == "FrameTooLarge"
            assert (await b.request(a.peer_id, "/t/echo/1", {"x": 1}, timeout=5)) == {"x": 1}
            nursery.cancel_scope.cancel()

    run(scenario)


def test_request_to_a_peer_with_no_known_address_is_unreachable():
    async def scenario() -> None:
        async with open_p2p(config()) as a:
            with pytest.raises(PeerUnreachable):
                await a.request(SigningKey.generate().peer_id, "/t/echo/1", {}, timeout=5)

    run(scenario)


# --- lifetime -----------------------------------------------------------------------------------
def test_cancelling_the_owner_scope_shuts_everything_down_fast():
    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            a, a_scope = await start(nursery, config())
            b, b_scope = await start(nursery, config(bootstrap=(a.listen_addrs[0],)))
            await b.subscribe(TOPIC, accept_all)
            await a.subscribe(TOPIC, accept_all)
            await mesh_ready(a, b)
            for i in range(50):
                await a.publish(TOPIC, b"%d" % i)
            began = time.perf_counter()
            b_scope.cancel()
            a_scope.cancel()
        elapsed = time.perf_counter() - began
        assert elapsed < 2.0, f"shutdown took {elapsed:.2f}s"

    run(scenario)
