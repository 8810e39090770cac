"""Every setting is in the README's configuration table, under the name it is set by."""

from __future__ import annotations

import re
from pathlib import Path

from connector.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    table = text[text.index("## Configuration") : text.index("## Command line")]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in documented]
    assert missing == []
