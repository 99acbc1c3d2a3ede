"""`get_config(path)` of a saved `config.json`, for `--config_json=WORKDIR/config.json`.

`main.py` turns `--config_json=PATH` into `--config=<this file>:PATH`, so that overrides
`--config.FIELD=VALUE` apply on top of the saved config as they do for a config file. This file is
the only code run: the JSON is read as data (`config.load_config_json`), never executed.
"""

from task_discovery import config as config_lib


def get_config(path: str):
  if not path:
    raise ValueError("--config_json needs a path: --config_json=WORKDIR/config.json")
  return config_lib.load_config_json(path)
