"""Parallel jobs on one statistics cache directory: no duplicate work, no torn reads,
a killed job's lock is released by the kernel, identical results."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from tests.test_cli import REPO

# a 10-architecture LTS benchmark (config_0 of the GPT-2 one) and a tiny batch keep this cheap
SMALL = ["search.n_archs=6", "search.holdout=0", "strategy.iterations=5", "strategy.population=6", "data.batch_size=2",
         "data.seq_len=32", "logger=none", "threads=1"]
N_ARCHS = 10


@pytest.fixture()
def small_benchmark(small_gpt2_benchmark) -> Path:
    return small_gpt2_benchmark


def _start(cache: Path, run: Path, benchmark: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "lpzero_fw", *SMALL, f"search_space.benchmark={benchmark}",
            f"cache.dir={cache}", f"hydra.run.dir={run}"]
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=1800)  # generous: CI machines may be shared
    assert proc.returncode == 0, err[-3000:]
    assert "unreadable" not in err, err[-3000:]
    return err


def _result(run: Path) -> tuple[dict, int]:
    data = json.loads((run / "result.json").read_text())
    extracted = data["timing"]["archs_extracted"]
    for volatile in ("seconds", "timing"):
        data.pop(volatile)
    return data, extracted


def _flock_holders() -> set[int]:
    """PIDs holding a flock() lock right now (filelock's Unix locks are flock locks)."""
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[1] == "FLOCK":
            holders.add(int(fields[4]))
    return holders


def test_three_cold_jobs_extract_each_arch_once_and_agree(tmp_path, small_benchmark):
    cache = tmp_path / "cache"
    runs = [tmp_path / f"run{i}" for i in range(3)]
    procs = [_start(cache, run, small_benchmark) for run in runs]
    for proc in procs:
        _finish(proc)
    results = [_result(run) for run in runs]
    counts = [extracted for _, extracted in results]
    assert sum(counts) == N_ARCHS, counts  # the full-benchmark step needs all 10; nobody did one twice
    assert results[0][0] == results[1][0] == results[2][0]
    lone = tmp_path / "lone"  # one job alone on its own cold cache gives the same result
    _finish(_start(tmp_path / "lone-cache", lone, small_benchmark))
    alone, extracted = _result(lone)
    assert extracted == N_ARCHS
    alone.pop("config_digest")  # hashes cache.dir too, which differs here
    assert alone == {k: v for k, v in results[0][0].items() if k != "config_digest"}
    assert len(list(cache.glob("*.safetensors"))) == N_ARCHS
    assert not list(cache.glob(".tmp-*"))


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks to see who holds a lock")
def test_killed_job_mid_extraction_others_finish_and_rerun_recovers(tmp_path, small_benchmark):
    cache = tmp_path / "cache"
    runs = [tmp_path / f"run{i}" for i in range(2)]
    procs = [_start(cache, run, small_benchmark) for run in runs]
    victim = procs[0]
    deadline = time.monotonic() + 300
    while victim.pid not in _flock_holders():  # holding an arch lock = inside read-or-extract
        assert victim.poll() is None and time.monotonic() < deadline, "victim never took a lock"
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    for proc in procs[1:]:
        _finish(proc)
    survivor, _ = _result(runs[1])
    # the dead job's lock files stay behind but nobody holds them: free at once
    for lock in (cache / ".locks").glob("*.lock"):
        with FileLock(lock, timeout=0):
            pass
    rerun = tmp_path / "rerun"
    _finish(_start(cache, rerun, small_benchmark))
    again, extracted = _result(rerun)
    assert again == survivor
    assert extracted == 0  # everything was already in the shared cache


def test_kernel_releases_a_killed_holders_lock(tmp_path):
    lock = tmp_path / "arch.lock"
    code = ("import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
            "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    from filelock import Timeout

    with pytest.raises(Timeout):
        FileLock(lock, timeout=0).acquire()
    holder.kill()
    holder.wait()
    with FileLock(lock, timeout=5):  # no stale lock after SIGKILL
        pass


def test_half_written_or_mismatched_file_is_recomputed_never_used(tmp_path, small_gpt2_benchmark):
    import torch

    from lpzero_fw.registry import SEARCH_SPACES
    from lpzero_fw.stats.cache import StatsStore

    space = SEARCH_SPACES.get("gpt2")(benchmark=str(small_gpt2_benchmark),
                                      data={"name": "synthetic", "batch_size": 2, "seq_len": 16, "seed": 0})
    arch = min(space.arch_ids(), key=lambda a: space.param_counts(a)["total"])
    first = StatsStore(space, directory=tmp_path, budget=64).get(arch)
    target = StatsStore(space, directory=tmp_path, budget=64).path(arch)
    good = target.read_bytes()
    for damage in (lambda: target.write_bytes(good[: len(good) // 2]),       # torn write
                   lambda: target.write_bytes(good[:-1] + bytes([good[-1] ^ 1])),  # flipped bit
                   lambda: (target.with_name(target.name + ".b2")).write_text("0" * 32)):  # stale checksum
        damage()
        store = StatsStore(space, directory=tmp_path, budget=64)
        with pytest.warns(RuntimeWarning, match="unreadable") as caught:
            again = store.get(arch)
        assert len([w for w in caught if "unreadable" in str(w.message)]) == 1
        assert store.extraction_seconds  # recomputed, not read
        for symbol in first:
            for a, b in zip(first[symbol], again[symbol]):
                assert torch.equal(a.x, b.x)
        reread = StatsStore(space, directory=tmp_path, budget=64)
        reread.get(arch)  # rewritten intact: read back without a warning or an extraction
        assert not reread.extraction_seconds
