"""The domain order (docs/decisions/0009-domain-order.md), enforced on every module.

Parses every module under src/jarvis (every import statement, at module level or inside a
function, TYPE_CHECKING blocks included) and fails with the rule broken and how to fix it:

- rank: a unit imports only itself and the units ranked below it;
- entry points: nothing imports ``main``, ``cli`` or ``web`` (but each other as listed);
- tables: no unit imports another unit's ``models`` (it calls that unit's service);
- routes: only ``main`` mounts route modules (``routes.py`` or ``*_routes.py``);
- models sit below services: a ``models`` module imports no service or routes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "jarvis"

# Lowest first. A unit is a top-level module or package of jarvis.
RANKS: tuple[tuple[str, ...], ...] = (
    ("jarvis", "kit", "errors"),  # the package root, helpers, the error tree
    ("core",),  # shared vocabulary: who acts, layers, scopes, permissions, guards
    ("db",),
    ("settings",),
    ("audit",),  # the ledger every domain writes to
    ("analytics",),  # the activity feed, written by the domains above
    ("config",),
    ("personas",),
    ("auth",),
    ("llm",),
    ("agents",),
    ("orchestration",),
    ("realtime",),
    # The composition root's parts: they may import every domain.
    ("wiring", "demo", "health", "openapi"),
    # Entry points: nothing imports them but the entry points named in ENTRY_IMPORTS.
    ("web",),
    ("main",),
    ("cli",),
)
RANK: dict[str, int] = {unit: rank for rank, units in enumerate(RANKS) for unit in units}
ENTRY_POINTS = frozenset({"web", "main", "cli"})
# Which entry point may import which other one.
ENTRY_IMPORTS = {"main": {"web"}, "cli": {"main", "web"}}
# The modules that collect every unit's tables for Alembic.
METADATA_REGISTRY = frozenset({"jarvis.db.models", "jarvis.db.migrations.env"})
MIGRATIONS = "jarvis.db.migrations"


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports_of(path: Path) -> set[str]:
    """Every jarvis module ``path`` imports (``from jarvis.x import y`` counts as
    ``jarvis.x`` and, when ``y`` is a module, ``jarvis.x.y``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if _is_module(candidate):
                    found.add(candidate)
    return {name for name in found if name == "jarvis" or name.startswith("jarvis.")}


def _is_module(name: str) -> bool:
    path = SRC.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _is_routes(module: str) -> bool:
    leaf = module.rsplit(".", 1)[-1]
    return leaf == "routes" or leaf.endswith("_routes")


def _is_models(module: str) -> bool:
    return module.rsplit(".", 1)[-1] == "models"


def violations(module: str, imported: Iterable[str]) -> list[str]:
    """What is wrong with ``module`` importing ``imported``, each with how to fix it."""
    if module.startswith(MIGRATIONS) and module not in METADATA_REGISTRY:
        return []  # migrations are frozen history: they import nothing of the app's
    unit = unit_of(module)
    if unit not in RANK:
        return [f"{module}: unit '{unit}' has no rank; add it to RANKS (and to decision 0009)"]
    out: list[str] = []
    for target in sorted(imported):
        target_unit = unit_of(target)
        if target_unit not in RANK:
            out.append(f"{module} imports {target}: unit '{target_unit}' has no rank")
            continue
        if target_unit in ENTRY_POINTS and target_unit != unit:
            if target_unit not in ENTRY_IMPORTS.get(unit, set()):
                out.append(
                    f"[entry points] {module} imports {target}: nothing imports "
                    f"jarvis.{target_unit}; move what both need into a service"
                )
            continue
        if (
            RANK[target_unit] > RANK[unit]
            and unit not in ENTRY_POINTS
            and module not in METADATA_REGISTRY
        ):
            out.append(
                f"[rank] {module} ({unit}, rank {RANK[unit]}) imports {target} "
                f"({target_unit}, rank {RANK[target_unit]}): a unit imports only those ranked "
                f"below it. Move the shared type into jarvis.core, or let {unit} declare a "
                f"protocol that jarvis.wiring/main fills with {target_unit}'s implementation"
            )
        if _is_models(target) and target_unit != unit and module not in METADATA_REGISTRY:
            out.append(
                f"[tables] {module} imports {target}: no unit reads another's tables; call "
                f"jarvis.{target_unit}'s service (or schemas) instead"
            )
        if _is_routes(target) and unit != "main" and target != module:
            out.append(
                f"[routes] {module} imports the route module {target}: only main mounts "
                f"routes; move the shared logic into a service both call"
            )
        if (
            _is_models(module)
            and target_unit == unit
            and (target.endswith(".service") or _is_routes(target))
        ):
            out.append(f"[models] {module} imports {target}: models sit below services")
    return out


MODULES = sorted(SRC.rglob("*.py"))
# Imports allowed against the rules while a move is in progress: none. A move may list one
# here for the length of a change; it must be empty when the change lands.
KNOWN: dict[str, set[str]] = {}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_follow_the_domain_order(path: Path) -> None:
    module = module_name(path)
    imported = imports_of(path) - KNOWN.get(module, set())
    assert violations(module, imported) == []


def test_the_units_form_no_cycle() -> None:
    """The graph of units (ignoring a unit's imports of itself) has no cycle."""
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        module = module_name(path)
        if module.startswith(MIGRATIONS) or module in METADATA_REGISTRY:
            continue
        targets = {unit_of(t) for t in imports_of(path)} - {unit_of(module)}
        graph.setdefault(unit_of(module), set()).update(targets)
    seen: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, trail: list[str]) -> None:
        if seen.get(node) == 2:
            return
        assert seen.get(node) != 1, "import cycle: " + " -> ".join([*trail, node])
        seen[node] = 1
        for target in sorted(graph.get(node, ())):
            visit(target, [*trail, node])
        seen[node] = 2

    for node in sorted(graph):
        visit(node, [])


