"""The downloader against a local HTTP server laid out like the public repository."""
from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
from pathlib import Path

import pytest

from lpzero_fw.data import locate
from lpzero_fw.registry import LPZeroError


@pytest.fixture()
def server(tmp_path, data_root):
    site = tmp_path / "site"
    (site / "saved_logs").mkdir(parents=True)
    for folder in ("random_GPT2_wt103",):
        os.symlink(data_root / folder, site / "saved_logs" / folder)
    os.symlink(data_root / "data", site / "data")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_verifies_and_writes_files(server, tmp_path, monkeypatch):
    monkeypatch.delenv(locate.ENV_VAR, raising=False)
    monkeypatch.setattr(locate, "source_checkout_data", lambda: None)
    target = tmp_path / "cache"
    root = locate.resolve_root(None, base_url=server, cache_dir=str(target), folders=("data",))
    assert root == target
    payload = (target / "data" / "BERT_benchmark.json").read_bytes()
    assert hashlib.sha256(payload).hexdigest() == locate.manifest()["data/BERT_benchmark.json"]
    # second call: everything present, no network needed
    assert locate.resolve_root(None, base_url="http://127.0.0.1:9", cache_dir=str(target), folders=("data",)) == target


def test_checksum_mismatch_is_an_error_and_leaves_no_file(server, tmp_path):
    target = tmp_path / "cache"
    bad = {"random_GPT2_wt103/ppl_summary.yaml": "0" * 64}
    with pytest.raises(LPZeroError, match="checksum mismatch"):
        locate.download_files(bad, target, server)
    folder = target / "random_GPT2_wt103"
    assert not folder.exists() or not any(folder.iterdir())


def test_unreachable_host_and_missing_root(tmp_path, monkeypatch):
    with pytest.raises(LPZeroError, match="cannot download"):
        locate.download_files({"data/BERT_benchmark.json": "x"}, tmp_path, "http://127.0.0.1:9")
    with pytest.raises(LPZeroError, match="does not exist"):
        locate.resolve_root(str(tmp_path / "nope"))
    monkeypatch.setenv(locate.ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(LPZeroError, match="LPZERO_FW_DATA"):
        locate.resolve_root(None)


def test_env_var_wins_over_download(tmp_path, monkeypatch, data_root):
    monkeypatch.setenv(locate.ENV_VAR, str(data_root))
    assert locate.resolve_root(None, base_url="http://127.0.0.1:9") == Path(data_root)
