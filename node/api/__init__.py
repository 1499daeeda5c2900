"""The node's HTTP surface: the versioned JSON API under /v1, server-sent events, Prometheus
metrics and the live DAG page at /.

``create_app(node)`` builds the FastAPI app for a Node (node/runtime.py); ``serve_api(node,
host, port)`` serves it with Hypercorn's trio worker inside the node's trio loop and reports
the bound URL through ``task_status``.
"""

from .app import ApiError, NodeView, create_app, serve_api

__all__ = ["ApiError", "NodeView", "create_app", "serve_api"]
