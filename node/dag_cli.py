"""``poi dag …``: query a running node's improvement DAG over its HTTP API.

Every command takes the node's URL as ``--node http://127.0.0.1:PORT`` (or ``$POI_NODE``), or
``--data-dir DIR`` to read it from the node's ``status.json``. ``--json`` prints the API's JSON
as it is, for scripts; otherwise output is a readable table. ``poi dag patch CID`` prints the raw
unified diff, so ``poi dag patch CID | git apply`` works.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

__all__ = ["DagCliError", "NodeClient", "node_url", "register"]

NODE_ENV = "POI_NODE"
TIMEOUT_S = 15.0
STATUS_STYLE = {"final": "bold green", "accepted": "green", "pending": "yellow",
                "rejected": "bold red"}
RESULT_STYLE = {"improved": "green", "not_improved": "yellow", "timeout": "yellow",
                "gate_failed": "red", "build_failed": "red", "scope_violation": "red"}

NodeOption = typer.Option(None, "--node", envvar=NODE_ENV, show_envvar=True,
                          help="The node's HTTP URL, e.g. http://127.0.0.1:8645.")
DataDirOption = typer.Option(None, "--data-dir", help="Read the node's URL from DIR/status.json "
                             "(a node started with `poi node run DIR`).")
JsonOption = typer.Option(False, "--json", help="Print the API's JSON unchanged.")


class DagCliError(Exception):
    """Something the user can fix: an unreachable node, an unknown CID..."""


def _fail(message: str) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(Text(f"error: {message}", style="red"))
    raise typer.Exit(2)


def node_url(node: str | None, data_dir: Path | None) -> str:
    """The base URL to query: --node, else $POI_NODE (via typer), else DIR/status.json."""
    if node:
        url = node.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            url = "http://" + url
        return url
    if data_dir is not None:
        path = Path(data_dir) / "status.json"
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DagCliError(f"cannot read {path}: {exc} (is the node running?)") from None
        url = doc.get("http_url") if isinstance(doc, dict) else None
        if not url:
            raise DagCliError(f"{path} names no HTTP URL: the node runs without HTTP, or has "
                              "not started yet")
        return str(url).rstrip("/")
    raise DagCliError(f"which node? pass --node http://127.0.0.1:PORT (the node prints its "
                      f"HTTP URL when it starts), set {NODE_ENV}, or pass --data-dir DIR")


class NodeClient:
    """A thin client of the node's /v1 API that turns every failure into a DagCliError."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=TIMEOUT_S)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> httpx.Response:
        try:
            response = self.http.get(path, params={k: v for k, v in params.items()
                                                   if v is not None})
        except httpx.ConnectError:
            raise DagCliError(f"cannot reach the node at {self.url}: connection refused (is it "
                              "running? check --node)") from None
        except httpx.TimeoutException:
            raise DagCliError(f"the node at {self.url} did not answer within {TIMEOUT_S:.0f} s"
                              ) from None
        except httpx.HTTPError as exc:
            raise DagCliError(f"cannot query the node at {self.url}: {exc}") from None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = response.text.strip()[:200] or response.reason_phrase
            raise DagCliError(f"{message} (HTTP {response.status_code})")
        return response

    def json(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        try:
            return response.json()
        except ValueError:
            raise DagCliError(f"{self.url}{path} did not answer JSON: is this a poi node?"
                              ) from None

    def target(self, target: str | None) -> dict[str, Any]:
        """The target named, or the only one the node follows."""
        if target:
            return self.json(f"/v1/targets/{target}")
        targets = self.json("/v1/targets")
        if not targets:
            raise DagCliError("the node follows no target yet")
        if len(targets) > 1:
            names = ", ".join(f"{t['name']} ({t['cid']})" for t in targets)
            raise DagCliError(f"the node follows several targets; pick one with --target: "
                              f"{names}")
        return targets[0]


def _ratio(ppm: int | None) -> str:
    return "—" if ppm is None else f"{ppm / 1e6:.4f}"


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _status(text: str) -> Text:
    return Text(text, style=STATUS_STYLE.get(text, ""))


def _cid(cid: str, full: bool) -> str:
    return cid if full else f"{cid[:10]}…{cid[-6:]}"


def _print_json(console: Console, value: Any) -> None:
    console.print_json(json.dumps(value))


def _run(node: str | None, data_dir: Path | None, action) -> None:
    try:
        client = NodeClient(node_url(node, data_dir))
    except DagCliError as exc:
        _fail(str(exc))
    try:
        action(client, Console(highlight=False, soft_wrap=not sys.stdout.isatty()))
    except DagCliError as exc:
        _fail(str(exc))
    finally:
        client.close()


# -- the commands ---------------------------------------------------------------------------------

def show_status(client: NodeClient, out: Console, as_json: bool) -> None:
    status = client.json("/v1/status")
    targets = client.json("/v1/targets")
    chains = {t["cid"]: client.json(f"/v1/targets/{t['cid']}/chain") for t in targets}
    if as_json:
        _print_json(out, {"status": status, "targets": targets})
        return
    out.print(f"[bold]node[/] {status['peer_id']}  ({client.url})")
    out.print(f"  roles: {', '.join(status['roles']) or 'none'} · peers: {len(status['peers'])}"
              f" · {'synced' if status['synced'] else 'syncing'} · queue: "
              f"{status['queue_length']}"
              + (f" · verifying {status['verifying']}" if status.get("verifying") else "")
              + f" · up {status['uptime_s']:.0f} s · version {status['version']}")
    if not targets:
        out.print("  follows no target yet")
        return
    table = Table(title="targets", title_justify="left")
    for column in ("name", "cid", "commits", "head", "finalized", "speed-up"):
        table.add_column(column, justify="right" if column in ("commits", "speed-up") else "left",
                         overflow="fold")
    for t in targets:
        table.add_row(t["name"], _cid(t["cid"], False), str(t["commit_count"]),
                      _cid(t["head"], False), _cid(t["finalized"], False),
                      f"{chains[t['cid']]['speedup']:.3f}×")
    out.print(table)


def show_log(client: NodeClient, out: Console, target: str | None, full: bool,
             as_json: bool) -> None:
    info = client.target(target)
    chain = client.json(f"/v1/targets/{info['cid']}/chain")
    if as_json:
        _print_json(out, chain)
        return
    table = Table(title=f"canonical chain of {info['name']}: {chain['speedup']:.3f}× over the "
                        f"baseline", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("commit")
    table.add_column("message")
    table.add_column("ratio", justify="right")
    table.add_column("speed-up", justify="right")
    table.add_column("state")
    table.add_row("0", _cid(info["cid"], full), Text("(target)", style="dim"), "", "1.000×", "")
    for number, step in enumerate(chain["steps"], 1):
        table.add_row(str(number), _cid(step["cid"], full), step["message"],
                      _ratio(step["ratio_ppm"]), f"{step['speedup']:.3f}×",
                      _status("final" if step["final"] else "accepted"))
    out.print(table)


def show_commit(client: NodeClient, out: Console, cid: str, as_json: bool) -> None:
    commit = client.json(f"/v1/commits/{cid}")
    if as_json:
        _print_json(out, commit)
        return
    claim, stake = commit["claim"], commit["stake"]
    out.print(Text.assemble(("commit ", "bold"), commit["cid"], "  ",
                            _status(commit["status"]),
                            ("  on the canonical chain" if commit["on_chain"] else "", "blue")))
    rows = [
        ("message", commit["message"] or "(none)"),
        ("target", commit["target"]),
        ("parents", ", ".join(commit["parents"])),
        ("children", ", ".join(commit["children"]) or "none"),
        ("author", commit["author"]),
        ("time", _time(commit["time_ms"])),
        ("claim", f"ratio {_ratio(claim['ratio_ppm'])} in [{_ratio(claim['lo_ppm'])}, "
                  f"{_ratio(claim['hi_ppm'])}] over {claim['pairs']} pairs ({claim['profile']})"),
        ("verified ratio", _ratio(commit["verified_ratio_ppm"])),
        ("stake", f"{stake['improved']} for · {stake['against']} against · {stake['neutral']} "
                  f"neutral, of {stake['total_active']} active ({stake['verifiers']} verifiers)"),
        ("attestations", str(commit["attestation_count"])),
    ]
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)


def show_patch(client: NodeClient, out: Console, cid: str) -> None:
    text = client.get(f"/v1/commits/{cid}/patch").text
    if sys.stdout.isatty() and text:
        out.print(Syntax(text, "diff", theme="ansi_dark", background_color="default"))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def show_attestations(client: NodeClient, out: Console, cid: str, full: bool,
                      as_json: bool) -> None:
    atts = client.json(f"/v1/commits/{cid}/attestations")
    if as_json:
        _print_json(out, atts)
        return
    table = Table(title=f"{len(atts)} attestation(s) on {_cid(cid, full)}", title_justify="left")
    columns = ["verifier", "seq", "result", "ratio", "interval", "pairs"]
    if full:
        columns += ["toolchain", "attestation"]
    for column in columns:
        table.add_column(column, justify="right" if column in ("seq", "ratio", "pairs")
                         else "left", overflow="fold")
    for att in atts:
        v = att["verdict"] or {}
        measured = bool(v.get("ratio_ppm"))
        row = [att["verifier"] if full else att["verifier"][:16], str(att["seq"]),
               Text(v.get("result", "vote"), style=RESULT_STYLE.get(v.get("result"), "")),
               _ratio(v["ratio_ppm"]) if measured else "—",
               f"{_ratio(v['lo_ppm'])}–{_ratio(v['hi_ppm'])}" if measured else "—",
               str(v["pairs"]) if measured else "—"]
        if full:
            row += [v.get("toolchain", ""), att["cid"]]
        table.add_row(*row)
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add ``poi dag`` (show, log, patch, attestations, status) to the ``poi`` CLI."""
    dag = typer.Typer(name="dag", no_args_is_help=True,
                      help="Query a running node's improvement DAG over its HTTP API.")
    app.add_typer(dag, name="dag")

    @dag.command("status")
    def status(node: str = NodeOption, data_dir: Path = DataDirOption,
               as_json: bool = JsonOption) -> None:
        """The node (peers, sync, roles, queue) and each target's head and speed-up."""
        _run(node, data_dir, lambda c, out: show_status(c, out, as_json))

    @dag.command("log")
    def log(target: str = typer.Option(None, "--target", help="Target CID (default: the only "
                                       "one the node follows)."),
            full: bool = typer.Option(False, "--full", help="Print whole CIDs."),
            node: str = NodeOption, data_dir: Path = DataDirOption,
            as_json: bool = JsonOption) -> None:
        """The canonical chain: each step's verified ratio and the cumulative speed-up."""
        _run(node, data_dir, lambda c, out: show_log(c, out, target, full, as_json))

    @dag.command("show")
    def show(cid: str = typer.Argument(..., help="A commit CID."), node: str = NodeOption,
             data_dir: Path = DataDirOption, as_json: bool = JsonOption) -> None:
        """One commit: status, claim, stake for and against, parents and children."""
        _run(node, data_dir, lambda c, out: show_commit(c, out, cid, as_json))

    @dag.command("patch")
    def patch(cid: str = typer.Argument(..., help="A commit CID."), node: str = NodeOption,
              data_dir: Path = DataDirOption) -> None:
        """The commit's unified diff against its first parent (pipe it to `git apply`)."""
        _run(node, data_dir, lambda c, out: show_patch(c, out, cid))

    @dag.command("attestations")
    def attestations(cid: str = typer.Argument(..., help="A commit CID."),
                     full: bool = typer.Option(False, "--full", help="Print whole keys/CIDs."),
                     node: str = NodeOption, data_dir: Path = DataDirOption,
                     as_json: bool = JsonOption) -> None:
        """Every verdict on the commit: verifier, result, measured ratio and interval."""
        _run(node, data_dir, lambda c, out: show_attestations(c, out, cid, full, as_json))


def main() -> None:  # pragma: no cover - `python -m node.dag_cli`
    app = typer.Typer(add_completion=False)
    register(app)
    app()


if __name__ == "__main__":  # pragma: no cover
    main()

