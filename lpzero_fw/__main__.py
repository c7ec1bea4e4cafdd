"""``python -m lpzero_fw [group=option ...] [key=value ...]`` — the Hydra entry point."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import hydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from lpzero_fw.tasks import run_task


# an absolute path: a relative one makes the console script (module import, not ``-m``) look
# for an importable ``lpzero_fw.conf`` package, which a folder of YAML files is not
@hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"), config_name="config")
def _app(cfg: DictConfig) -> None:
    run_task(cfg)


def main() -> None:
    """Console-script entry point (``lpzero-fw``): a bad override or option (Hydra's
    composition errors) prints one line naming it and the valid choices and exits 2,
    like every other user error."""
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing its own report
    try:
        _app()
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"error: {composition_error(exc)}", file=sys.stderr)
        sys.exit(2)
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


def composition_error(exc: BaseException) -> str:
    """One line for a Hydra/OmegaConf composition error: the bad override, what is wrong
    with it, and the valid choices where they are known."""
    if isinstance(exc, MissingConfigException) and exc.options is not None:
        group, _, option = (exc.missing_cfg_file or "").rpartition("/")
        return f"{group}={option} is not an option; options: {', '.join(sorted(exc.options))}"
    head = _first_line(str(exc))
    cause = exc.__cause__
    if not isinstance(cause, OmegaConfBaseException):
        return head
    override = re.search(r"override '?([^'\s]+)'?", head)
    what = override.group(1) if override else (cause.full_key or "")
    reason = _first_line(cause.msg or str(cause))
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):  # an unknown key
        parent = cause.parent_node
        keys = sorted(str(k) for k in parent.keys()) if isinstance(parent, DictConfig) else []
        where = cause.full_key.rpartition(".")[0] if cause.full_key else ""
        valid = f"; keys{' of ' + where if where else ''}: {', '.join(keys)}" if keys else ""
        return f"{what}: no such setting{valid}"
    return f"{what}: {reason}"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


if __name__ == "__main__":
    sys.exit(main())
