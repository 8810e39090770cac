"""Where tests find the vendors' own API descriptions and real payloads: `CONNECTOR_VENDOR_SPECS`,
else `../shared/specs/` beside the project root. They are read where they are, never copied into
the repository. Under `CI=true` a missing file fails the run; elsewhere the tests that need it skip
with one reason naming the folder searched."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def specs_root() -> Path:
    configured = os.environ.get("CONNECTOR_VENDOR_SPECS")
    return Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "specs"


def spec_path(relative: str) -> Path:
    """The path of a vendor description under the specs folder; fails under CI, else skips, when
    it is missing."""
    path = specs_root() / relative
    if path.exists():
        return path
    message = (
        f"vendor API descriptions not found under {specs_root()} "
        "(set CONNECTOR_VENDOR_SPECS to the specs folder)"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}: {relative} is missing", pytrace=False)
    pytest.skip(message)


@cache
def load_json(relative: str) -> Any:
    return json.loads(spec_path(relative).read_text())
