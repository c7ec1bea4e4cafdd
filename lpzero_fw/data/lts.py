"""Reader for a Lite-Transformer-Search (LTS) benchmark folder.

An LTS folder (e.g. ``random_GPT2_wt103``, ``random_TransXL_wt103`` or a user's
``random_GPT2_lm1b``) holds::

    config_<i>/j<k>/model_config.yaml   one trained architecture, id ``config_<i>_j<k>``
    ppl_summary.yaml                    id -> {valid_ppl, test_ppl, ...}
    params_summary.yaml                 id -> {AdaEmb, Attn, FFN, nonembedding, total}

Every file is parsed at most once per :class:`LTSBenchmark` instance (libyaml's C
loader when available). A missing or corrupt file raises :class:`LPZeroError`
naming the file.

Model families: GPT-2 and Transformer-XL folders share the layout and most config keys
(GPT-2 configs even carry ``attn_type`` and ``mem_len``), so :func:`benchmark_family`
decides from, in order: an explicit ``model_type``; the published parameter counts, whose
attention part has a different closed form per family (GPT-2: ``sum_l 4d^2 + 4d``, biased
q/k/v/o; Transformer-XL: ``sum_l 5 d e_l + 2d``, unbiased q/k/v/r/o and a LayerNorm,
``e_l = n_head_l * d_head_l``); the training run's ``experiment_name``; the folder name.
A FlexiBERT benchmark (a JSON file of entries with ``hparams`` and ``scores``) is
recognised too, so every search space can refuse another family's benchmark
(:func:`require_family`). Family names are search-space names.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from lpzero_fw.registry import LPZeroError

try:  # the C loader is ~10x faster on the 200 small config files
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader

_ARCH_DIR = re.compile(r"^config_(\d+)$")
_JOB_DIR = re.compile(r"^j(\d+)$")
PPL_FILE = "ppl_summary.yaml"
PARAMS_FILE = "params_summary.yaml"
CONFIG_FILE = "model_config.yaml"


def load_yaml_mapping(path: Path) -> dict:
    """Parse ``path`` as a YAML mapping; any problem is one LPZeroError naming the file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LPZeroError(f"benchmark file {str(path)!r} is missing") from None
    except OSError as exc:
        raise LPZeroError(f"cannot read benchmark file {str(path)!r}: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise LPZeroError(f"benchmark file {str(path)!r} is not valid YAML{line}") from None
    if not isinstance(data, dict):
        raise LPZeroError(
            f"benchmark file {str(path)!r} must hold a YAML mapping, got {type(data).__name__}"
        )
    return data


GPT2, TRANSFORMER_XL, FLEXIBERT = "gpt2", "transformer_xl", "flexibert"


def _family_from_text(text: str) -> str | None:
    low = text.lower().replace("-", "_")
    if any(tag in low for tag in ("transfo_xl", "transxl", "xformer_xl", "mem_transformer", "transformer_xl")):
        return TRANSFORMER_XL
    if "gpt2" in low:
        return GPT2
    if "bert" in low:
        return FLEXIBERT
    return None


def _family_from_counts(config: dict, counts: dict) -> str | None:
    """The family whose closed-form attention count equals the published ``Attn``."""
    try:
        d, n_layer = int(config["d_model"]), int(config["n_layer"])
        heads = config["n_head"]
        heads = [int(h) for h in heads][:n_layer] if isinstance(heads, list) else [int(heads)] * n_layer
        d_head = int(config.get("d_head", -1) or -1)
        published = int(counts["Attn"])
    except (KeyError, TypeError, ValueError):
        return None
    widths = [h * (d_head if d_head > 0 else d // h) for h in heads if h > 0]
    if published == n_layer * (4 * d * d + 4 * d):
        return GPT2
    if published == sum(5 * d * e + 2 * d for e in widths):
        return TRANSFORMER_XL
    return None


def benchmark_family(path: str | Path) -> str | None:
    """``"gpt2"``, ``"transformer_xl"``, ``"flexibert"`` or None (undecided) for a benchmark path."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".json":
            try:
                import json

                entries = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, ValueError):
                return None
            first = entries[0] if isinstance(entries, list) and entries else None
            if isinstance(first, dict) and "hparams" in first and "scores" in first:
                return FLEXIBERT
        return None
    if not path.is_dir():
        return None
    try:
        bench = LTSBenchmark(path)
        first = bench.arch_ids()[0]
        config = bench.config(first)
    except LPZeroError:
        return _family_from_text(path.name)
    if isinstance(config.get("model_type"), str):
        found = _family_from_text(config["model_type"])
        if found:
            return found
    if (path / PARAMS_FILE).is_file():
        try:
            found = _family_from_counts(config, bench.params_summary().get(first) or {})
        except LPZeroError:
            found = None
        if found:
            return found
    for text in (str(config.get("experiment_name") or ""), path.name):
        found = _family_from_text(text)
        if found:
            return found
    return None


def require_family(path: str | Path, expected: str) -> None:
    """Refuse a benchmark of another model family in one line naming the search space to use."""
    found = benchmark_family(path)
    if found is not None and found != expected:
        raise LPZeroError(
            f"benchmark {str(Path(path).expanduser())!r} holds {found} models, not {expected}; "
            f"use search_space={found}"
        )


class LTSBenchmark:
    """Lazy, cached view of one LTS benchmark folder.

    ``family`` (a search-space name): refuse the folder when it holds another family.
    """

    def __init__(self, folder: str | Path, family: str | None = None) -> None:
        self.folder = Path(folder).expanduser()
        if family is not None:
            require_family(self.folder, family)
        if not self.folder.is_dir():
            raise LPZeroError(
                f"benchmark folder {str(self.folder)!r} does not exist or is not a directory"
            )
        self._ids: list[str] | None = None
        self._config_paths: dict[str, Path] = {}
        self._configs: dict[str, dict] = {}
        self._ppl: dict[str, dict] | None = None
        self._params: dict[str, dict] | None = None

    @property
    def name(self) -> str:
        return self.folder.name

    # -- architecture ids -----------------------------------------------------------
    def arch_ids(self) -> list[str]:
        """``config_<i>_j<k>`` ids in natural order (by i, then k)."""
        if self._ids is None:
            found: list[tuple[int, int, str, Path]] = []
            for arch_dir in self.folder.iterdir():
                m = _ARCH_DIR.match(arch_dir.name)
                if m is None or not arch_dir.is_dir():
                    continue
                for job_dir in arch_dir.iterdir():
                    j = _JOB_DIR.match(job_dir.name)
                    if j is None or not job_dir.is_dir():
                        continue
                    arch_id = f"{arch_dir.name}_{job_dir.name}"
                    found.append((int(m.group(1)), int(j.group(1)), arch_id, job_dir / CONFIG_FILE))
            if not found:
                raise LPZeroError(
                    f"benchmark folder {str(self.folder)!r} has no config_<i>/j<k>/{CONFIG_FILE} "
                    f"architectures"
                )
            found.sort()
            self._ids = [arch_id for _, _, arch_id, _ in found]
            self._config_paths = {arch_id: path for _, _, arch_id, path in found}
        return list(self._ids)

    def _check_id(self, arch_id: str) -> None:
        if self._ids is None:
            self.arch_ids()
        if arch_id not in self._config_paths:
            raise LPZeroError(
                f"unknown architecture {arch_id!r} in {self.name}; ids look like "
                f"{self._ids[0]!r} .. {self._ids[-1]!r}"  # type: ignore[index]
            )

    # -- per-architecture data ------------------------------------------------------
    def config(self, arch_id: str) -> dict[str, Any]:
        """The parsed ``model_config.yaml`` of ``arch_id`` (cached; do not mutate)."""
        cfg = self._configs.get(arch_id)
        if cfg is None:
            self._check_id(arch_id)
            cfg = load_yaml_mapping(self._config_paths[arch_id])
            self._configs[arch_id] = cfg
        return cfg

    def configs(self) -> dict[str, dict[str, Any]]:
        """Every architecture's config, in :meth:`arch_ids` order."""
        return {arch_id: self.config(arch_id) for arch_id in self.arch_ids()}

    def _summary(self, filename: str) -> dict[str, dict]:
        return load_yaml_mapping(self.folder / filename)

    def ppl_summary(self) -> dict[str, dict]:
        if self._ppl is None:
            self._ppl = self._summary(PPL_FILE)
        return self._ppl

    def params_summary(self) -> dict[str, dict]:
        if self._params is None:
            self._params = self._summary(PARAMS_FILE)
        return self._params

    def _entry(self, summary: dict[str, dict], filename: str, arch_id: str) -> dict:
        self._check_id(arch_id)
        entry = summary.get(arch_id)
        if not isinstance(entry, dict):
            raise LPZeroError(
                f"benchmark file {str(self.folder / filename)!r} has no entry for {arch_id!r}"
            )
        return entry

    def valid_ppl(self, arch_id: str) -> float:
        """Ground truth: validation perplexity after training (lower is better)."""
        entry = self._entry(self.ppl_summary(), PPL_FILE, arch_id)
        value = entry.get("valid_ppl")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise LPZeroError(
                f"benchmark file {str(self.folder / PPL_FILE)!r}: {arch_id}.valid_ppl is "
                f"{value!r}, expected a number"
            )
        return float(value)

    def params(self, arch_id: str) -> dict[str, int]:
        """The published parameter counts by part (AdaEmb, Attn, FFN, nonembedding, total)."""
        entry = self._entry(self.params_summary(), PARAMS_FILE, arch_id)
        try:
            return {key: int(value) for key, value in entry.items()}
        except (TypeError, ValueError):
            raise LPZeroError(
                f"benchmark file {str(self.folder / PARAMS_FILE)!r}: {arch_id} has a "
                f"non-numeric count"
            ) from None
