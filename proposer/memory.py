"""The memory file: a markdown page a fresh agent resumes from (objective, wins, dead ends).

The loop writes the objective once and appends a line to *Wins* for every keep and to *Dead
ends* for every experiment that failed or was discarded; the agent owns the *Notes* section
(the Claude strategy's ``update_memory`` tool replaces it). A new run reads the whole file back
into its prompt, so insights survive restarts along with the experiment log.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from protocol.constants import PPM
from protocol.objects import Target

from .log import KEEP, SKIPPED, Row

SECTIONS = ("Objective", "Wins", "Dead ends", "Notes")
MAX_NOTES_CHARS = 8_000
MAX_LINES_PER_SECTION = 200


class Memory:
    def __init__(self, path: Path, target: Target) -> None:
        self.path = Path(path)
        self.target = target
        if not self.path.exists():
            self._write({"Objective": objective(target), "Wins": "", "Dead ends": "",
                         "Notes": ""})

    # -- reading ------------------------------------------------------------------------------
    def text(self) -> str:
        return self.path.read_text()

    def sections(self) -> dict[str, str]:
        found: dict[str, list[str]] = {name: [] for name in SECTIONS}
        current = None
        for line in self.text().splitlines():
            match = re.fullmatch(r"## (.+)", line.strip())
            if match and match.group(1) in found:
                current = match.group(1)
            elif current is not None:
                found[current].append(line)
        return {name: "\n".join(lines).strip() for name, lines in found.items()}

    @property
    def notes(self) -> str:
        return self.sections()["Notes"]

    # -- writing ------------------------------------------------------------------------------
    def set_notes(self, notes: str) -> str:
        """Replace the agent's notes; returns what was stored (capped)."""
        notes = notes.strip()[:MAX_NOTES_CHARS]
        # A heading of ours inside the notes would split the file differently when read back.
        notes = re.sub(rf"^## ({'|'.join(SECTIONS)})\s*$", r"### \1", notes, flags=re.M)
        sections = self.sections()
        sections["Notes"] = notes
        self._write(sections)
        return notes

    def record(self, row: Row) -> None:
        """Append a keep to Wins, anything else evaluated to Dead ends.

        The file is shown to the model as trusted text, so nothing a program printed goes in
        (only statuses and results), and a patch is named by its file, not by its title.
        """
        if row.status == SKIPPED:
            return
        sections = self.sections()
        what = _what(row)
        if row.status == KEEP:
            gain = (1 - row.ratio_ppm / PPM) * 100 if row.ratio_ppm else 0.0
            line = f"- #{row.iteration} {gain:+.2f}% ({(row.commit or '')[:16]}…): {what}"
            sections["Wins"] = _append(sections["Wins"], line)
        else:
            ratio = f" ratio {row.ratio_ppm / PPM:.4f}," if row.ratio_ppm else ""
            result = f" ({row.result})" if row.result and row.result != row.status else ""
            line = f"- #{row.iteration} {row.status}{result}:{ratio} {what}"
            sections["Dead ends"] = _append(sections["Dead ends"], line)
        self._write(sections)

    def _write(self, sections: dict[str, str]) -> None:
        body = [f"# poi proposer memory: {self.target.name}", ""]
        for name in SECTIONS:
            body += [f"## {name}", sections.get(name, "").strip(), ""]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("\n".join(body))
        os.replace(tmp, self.path)


def objective(target: Target) -> str:
    better = "lower" if target.direction == "lower" else "higher"
    return (f"Make `{target.metric}` {better} on target {target.name} (profile "
            f"{target.profile}): {target.description}\nWritable: "
            f"{', '.join(target.writable)}. A change is kept when the paired benchmark shows it "
            f"at least {target.stats.min_improvement_ppm / 10_000:g}% better with "
            f"{target.stats.confidence_ppm / 10_000:g}% confidence and the gate passes.")


def _what(row: Row) -> str:
    if row.patch is not None:
        return f"patch {row.patch}"
    text = row.description.strip().splitlines()[0][:160] if row.description.strip() else ""
    return text or "(no description)"


def _append(section: str, line: str) -> str:
    lines = [x for x in section.splitlines() if x.strip()] + [line]
    return "\n".join(lines[-MAX_LINES_PER_SECTION:])
