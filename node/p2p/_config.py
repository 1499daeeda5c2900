"""Configuration of the p2p layer: one frozen dataclass, every number with its unit."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.keys import SigningKey

from ._frames import DEFAULT_MAX_FRAME_BYTES

__all__ = ["GOSSIP_RPC_CAP_BYTES", "MAX_GOSSIP_BYTES", "P2PConfig"]

GOSSIP_RPC_CAP_BYTES = 1 << 20
"""py-libp2p's (and go-libp2p-pubsub's) cap on one pubsub RPC, in bytes."""
GOSSIP_ENVELOPE_RESERVE_BYTES = 2048
"""Room left in an RPC for the envelope: from, seqno, key, signature, topic, the ~213-byte signed
sender record and protobuf tags (measured overhead is well under 1 KiB for 64-byte topics)."""
MAX_GOSSIP_BYTES = GOSSIP_RPC_CAP_BYTES - GOSSIP_ENVELOPE_RESERVE_BYTES
"""Largest gossip payload ``publish`` accepts (1 MiB - 2 KiB); larger raises MessageTooLarge."""


@dataclass(frozen=True)
class P2PConfig:
    """Everything :func:`open_p2p` needs; only ``key`` has no default."""

    key: SigningKey
    """The node's Ed25519 signing key, also its libp2p identity (same peer ID)."""
    listen: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    """TCP multiaddrs to listen on; port 0 picks a free port (see ``P2P.listen_addrs``)."""
    bootstrap: tuple[str, ...] = ()
    """``/ip4/.../tcp/.../p2p/<id>`` multiaddrs kept connected for the node's whole life."""

    # --- connections ---
    peer_exchange: bool = True
    """Ask connected peers for their peers (``/poi/px/1``) and dial them up to ``target_peers``."""
    target_peers: int = 8
    """Peer exchange stops dialing new peers at this many connections."""
    max_peers: int = 64
    """Inbound connections beyond this many peers are closed at once (bootstrap peers exempt)."""
    dial_timeout_s: float = 5.0
    reconnect_initial_backoff_s: float = 0.25
    reconnect_max_backoff_s: float = 5.0
    """Bootstrap reconnects back off from the initial to the max delay (x2, with jitter)."""
    peer_exchange_interval_s: float = 5.0

    # --- gossip ---
    heartbeat_s: float = 1.0
    """Gossipsub heartbeat (py-libp2p's default is 120 s)."""
    mesh_degree: int = 6
    mesh_degree_low: int = 4
    mesh_degree_high: int = 12
    seen_ttl_s: int = 120
    """How long a message ID is remembered for deduplication."""
    max_gossip_bytes: int = MAX_GOSSIP_BYTES
    delivery_buffer: int = 256
    """Capacity of each subscription's delivery channel and ignored channel (back-pressure)."""
    validator_timeout_s: float = 10.0
    """A validator slower than this counts as IGNORE("validator timed out")."""
    max_concurrent_validators: int = 32
    gossip_queue_capacity: int = 128
    """RPCs a peer's outbound gossip queue holds before py-libp2p drops (its default is 32:
    relays, which cannot wait, dropped 35 message RPCs in a 500-message burst over 20 nodes)."""
    publish_queue_high_water: int = 16
    """``publish`` waits while any peer's outbound RPC queue holds this many."""
    publish_stall_s: float = 5.0
    """... but at most this long: a peer that stays full is a stalled peer, not a reason to stop."""
    gossip_protocols: tuple[str, ...] = ("/meshsub/1.1.0",)
    """Gossipsub v1.1 only: py-libp2p's v1.2 sends an IDONTWANT RPC to every mesh peer for every
    message, whatever its size, which doubled the RPCs and the CPU per message (measured: 31 vs
    15 ms of CPU per message summed over 5 nodes, 29 vs 98 msgs/s)."""

    # --- peer penalties ---
    reject_threshold: int = 10
    """This many REJECTs (or ``report`` calls) against a peer within ``reject_window_s`` ..."""
    reject_window_s: float = 60.0
    ban_s: float = 300.0
    """... disconnect it and refuse it for this long."""

    # --- request/response ---
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_concurrent_requests: int = 64
    """Requests served at once (all protocols); more wait for a slot."""
    request_idle_s: float = 60.0
    """A served stream with no new request for this long is closed."""
    pooled_streams_per_peer: int = 4
    """Idle request streams kept open per (peer, protocol) for reuse."""

    def __post_init__(self) -> None:
        from ._errors import ConfigError

        if not isinstance(self.key, SigningKey):
            raise ConfigError("P2PConfig.key must be a protocol.keys.SigningKey")
        if not self.listen:
            raise ConfigError("P2PConfig.listen needs at least one multiaddr")
        if not 0 < self.max_gossip_bytes <= MAX_GOSSIP_BYTES:
            raise ConfigError(f"max_gossip_bytes must be in 1..{MAX_GOSSIP_BYTES}")
        if not self.mesh_degree_low <= self.mesh_degree <= self.mesh_degree_high:
            raise ConfigError("need mesh_degree_low <= mesh_degree <= mesh_degree_high")
        if self.heartbeat_s <= 0 or self.reject_threshold < 1:
            raise ConfigError("heartbeat_s must be > 0 and reject_threshold >= 1")
        if not 1 <= self.publish_queue_high_water < self.gossip_queue_capacity:
            raise ConfigError("need 1 <= publish_queue_high_water < gossip_queue_capacity")
