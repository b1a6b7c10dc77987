"""Enrollment and profiles sit above render/ and provenance/: neither of those imports them (issue 33's
layering: cli/daemon/tray -> enroll/profiles -> camera, render, motion, audio, provenance -> config, latent)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "avatarcam"
ABOVE = {"avatarcam.profiles", "avatarcam.enroll"}


def _imports(path: Path) -> set[str]:
    """Every avatarcam module `path` imports, relative imports resolved."""
    package = ("avatarcam." + ".".join(path.relative_to(PACKAGE).parent.parts)).rstrip(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return {name for name in found if name.startswith("avatarcam")}


def test_render_and_provenance_never_import_profiles_or_enrollment():
    below = sorted((PACKAGE / "render").rglob("*.py")) + sorted((PACKAGE / "provenance").rglob("*.py"))
    assert below
    upward = {str(p.relative_to(PACKAGE)): sorted(_imports(p) & ABOVE) for p in below}
    assert not {k: v for k, v in upward.items() if v}


def test_the_check_sees_relative_and_absolute_imports():
    assert "avatarcam.profiles" in _imports(PACKAGE / "enroll.py")
    assert "avatarcam.profiles" in _imports(PACKAGE / "batch" / "worker.py")  # `from ..profiles import`, in a function
    assert "avatarcam.provenance.watermark" in _imports(PACKAGE / "provenance" / "verify.py")  # `from . import watermark`
