"""The image tests read images with the scanner CI uses (.github/scripts/scan_image_for_token.py).

``.github/scripts`` is not a package (a dot folder), so its folder goes on ``sys.path`` here, before
any test module of this folder is imported: ``import scan_image_for_token as scanner``.
"""

from __future__ import annotations

import sys
from pathlib import Path

SCANNER_DIR = Path(__file__).resolve().parents[2] / ".github" / "scripts"
if str(SCANNER_DIR) not in sys.path:
    sys.path.insert(0, str(SCANNER_DIR))
