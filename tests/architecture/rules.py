"""The architecture's rules as checks over a source tree, so the tests can run them on the project
and on planted trees that break them (a check that cannot fail proves nothing).

- imports point one way: no import circle anywhere in `connector/`, `adapters/`, `mappings/`;
- layers: the kernel (models, settings) and `connector/infra` import no feature; `connector/api`
  (shared HTTP plumbing) imports only those; a feature imports only features below it in `FEATURES`;
  `adapters` never imports `connector` or `mappings`; `mappings` never imports `connector`;
- every `domain.py` is pure: no SQLAlchemy, httpx, FastAPI, and nothing of `connector.infra`;
- imports sit at module top: no function-level import of `connector` outside the CLI entry point.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("connector", "adapters", "mappings")
KERNEL = ("connector.models", "connector.settings", "connector.statuses")
FEATURES = (
    "audit",
    "tenants",
    "notifications",
    "connections",
    "maintenance",
    "fleet",
    "actions",
    "alerts",
    "rules",
    "billing",
    "sync",
    "reports",
    "web",
)
"""Feature packages of `connector/`, lowest first: each may import only those before it."""
ROOTS = ("connector.runtime", "connector.app", "connector.cli", "connector.demo", "connector.__init__")
"""The composition root and entry points: they may import anything."""
LAZY_IMPORTS_ALLOWED = ("connector.cli",)
IMPURE = ("sqlalchemy", "httpx", "fastapi", "starlette", "connector.infra")


@dataclass
class Module:
    name: str
    path: Path
    imports: dict[str, int] = field(default_factory=dict)
    """Imported project module → line (module level, including `if TYPE_CHECKING:` blocks)."""
    lazy: dict[str, int] = field(default_factory=dict)
    """Project modules imported inside functions → line."""
    external: dict[str, int] = field(default_factory=dict)
    """Top-level names of other imported packages → line."""


def modules(root: Path) -> dict[str, Module]:
    found: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = Module(".".join(parts), path)
    for module in found.values():
        _read_imports(module, found)
    return found


def _read_imports(module: Module, known: dict[str, Module]) -> None:
    tree = ast.parse(module.path.read_text(), str(module.path))
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    for node, nested in _imports(tree):
        for target in _targets(node, package, known):
            if target.split(".")[0] in PACKAGES:
                if target in known and target != module.name:
                    (module.lazy if nested else module.imports).setdefault(target, node.lineno)
            elif not nested:
                module.external.setdefault(target.split(".")[0], node.lineno)


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    def walk(node: ast.AST, nested: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, nested
            else:
                inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                yield from walk(child, inner)

    return walk(tree, False)


def _targets(node: ast.Import | ast.ImportFrom, package: str, known: dict[str, Module]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
        base = ".".join([*parts, base] if base else parts)
    targets = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        targets.append(candidate if candidate in known else base)
    return targets


def cycles(found: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each an import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0

    def visit(name: str) -> None:
        nonlocal counter
        index[name] = low[name] = counter
        counter += 1
        stack.append(name)
        on_stack.add(name)
        for target in found[name].imports:
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in on_stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == name:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in sorted(found):
        if name not in index:
            visit(name)
    return circles


def layer(name: str) -> tuple[int, str]:
    """(rank, label): a module may import modules of equal or lower rank only."""
    if name.startswith("adapters"):
        return 0, "adapters"
    if name.startswith("mappings"):
        return 1, "mappings"
    if name in KERNEL or name == "connector":
        return 2, "kernel"
    if name.startswith("connector.infra"):
        return 3, "infra"
    if name.startswith("connector.api"):
        return 4, "api plumbing"
    if name in ROOTS:
        return 100, "composition root"
    feature = name.split(".")[1] if name.count(".") >= 1 else name
    if feature in FEATURES:
        return 10 + FEATURES.index(feature), f"feature {feature}"
    return 99, f"unlisted {name}"


def layer_violations(found: dict[str, Module]) -> list[str]:
    problems = []
    for module in found.values():
        rank, label = layer(module.name)
        if label.startswith("unlisted"):
            problems.append(f"{module.name}: not in any layer (add it to tests/architecture/rules.py)")
            continue
        for target, line in sorted(module.imports.items()):
            target_rank, target_label = layer(target)
            if target_rank > rank:
                problems.append(
                    f"{module.path}:{line}: {label} imports {target} ({target_label}), a layer above"
                )
    return problems


def impure_domains(found: dict[str, Module]) -> list[str]:
    problems = []
    for module in found.values():
        if module.path.name != "domain.py":
            continue
        for name, line in {**module.external, **module.imports}.items():
            if any(name == impure or name.startswith(impure + ".") for impure in IMPURE):
                problems.append(f"{module.path}:{line}: a domain module imports {name}")
    return problems


def lazy_imports(found: dict[str, Module]) -> list[str]:
    return [
        f"{module.path}:{line}: imports {target} inside a function"
        for module in found.values()
        if module.name not in LAZY_IMPORTS_ALLOWED
        for target, line in sorted(module.lazy.items(), key=lambda item: item[1])
        if target.startswith("connector")
    ]
