"""``python -m lpzero_fw [group=option ...] [key=value ...]`` — the Hydra entry point."""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lpzero_fw.tasks import run_task


# an absolute path: a relative one makes the console script (module import, not ``-m``) look
# for an importable ``lpzero_fw.conf`` package, which a folder of YAML files is not
@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="config")
def _app(cfg: DictConfig) -> None:
    run_task(cfg)


def main() -> None:
    """Console-script entry point (``lpzero-fw``)."""
    _app()


if __name__ == "__main__":
    sys.exit(main())
