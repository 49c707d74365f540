"""A tiny scenario file shared by the command-line tests: the default flow on few accounts,
stepped every 60 s, so a run takes a second or two. Each day runs to 17:00 KST, the close of
HKEX where the default 2x product hedges."""

from __future__ import annotations

from pathlib import Path


def tiny_file(folder: Path, name: str, extra: str = "") -> Path:
    """Write ``<name>.toml`` extending ants-skhynix (plus ``extra`` TOML) and return it."""
    path = folder / f"{name}.toml"
    path.write_text(f'''extends = "ants-skhynix"
name = "{name}"
[path]
step_s = 60
pre_open_s = 600
post_close_s = 5400
[ants]
count = 100
[inverse]
count = 20
[noise]
count = 2
[arbitrageurs]
count = 1
[market_makers]
count = 1
{extra}''', encoding="utf-8")
    return path
