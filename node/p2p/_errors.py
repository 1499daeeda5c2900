"""The p2p layer's errors: one small hierarchy, each message says what to do about it."""

from __future__ import annotations


class P2PError(Exception):
    """Base class of everything this package raises on purpose."""


class ConfigError(P2PError, ValueError):
    """A configuration the layer cannot run with (bad multiaddr, key mismatch...)."""


class MessageTooLarge(P2PError, ValueError):
    """A gossip publish over the size that fits one gossipsub RPC (never silently dropped)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(
            f"gossip message of {size} bytes is over the {limit}-byte limit (one gossipsub RPC "
            f"is capped at 1 MiB): announce a CID and let peers fetch the object by request"
        )


class FrameError(P2PError, ValueError):
    """A request/response frame that is not canonical MessagePack within the caps."""


class FrameTooLarge(FrameError):
    """A frame over the stream's ``max_frame_bytes``; the stream is reset."""

    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(f"frame of {size} bytes is over the {limit}-byte frame cap")


class RequestError(P2PError):
    """A request that did not produce a response."""


class RequestTimeout(RequestError, TimeoutError):
    """No response within the request's timeout; the stream was reset."""


class PeerUnreachable(RequestError):
    """No connection to the peer and none could be opened (or the peer is banned)."""


class ProtocolNotSupported(RequestError):
    """The peer does not serve the requested protocol."""


class RemoteError(RequestError):
    """The peer's handler failed; ``remote_type`` and the message are the peer's words."""

    def __init__(self, remote_type: str, message: str) -> None:
        self.remote_type, self.remote_message = remote_type, message
        super().__init__(f"peer's handler failed: {remote_type}: {message}")


class StreamBroken(RequestError):
    """The stream was reset or closed before a full response arrived."""
