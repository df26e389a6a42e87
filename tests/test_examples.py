"""The README's example runs offline, against the embedded fake, and cleans up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def test_quickstart_runs_against_the_embedded_fake() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATHORA_")}
    done = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "embedded fake Hathora" in out
    for region in ("Seattle", "Frankfurt", "Singapore"):
        assert out.count(region) >= 2, out  # created, then listed
    assert "GetProcessInfo -> HTTP 200" in out
    assert "Stopped 3 processes." in out
    assert done.stderr == ""
