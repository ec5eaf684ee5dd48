"""The plugin's settings: how to reach the real host, and who this pytest process is.

A module of its own (nothing but the standard library) so that reading the options costs a
pytest run nothing; the backends that use them are imported when a test first needs one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """How to reach the real host, and who this pytest process is."""

    endpoint: str
    cert: tuple[str, str] | None = None
    verify: bool | str = True
    worker: str = "main"
    run_id: str = ""
    log_size: int = 20
