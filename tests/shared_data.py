"""Where the third-party test data lives: ``shared/data`` beside the clone (CI), else the workplace copy."""

from __future__ import annotations

import os
from pathlib import Path

_BESIDE = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = Path(os.environ.get("RAGCODE_SHARED_DATA", _BESIDE if _BESIDE.is_dir() else "/work/shared/data"))
