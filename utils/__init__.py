"""Companion code for chapter 6 (CycleGAN).

`utils.ch06util` holds the chapter's own names; the other modules are the scaffolding a
course repository needs around them (data, training runs, evaluation, display).
"""

import os as _os

# albumentations pings PyPI for a newer version on import; readers may be offline and
# CI must never touch the network.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
