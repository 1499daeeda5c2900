"""``poi node run DATA_DIR`` and ``poi node status DATA_DIR``.

``run`` starts the daemon (node/runtime.py) from a data directory made by ``poi init``: the key
(sealed: the passphrase comes from ``POI_KEY_PASSPHRASE`` or a prompt), ``config.toml``, the
store. Flags override the config for this run. It logs to stderr and ``DATA_DIR/node.log``,
rewrites ``DATA_DIR/status.json`` whenever something changes (``"ready": true`` once it listens,
with ``listen_addrs`` and ``http_url``), prints one JSON line ``{"event": "ready", ...}`` on
stdout when ready, and stops cleanly on SIGINT or SIGTERM (exit status 0).

Also runnable without the ``poi`` entry point: ``python -m node.run_cli node run DATA_DIR``.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
from pathlib import Path

import typer

NODE_LOG = "node.log"
LOG_MAX_BYTES = 10 << 20


class _KeyValueFormatter(logging.Formatter):
    """``time level logger: message`` with the node's name, one line per record."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.node = name

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (f"{stamp}.{int(record.msecs):03d}Z {record.levelname:<7} node={self.node} "
                f"{record.name}: {record.getMessage()}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.node = name

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(record.created, 3), "level": record.levelname, "node": self.node,
               "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def setup_logging(data_dir: Path, level: str, name: str) -> None:
    """Structured logs to stderr and ``data_dir/node.log`` (JSON lines with POI_LOG_JSON=1)."""
    from .p2p import quiet_libp2p_logging

    formatter: logging.Formatter = (_JsonFormatter(name) if os.environ.get("POI_LOG_JSON")
                                    else _KeyValueFormatter(name))
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(formatter)
    root.addHandler(stderr)
    try:
        file = logging.handlers.RotatingFileHandler(data_dir / NODE_LOG, maxBytes=LOG_MAX_BYTES,
                                                    backupCount=3)
        file.setFormatter(formatter)
        root.addHandler(file)
    except OSError as exc:
        logging.getLogger("poi.node").warning("cannot log to %s: %s", data_dir / NODE_LOG, exc)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    quiet_libp2p_logging()


def register(app: typer.Typer) -> None:
    """Add ``poi node run`` and ``poi node status``."""
    node_app = typer.Typer(name="node", help="Run a node, or ask a running one how it is.",
                           no_args_is_help=True)

    @node_app.command("run")
    def run(
        data_dir: Path = typer.Argument(..., help="The node's data directory (`poi init`)."),
        role: list[str] = typer.Option([], "--role", help="observer, verifier, proposer "
                                       "(repeatable; replaces the config's roles)."),
        listen: list[str] = typer.Option([], "--listen", help="libp2p listen multiaddr "
                                         "(repeatable; replaces the config's)."),
        bootstrap: list[str] = typer.Option([], "--bootstrap", help="A peer's multiaddr with "
                                            "/p2p/<id> (repeatable; added to the config's)."),
        http_port: int = typer.Option(None, "--http-port", help="HTTP API port (0: any)."),
        no_http: bool = typer.Option(False, "--no-http", help="Do not serve the HTTP API."),
        log_level: str = typer.Option(None, "--log-level", help="debug, info, warning..."),
    ) -> None:
        """Run the node until SIGINT or SIGTERM."""
        import trio

        from protocol.errors import ProtocolError

        from .cli import fail
        from .config import ConfigError, load_config
        from .keystore import PASSPHRASE_ENV
        from .runtime import NodeError, run_node

        try:
            config = load_config(data_dir)
            if role:
                config.node.roles = list(role)
            if listen:
                config.network.listen = list(listen)
            config.network.bootstrap = [*config.network.bootstrap,
                                        *(b for b in bootstrap
                                          if b not in config.network.bootstrap)]
            if http_port is not None:
                config.http.port = http_port
            if no_http:
                config.http.enabled = False
            if log_level:
                config.node.log_level = log_level
            config.check(str(data_dir / "config.toml"))
        except ConfigError as exc:
            fail(str(exc))
        setup_logging(data_dir, config.node.log_level, config.node.name or data_dir.name)
        passphrase = os.environ.get(PASSPHRASE_ENV)
        if passphrase is None and (data_dir / "keys" / "node.key").exists():
            passphrase = typer.prompt("Passphrase for the node key", hide_input=True)
        try:
            trio.run(run_node, config, data_dir, passphrase)
        except (NodeError, ProtocolError, OSError) as exc:
            fail(str(exc))

    @node_app.command("status")
    def status(
        data_dir: Path = typer.Argument(..., help="The node's data directory."),
        as_json: bool = typer.Option(False, "--json", help="Print status.json as it is."),
    ) -> None:
        """Show what a node last wrote to its status.json (exit 1 if it is not running)."""
        from .cli import fail
        from .runtime import STATUS_NAME

        path = data_dir / STATUS_NAME
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            fail(f"{path} does not exist: the node has never run here")
        except (OSError, ValueError) as exc:
            fail(f"cannot read {path}: {exc}")
        alive = _alive(doc.get("pid"))
        if as_json:
            typer.echo(json.dumps({**doc, "alive": alive}, indent=1, sort_keys=True))
        else:
            typer.echo(_describe(doc, alive))
        raise typer.Exit(0 if alive and doc.get("phase") == "running" else 1)

    app.add_typer(node_app, name="node")


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(doc: dict, alive: bool) -> str:
    state = doc.get("phase", "?") if alive else f"not running (last: {doc.get('phase', '?')})"
    lines = [
        f"node {doc.get('name', '?')}  {state}  pid {doc.get('pid')}",
        f"  peer ID   {doc.get('peer_id')}",
        f"  roles     {', '.join(doc.get('roles', []))}",
        f"  listen    {', '.join(doc.get('listen_addrs', [])) or '-'}",
        f"  http      {doc.get('http_url') or 'off'}",
        f"  peers     {len(doc.get('peers', []))}   synced {doc.get('synced')}   "
        f"pending objects {doc.get('pending_objects')}",
    ]
    if doc.get("verifying"):
        lines.append(f"  verifying {doc['verifying']} (queue {doc.get('queue_length')})")
    for cid, chain in (doc.get("chains") or {}).items():
        lines.append(f"  target {chain.get('name')} {cid}")
        lines.append(f"    head {chain.get('head')}  finalized {chain.get('finalized')}  "
                     f"epoch {chain.get('epoch')}")
        lines.append(f"    commits {chain.get('commits')}  attestations "
                     f"{chain.get('attestations')}")
    return "\n".join(lines)


def main() -> None:
    app = typer.Typer(name="poi", no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """poi node commands."""

    register(app)
    app()


if __name__ == "__main__":
    main()
