"""causal_core is the pure core: it never imports a platform library (DESIGN.md, Layers)."""

import ast
import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("pyspark", "mlflow", "airflow", "great_expectations")
ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_causal_core_source_imports_no_platform_library():
    files = sorted((ROOT / "causal_core").rglob("*.py"))
    assert len(files) > 10
    offenders = {str(f.relative_to(ROOT)): sorted(_imports(f) & set(FORBIDDEN)) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_causal_core_loads_no_platform_library():
    code = (
        "import sys, causal_core, causal_core.plan, causal_core.spec, causal_core.study, causal_core.estimators;"
        "import causal_core.moments;"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]; print(bad); assert not bad"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_layering_check_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from pyspark.sql import functions as F\nimport numpy\n")
    assert _imports(bad) & set(FORBIDDEN) == {"pyspark"}
