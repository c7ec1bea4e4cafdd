"""Score several baseline proxies on one architecture, sharing one forward+backward."""
from __future__ import annotations

import math
import time
import warnings

import torch

from lpzero_fw.registry import BASELINES
from lpzero_fw.search_spaces.base import Batch, SearchSpace


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
    """``{name: score}`` for the baselines ``names`` on ``arch_id`` with ``batch``.

    Shared-pass baselines share one model: all attach their hooks, one forward+backward of
    the LM loss runs, all score, all detach. Every other baseline gets a freshly built
    model of its own. Models are in eval mode (no dropout). A baseline that raises (in
    attach, score or detach) gets ``nan`` and a ``RuntimeWarning``; the others go on.
    Baselines declaring the same ``own_pass`` share one model of their own (their pass
    caches its result on it).
    Unknown names raise :class:`~lpzero_fw.registry.RegistryError` up front.
    ``seconds``, when given, accumulates each baseline's wall time (the shared model and
    pass split evenly between the shared-pass baselines, plus each one's own scoring).
    """
    seconds = {} if seconds is None else seconds
    for name in names:
        seconds.setdefault(name, 0.0)
    classes = {name: BASELINES.get(name) for name in names}
    results: dict[str, float] = {}

    shared = [n for n, c in classes.items() if getattr(c, "shared_pass", True)]
    own = [n for n in names if n not in shared]

    if shared:
        t_shared = time.perf_counter()
        own_time = 0.0
        try:
            torch.manual_seed(seed)
            model = space.build_model(arch_id, seed=seed)
            model.eval()
            taps = space.taps(model)
        except Exception as exc:  # the model itself cannot be built: every baseline fails
            for name in shared:
                results[name] = _fail(name, arch_id, exc)
        else:
            proxies = {}
            for name in shared:
                try:
                    proxy = classes[name]()
                    proxy.attach(model, taps)
                    proxies[name] = proxy
                except Exception as exc:
                    results[name] = _fail(name, arch_id, exc)
            try:
                try:
                    model.zero_grad(set_to_none=True)
                    loss = model(**batch)
                    loss.backward()
                except Exception as exc:
                    for name in list(proxies):
                        results[name] = _fail(name, arch_id, exc)
                    proxies_to_score = {}
                else:
                    proxies_to_score = proxies
                for name, proxy in proxies_to_score.items():
                    t0 = time.perf_counter()
                    try:
                        results[name] = float(proxy.score(model, batch, taps))
                    except Exception as exc:
                        results[name] = _fail(name, arch_id, exc)
                    spent = time.perf_counter() - t0
                    seconds[name] += spent
                    own_time += spent
            finally:
                for name, proxy in proxies.items():
                    try:
                        proxy.detach()
                    except Exception as exc:
                        results[name] = _fail(name, arch_id, exc)
            del model
        common = (time.perf_counter() - t_shared - own_time) / len(shared)
        for name in shared:
            seconds[name] += common

    groups: dict[object, list[str]] = {}
    for name in own:  # one model per group: a declared own_pass, else each baseline alone
        groups.setdefault(getattr(classes[name], "own_pass", None) or ("alone", name), []).append(name)
    for group in groups.values():
        t0 = time.perf_counter()
        try:
            torch.manual_seed(seed)
            model = space.build_model(arch_id, seed=seed)
            model.eval()
            taps = space.taps(model)
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
        finally:
            model = None
            spent = (time.perf_counter() - t0) / len(group)
            for name in group:
                seconds[name] += spent

    return {name: results.get(name, math.nan) for name in names}
