"""Data access has one shape. Route modules (the API's and the dashboard's) parse, authorize, call a
feature service and shape the answer: they build no statement and call no session method that
reads or writes. And a tenant filter is written in exactly one place, `infra/db.scoped`, so no
query can forget whose rows it returns.

`offences(root)` checks a source tree; the tests run it on this repository, and on planted files
to show it catches what it claims to."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]

TENANT_FILTER_HOME = PurePosixPath("connector/infra/db.py")
STATEMENT_BUILDERS = frozenset({"select", "update", "delete", "insert", "text"})
"""SQLAlchemy's statement constructors: a route module never needs one."""
SESSION_DATA_METHODS = frozenset(
    {
        "get",
        "get_one",
        "execute",
        "scalar",
        "scalars",
        "stream",
        "stream_scalars",
        "refresh",
        "add",
        "add_all",
        "delete",
        "merge",
        "flush",
    }
)
"""Session methods that read or write rows (`begin` and `info` stay allowed: the request's
transaction and its after-commit flags are HTTP plumbing)."""


@dataclass(frozen=True, order=True)
class Offence:
    path: str
    line: int
    what: str


def _is_tenant_column(node: ast.expr) -> bool:
    """`X.tenant_id`, `X.c["tenant_id"]` or `getattr(X, "tenant_id")`."""
    if isinstance(node, ast.Attribute):
        return node.attr == "tenant_id"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "tenant_id"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
        return any(isinstance(arg, ast.Constant) and arg.value == "tenant_id" for arg in node.args[1:2])
    return False


def tenant_filters(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Comparisons with a tenant column, methods called on one (`.in_`, `.is_`, …) and
    `filter_by(tenant_id=…)`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(
            _is_tenant_column(operand) for operand in (node.left, *node.comparators)
        ):
            yield node.lineno, "tenant filter written by hand (use infra/db.scoped or tenant_rows)"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if _is_tenant_column(node.func.value):
                yield node.lineno, f"tenant filter written by hand (.tenant_id.{node.func.attr})"
            elif node.func.attr == "filter_by" and any(k.arg == "tenant_id" for k in node.keywords):
                yield node.lineno, "tenant filter written by hand (filter_by(tenant_id=...))"


def data_access(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Statements built, executed or session rows touched: what only a feature service may do."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            for alias in node.names:
                if alias.name in STATEMENT_BUILDERS:
                    yield node.lineno, f"imports sqlalchemy's {alias.name}"
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in STATEMENT_BUILDERS:
                yield node.lineno, f"{func.id}(...) in a route module"
            elif isinstance(func, ast.Attribute) and func.attr == "execute":
                yield node.lineno, ".execute(...) in a route module"
            elif (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "session"
                and func.attr in SESSION_DATA_METHODS
            ):
                yield node.lineno, f"session.{func.attr}(...) in a route module"


def _builds_router(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "APIRouter"
        for node in ast.walk(tree)
    )


def is_route_module(path: PurePosixPath, tree: ast.Module) -> bool:
    """Every feature's `api.py`, everything in `connector/api/` and `connector/web/`, and any other
    module that builds a router (the webhook route)."""
    parts = path.parts
    if parts[:2] in (("connector", "api"), ("connector", "web")):
        return True
    if len(parts) == 3 and parts[0] == "connector" and parts[2] == "api.py":
        return True
    return _builds_router(tree)


def offences(root: Path) -> list[Offence]:
    found: list[Offence] = []
    for file in sorted((root / "connector").rglob("*.py")):
        path = PurePosixPath(file.relative_to(root).as_posix())
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        if path != TENANT_FILTER_HOME:
            found += [Offence(str(path), line, what) for line, what in tenant_filters(tree)]
        if is_route_module(path, tree):
            found += [Offence(str(path), line, what) for line, what in data_access(tree)]
    return sorted(found)


def test_routes_build_no_statements_and_tenant_filters_are_written_once() -> None:
    assert offences(ROOT) == []


def _plant(root: Path, path: str, source: str) -> None:
    file = root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(source, encoding="utf-8")


def test_the_check_finds_a_tenant_filter_written_by_hand(tmp_path: Path) -> None:
    _plant(
        tmp_path,
        "connector/alerts/problems.py",
        "from sqlalchemy import select\n"
        "async def open_ids(session, tenant_id):\n"
        "    query = select(Problem.id).where(Problem.tenant_id == tenant_id)\n"
        "    other = select(Endpoint).where(Endpoint.tenant_id.in_([tenant_id]))\n"
        "    legacy = session.query(Job).filter_by(tenant_id=tenant_id)\n"
        "    return query, other, legacy\n",
    )
    _plant(
        tmp_path,
        "connector/infra/db.py",
        "def scoped(statement, model, tenant_id):\n"
        "    return statement.where(model.__table__.c.tenant_id == tenant_id)\n",
    )

    assert [(o.path, o.line) for o in offences(tmp_path)] == [
        ("connector/alerts/problems.py", 3),
        ("connector/alerts/problems.py", 4),
        ("connector/alerts/problems.py", 5),
    ]


def test_the_check_finds_a_query_in_a_route_module(tmp_path: Path) -> None:
    _plant(
        tmp_path,
        "connector/fleet/api.py",
        "from sqlalchemy import select\n"
        "async def list_endpoints(session, who):\n"
        "    return list(await session.scalars(select(Endpoint)))\n",
    )
    _plant(
        tmp_path,
        "connector/web/routes.py",
        "async def page(session, problem_id):\n"
        "    problem = await session.get(Problem, problem_id)\n"
        "    await session.execute(stmt)\n"
        "    return problem\n",
    )
    _plant(
        tmp_path,
        "connector/fleet/service.py",
        "from sqlalchemy import select\n"
        "async def list_endpoints(session, tenant_id):\n"
        "    return list(await session.scalars(tenant_rows(Endpoint, tenant_id)))\n",
    )

    found = offences(tmp_path)

    assert [(o.path, o.line) for o in found] == [
        ("connector/fleet/api.py", 1),
        ("connector/fleet/api.py", 3),
        ("connector/fleet/api.py", 3),
        ("connector/web/routes.py", 2),
        ("connector/web/routes.py", 3),
    ]
    assert {o.what for o in found} >= {
        "imports sqlalchemy's select",
        "select(...) in a route module",
        "session.get(...) in a route module",
        ".execute(...) in a route module",
    }


def test_route_modules_may_call_services_named_like_statements(tmp_path: Path) -> None:
    """`router.delete(...)`, `rules.update(...)` and `headers.update(...)` are not statements."""
    _plant(
        tmp_path,
        "connector/rules/api.py",
        "@router.delete('/x/{item_id}')\n"
        "async def delete_item(session, who, item_id):\n"
        "    await rules.update(kind, session, who.tenant_id, item_id, {})\n"
        "    await rules.delete(kind, session, who.tenant_id, item_id)\n"
        "    response.headers.update({})\n"
        "    session.info['wake_workers'] = True\n",
    )

    assert offences(tmp_path) == []
