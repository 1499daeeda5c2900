"""The ``poi`` command line, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

POI = Path(sys.executable).with_name("poi")


def test_poi_demo_runs_and_shows_tampered_bytes_refused():
    result = subprocess.run([str(POI), "demo"], capture_output=True, text=True, timeout=120,
                            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "signature holds" in result.stdout
    assert "refused" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_poi_help_lists_commands():
    result = subprocess.run([str(POI), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "demo" in result.stdout
