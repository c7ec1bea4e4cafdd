"""Fuzzing the formula parser and the evaluator.

(a) Arbitrary text and token soup given to :func:`parse`: only ``FormulaError``
    escapes, and whatever parses prints back to the same proxy.
(b) 10,000 random valid proxies evaluated on real cached statistics of two GPT-2
    architectures: a finite float, a non-finite float that the ``non_finite_score``
    rule rejects, or ``InvalidProxy`` with a rule - nothing else. (Evaluation speed is
    measured by ``benchmarks/bench_search.py``, not here.)
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpzero_fw.proxy.evaluate import Evaluator, InvalidProxy
from lpzero_fw.formula.parse import FormulaError, parse
from lpzero_fw.proxy.space import FormulaSpace
from lpzero_fw.registry import BINARY_OPS, SEARCH_SPACES, STATS, UNARY_OPS
from lpzero_fw.rules.apply import RuleSet
from lpzero_fw.stats.cache import StatsStore

SMALLEST = "config_9_j3"
N_PROXIES = 10_000

# ----------------------------------------------------------------------- (a) parser
INPUTS = STATS.names()
UNARY = UNARY_OPS.names()
BINARY = BINARY_OPS.names()
TOKENS = [*INPUTS, *UNARY, *BINARY, "layer_sum", "layer_mean", "(", ")", ",", " ", "x", "1", ".", "plug.op"]


def _branch_text(draw) -> str:
    ops = draw(st.lists(st.sampled_from(UNARY), max_size=3))
    text = draw(st.sampled_from(INPUTS))
    for op in ops:
        text = f"{op}({text})"
    return text


@st.composite
def formulas(draw) -> str:
    """Well-formed formulas with odd spacing, sometimes damaged by one token edit."""
    space = st.sampled_from(["", " ", "  ", "\t", "\n"])
    text = f"{draw(st.sampled_from(BINARY))}{draw(space)}({_branch_text(draw)},{draw(space)}{_branch_text(draw)})"
    if draw(st.booleans()):
        text = f"layer_sum({text})"
    if draw(st.booleans()):  # damage: delete, duplicate or replace a slice
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 8)))
        filler = draw(st.sampled_from(["", *TOKENS]))
        text = text[:i] + filler + text[j:]
    return draw(space) + text + draw(space)


token_soup = st.lists(st.sampled_from(TOKENS), max_size=30).map("".join)


def _check_parse(text: str) -> None:
    try:
        proxy = parse(text)
    except FormulaError as exc:
        message = str(exc)
        assert message and "\n" not in message, message  # one line (the text is repr-escaped)
        return
    assert parse(str(proxy)) == proxy
    assert str(parse(str(proxy))) == str(proxy)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_parse_arbitrary_text(text):
    _check_parse(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_soup)
def test_parse_token_soup(text):
    _check_parse(text)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formulas())
def test_parse_near_valid_formulas(text):
    _check_parse(text)


def test_parse_rejects_non_strings():
    for value in (None, 3, b"sum(A, W)", ["sum(A, W)"]):
        with pytest.raises(FormulaError):
            parse(value)


# -------------------------------------------------------------------- (b) evaluator
@pytest.fixture(scope="module")
def cached_stats(data_root, tmp_path_factory):
    """Statistics of the smallest and a median-size GPT-2 arch, extracted into a
    temporary cache and read back from disk (what the search sees)."""
    space = SEARCH_SPACES.get("gpt2")(
        benchmark=str(data_root / "random_GPT2_wt103"),
        data={"name": "synthetic", "batch_size": 4, "seq_len": 64, "seed": 0},
    )
    by_size = sorted(space.arch_ids(), key=lambda a: space.param_counts(a)["total"])
    assert by_size[0] == SMALLEST
    mid = by_size[len(by_size) // 2]
    directory = tmp_path_factory.mktemp("fuzz-stats")
    writer = StatsStore(space, directory=directory, budget=2048, dtype="float16")
    for arch in (SMALLEST, mid):
        writer.get(arch)
    reader = StatsStore(space, directory=directory, budget=2048, dtype="float16")
    stats = {arch: reader.get(arch) for arch in (SMALLEST, mid)}
    assert not reader.extraction_seconds  # read from disk, not re-extracted
    return stats


def test_random_proxies_never_crash_the_evaluator(cached_stats):
    proxy_space = FormulaSpace(layers=("mean", "sum"))
    evaluator = Evaluator()
    every_rule = RuleSet("all")
    non_finite_rule = RuleSet(["non_finite_score"])
    outcomes = {"finite": 0, "non_finite": 0, "invalid": 0}
    invalid_rules: dict[str, int] = {}
    for seed in range(N_PROXIES):
        proxy = proxy_space.sample(random.Random(seed))
        for arch, stats in cached_stats.items():
            try:
                value = evaluator.score(proxy, arch, stats)
            except InvalidProxy as exc:
                assert isinstance(exc.rule, str) and exc.rule, f"{proxy}: InvalidProxy without a rule"
                outcomes["invalid"] += 1
                invalid_rules[exc.rule] = invalid_rules.get(exc.rule, 0) + 1
                value = None
            # anything else escapes and fails the test, naming nothing: add the proxy
            except BaseException as exc:  # noqa: BLE001
                pytest.fail(f"{proxy} on {arch}: {type(exc).__name__}: {exc}")
            if value is None:
                continue
            assert type(value) is float, f"{proxy} on {arch} returned {type(value).__name__}"
            if math.isfinite(value):
                outcomes["finite"] += 1
            else:
                outcomes["non_finite"] += 1
                assert every_rule.dynamic_reject(np.array([value])) is not None, proxy
                assert non_finite_rule.dynamic_reject(np.array([value])) == "non_finite_score", proxy
    print(f"\n{N_PROXIES} proxies x {len(cached_stats)} archs: outcomes {outcomes}; "
          f"invalid by rule {dict(sorted(invalid_rules.items()))}")
    assert outcomes["finite"] > 0 and sum(outcomes.values()) == 2 * N_PROXIES
