"""Where the benchmark files are: explicit path → $LPZERO_FW_DATA → a ``shared/``
folder beside a source checkout → the downloaded copy in the user cache.

``manifest.json`` lists every public benchmark file with its sha256 and the public
repositories (mirrors) that keep a copy, each at a pinned commit (the LPZero authors
deleted the GPT-2/Transformer-XL folders after ``PINNED_COMMIT``). Mirrors are tried
in turn, unverified ones last: a dead or mismatching mirror costs one warning line
and the files it did not deliver go to the next. Every file is verified (sha256) and
written atomically, so a failure leaves no partial file behind.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from lpzero_fw.registry import LPZeroError

log = logging.getLogger("lpzero_fw.download")

ENV_VAR = "LPZERO_FW_DATA"
NO_SIBLING_ENV_VAR = "LPZERO_FW_NO_SIBLING_DATA"
PINNED_COMMIT = "9faa34d2c63c6b276a0082442e7eb0aa70be2526"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/pprp/LPZero/{PINNED_COMMIT}"
#: how a server laid out like the LPZero repository maps manifest paths (``benchmark.base_url``)
LPZERO_LAYOUT = {"data/": "data/", "": "saved_logs/"}
TIMEOUT = 30


@dataclass(frozen=True)
class Mirror:
    """One public copy: ``url`` + ``layout`` (manifest path prefix → path prefix there).

    ``verified``: every file's sha256 was checked against the repository at its commit;
    ``lacks``: manifest files it does not have; ``sha256``: files whose bytes differ
    there (same content, other formatting), verified against these digests instead.
    """

    name: str
    url: str
    layout: dict = field(default_factory=lambda: dict(LPZERO_LAYOUT))
    verified: bool = False
    lacks: tuple = ()
    sha256: dict = field(default_factory=dict)

    def remote(self, relative: str) -> str | None:
        """URL of a manifest file on this mirror, None when it has no copy."""
        if relative in self.lacks:
            return None
        for prefix, there in self.layout.items():
            if relative.startswith(prefix):
                return f"{self.url.rstrip('/')}/{there}{relative[len(prefix):]}"
        return None

    def digest(self, relative: str, published: str) -> str:
        return self.sha256.get(relative, published)


def _manifest_data() -> dict:
    text = resources.files("lpzero_fw.data").joinpath("manifest.json").read_text()
    return json.loads(text)


def manifest() -> dict[str, str]:
    """Relative path → sha256 of every public benchmark file."""
    return _manifest_data()["files"]


def reference_only(relative: str) -> bool:
    """Files the package never reads (the authors' own scores, for comparisons): not
    finding them on any mirror is a warning, not an error."""
    return any(fnmatch.fnmatch(relative, pattern) for pattern in _manifest_data().get("reference_only", ()))


def mirrors() -> list[Mirror]:
    """The manifest's mirrors in the order they are tried (unverified ones last)."""
    listed = [
        Mirror(m["name"], m["url"], dict(m["layout"]), bool(m.get("verified")), tuple(m.get("lacks", ())),
               dict(m.get("sha256", {})))
        for m in _manifest_data()["mirrors"]
    ]
    return sorted(listed, key=lambda m: not m.verified)


def remote_path(relative: str) -> str:
    """Path of a manifest entry inside the LPZero repository (and any server laid out like it)."""
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
    base_url: str | None = None,
    cache_dir: str | None = None,
    folders: tuple[str, ...] = ("random_GPT2_wt103", "data"),
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The benchmark root directory, downloading the public files when needed.

    ``base_url``: one server laid out like the LPZero repository, used instead of the
    manifest's mirrors (an internal copy, or a local server in tests)."""
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
        download_files(missing, target, base_url or None, progress=progress)
    return target


def download_files(
    files: dict[str, str],
    target: Path,
    base_url: str | None = None,
    progress: Callable[[str], None] | None = None,
    mirror_list: list[Mirror] | None = None,
) -> None:
    """Fetch ``files`` (relative path → sha256) into ``target`` from the first mirror that
    delivers each one intact; ``base_url`` replaces the mirrors by one LPZero-layout server."""
    if mirror_list is None:
        mirror_list = [Mirror(base_url, base_url, verified=True)] if base_url else mirrors()
    todo = dict(sorted(files.items()))
    tried = []
    for number, mirror in enumerate(mirror_list):
        offered = {rel: d for rel, d in todo.items() if mirror.remote(rel)}
        if not offered:
            continue
        failures = _fetch_from(mirror, offered, target, progress)
        for rel in offered:
            if rel not in failures:
                del todo[rel]
        if failures:
            reason = _summary(failures)
            tried.append(f"{mirror.name} ({reason})")
            later = [m.name for m in mirror_list[number + 1:] if any(m.remote(r) for r in todo)]
            if later:
                log.warning("benchmark mirror %s failed for %d file(s) (%s); trying %s",
                            mirror.name, len(failures), reason, later[0])
        if not todo:
            return
    optional = [rel for rel in todo if reference_only(rel)]
    if len(optional) == len(todo):
        log.warning("%d reference-only benchmark file(s) are on no mirror (e.g. %s); the package does not "
                    "read them", len(optional), optional[0])
        return
    todo = {rel: d for rel, d in todo.items() if rel not in optional}
    example = next(iter(todo))
    raise LPZeroError(
        f"cannot download {len(todo)} benchmark file(s) (e.g. {example}); tried "
        f"{'; '.join(tried) or 'no mirror that has them'}; download them by hand and set "
        f"benchmark.root (or ${ENV_VAR}) to the folder that holds {example.split('/')[0]}/"
    )


def _fetch_from(mirror: Mirror, files: dict[str, str], target: Path, progress) -> dict[str, str]:
    """Download ``files`` from one mirror; returns relative path → failure reason.

    After a connection error the mirror gets no further requests (a dead host would
    otherwise cost one timeout per file)."""
    failures: dict[str, str] = {}
    dead: list[str] = []

    def fetch(relative: str) -> None:
        if dead:
            failures[relative] = dead[0]
            return
        url = mirror.remote(relative)
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            failures[relative] = f"HTTP {exc.code} for {url}"
            return
        except (urllib.error.URLError, OSError) as exc:
            reason = f"cannot download {url}: {getattr(exc, 'reason', exc)}"
            dead.append(reason)
            failures[relative] = reason
            return
        expected = mirror.digest(relative, files[relative])
        actual = hashlib.sha256(payload).hexdigest()
        if actual != expected:
            failures[relative] = f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}"
            return
        _write_atomic(target / relative, payload)
        if progress is not None:
            progress(relative)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(fetch, files))
    return failures


def _summary(failures: dict[str, str]) -> str:
    first = failures[min(failures)]
    return first if len(failures) == 1 else f"{first}; {len(failures) - 1} more"


def _write_atomic(destination: Path, payload: bytes) -> None:
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
