"""MkDocs hooks: the generated fidelity page, and the pages other engineers may add.

* ``fidelity.md`` is rendered by ``scripts/gen_fidelity.py`` at every build (never a file in
  ``docs/``), from the code, the test files and the recorded test results.
* ``benchmarks.md`` and ``robustness.md`` join the navigation when they exist.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL_PAGES = (("Benchmarks", "benchmarks.md"), ("Robustness", "robustness.md"))


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_fidelity", ROOT / "scripts" /
                                                  "gen_fidelity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_fidelity", module)
    spec.loader.exec_module(module)
    return module


def on_config(config: Any) -> Any:
    docs = Path(config["docs_dir"])
    nav = config["nav"]
    index = next((i for i, item in enumerate(nav) if "API reference" in item), len(nav))
    for title, page in OPTIONAL_PAGES:
        if (docs / page).exists() and not any(page in item.values() for item in nav):
            nav.insert(index, {title: page})
            index += 1
    return config


def on_files(files: Files, config: Any) -> Files:
    text = _generator().render()
    files.append(File.generated(config, "fidelity.md", content=text))
    return files