def test_every_package_has_a_rank() -> None:
    units = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    units |= {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert units - set(RANK) == set()


def test_checker_catches_each_rule() -> None:
    """The rules themselves can fail: known-bad imports are reported."""
    assert violations("jarvis.agents.service", {"jarvis.main"})
    assert violations("jarvis.realtime.hub", {"jarvis.web.rendering"})
    assert violations("jarvis.kit.clock", {"jarvis.agents.models"})
    assert violations("jarvis.db.engine", {"jarvis.auth.users.service"})
    assert violations("jarvis.config.service", {"jarvis.personas.service"})  # upward
    assert violations("jarvis.orchestration.engine", {"jarvis.agents.models"})  # tables
    assert violations("jarvis.web.pages.agents", {"jarvis.agents.models"})  # tables
    assert violations("jarvis.cli.agents", {"jarvis.auth.tokens.routes"})  # routes
    assert violations("jarvis.web.pages.executions", {"jarvis.orchestration.routes"})
    assert violations("jarvis.agents.models", {"jarvis.agents.service"})
    # Allowed: downward calls, one's own tables, the entry points' own imports.
    assert violations("jarvis.agents.service", {"jarvis.personas.service"}) == []
    assert violations("jarvis.agents.service", {"jarvis.agents.models"}) == []
    assert violations("jarvis.main", {"jarvis.agents.routes", "jarvis.web.setup"}) == []
    assert violations("jarvis.cli.serve", {"jarvis.main"}) == []
    assert violations("jarvis.db.models", {"jarvis.auth.models"}) == []


# --- one store per aggregate --------------------------------------------------------------

# Units whose aggregate has a store: only the store (and the tables' own module) builds
# statements on the tables; the rest of the unit calls the store.
STORES = {"orchestration": "jarvis.orchestration.store"}
STATEMENT_BUILDERS = frozenset(
    {"select", "insert", "update", "delete", "text", "func", "case", "exists", "literal"}
    | {"and_", "or_", "not_", "bindparam", "union_all", "union", "tuple_", "values"}
)


def statement_imports(path: Path) -> list[str]:
    """What ``path`` imports that builds statements: SQLAlchemy's builders, or tables."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if node.module.startswith("sqlalchemy") and alias.name in STATEMENT_BUILDERS:
                    found.append(f"{node.module}.{alias.name}")
                if node.module.endswith(".models") and alias.name.endswith("_table"):
                    found.append(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.extend(a.name for a in node.names if a.name == "sqlalchemy")
    return found


@pytest.mark.parametrize("unit", sorted(STORES))
def test_only_the_store_builds_statements(unit: str) -> None:
    store = STORES[unit]
    offenders = {}
    for path in sorted((SRC / unit).rglob("*.py")):
        module = module_name(path)
        if under(module, store) or module == f"jarvis.{unit}.models":
            continue
        found = statement_imports(path)
        if found:
            offenders[module] = found
    assert offenders == {}, (
        f"[store] statements on {unit}'s tables belong in {store}: move them there and call "
        f"the store from these modules: {offenders}"
    )


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_store_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from sqlalchemy import select, Connection\n"
        "from jarvis.orchestration.models import executions_table\n"
    )
    assert statement_imports(bad) == [
        "sqlalchemy.select",
        "jarvis.orchestration.models.executions_table",
    ]
