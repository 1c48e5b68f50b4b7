"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_identification_example_runs():
    blocks = [b for b in python_blocks() if "identify(" in b]
    assert blocks, "the README has no identification example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
