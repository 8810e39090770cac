"""The architecture rules of `tests/architecture/rules.py`, on the project and on planted trees."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.architecture import rules

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project() -> dict[str, rules.Module]:
    return rules.modules(ROOT)


def test_no_import_circle(project: dict[str, rules.Module]) -> None:
    assert rules.cycles(project) == []


def test_imports_point_down_the_layers(project: dict[str, rules.Module]) -> None:
    assert rules.layer_violations(project) == []


def test_domain_modules_are_pure(project: dict[str, rules.Module]) -> None:
    assert [m for m in project if m.endswith(".domain")], "no domain module found"
    assert rules.impure_domains(project) == []


def test_imports_sit_at_module_top(project: dict[str, rules.Module]) -> None:
    assert rules.lazy_imports(project) == []


def plant(root: Path, files: dict[str, str]) -> dict[str, rules.Module]:
    for package in rules.PACKAGES:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").touch()
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            if str(parent) != ".":
                (root / parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(source))
    return rules.modules(root)


def test_a_planted_circle_is_found(tmp_path: Path) -> None:
    found = plant(
        tmp_path,
        {
            "connector/alerts/tickets.py": "from connector.alerts import problems\n",
            "connector/alerts/problems.py": "from connector.alerts.tickets import marker_for\n",
        },
    )
    assert rules.cycles(found) == [["connector.alerts.problems", "connector.alerts.tickets"]]


def test_a_planted_upward_import_is_found(tmp_path: Path) -> None:
    found = plant(
        tmp_path,
        {
            "connector/infra/jobs/worker.py": "import connector.alerts.handlers\n",
            "connector/alerts/handlers.py": "",
            "connector/fleet/api.py": "from connector.sync.run import start_run\n",
            "connector/sync/run.py": "",
            "adapters/base.py": "from connector.models import Connection\n",
            "connector/models.py": "",
        },
    )
    violations = rules.layer_violations(found)
    assert len(violations) == 3, violations
    assert any("infra imports connector.alerts.handlers" in v for v in violations)
    assert any("feature fleet imports connector.sync.run" in v for v in violations)
    assert any("adapters imports connector.models" in v for v in violations)


def test_a_planted_impure_domain_and_lazy_import_are_found(tmp_path: Path) -> None:
    found = plant(
        tmp_path,
        {
            "connector/billing/domain.py": "from sqlalchemy import select\n",
            "connector/billing/service.py": "def f():\n    from connector.billing import domain\n",
        },
    )
    assert rules.impure_domains(found) == [
        f"{tmp_path}/connector/billing/domain.py:1: a domain module imports sqlalchemy"
    ]
    assert rules.lazy_imports(found) == [
        f"{tmp_path}/connector/billing/service.py:2: imports connector.billing.domain inside a function"
    ]
