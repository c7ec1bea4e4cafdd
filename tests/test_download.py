"""The downloader against local HTTP servers laid out like the public repositories."""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import logging
import os
import socket
import threading
from pathlib import Path

import pytest

from lpzero_fw.data import locate
from lpzero_fw.data.locate import Mirror
from lpzero_fw.registry import LPZeroError

FILES = ("data/BERT_benchmark.json", "random_GPT2_wt103/ppl_summary.yaml", "random_GPT2_wt103/params_summary.yaml")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _serve(site: Path):
    handler = functools.partial(_Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def _dead_url() -> str:
    """A port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture()
def server(tmp_path, data_root):
    """A server laid out like pprp/LPZero: saved_logs/<folder>/..., data/..."""
    site = tmp_path / "site"
    (site / "saved_logs").mkdir(parents=True)
    os.symlink(data_root / "random_GPT2_wt103", site / "saved_logs" / "random_GPT2_wt103")
    os.symlink(data_root / "data", site / "data")
    httpd, url = _serve(site)
    yield url
    httpd.shutdown()


@pytest.fixture()
def mirror_sites(tmp_path, data_root):
    """Three mirrors: tampered bytes (LPZero layout), good (archai layout), and the URLs."""
    bad = tmp_path / "bad"
    for rel in FILES:
        (bad / locate.remote_path(rel)).parent.mkdir(parents=True, exist_ok=True)
        (bad / locate.remote_path(rel)).write_text("tampered\n")
    good = tmp_path / "good"
    (good / "archai" / "nlp" / "nas" / "saved_logs").mkdir(parents=True)
    os.symlink(data_root / "random_GPT2_wt103", good / "archai/nlp/nas/saved_logs/random_GPT2_wt103")
    os.symlink(data_root / "data", good / "flexi")
    servers = [_serve(bad), _serve(good)]
    yield servers[0][1], servers[1][1]
    for httpd, _ in servers:
        httpd.shutdown()


def _good_mirror(url: str, **kw) -> Mirror:
    return Mirror("good", url, {"random_": "archai/nlp/nas/saved_logs/random_", "data/": "flexi/"}, **kw)


def test_manifest_lists_verified_pinned_mirrors():
    files = locate.manifest()
    assert files["random_GPT2_wt103/ppl_summary.yaml"].startswith("52efaee81b746f90")
    mirrors = locate.mirrors()
    assert [m.verified for m in mirrors] == sorted((m.verified for m in mirrors), reverse=True)
    by_repo = {m.name.split("@")[0]: m for m in mirrors}
    assert set(by_repo) >= {"pprp/LPZero", "microsoft/archai", "aaronserianni/training-free-nas"}
    for mirror in mirrors:
        commit = mirror.url.rsplit("/", 1)[-1]
        assert len(commit) == 40 and mirror.name.endswith(commit[:7])  # pinned, not a branch
    assert by_repo["pprp/LPZero"].remote("data/BERT_benchmark.json").endswith("/data/BERT_benchmark.json")
    assert by_repo["microsoft/archai"].remote("random_GPT2_wt103/ppl_summary.yaml").endswith(
        "/archai/nlp/nas/saved_logs/random_GPT2_wt103/ppl_summary.yaml")
    assert by_repo["microsoft/archai"].remote("data/BERT_benchmark.json") is None
    # every GPT-2 / FlexiBERT file the package reads has at least two sources
    for rel in files:
        if rel.split("/")[0] in ("random_GPT2_wt103", "data") and not locate.reference_only(rel):
            assert sum(m.remote(rel) is not None for m in mirrors) >= 2, rel


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


def test_dead_and_bad_mirrors_fall_through_with_one_warning_each(mirror_sites, tmp_path, caplog, data_root):
    bad_url, good_url = mirror_sites
    files = {rel: locate.manifest()[rel] for rel in FILES}
    mirrors = [Mirror("dead", _dead_url(), verified=True), Mirror("bad", bad_url, verified=True),
               _good_mirror(good_url, verified=True)]
    target = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="lpzero_fw.download"):
        locate.download_files(files, target, mirror_list=mirrors)
    for rel in FILES:
        assert (target / rel).read_bytes() == (data_root / rel).read_bytes()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "mirror dead failed for 3 file(s)" in lines[0] and "trying bad" in lines[0]
    assert "mirror bad failed" in lines[1] and "checksum mismatch" in lines[1] and "trying good" in lines[1]
    assert not [p for p in target.rglob(".part-*")]


def test_unverified_mirror_is_tried_last(mirror_sites, tmp_path, monkeypatch):
    bad_url, good_url = mirror_sites
    listed = {"files": locate.manifest(), "mirrors": [
        {"name": "unchecked", "url": bad_url, "layout": locate.LPZERO_LAYOUT},
        {"name": "good", "url": good_url, "layout": _good_mirror(good_url).layout, "verified": True},
    ]}
    monkeypatch.setattr(locate, "_manifest_data", lambda: listed)
    assert [m.name for m in locate.mirrors()] == ["good", "unchecked"]
    target = tmp_path / "cache"
    locate.download_files({rel: listed["files"][rel] for rel in FILES}, target)
    assert hashlib.sha256((target / FILES[0]).read_bytes()).hexdigest() == listed["files"][FILES[0]]


def test_mirror_with_other_bytes_is_checked_against_its_own_digest(tmp_path):
    site = tmp_path / "site" / "data"
    site.mkdir(parents=True)
    compact = json.dumps([{"id": 0}]).encode()
    (site / "BERT_benchmark.json").write_bytes(compact)
    httpd, url = _serve(tmp_path / "site")
    try:
        rel = "data/BERT_benchmark.json"
        own = Mirror("reformatted", url, verified=True, sha256={rel: hashlib.sha256(compact).hexdigest()})
        locate.download_files({rel: "0" * 64}, tmp_path / "cache", mirror_list=[own])
        assert (tmp_path / "cache" / rel).read_bytes() == compact
    finally:
        httpd.shutdown()


def test_all_mirrors_failing_is_one_error_naming_each_and_benchmark_root(mirror_sites, tmp_path):
    bad_url, _ = mirror_sites
    mirrors = [Mirror("dead", _dead_url(), verified=True), Mirror("bad", bad_url, verified=True)]
    files = {rel: locate.manifest()[rel] for rel in FILES}
    with pytest.raises(LPZeroError) as info:
        locate.download_files(files, tmp_path / "cache", mirror_list=mirrors)
    message = str(info.value)
    assert "\n" not in message
    assert "tried dead (cannot download" in message and "bad (checksum mismatch" in message
    assert "benchmark.root" in message
    folder = tmp_path / "cache"
    assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]


def test_reference_only_files_missing_everywhere_are_a_warning(mirror_sites, tmp_path, caplog):
    _, good_url = mirror_sites
    rel = "random_GPT2_wt103/snip_scores_seed_1111.yaml"
    assert locate.reference_only(rel) and not locate.reference_only("random_GPT2_wt103/ppl_summary.yaml")
    lacking = _good_mirror(good_url, verified=True, lacks=(rel,))
    with caplog.at_level(logging.WARNING, logger="lpzero_fw.download"):
        locate.download_files({rel: locate.manifest()[rel]}, tmp_path / "cache", mirror_list=[lacking])
    assert "reference-only" in caplog.text


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
