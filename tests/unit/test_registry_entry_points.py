"""Adapter discovery through the `connector.adapters` entry-point group, as a third party would use it.

A throwaway distribution is written to a temporary directory (a package plus a `.dist-info` with
`entry_points.txt`) and put on `sys.path`, which is exactly what `pip install` of a plugin amounts to
for `importlib.metadata`. Broken entry points in the same distribution must be logged and skipped
without hiding the working ones.
"""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from adapters.base import AdapterSpec, Role
from adapters.registry import ENTRY_POINT_GROUP, AdapterRegistry, discover

PLUGIN_MODULES = ("connector_test_plugin", "connector_test_plugin_broken")

PLUGIN_SOURCE = '''
"""A third-party adapter package as it would ship on its own."""

from pydantic import BaseModel, SecretStr

from adapters.base import AdapterSpec, Role


class Credentials(BaseModel):
    api_token: SecretStr


def create_adapter(ctx):
    raise NotImplementedError


SPEC = AdapterSpec(
    kind="test_plugin",
    role=Role.RMM,
    title="Test plugin RMM",
    credentials_model=Credentials,
    factory=create_adapter,
    default_base_url="https://rmm.plugin.example.test",
)

MISNAMED = AdapterSpec(
    kind="something_else",
    role=Role.PSA,
    title="Declares a kind other than its entry point name",
    credentials_model=Credentials,
    factory=create_adapter,
)

NOT_A_SPEC = {"kind": "test_plugin_not_a_spec"}
'''

ENTRY_POINTS = f"""
[{ENTRY_POINT_GROUP}]
test_plugin = connector_test_plugin:SPEC
test_plugin_import_error = connector_test_plugin_broken:SPEC
test_plugin_not_a_spec = connector_test_plugin:NOT_A_SPEC
test_plugin_missing_attr = connector_test_plugin:NO_SUCH_NAME
test_plugin_wrong_kind = connector_test_plugin:MISNAMED
"""

BROKEN_ENTRY_POINTS = (
    "test_plugin_import_error",
    "test_plugin_not_a_spec",
    "test_plugin_missing_attr",
    "test_plugin_wrong_kind",
)


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install the throwaway distribution `connector-test-plugin` by putting it on sys.path."""
    site = tmp_path / "site"
    package = site / "connector_test_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN_SOURCE)
    broken = site / "connector_test_plugin_broken"
    broken.mkdir()
    (broken / "__init__.py").write_text('raise ImportError("vendor SDK is not installed")\n')
    dist_info = site / "connector_test_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        textwrap.dedent(
            """\
            Metadata-Version: 2.1
            Name: connector-test-plugin
            Version: 0.1
            """
        )
    )
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    for name in PLUGIN_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return site


def test_entry_point_of_an_installed_package_is_discovered(plugin: Path) -> None:
    registry = discover()
    spec = registry.get("test_plugin")
    assert isinstance(spec, AdapterSpec)
    assert spec.role is Role.RMM
    assert spec.title == "Test plugin RMM"
    assert "api_token" in spec.credentials_schema()["properties"]
    # the project's own adapters are found through the same group
    assert "connectwise_manage" in registry.kinds()


def test_broken_entry_points_are_logged_and_skipped(plugin: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="adapters.registry"):
        registry = discover()
    assert registry.get("test_plugin") is not None
    assert "connectwise_manage" in registry.kinds()
    kinds = registry.kinds()
    for name in (*BROKEN_ENTRY_POINTS, "something_else"):
        assert name not in kinds
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "adapters.registry")
    for name in BROKEN_ENTRY_POINTS:
        assert name in logged
    assert "ImportError: vendor SDK is not installed" in logged
    assert "is not an AdapterSpec" in logged
    assert "declares kind something_else" in logged


def test_without_the_package_nothing_is_found() -> None:
    assert "test_plugin" not in discover().kinds()


class _Creds(BaseModel):
    token: str


def _spec(kind: str) -> AdapterSpec:
    def factory(_ctx: Any) -> Any:
        raise NotImplementedError

    return AdapterSpec(kind=kind, role=Role.PSA, title=kind, credentials_model=_Creds, factory=factory)


def test_registry_rejects_two_specs_for_one_kind() -> None:
    first = _spec("zeta")
    registry = AdapterRegistry([first, _spec("alpha")])
    registry.add(first)  # the same spec again is harmless
    with pytest.raises(ValueError, match="registered twice"):
        registry.add(_spec("zeta"))
    assert registry.kinds() == ["alpha", "zeta"]
    assert [s.kind for s in registry.all()] == ["alpha", "zeta"]
    assert registry.get("missing") is None


async def test_api_lists_the_plugin_adapter(plugin: Path, client: Any, make_key: Any) -> None:
    """`plugin` is set up before `client`, so the services' registry is discovered with it."""
    viewer = await make_key("viewer")
    response = await client.get("/api/v1/adapters", headers=viewer)
    assert response.status_code == 200, response.text
    listed = {item["kind"]: item for item in response.json()}
    assert listed["test_plugin"]["role"] == "rmm"
    assert listed["test_plugin"]["title"] == "Test plugin RMM"
    assert listed["test_plugin"]["default_base_url"] == "https://rmm.plugin.example.test"
    assert "api_token" in listed["test_plugin"]["credentials_schema"]["properties"]
    assert not set(BROKEN_ENTRY_POINTS) & set(listed)
