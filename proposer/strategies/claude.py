"""The Claude strategy: the Anthropic Messages API with tools, one conversation per iteration.

Each iteration starts a fresh conversation from the best code: a cached static prefix (rules,
objective, current code; `proposer.prompt`), then the iteration message (history, near-misses,
memory). The model works through tools on a working copy of the best workspace:

- ``list_files`` / ``read_file``: any file of the workspace (read-only outside the scope);
- ``write_file`` / ``edit_file`` / ``delete_file``: inside the target's writable scope only —
  anything else is refused with a message that says what is writable, so the model can act on it;
- ``update_memory``: replace the Notes section of the memory file;
- ``run_experiment``: ends the iteration; the loop evaluates the working copy.

The client is the official ``anthropic`` SDK. Its own retries are off: this module retries
overload (529), rate limits (429), 5xx, timeouts and connection errors itself with exponential
backoff and jitter, honouring ``retry-after`` / ``retry-after-ms``, and counts every retry in
the row. Tokens (uncached input, output, cache writes, cache reads) and dollars are accounted
per iteration with `proposer.budget.PRICES`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from dag.workspace import WorkspaceError
from protocol.objects import Target
from protocol.paths import match_any, path_problem
from verifier.candidates import workspace_from_directory

from .. import prompt
from ..budget import Price, Usage, price_of
from ..log import Row
from ..loop import Context, Proposal, StrategyError
from ..memory import Memory

DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_MAX_TOKENS = 20_000
"""Large enough for a whole-file rewrite: 8,192 cut agents off mid-edit in public runs."""
MAX_TURNS = 40
"""Requests in one iteration before it is cut short."""
MAX_RETRIES = 6
BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
FATAL_STATUS = frozenset({400, 401, 403, 404})
READ_LIMIT = 60_000
"""Characters read_file returns at once (ask for a line range beyond it)."""
REQUEST_TIMEOUT_S = 600.0

API_KEY_ENV = "ANTHROPIC_API_KEY"


class MissingAPIKey(Exception):
    """No API key: the message tells the user what to do."""


TOOLS: list[dict] = [
    {"name": "list_files",
     "description": "List the files of the workspace with their sizes, marking which are "
                    "writable. Optional prefix filters by path prefix (e.g. 'dft/src/').",
     "input_schema": {"type": "object", "properties": {"prefix": {"type": "string"}}}},
    {"name": "read_file",
     "description": "Read a file of the workspace (any file, including read-only ones). "
                    "Optional 1-based inclusive line range for long files.",
     "input_schema": {"type": "object", "required": ["path"], "properties": {
         "path": {"type": "string"}, "start_line": {"type": "integer"},
         "end_line": {"type": "integer"}}}},
    {"name": "edit_file",
     "description": "Replace exactly one occurrence of old_text with new_text in a writable "
                    "file. old_text must match the file exactly (whitespace included) and be "
                    "unique in it.",
     "input_schema": {"type": "object", "required": ["path", "old_text", "new_text"],
                      "properties": {"path": {"type": "string"},
                                     "old_text": {"type": "string"},
                                     "new_text": {"type": "string"}}}},
    {"name": "write_file",
     "description": "Create or replace a whole writable file with content.",
     "input_schema": {"type": "object", "required": ["path", "content"],
                      "properties": {"path": {"type": "string"},
                                     "content": {"type": "string"}}}},
    {"name": "delete_file",
     "description": "Delete a writable file.",
     "input_schema": {"type": "object", "required": ["path"],
                      "properties": {"path": {"type": "string"}}}},
    {"name": "update_memory",
     "description": "Replace the Notes section of your memory file (objective as you "
                    "understand it, what worked, dead ends and why, ideas to try next). A "
                    "fresh run resumes from it.",
     "input_schema": {"type": "object", "required": ["notes"],
                      "properties": {"notes": {"type": "string"}}}},
    {"name": "run_experiment",
     "description": "End this iteration: build, gate and benchmark the working copy against "
                    "the current best. Call it exactly once, after making your change.",
     "input_schema": {"type": "object", "required": ["description", "hypothesis"],
                      "properties": {
                          "description": {"type": "string",
                                          "description": "One line: what you changed."},
                          "hypothesis": {"type": "string",
                                         "description": "Why it should be faster."}}}},
]


class WorkspaceTools:
    """The file tools, confined to a working copy; writes confined to the writable scope."""

    def __init__(self, root: Path, target: Target, memory: Memory) -> None:
        self.root = Path(root)
        self.target = target
        self.memory = memory
        self.refused = 0

    def call(self, name: str, args: object) -> tuple[str, bool]:
        """Run a tool; returns (text for the model, is_error)."""
        if not isinstance(args, dict):
            return "error: the tool input must be an object", True
        handler = getattr(self, f"_tool_{name}", None)
        if handler is None:
            return f"error: unknown tool {name!r}", True
        try:
            return handler(**args), False
        except ToolError as exc:
            return str(exc), True
        except TypeError as exc:
            return f"error: bad arguments for {name}: {exc}", True

    # -- tools --------------------------------------------------------------------------------
    def _tool_list_files(self, prefix: str = "") -> str:
        lines = []
        for path in sorted(self._files()):
            if path.startswith(prefix or ""):
                size = (self.root / path).stat().st_size
                mark = "writable" if self._writable(path) else "read-only"
                lines.append(f"{path}  {size} bytes  {mark}")
        return "\n".join(lines) or f"no files under {prefix!r}"

    def _tool_read_file(self, path: str, start_line: int | None = None,
                        end_line: int | None = None) -> str:
        file = self._existing(path)
        text = file.read_text(errors="replace")
        if start_line is not None or end_line is not None:
            lines = text.splitlines(keepends=True)
            first = max(1, int(start_line or 1))
            last = min(len(lines), int(end_line or len(lines)))
            text = "".join(lines[first - 1:last])
        if len(text) > READ_LIMIT:
            return (text[:READ_LIMIT] + f"\n[… truncated at {READ_LIMIT} characters: read the "
                    "rest with start_line/end_line]")
        return text

    def _tool_edit_file(self, path: str, old_text: str, new_text: str) -> str:
        file = self._writable_path(path)
        if not file.exists():
            raise ToolError(f"error: {path} does not exist (use write_file to create it)")
        text = file.read_text()
        count = text.count(old_text) if old_text else 0
        if count != 1:
            raise ToolError(f"error: old_text occurs {count} times in {path}; it must match "
                            "exactly once (copy it exactly, with more context to be unique)")
        self._write(path, file, text.replace(old_text, new_text, 1))
        return f"edited {path}"

    def _tool_write_file(self, path: str, content: str) -> str:
        file = self._writable_path(path)
        self._write(path, file, content)
        return f"wrote {path} ({len(content.encode())} bytes)"

    def _tool_delete_file(self, path: str) -> str:
        file = self._writable_path(path)
        if not file.is_file():
            raise ToolError(f"error: {path} does not exist")
        file.unlink()
        return f"deleted {path}"

    def _tool_update_memory(self, notes: str) -> str:
        stored = self.memory.set_notes(str(notes))
        return f"memory notes updated ({len(stored)} characters)"

    # -- helpers ------------------------------------------------------------------------------
    def _files(self) -> list[str]:
        out = []
        for file in self.root.rglob("*"):
            rel = file.relative_to(self.root).as_posix()
            if file.is_file() and not file.is_symlink() and not rel.startswith("target/"):
                out.append(rel)
        return out

    def _writable(self, path: str) -> bool:
        return match_any(self.target.writable, path)

    def _checked(self, path: object) -> Path:
        if not isinstance(path, str):
            raise ToolError("error: path must be a string")
        problem = path_problem(path)
        if problem:
            raise ToolError(f"error: {path!r} is not a valid workspace path: {problem}")
        file = self.root / path
        for parent in [file, *file.parents]:
            if parent == self.root:
                break
            if parent.is_symlink():
                raise ToolError(f"error: {path} goes through a symlink")
        return file

    def _existing(self, path: object) -> Path:
        file = self._checked(path)
        if not file.is_file():
            raise ToolError(f"error: {path} does not exist (list_files shows what does)")
        return file

    def _writable_path(self, path: object) -> Path:
        file = self._checked(path)
        if not self._writable(path):
            self.refused += 1
            raise ToolError(
                f"refused: {path} is outside the writable scope. Only files matching "
                f"{', '.join(self.target.writable)} may be changed; the gate, the benchmark, "
                "the reference code and the build files are read-only, and a commit touching "
                "them is rejected. Make your change inside the writable scope instead.")
        return file

    def _write(self, path: str, file: Path, content: str) -> None:
        size = len(content.encode())
        if size > self.target.limits.max_file_bytes:
            raise ToolError(f"error: {path} would be {size} bytes, over the target's "
                            f"{self.target.limits.max_file_bytes}-byte limit per file")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content)


class ToolError(Exception):
    pass


class ClaudeStrategy:
    name = "claude"

    def __init__(self, *, model: str = DEFAULT_MODEL, max_tokens: int = DEFAULT_MAX_TOKENS,
                 temperature: float | None = None, api_key: str | None = None,
                 base_url: str | None = None, client=None, pairs: int | None = None,
                 max_turns: int = MAX_TURNS, max_retries: int = MAX_RETRIES,
                 backoff_s: float = BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S,
                 history_window: int = prompt.HISTORY_WINDOW, price: Price | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.pairs = pairs
        self.max_turns = max_turns
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.history_window = history_window
        self.sleep = sleep
        self.price, self.price_known = (price, True) if price else price_of(model)
        if client is None:
            key = api_key or os.environ.get(API_KEY_ENV)
            if not key:
                raise MissingAPIKey(
                    f"{API_KEY_ENV} is not set: the claude strategy needs an Anthropic API key. "
                    f"Export it (export {API_KEY_ENV}=sk-ant-…), or propose without the API: "
                    "--strategy patches --patches DIR")
            import anthropic

            client = anthropic.Anthropic(api_key=key, base_url=base_url, max_retries=0,
                                         timeout=REQUEST_TIMEOUT_S)
        self.client = client

    # -- one iteration ------------------------------------------------------------------------
    def propose(self, ctx: Context) -> Proposal | None:
        root = ctx.checkout(ctx.best)
        tools = WorkspaceTools(root, ctx.target, ctx.memory)
        pairs = self.pairs or ctx.target.stats.proposer_pairs
        system = prompt.system_blocks(ctx.target, ctx.best, pairs)
        messages: list[dict] = [{"role": "user", "content": [
            {"type": "text", "text": prompt.iteration_message(ctx, window=self.history_window)}]}]
        usage = Usage()
        for _ in range(self.max_turns):
            if ctx.budget.stop_reason(pending=usage):
                break
            response = self._create(system, messages, usage)
            usage.add_response(response.usage, self.price)
            messages.append({"role": "assistant", "content": _assistant_blocks(response)})
            results: list[dict] = []
            finish = None
            for block in response.content:
                if block.type != "tool_use":
                    continue
                if block.name == "run_experiment":
                    finish = block
                    continue
                text, error = tools.call(block.name, block.input)
                results.append(_tool_result(block.id, text, error))
            if finish is not None:
                candidate = self._candidate(ctx, root)
                if candidate is not None:
                    args = finish.input if isinstance(finish.input, dict) else {}
                    return Proposal(parent=ctx.best, candidate=candidate,
                                    description=str(args.get("description", "")).strip(),
                                    hypothesis=str(args.get("hypothesis", "")).strip(),
                                    usage=usage, refused_edits=tools.refused)
                results.append(_tool_result(
                    finish.id, "refused: the workspace is unchanged. You must always make a "
                    "change (edit_file / write_file inside the writable scope) before "
                    "run_experiment.", True))
            if response.stop_reason == "max_tokens":
                results.append({"type": "text", "text": (
                    f"Your reply was cut off at max_tokens ({self.max_tokens}). Use edit_file "
                    "for smaller edits, then call run_experiment.")})
            elif not results:
                results.append({"type": "text", "text": (
                    "You must always make a change: edit a file inside the writable scope, "
                    "then call run_experiment.")})
            messages.append({"role": "user", "content": results})
        candidate = self._candidate(ctx, root)
        if candidate is not None:
            return Proposal(parent=ctx.best, candidate=candidate,
                            description="(the iteration ended before run_experiment)",
                            usage=usage, refused_edits=tools.refused)
        reason = ctx.budget.stop_reason(pending=usage)
        if reason:  # logged as a crash row with this usage; the loop then stops on the budget
            raise StrategyError(f"the iteration was cut short: {reason}", usage=usage)
        raise StrategyError(f"the model made no change in {self.max_turns} turns", usage=usage)

    def observe(self, row: Row) -> None:
        """Nothing to keep: the next iteration reads the log and memory afresh."""

    # -- helpers ------------------------------------------------------------------------------
    def _candidate(self, ctx: Context, root: Path):
        try:
            candidate = workspace_from_directory(ctx.target, ctx.base_tree, root,
                                                 label="claude working copy")
        except (OSError, WorkspaceError) as exc:
            raise StrategyError(f"cannot read the working copy: {exc}") from exc
        if candidate.commit_tree.cid == ctx.best.workspace.commit_tree.cid:
            return None
        return candidate

    def _create(self, system: list[dict], messages: list[dict], usage: Usage):
        import anthropic

        kwargs = {"model": self.model, "max_tokens": self.max_tokens, "system": system,
                  "tools": TOOLS, "messages": _with_cache_breakpoint(messages)}
        if self.temperature is not None:  # a body field: not every SDK version has the kwarg
            kwargs["extra_body"] = {"temperature": self.temperature}
        attempt = 0
        while True:
            try:
                return self.client.messages.create(**kwargs)
            except anthropic.APIStatusError as exc:
                status = exc.status_code
                message = f"Anthropic API error {status}: {exc.api_message or exc}"
                if status not in RETRYABLE_STATUS or attempt >= self.max_retries:
                    raise StrategyError(message, fatal=status in FATAL_STATUS,
                                        usage=usage) from None
                delay = _retry_after(exc.response.headers)
            except anthropic.APIConnectionError as exc:
                if attempt >= self.max_retries:
                    raise StrategyError(f"cannot reach the Anthropic API: {exc}",
                                        usage=usage) from None
                delay = None
            if delay is None:
                delay = self.backoff_s * (2 ** attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            usage.retries += 1
            self.sleep(min(delay, self.max_backoff_s))


def _retry_after(headers) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                seconds = float(value) * scale
            except ValueError:
                continue
            if 0 <= seconds <= MAX_BACKOFF_S:
                return seconds
    return None


def _assistant_blocks(response) -> list[dict]:
    blocks = []
    for block in response.content:
        if block.type == "text" and block.text:
            blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            blocks.append({"type": "tool_use", "id": block.id, "name": block.name,
                           "input": block.input})
    return blocks or [{"type": "text", "text": "(no output)"}]


def _tool_result(tool_use_id: str, text: str, error: bool) -> dict:
    result = {"type": "tool_result", "tool_use_id": tool_use_id,
              "content": [{"type": "text", "text": text or "(empty)"}]}
    if error:
        result["is_error"] = True
    return result


def _with_cache_breakpoint(messages: list[dict]) -> list[dict]:
    """The conversation with one moving cache breakpoint on its last block (the system
    prompt holds the other two; the API allows four)."""
    out = []
    for index, message in enumerate(messages):
        content = [{k: v for k, v in block.items() if k != "cache_control"}
                   for block in message["content"]]
        if index == len(messages) - 1:
            content[-1] = {**content[-1], "cache_control": {"type": "ephemeral"}}
        out.append({"role": message["role"], "content": content})
    return out
