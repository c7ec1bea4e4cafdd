"""Where the benchmark files are: explicit path → $LPZERO_FW_DATA → a ``shared/``
folder beside a source checkout → the downloaded copy in the user cache.

The public copies live in the LPZero authors' repository (MIT). GPT-2 and
Transformer-XL folders were deleted after commit ``PINNED_COMMIT``, so that commit
is pinned. Every file is verified against ``manifest.json`` (sha256) and written
atomically: a mismatch is an error and leaves no partial file behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Callable

from lpzero_fw.registry import LPZeroError

ENV_VAR = "LPZERO_FW_DATA"
NO_SIBLING_ENV_VAR = "LPZERO_FW_NO_SIBLING_DATA"
PINNED_COMMIT = "9faa34d2c63c6b276a0082442e7eb0aa70be2526"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/pprp/LPZero/{PINNED_COMMIT}"


def manifest() -> dict[str, str]:
    """Relative path → sha256 of every public benchmark file."""
    text = resources.files("lpzero_fw.data").joinpath("manifest.json").read_text()
    return json.loads(text)


def remote_path(relative: str) -> str:
    """Path of a manifest entry inside the public repository."""
    return relative if relative.startswith("data/") else f"saved_logs/{relative}"


def default_download_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lpzero_fw" / "benchmarks"


def source_checkout_data() -> Path | None:
    """``../shared/benchmarks/lpzero`` beside a source checkout (developers and CI);
    ``$LPZERO_FW_NO_SIBLING_DATA=1`` turns this fallback off (tests of the download path)."""
    if os.environ.get(NO_SIBLING_ENV_VAR, "") not in ("", "0"):
        return None
    candidate = Path(__file__).resolve().parents[3] / "shared" / "benchmarks" / "lpzero"
    return candidate if candidate.is_dir() else None


def resolve_root(
    root: str | None = None,
    *,
    download: bool = True,
    base_url: str = DEFAULT_BASE_URL,
    cache_dir: str | None = None,
    folders: tuple[str, ...] = ("random_GPT2_wt103", "data"),
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The benchmark root directory, downloading the public files when needed."""
    if root:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise LPZeroError(f"benchmark.root={str(path)!r} does not exist or is not a directory")
        return path
    if os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR]).expanduser()
        if not path.is_dir():
            raise LPZeroError(f"${ENV_VAR}={str(path)!r} does not exist or is not a directory")
        return path
    sibling = source_checkout_data()
    if sibling is not None and all((sibling / f).exists() for f in folders):
        return sibling
    target = Path(cache_dir).expanduser() if cache_dir else default_download_dir()
    wanted = {rel: digest for rel, digest in manifest().items() if rel.split("/")[0] in folders}
    missing = {rel: d for rel, d in wanted.items() if not (target / rel).is_file()}
    if missing:
        if not download:
            raise LPZeroError(
                f"benchmark files are missing under {target} and benchmark.download=false; "
                f"set benchmark.root or ${ENV_VAR}"
            )
        download_files(missing, target, base_url, progress=progress)
    return target


def download_files(
    files: dict[str, str], target: Path, base_url: str, progress: Callable[[str], None] | None = None
) -> None:
    """Fetch ``files`` (relative path → sha256) from ``base_url`` into ``target``."""
    for relative, digest in sorted(files.items()):
        url = f"{base_url.rstrip('/')}/{remote_path(relative)}"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                payload = response.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LPZeroError(f"cannot download {url}: {reason}; set benchmark.root or ${ENV_VAR}") from None
        actual = hashlib.sha256(payload).hexdigest()
        if actual != digest:
            raise LPZeroError(f"checksum mismatch for {url}: expected sha256 {digest}, got {actual}")
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.replace(tmp, destination)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        if progress is not None:
            progress(relative)
