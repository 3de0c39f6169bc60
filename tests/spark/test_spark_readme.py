"""The README's Spark section runs as printed: its library example against a live
cluster, and its CLI program (wordcount) over the README itself."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from corral.examples.spark.generate import generate_text
from corral.testing import LocalCluster

pytestmark = pytest.mark.slow  # real processes: a master, two agents, executors

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    with LocalCluster(tmp_path_factory.mktemp("readme-cluster"), agents=2) as c:
        yield c


def section() -> str:
    text = README.read_text()
    start = text.index("## A Spark-like batch engine")
    return text[start:text.index("\n## ", start + 1)]


def test_the_library_example_runs(cluster: LocalCluster, tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", section(), re.S).group(1)
    assert '"127.0.0.1:5050"' in code and '"/tmp/text"' in code
    generate_text(tmp_path / "text", 200_000, seed=1)
    program = tmp_path / "example.py"
    program.write_text(code.replace('"127.0.0.1:5050"', repr(cluster.master_address))
                       .replace('"/tmp/text"', repr(str(tmp_path / "text"))))
    result = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    top = eval(result.stdout.strip().splitlines()[-1])
    assert len(top) == 5 and top[0][1] >= top[-1][1] > 0
    assert "job 1 (top) finished" in result.stderr  # the plain-line progress and summary


def test_the_cli_wordcount_of_the_first_command_runs(cluster: LocalCluster, tmp_path: Path) -> None:
    first = README.read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    assert '--run ".venv/bin/python -m corral.examples.spark wordcount README.md"' in first
    result = subprocess.run([sys.executable, "-m", "corral.examples.spark", "wordcount", str(README),
                             "--master", cluster.master_address, "--output", str(tmp_path / "counts")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 21 and lines[-1] == f"output in {tmp_path / 'counts'}"
    words = README.read_text().split()
    word, count = lines[0].split("\t")
    assert int(count) == max(words.count(w) for w in set(words)) == words.count(word)


def test_bad_input_exits_2_before_anything_starts(cluster: LocalCluster, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "corral.examples.spark", *args], capture_output=True,
                              text=True, timeout=60)

    missing = cli("wordcount", "--master", cluster.master_address, str(tmp_path / "nope"))
    assert missing.returncode == 2 and "input path does not exist" in missing.stderr and "nope" in missing.stderr
    (tmp_path / "exists").mkdir()
    taken = cli("wordcount", "--master", cluster.master_address, str(README), "--output", str(tmp_path / "exists"))
    assert taken.returncode == 2 and "already exists" in taken.stderr
    bad = cli("sort", "--master", cluster.master_address, str(README), "--output", str(tmp_path / "o"),
              "--executor-resources", "cpus:lots")
    assert bad.returncode == 2 and "'cpus:lots' does not parse" in bad.stderr
    assert not any(f["tasks"] for f in cluster.state()["frameworks"])  # nothing was launched
