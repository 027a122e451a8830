"""Found by Hydra's plugin scan, so compositions outside Fluxora's own code know `conf/`'s schema.

`dvc exp run` composes `conf/` into `params.yaml` in DVC's process (`.dvc/config`: `hydra.enabled`;
DVC adds the project root to Hydra's plugin path). `conf/config.yaml` starts from the structured
schema `fluxora_schema`, which only exists once registered: this import registers it.
"""

from fluxora.config import register_schema

register_schema()
