"""Companion code for chapter 6 (CycleGAN).

`utils.ch06util` holds the chapter's own names; the other modules are the scaffolding a
course repository needs around them (data, training runs, evaluation, display).

Layers (tests/test_layers.py reads every import, in functions too, and enforces them):
* ground floor: paths, images, runtime, speed, cli, ownership (which files a command wrote),
  locks (one process per folder) -- import nothing above the ground floor;
* ch06util (the chapter) imports only the ground floor;
* data: prepare, datasets, archive, kaggle, split_record, synthetic* -- never import training
  (settings, setting_checks, train, run_loop, run_state, run_record, train_data, networks, distributed,
  fast_gpu);
* library code (everything but the teaching layer) never imports utils.demo or utils.notebook;
* no import circles, and no private (_name) imports from another module.
"""

import os as _os

# albumentations pings PyPI for a newer version on import; readers may be offline and
# CI must never touch the network.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
