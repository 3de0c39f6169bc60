"""The README's "Your first framework" really runs, as printed, against a live cluster."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from corral.testing.cluster import LocalCluster

README = Path(__file__).resolve().parents[2] / "README.md"


def test_first_framework_from_the_readme_runs(cluster: LocalCluster, tmp_path: Path) -> None:
    text = README.read_text()
    section = text[text.index("## Your first framework"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert '"127.0.0.1:5050"' in code
    program = tmp_path / "first.py"
    program.write_text(code.replace('"127.0.0.1:5050"', repr(cluster.master_address)))
    result = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [state for _, state in lines] == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert len({task for task, _ in lines}) == 1 and lines[0][0].startswith("hello")
