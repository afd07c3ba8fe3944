import os
import re
import subprocess
import sys

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def test_readme_example_runs_and_prints_what_it_says():
    text = open(README).read()
    block = re.search(r"## Example\n\n```python\n(.*?)```", text, re.S).group(1)
    assert len(block.strip().splitlines()) <= 15
    out = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "b'hello' 1"


def test_readme_install_command():
    assert "pip install ./python" in open(README).read()


def test_bench_runs_a_short_round():
    out = subprocess.run(
        [sys.executable, "-m", "fleetwire.bench", "--rounds", "1", "--duration", "0.5", "--sizes", "64",
         "--security", "plain", "--modes", "oneway,ping", "--impls", "ours,asyncio"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = [l.split() for l in out.stdout.splitlines() if l.startswith(("ours ", "asyncio "))]
    assert len(rows) == 4, out.stdout  # a throughput row and a ping row each
    assert all(r[1] != "-" for r in rows), out.stdout
