"""``python -m lpzero_fw [group=option ...] [key=value ...]`` — the Hydra entry point."""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from lpzero_fw.tasks import run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def _app(cfg: DictConfig) -> None:
    run_task(cfg)


def main() -> None:
    """Console-script entry point (``lpzero-fw``)."""
    _app()


if __name__ == "__main__":
    sys.exit(main())
