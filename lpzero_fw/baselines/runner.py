"""Score several baseline proxies on one architecture, sharing one forward+backward."""
from __future__ import annotations

import math
import time
import warnings

import torch

from lpzero_fw.registry import BASELINES
from lpzero_fw.search_spaces.base import Batch, SearchSpace
from lpzero_fw.stats.extract import Extraction, ExtractionPlan, RawStats, release_freed_memory

#: the key of ``seconds`` that gets the statistics' share of the shared pass
STATISTICS = "statistics"


def _fail(name: str, arch_id: str, exc: BaseException) -> float:
    warnings.warn(
        f"baseline {name!r} failed on {arch_id}: {type(exc).__name__}: {exc}",
        RuntimeWarning,
        stacklevel=3,
    )
    return math.nan


def score_baselines(
    space: SearchSpace, arch_id: str, batch: Batch, names: list[str], seed: int = 0,
    seconds: dict[str, float] | None = None,
) -> dict[str, float]:
    """``{name: score}`` for the baselines ``names`` on ``arch_id`` (see :func:`run_baselines`)."""
    return run_baselines(space, arch_id, batch, names, seed, seconds)[0]


def run_baselines(
    space: SearchSpace, arch_id: str, batch: Batch, names: list[str], seed: int = 0,
    seconds: dict[str, float] | None = None, extract: ExtractionPlan | None = None,
) -> tuple[dict[str, float], RawStats | None]:
    """``({name: score}, statistics)`` for the baselines ``names`` on ``arch_id`` with ``batch``.

    Shared-pass baselines share one model: all attach their hooks, one forward+backward of
    the LM loss runs, all score, all detach; ``extract`` (the statistics store's plan) makes
    that same pass extract the statistics too, returned second (else ``None``). Baselines
    declaring ``second_order`` make the backward keep its graph and score last, once every
    other hook is gone. Every other baseline gets a fresh model of its own (the first of
    them the shared pass's, its gradients cleared: shared-pass baselines never modify it);
    baselines declaring the same ``own_pass`` share one (their pass caches its result on
    it). Models are in eval mode (no dropout). A baseline that raises (in attach, score or
    detach) gets ``nan`` and a ``RuntimeWarning``; the others go on. Unknown names raise
    :class:`~lpzero_fw.registry.RegistryError` up front.
    ``seconds``, when given, accumulates each baseline's wall time: the shared model and
    pass split evenly between the shared-pass baselines (and :data:`STATISTICS`, when it
    extracts), plus each one's own scoring.
    """
    seconds = {} if seconds is None else seconds
    for name in names:
        seconds.setdefault(name, 0.0)
    classes = {name: BASELINES.get(name) for name in names}
    shared = [n for n, c in classes.items() if c.shared_pass]
    own = [n for n in names if n not in shared]
    results: dict[str, float] = {}
    raw, spare = None, None
    if shared:
        raw, spare = _shared_pass(space, arch_id, batch, shared, classes, seed, seconds, results,
                                  extract if extract is not None and extract.seed == seed else None)
    groups: dict[object, list[str]] = {}
    for name in own:  # one model per group: a declared own_pass, else each baseline alone
        groups.setdefault(classes[name].own_pass or ("alone", name), []).append(name)
    for group in groups.values():
        _own_pass(space, arch_id, batch, group, classes, seed, seconds, results, spare)
        spare = None
    spare = None  # an unused spare (no own-pass baseline) goes before the heap is trimmed
    release_freed_memory()
    return {name: results.get(name, math.nan) for name in names}, raw


def _build(space: SearchSpace, arch_id: str, seed: int):
    torch.manual_seed(seed)
    model = space.build_model(arch_id, seed=seed)
    model.eval()
    return model, space.taps(model)


