"""Where the browser tests put their full-page screenshots: `CONNECTOR_SCREENSHOTS_DIR` when set
(created if missing; e.g. `docs/screenshots` to refresh the README's pictures), else the test's own
tmp dir. Each path is printed (`pytest -s` shows them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

ENV = "CONNECTOR_SCREENSHOTS_DIR"


class Screenshotting(Protocol):
    def screenshot(self, *, path: str, full_page: bool) -> bytes: ...


def folder(default: Path) -> Path:
    configured = os.environ.get(ENV, "").strip()
    target = Path(configured) if configured else default
    target.mkdir(parents=True, exist_ok=True)
    return target


def save(page: Screenshotting, default: Path, name: str, *, prefix: str = "") -> Path:
    """A full-page PNG of what the page shows now, as `<folder>/<prefix><name>.png`."""
    path = folder(default) / f"{prefix}{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
