"""W&B records what a user looks for afterwards, read back from the offline run files."""
from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

from lpzero_fw.tracking import build_tracker, scalar_leaves

_BLOCK = 32768  # the .wandb file is a LevelDB-style log: 32 KiB blocks of chunked records


def offline_records(run_dir: Path) -> list:
    """Every record (protobuf) of the one offline W&B run under ``run_dir/wandb``."""
    from wandb.proto import wandb_internal_pb2 as pb

    files = list(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    data = files[0].read_bytes()
    assert data[:4] == b":W&B"
    pos, chunks, records = 7, [], []
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (length == 0 and kind == 0):
            pos += left
            continue
        chunks.append(data[pos + 7:pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk
            record = pb.Record()
            record.ParseFromString(b"".join(chunks))
            records.append(record)
            chunks = []
    return records


def offline_run(run_dir: Path, wait: float = 30.0) -> dict:
    """``summary`` (flat key → value), ``artifacts`` (type → file names), ``media`` files.

    Waits up to ``wait`` s for the run's ``exit`` record: W&B's service process writes the
    file, and on a loaded machine its last records were once not there yet (a summary
    without ``best_proxy``) when the CLI had already exited."""
    deadline = time.monotonic() + wait
    records = offline_records(run_dir)
    while not any(r.WhichOneof("record_type") == "exit" for r in records) and time.monotonic() < deadline:
        time.sleep(0.5)
        records = offline_records(run_dir)
    summary, artifacts = {}, {}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "summary":
            for item in record.summary.update:
                key = item.key or "/".join(item.nested_key)
                summary[key] = json.loads(item.value_json)
        elif kind == "artifact":
            artifacts.setdefault(record.artifact.type, set()).update(c.path for c in record.artifact.manifest.contents)
    run = next(Path(run_dir).glob("wandb/offline-run-*"))
    media = {p.relative_to(run / "files" / "media").as_posix() for p in (run / "files" / "media").rglob("*.*")}
    return {"summary": summary, "artifacts": artifacts, "media": media}


def test_scalar_leaves_flattens_nested_results():
    result = {"best_proxy": "sum(W, G)", "full": {"kendall_tau": 0.5, "n_archs": 200},
              "heldout": {"spearman_rho": float("nan")}, "top": [{"proxy": "W"}], "resumed": False}
    assert scalar_leaves(result) == {"best_proxy": "sum(W, G)", "full/kendall_tau": 0.5, "full/n_archs": 200,
                                     "resumed": False}


def test_record_logs_summary_history_table_artifact_and_plots(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("WANDB_MODE", "offline")
    result = {"best_proxy": "sum(l1_norm(W), G)", "fitness": 0.9,
              "full": {"kendall_tau": 0.8, "spearman_rho": 0.95, "n_archs": 200},
              "heldout": {"kendall_tau": 0.7, "spearman_rho": 0.9, "n_archs": 150}}
    (tmp_path / "result.json").write_text(json.dumps(result))
    (tmp_path / "ranking.json").write_text("[]")
    (tmp_path / "history.csv").write_text("iteration,best_fitness,elapsed\n1,0.500000,0.1\n2,0.600000,0.2\n")
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    fig.savefig(tmp_path / "search_curve.png")
    plt.close(fig)

    tracker = build_tracker({"name": "wandb", "mode": "offline"}, tmp_path, {"seed": 1}, run_name="t")
    tracker.record(tmp_path, result)
    tracker.finish()

    run = offline_run(tmp_path)
    summary = run["summary"]
    assert summary["best_proxy"] == result["best_proxy"]
    assert summary["full/kendall_tau"] == 0.8 and summary["heldout/spearman_rho"] == 0.9
    assert summary["history/_type"] == "table-file" and summary["search_curve/_type"] == "image-file"
    assert run["artifacts"]["results"] == {"result.json", "ranking.json"}
    table = next(tmp_path.glob("wandb/offline-run-*/files/media/table/history_*.table.json"))
    content = json.loads(table.read_text())
    assert content["columns"] == ["iteration", "best_fitness", "elapsed"] and content["data"][1][1] == 0.6
    assert any(m.startswith("images/search_curve") for m in run["media"])