def _shared_pass(space, arch_id, batch, shared, classes, seed, seconds, results, extract):
    """The one pass of the shared-pass baselines (and the statistics); fills ``results``.

    Returns ``(statistics or None, spare)``: ``spare`` is the pass's model and taps when
    every step succeeded. Shared-pass baselines never modify the model, so with its
    gradients cleared it is the fresh model an own pass would build (else ``None``).
    """
    start = time.perf_counter()
    second = [n for n in shared if classes[n].second_order]
    raw = None
    try:
        model, taps = _build(space, arch_id, seed)
    except Exception as exc:  # the model itself cannot be built: every baseline fails
        for name in shared:
            results[name] = _fail(name, arch_id, exc)
        return None, None
    attached, extraction, scored = {}, None, 0.0
    try:
        for name in shared:
            try:
                proxy = classes[name]()
                proxy.attach(model, taps)
                attached[name] = proxy
            except Exception as exc:
                results[name] = _fail(name, arch_id, exc)
        if extract is not None:
            extraction = Extraction(extract)
            extraction.attach(model, taps)
        try:
            model.zero_grad(set_to_none=True)
            loss = model(**batch)
            if second:
                _backward_with_graph(model, loss)
            else:
                loss.backward()
            del loss
        except Exception as exc:
            for name in attached:
                results[name] = _fail(name, arch_id, exc)
        else:
            if extraction is not None:
                raw = extraction.collect(model, taps)
            first = {n: p for n, p in attached.items() if n not in second}
            scored += _score(first, model, batch, taps, arch_id, seconds, results)
            if second:  # a second backward must not fire the other hooks again
                scored += _detach({n: attached.pop(n) for n in first}, extraction, arch_id, results)
                extraction = None
                scored += _score(dict(attached), model, batch, taps, arch_id, seconds, results)
    finally:
        _detach(attached, extraction, arch_id, results)
        model.zero_grad(set_to_none=True)  # frees a kept graph
    common = (time.perf_counter() - start - scored) / (len(shared) + (raw is not None))
    for name in shared:
        seconds[name] += common
    if raw is not None:
        seconds[STATISTICS] = seconds.get(STATISTICS, 0.0) + common
    clean = all(not math.isnan(results.get(name, math.nan)) for name in shared)  # a nan may be a failure
    return raw, ((model, taps) if clean else None)


def _score(proxies: dict, model, batch, taps, arch_id: str, seconds: dict, results: dict) -> float:
    """Score each of ``proxies`` (name -> attached baseline); returns the seconds spent."""
    total = 0.0
    for name, proxy in proxies.items():
        t0 = time.perf_counter()
        try:
            results[name] = float(proxy.score(model, batch, taps))
        except Exception as exc:
            results[name] = _fail(name, arch_id, exc)
        spent = time.perf_counter() - t0
        seconds[name] += spent
        total += spent
    return total


def _backward_with_graph(model: torch.nn.Module, loss: torch.Tensor) -> None:
    """``loss.backward()`` whose ``.grad`` tensors keep their graph (``create_graph``),
    without backward's reference cycle: the same gradients, bit for bit."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    for param, grad in zip(params, grads):
        param.grad = grad


def _detach(proxies: dict, extraction, arch_id: str, results: dict) -> float:
    """Remove the hooks of ``proxies`` (emptied; a failure is that baseline's nan) and of
    ``extraction``; returns the seconds spent."""
    t0 = time.perf_counter()
    for name, proxy in list(proxies.items()):
        del proxies[name]
        try:
            proxy.detach()
        except Exception as exc:
            results[name] = _fail(name, arch_id, exc)
    if extraction is not None:
        extraction.detach()
    return time.perf_counter() - t0


def _own_pass(space, arch_id, batch, group, classes, seed, seconds, results, spare=None) -> None:
    """A fresh model for ``group`` (baselines declaring one ``own_pass``, or one alone):
    ``spare`` (the shared pass's, see :func:`_shared_pass`) or a new build."""
    t0 = time.perf_counter()
    try:
        if spare is not None:
            torch.manual_seed(seed)  # as _build leaves the generator
        model, taps = spare if spare is not None else _build(space, arch_id, seed)
    except Exception as exc:
        for name in group:
            results[name] = _fail(name, arch_id, exc)
    else:
        for name in group:
            try:
                proxy = classes[name]()
                proxy.attach(model, taps)
                try:
                    results[name] = float(proxy.score(model, batch, taps))
                finally:
                    proxy.detach()
            except Exception as exc:
                results[name] = _fail(name, arch_id, exc)
        del model
    spent = (time.perf_counter() - t0) / len(group)
    for name in group:
        seconds[name] += spent
