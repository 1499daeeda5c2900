"""A small stdlib client for a node's HTTP API: what `poi propose`, `poi devnet` and the
benchmarks call (`poi dag`, which formats answers for people, has its own on httpx).

Every failure is a `NodeRequestError` (an `OSError`) whose message names the URL and, when the
node answered, its status and its own JSON ``error`` text, so callers catch one thing and can
show the node's reason as it is.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

DEFAULT_TIMEOUT_S = 5.0
"""A node answers its API in milliseconds; slower calls (a POSTed commit, a proposer's
lineage) pass their own."""
BUNDLE_TYPE = "application/x-poi-bundle"


class NodeRequestError(OSError):
    """The node could not be reached, refused the request, or answered something that is not
    JSON where JSON was expected."""


def request(url: str, *, data: bytes | None = None, content_type: str | None = None,
            timeout: float = DEFAULT_TIMEOUT_S) -> bytes:
    """GET ``url`` (POST ``data`` when given) and return the body of a 2xx answer."""
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        try:
            message = json.loads(body).get("error", body)
        except (ValueError, AttributeError):
            message = body
        raise NodeRequestError(f"{url}: HTTP {exc.code}: {message[:500]}") from None
    except OSError as exc:  # URLError, refused, reset, timed out
        raise NodeRequestError(f"cannot reach {url}: {exc}") from None


def get_json(url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> Any:
    return _json(url, request(url, timeout=timeout))


def post_bundle(url: str, bundle: bytes, *, timeout: float = DEFAULT_TIMEOUT_S) -> Any:
    return _json(url, request(url, data=bundle, content_type=BUNDLE_TYPE, timeout=timeout))


def _json(url: str, body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise NodeRequestError(f"{url}: the answer is not JSON: {body[:200]!r}") from None


class NodeClient:
    """The same calls against one node's base URL."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def get(self, path: str) -> Any:
        return get_json(self.url + path, timeout=self.timeout)

    def get_text(self, path: str) -> str:
        return request(self.url + path, timeout=self.timeout).decode("utf-8")

    def post_bundle(self, path: str, bundle: bytes) -> Any:
        return post_bundle(self.url + path, bundle, timeout=self.timeout)
