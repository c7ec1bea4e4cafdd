"""Statistics cache: extract each architecture once, reuse it everywhere.

In memory for the run; on disk as safetensors files (no pickle, memory-mappable),
written atomically and verified with a checksum on read, keyed by everything that
changes the statistics: search space settings, arch id, batch, seeds, extractor
version, budget and dtype. Jobs of a sweep, later runs and other machines that
share the directory all reuse the same files.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from collections.abc import Mapping
from typing import Callable, Iterable

import numpy as np
import torch

from lpzero_fw.ops.base import Values
from lpzero_fw.registry import LPZeroError
from lpzero_fw.search_spaces.base import SearchSpace
from lpzero_fw.stats.extract import EXTRACTOR_VERSION, ArchStats, ExtractionPlan, RawStats, extract_raw, split_batch, summarize

#: storage dtypes on disk. float32 (the default) is lossless: computation is float32
#: too. float16 flushes the 1e-5..1e-8 gradients and Jacobians of untrained models to
#: subnormals or zero and bfloat16 keeps under 3 significant digits, both of which
#: ``invert``/``log``/``abs_log`` amplify; they halve the disk files only.
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: layout of the safetensors files (checked on read besides the key)
FILE_FORMAT = "lpzero_fw-stats-3"  # 3: sample weights (Values.w)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lpzero_fw" / "stats"


class StatsStore:
    """Gives :data:`ArchStats` per arch id: memory → disk → one extraction pass.

    ``budget``: values kept per layer (``None`` = exact). ``dtype``: storage dtype
    on disk (computation is always float32). ``directory=None`` uses the user cache
    dir; ``enabled=False`` turns the disk cache off; ``memory=False`` also forgets
    statistics after each use, so every evaluation re-extracts them (the reference
    implementation's behaviour, kept for benchmarking).
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        batch_seed: int = 0,
        model_seed: int = 0,
        budget: int | None = 2048,
        dtype: str = "float32",
        directory: str | os.PathLike | None = None,
        enabled: bool = True,
        memory: bool = True,
        fabric=None,
        symbols: tuple[str, ...] | None = None,
        micro_batches: int = 1,
    ) -> None:
        if budget is not None and budget < 1:
            raise LPZeroError(f"cache.budget={budget} must be a positive integer or null (exact)")
        if dtype not in DTYPES:
            raise LPZeroError(f"unknown cache.dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
        self.space = space
        self.batch_seed = batch_seed
        self.model_seed = model_seed
        self.budget = budget
        self.dtype = dtype
        self.enabled = enabled
        self.keep_in_memory = memory
        self.fabric = fabric
        self.symbols = None if symbols is None else tuple(sorted(symbols))  # None: every input
        self.micro_batches = micro_batches
        self.directory = Path(directory) if directory else default_cache_dir()
        self.memory: dict[str, ArchStats] = {}
        self.skipped: dict[str, str] = {}
        self.extraction_seconds: dict[str, float] = {}
        self._batch = None
        if enabled:
            self._check_directory()

    def _check_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.directory, delete=True)
            probe.close()
        except OSError as exc:
            raise LPZeroError(
                f"cache.dir={str(self.directory)!r} is not a writable directory ({exc.strerror}); "
                "set cache.dir to a writable path or cache.enabled=false"
            ) from None

    # -- keys ---------------------------------------------------------------------
    @property
    def batch(self):
        if self._batch is None:
            batch = self.space.make_batch(seed=self.batch_seed)
            split_batch(batch, self.micro_batches)  # a bad micro_batches fails before any pass
            self._batch = batch
        return self._batch

    def key(self, arch_id: str) -> str:
        settings = {
            "space": self.space.describe(),
            "arch": arch_id,
            "batch_seed": self.batch_seed,
            "model_seed": self.model_seed,
            "extractor_version": EXTRACTOR_VERSION,
            "budget": self.budget,
            "dtype": self.dtype,
        }
        if self.symbols is not None:
            settings["symbols"] = self.symbols
        if self.micro_batches != 1:  # gradients accumulate in another order: not the same bits
            settings["micro_batches"] = self.micro_batches
        blob = json.dumps(settings, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:20]

    def path(self, arch_id: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in arch_id)
        return self.directory / f"{safe}-{self.key(arch_id)}.safetensors"

    # -- access -------------------------------------------------------------------
    def get(self, arch_id: str) -> ArchStats:
        return self._get(arch_id, wait=True)

    def _get(self, arch_id: str, wait: bool) -> ArchStats | None:
        """None only when ``wait`` is False and another job is extracting ``arch_id`` now."""
        if arch_id in self.memory:
            return self.memory[arch_id]
        stats = self._read(arch_id, quiet=True) if self.enabled else None
        if stats is None and not self.enabled:
            stats = self._extract(arch_id)
        elif stats is None:
            from filelock import Timeout

            try:
                with self.lock(arch_id, timeout=-1 if wait else 0):
                    stats = self._read_or_extract(arch_id)
            except Timeout:
                return None
        if self.keep_in_memory:
            self.memory[arch_id] = stats
        return stats

    def _read_or_extract(self, arch_id: str) -> ArchStats:
        """Under the arch's lock: another job may have written the file while we waited;
        writers only write under the lock, so a file that fails to verify now is corrupt."""
        stats = self._read(arch_id)
        if stats is None:
            stats = self._extract(arch_id)
            self._write(arch_id, stats)
        return stats

    def lock(self, arch_id: str, timeout: float = -1):
        """The per-architecture lock that parallel jobs sharing ``directory`` take around
        "read or extract+write". An OS lock (``flock`` via filelock): the kernel releases
        it when its holder dies, so a killed job leaves no stale lock behind."""
        from filelock import FileLock

        locks = self.directory / ".locks"
        locks.mkdir(exist_ok=True)
        return FileLock(locks / (self.path(arch_id).stem + ".lock"), timeout=timeout)

    def get_many(
        self, arch_ids: Iterable[str], progress: Callable[[str], None] | None = None, max_skip: float = 0.1
    ) -> dict[str, ArchStats]:
        """Statistics of every arch that extracts; failures are skipped (see :attr:`skipped`).

        Archs another job is extracting right now (their lock is taken) are deferred to
        a second pass, by which time that job has usually written them: jobs starting
        cold on one cache directory split the work instead of waiting for each other.
        More than ``max_skip`` of the requested archs failing stops the run.
        """
        arch_ids = list(arch_ids)
        found: dict[str, ArchStats] = {}
        deferred = [a for a in arch_ids if not self._fetch(a, found, wait=False, progress=progress)]
        for arch_id in deferred:  # now waiting: usually a read of what the other job wrote
            self._fetch(arch_id, found, wait=True, progress=progress)
        result = {a: found[a] for a in arch_ids if a in found}
        failed = [a for a in arch_ids if a in self.skipped]
        if len(failed) > max_skip * len(arch_ids):
            raise LPZeroError(
                f"{len(failed)} of {len(arch_ids)} architectures failed to extract (more than "
                f"{max_skip:.0%}), e.g. {failed[0]}: {self.skipped[failed[0]]}"
            )
        return result

    def _fetch(self, arch_id: str, found: dict, wait: bool, progress) -> bool:
        """Put ``arch_id``'s statistics into ``found`` (or skip a faulty arch); False = deferred."""
        try:
            stats = self._get(arch_id, wait)
            if stats is None:
                return False
            found[arch_id] = stats
        except FaultyArchitecture as exc:
            self.skipped[arch_id] = str(exc)
            warnings.warn(f"skipping architecture {arch_id}: {exc}", RuntimeWarning)
        if progress is not None:
            progress(arch_id)
        return True

    def cached(self, arch_id: str) -> bool:
        return arch_id in self.memory or (self.enabled and self.path(arch_id).exists())

    # -- extraction in another pass ----------------------------------------------------
    @property
    def plan(self) -> ExtractionPlan:
        """What this store's pass extracts (inputs, budget, sampling seed)."""
        return ExtractionPlan(self.symbols, self.budget, self.model_seed)

    @property
    def plain_pass(self) -> bool:
        """Its pass is one float32 pass on the CPU, so another such pass of the same model
        (seed ``model_seed``) and :attr:`batch` may extract for it (``task=rank``'s baselines)."""
        return self.micro_batches == 1 and (self.fabric is None or bool(getattr(self.fabric, "plain_cpu", False)))

    def add(self, arch_id: str, raw: RawStats) -> ArchStats:
        """Keep (and write) what another pass extracted of ``arch_id`` with :attr:`plan`:
        the same statistics :meth:`get` would have extracted itself."""
        stats = _round_trip(summarize(raw, self.budget, seed=self.model_seed), DTYPES[self.dtype])
        if self.enabled:
            with self.lock(arch_id):
                if self._read(arch_id, quiet=True) is None:
                    self._write(arch_id, stats)
        if self.keep_in_memory:
            self.memory[arch_id] = stats
        return stats

    def _extract(self, arch_id: str) -> ArchStats:
        import time

        start = time.perf_counter()
        raw = self._extract_with_retry(arch_id)
        stats = summarize(raw, self.budget, seed=self.model_seed)
        del raw
        # round through the storage dtype so cold and warm runs see identical values
        stats = _round_trip(stats, DTYPES[self.dtype])
        self.extraction_seconds[arch_id] = time.perf_counter() - start
        return stats

    def _extract_with_retry(self, arch_id: str):
        """One pass; on failure (e.g. out of memory) once more in twice as many micro-batches."""
        try:
            return extract_raw(self.space, arch_id, self.batch, self.symbols, seed=self.model_seed,
                               fabric=self.fabric, budget=self.budget, micro_batches=self.micro_batches)
        except LPZeroError:
            raise
        except Exception as first:  # noqa: BLE001 - any model failure gets one retry
            parts = 2 * self.micro_batches
            warnings.warn(f"{arch_id}: extraction failed ({type(first).__name__}: {first}); "
                          f"retrying in {parts} micro-batches", RuntimeWarning)
            try:
                return extract_raw(self.space, arch_id, self.batch, self.symbols, seed=self.model_seed,
                                   fabric=self.fabric, budget=self.budget, micro_batches=parts)
            except Exception as second:  # noqa: BLE001
                raise FaultyArchitecture(f"{type(second).__name__}: {second}") from second

    # -- disk format ----------------------------------------------------------------
    def _write(self, arch_id: str, stats: ArchStats) -> None:
        from safetensors.torch import save

        tensors = _flatten(stats, DTYPES[self.dtype])
        payload = save(tensors, metadata={"arch_id": arch_id, "key": self.key(arch_id), "format": FILE_FORMAT})
        digest = hashlib.blake2b(payload, digest_size=16).hexdigest()
        target = self.path(arch_id)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".safetensors")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            Path(tmp + ".b2").write_text(digest)
            os.replace(tmp + ".b2", str(target) + ".b2")
            os.replace(tmp, target)
        except BaseException:
            for leftover in (tmp, tmp + ".b2"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
            raise

    def _read(self, arch_id: str, quiet: bool = False) -> ArchStats | None:
        """The verified file's statistics, else None. ``quiet``: outside the lock a
        writer may be between its two renames, so a mismatch there is not worth a warning."""
        from safetensors.torch import load

        target = self.path(arch_id)
        if not target.exists():
            return None
        try:
            payload = target.read_bytes()
            expected = Path(str(target) + ".b2").read_text().strip()
            if hashlib.blake2b(payload, digest_size=16).hexdigest() != expected:
                raise ValueError("checksum mismatch")
            found = _metadata(payload).get("format")
            if found != FILE_FORMAT:
                raise ValueError(f"format {found!r}, expected {FILE_FORMAT!r}")
            return _unflatten(load(payload))
        except Exception as exc:  # any corruption: recompute
            if not quiet:
                warnings.warn(f"statistics cache file {target} is unreadable ({exc}); recomputing", RuntimeWarning)
            return None


class FaultyArchitecture(RuntimeError):
    """An architecture whose statistics cannot be extracted even in micro-batches."""


class LazyStats(Mapping):
    """``arch_id -> ArchStats`` that asks the store on every access (no reuse)."""

    def __init__(self, store: StatsStore, arch_ids: list[str]) -> None:
        self.store, self.arch_ids = store, list(arch_ids)

    def __getitem__(self, arch_id: str) -> ArchStats:
        return self.store.get(arch_id)

    def __iter__(self):
        return iter(self.arch_ids)

    def __len__(self) -> int:
        return len(self.arch_ids)


def _metadata(payload: bytes) -> dict:
    """The ``__metadata__`` of a safetensors payload (8-byte header length, JSON header)."""
    size = int.from_bytes(payload[:8], "little")
    return json.loads(payload[8 : 8 + size]).get("__metadata__", {})


def _round_trip(stats: ArchStats, dtype: torch.dtype) -> ArchStats:
    """The values a later read of the disk file gives (identity for float32)."""
    if dtype == torch.float32:
        return stats
    return {
        symbol: [Values(_as_float32(v.x.to(dtype)), v.n, v.lead, v.w) for v in chunks]
        for symbol, chunks in stats.items()
    }


def _as_float32(x: torch.Tensor) -> torch.Tensor:
    """float16 -> float32 through numpy: torch's multi-threaded conversion costs ~6 ms per
    tensor when the other core is busy, numpy's ~0.06 ms (same values)."""
    if x.dtype == torch.float16 and x.device.type == "cpu":
        return torch.from_numpy(x.numpy().astype(np.float32))
    return x.float()


def _flatten(stats: ArchStats, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    tensors = {}
    for symbol, chunks in stats.items():
        tensors[f"{symbol}.count"] = torch.tensor([len(chunks)])
        for i, values in enumerate(chunks):
            tensors[f"{symbol}.{i}.x"] = values.x.to(dtype).contiguous()
            tensors[f"{symbol}.{i}.n"] = values.n.double().contiguous()
            if values.lead is not None:
                tensors[f"{symbol}.{i}.lead"] = values.lead.double().contiguous()
            if values.w is not None:  # float32 whatever the dtype: shares must keep summing to 1
                tensors[f"{symbol}.{i}.w"] = values.w.float().contiguous()
    return tensors


def _unflatten(tensors: dict[str, torch.Tensor]) -> ArchStats:
    stats: ArchStats = {}
    for name, count in tensors.items():
        if not name.endswith(".count"):
            continue
        symbol = name[: -len(".count")]
        stats[symbol] = [
            Values(_as_float32(tensors[f"{symbol}.{i}.x"]), tensors[f"{symbol}.{i}.n"].float(),
                   tensors[f"{symbol}.{i}.lead"].float() if f"{symbol}.{i}.lead" in tensors else None,
                   tensors.get(f"{symbol}.{i}.w"))
            for i in range(int(count.item()))
        ]
    return dict(sorted(stats.items()))
