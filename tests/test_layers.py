"""Imports point down the layers: cli -> tasks -> models / data / report -> geo (DESIGN.md, STYLE.md).

``report`` draws figures from plain arrays and tables: tasks' workflows call it, it never reads a
model or a task. ``errors`` and ``_atomic`` are the base every layer may use.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "humanscape"
#: Layer -> the humanscape sub-packages it must never import.
FORBIDDEN = {
    "geo": {"data", "models", "tasks", "report", "cli", "demo", "scale"},
    "data": {"models", "tasks", "report", "cli", "demo"},
    "models": {"tasks", "report", "cli", "demo"},
    "evaluate": {"tasks", "report", "cli", "demo", "models"},
    "report": {"tasks", "models", "scale", "cli", "demo"},
    "scale": {"tasks", "report", "cli", "demo"},
    "tasks": {"cli", "demo"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("humanscape")
        ):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("humanscape")}
    return {name.split(".")[1] if "." in name else "" for name in found}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_point_down_the_layers(layer):
    bad = {
        str(path.relative_to(PACKAGE)): sorted(_imports(path) & FORBIDDEN[layer])
        for path in (PACKAGE / layer).rglob("*.py")
        if _imports(path) & FORBIDDEN[layer]
    }
    assert not bad, bad


def test_the_layer_check_sees_an_upward_import(tmp_path):
    probe = tmp_path / "x.py"
    probe.write_text(
        "from humanscape.data.chiptable import read_chip\nimport humanscape.geo.raster\n"
    )
    assert _imports(probe) == {"data", "geo"}
