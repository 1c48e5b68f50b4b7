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


CORE_PACKAGES = ("graph", "identification", "formulas", "spec", "moments", "estimators", "refuters", "study",
                 "experiments")


def test_importing_causal_core_loads_no_platform_library():
    modules = ", ".join(["causal_core"] + [f"causal_core.{p}" for p in CORE_PACKAGES])
    code = (
        f"import sys, {modules};"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]; print(bad); assert not bad"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_layout_has_its_packages_each_saying_its_job():
    """DESIGN.md's layout: every package exists and its __init__ opens with a docstring."""
    packages = [ROOT / "causal_core" / p for p in CORE_PACKAGES] + [ROOT / "jobs", ROOT / "jobs" / "spark",
                                                                  ROOT / "jobs" / "warehouse"]
    for package in packages:
        init = package / "__init__.py"
        assert init.exists(), f"{package.relative_to(ROOT)} is not a package"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init.relative_to(ROOT)} does not say its job"
    loose = sorted(p.name for p in (ROOT / "causal_core").glob("*.py"))
    assert loose == ["__init__.py", "datasets.py", "errors.py", "json_values.py"], loose


def test_no_module_is_over_400_lines():
    long = {str(f.relative_to(ROOT)): n for d in ("causal_core", "jobs") for f in (ROOT / d).rglob("*.py")
            if (n := len(f.read_text().splitlines())) > 400}
    assert long == {}


def test_the_layering_check_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from pyspark.sql import functions as F\nimport numpy\n")
    assert _imports(bad) & set(FORBIDDEN) == {"pyspark"}
