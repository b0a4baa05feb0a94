"""Imports flow one way: web/cli/realtime endpoints -> services -> models -> db/kit.

Parses every module under src/jarvis and fails when a module imports something above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "jarvis"

# Nothing imports these (ARCHITECTURE.md section 5).
TOP = {"jarvis.main", "jarvis.cli", "jarvis.web"}
# kit is the bottom: it may import no JARVIS module but kit itself.
KIT = "jarvis.kit"
# The only modules allowed to import every domain's models: the migration metadata.
METADATA_REGISTRY = {"jarvis.db.models", "jarvis.db.migrations.env"}
DOMAINS = {"auth", "personas", "agents", "governance", "demo", "orchestration", "config"}


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name == "jarvis" or name.startswith("jarvis.")}


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


MODULES = sorted(SRC.rglob("*.py"))


def violations(module: str, imported: set[str]) -> list[str]:
    out = []
    for target in imported:
        if any(under(target, top) for top in TOP) and not any(under(module, t) for t in TOP):
            out.append(f"{module} imports {target}, which nothing may import")
        if under(module, KIT) and not under(target, KIT):
            out.append(f"{module} (kit) imports {target}; kit imports no JARVIS module")
        if (
            under(module, "jarvis.db")
            and module not in METADATA_REGISTRY
            and not (under(target, "jarvis.db") or under(target, KIT))
        ):
            out.append(f"{module} (db) imports {target}; db imports only db and kit")
        target_parts = target.split(".")
        if (
            len(target_parts) >= 3
            and target_parts[1] in DOMAINS
            and target_parts[2] == "routes"
            and not any(under(module, t) for t in TOP)
        ):
            out.append(f"{module} imports the routes module {target}; only main mounts routes")
        if module.endswith(".models") and (
            target.endswith(".service") or target.endswith(".routes")
        ):
            out.append(f"{module} imports {target}; models sit below services")
    return out


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_flow_one_way(path: Path) -> None:
    module = module_name(path)
    assert violations(module, imports_of(path)) == []


def test_checker_catches_upward_imports() -> None:
    """The rule itself can fail: known-bad imports are reported."""
    assert violations("jarvis.agents.service", {"jarvis.main"})
    assert violations("jarvis.kit.clock", {"jarvis.agents.models"})
    assert violations("jarvis.db.engine", {"jarvis.auth.models"})
    assert violations("jarvis.agents.models", {"jarvis.agents.service"})
    assert violations("jarvis.auth.service", {"jarvis.agents.routes"})
    assert violations("jarvis.agents.service", {"jarvis.personas.service"}) == []
