"""Make `tests.support` importable: these test directories are not packages, so pytest's default
import mode puts only this directory on sys.path, not the repository root."""

from __future__ import annotations

import sys
from pathlib import Path

_REPO_ROOT = str(Path(__file__).resolve().parents[3])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)
