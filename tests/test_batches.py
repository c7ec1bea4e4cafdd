"""Token batches: synthetic Zipf ids, GPT-2 BPE over local text, errors."""
from __future__ import annotations

import pytest
import torch

from lpzero_fw.data import batches
from lpzero_fw.data.batches import gpt2_tokenizer, make_token_ids, tokenize_file, tokenize_text
from lpzero_fw.registry import LPZeroError

VOCAB = 50264


def synthetic(**kw):
    return {"name": "synthetic", "batch_size": 4, "seq_len": 16, "seed": 0, **kw}


@pytest.fixture(scope="module")
def wikitext2(corpus_root):
    path = corpus_root / "wikitext-2" / "valid.txt"
    if not path.is_file():
        pytest.skip(f"corpus file {path} is not available")
    return path


# ----------------------------------------------------------------------------- synthetic
def test_synthetic_shape_range_and_determinism():
    a = make_token_ids(synthetic(), VOCAB)
    assert a.shape == (4, 17) and a.dtype == torch.long
    assert torch.equal(a, make_token_ids(synthetic(), VOCAB))
    assert not torch.equal(a, make_token_ids(synthetic(seed=1), VOCAB))
    small = make_token_ids(synthetic(batch_size=64, seq_len=64), 100)
    assert small.min() >= 0 and small.max() < 100


def test_synthetic_is_zipf_like():
    ids = make_token_ids(synthetic(batch_size=64, seq_len=255), VOCAB)
    # Zipf(1) over 50264 ids: ~91% below the adaptive-softmax head cutoff, like real BPE text
    assert 0.85 < (ids < 19997).float().mean().item() < 0.95
    counts = torch.bincount(ids.flatten(), minlength=VOCAB)
    assert counts[0] > counts[10] > counts[1000]  # frequency decreases with the id rank


# ---------------------------------------------------------------------------- tokenizer
def test_gpt2_tokenizer_is_the_real_bpe():
    tok = gpt2_tokenizer()
    assert len(tok) == 50257
    assert tokenize_text(" Hello world").tolist() == [18435, 995]
    assert tokenize_text("Hello").tolist() == [15496]
    assert tok.decode([18435, 995]) == " Hello world"


def test_wikitext2_windows_are_contiguous_text(wikitext2):
    data = {"name": "wikitext2", "batch_size": 3, "seq_len": 20, "seed": 5, "path": str(wikitext2)}
    ids = make_token_ids(data, VOCAB)
    assert ids.shape == (3, 21)
    assert torch.equal(ids, make_token_ids(data, VOCAB))
    tokens = tokenize_file(wikitext2)
    assert tokens.numel() > 200_000
    windows = tokens.unfold(0, 21, 1)
    for row in ids:
        assert (windows == row).all(dim=1).any()


def test_wikitext2_default_path_from_env(wikitext2, monkeypatch):
    monkeypatch.setenv("LPZERO_FW_CORPUS", str(wikitext2.parent.parent))
    a = make_token_ids({"name": "wikitext2", "batch_size": 2, "seq_len": 8, "seed": 0}, VOCAB)
    b = make_token_ids({"name": "wikitext2", "batch_size": 2, "seq_len": 8, "seed": 0, "path": str(wikitext2)}, VOCAB)
    assert torch.equal(a, b)


def test_small_vocab_maps_ids_with_modulo(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("The quick brown fox jumps over the lazy dog. " * 40)
    data = {"name": "text_file", "batch_size": 2, "seq_len": 30, "seed": 0, "path": str(path)}
    full = make_token_ids(data, VOCAB)
    small = make_token_ids(data, 30522)
    assert torch.equal(small, full % 30522) and small.max() < 30522


# -------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "data,match",
    [
        (synthetic(name="imagenet"), r"unknown data.name .imagenet.; choose one of: synthetic, text_file, wikitext103, wikitext2"),
        (synthetic(batch_size=0), r"data.batch_size=0 must be a positive integer"),
        (synthetic(seq_len=-3), r"data.seq_len=-3 must be a positive integer"),
        (synthetic(batch_size=2.5), r"data.batch_size=2.5"),
        ({"name": "text_file", "batch_size": 1, "seq_len": 4}, r"needs data.path"),
    ],
)
def test_bad_data_config_is_one_line_error(data, match):
    with pytest.raises(LPZeroError, match=match) as err:
        make_token_ids(data, VOCAB)
    assert "\n" not in str(err.value)


def test_text_file_errors(tmp_path):
    base = {"name": "text_file", "batch_size": 1, "seq_len": 8, "seed": 0}
    with pytest.raises(LPZeroError, match="does not exist"):
        make_token_ids({**base, "path": str(tmp_path / "missing.txt")}, VOCAB)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(LPZeroError, match="is empty"):
        make_token_ids({**base, "path": str(empty)}, VOCAB)
    short = tmp_path / "short.txt"
    short.write_text("two words")
    with pytest.raises(LPZeroError, match="fewer than seq_len"):
        make_token_ids({**base, "path": str(short)}, VOCAB)
    with pytest.raises(LPZeroError, match="unknown tokenizer 'bert'"):
        make_token_ids(synthetic(), VOCAB, tokenizer="bert")


def test_wikitext103_without_datasets_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    monkeypatch.setattr(batches, "_TOKEN_CACHE", {})
    with pytest.raises(LPZeroError, match=r"pip install 'lpzero_fw\[datasets\]'.*wikitext2") as err:
        make_token_ids({"name": "wikitext103", "batch_size": 1, "seq_len": 8, "seed": 0}, VOCAB)
    assert "\n" not in str(err.value)
