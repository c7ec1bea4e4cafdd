"""FlexiBERT text batches in WordPiece, and the reference's FlexiBERT proxy."""
from __future__ import annotations

import math

import pytest
import torch

from lpzero_fw.baselines.runner import score_baselines
from lpzero_fw.data.batches import make_token_ids, tokenize_text, wordpiece_tokenizer
from lpzero_fw.registry import BASELINES

TEXT = {"name": "wikitext2", "batch_size": 2, "seq_len": 16, "seed": 0}


def test_shipped_vocabulary_has_berts_special_ids():
    tok = wordpiece_tokenizer()
    vocab = tok.get_vocab()
    assert 20_000 < len(vocab) <= 30_522
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 100, 101, 102, 103]
    ids = tokenize_text("The European Lobster is BLUE", "wordpiece").tolist()
    assert tok.decode(ids) == "the european lobster is blue"  # uncased, whole words known
    assert tokenize_text("The European Lobster is BLUE").tolist() != ids  # GPT-2 BPE differs


def test_wordpiece_windows_are_text_not_modulo_ids(corpus_root):
    data = {**TEXT, "path": str(corpus_root / "wikitext-2" / "valid.txt"), "batch_size": 3, "seq_len": 24}
    ids = make_token_ids(data, 30_522, tokenizer="wordpiece")
    assert ids.shape == (3, 25) and int(ids.max()) < len(wordpiece_tokenizer().get_vocab())
    words = wordpiece_tokenizer().decode(ids[0].tolist())
    assert sum(w.isalpha() for w in words.split()) >= 8  # real words come back
    assert not torch.equal(ids, make_token_ids(data, 30_522, tokenizer="gpt2"))


@pytest.fixture(scope="module")
def flexibert(data_root):
    from lpzero_fw.search_spaces.flexibert import FlexiBERTSpace

    path = data_root / "data" / "BERT_benchmark.json"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return FlexiBERTSpace(benchmark=str(path), data=TEXT, reference_quirks=True, objective="hidden_sum")


def test_flexibert_batches_are_wordpiece_with_masks(flexibert):
    batch = flexibert.make_batch(seed=0)
    masked = batch["labels"] != -100
    assert bool(masked.any()) and bool((batch["input_ids"][masked] == 103).all())
    assert "tokenizer" in flexibert.describe() and flexibert.describe()["tokenizer"] == "wordpiece"


def test_lpzero_flexibert_reference_hooks_one_projection_per_layer(flexibert):
    assert "lpzero_flexibert_reference" in BASELINES
    for arch in flexibert.sample(3, 0):
        model = flexibert.build_model(arch)
        proxy = BASELINES.get("lpzero_flexibert_reference")()
        taps = flexibert.taps(model)
        proxy.attach(model, taps)
        with torch.no_grad():
            model(**flexibert.make_batch(seed=0))
        proxy.detach()
        assert len(proxy._values) == len(taps.blocks)  # query (SA, DSC) or input (LT) of every layer
        score = score_baselines(flexibert, arch, flexibert.make_batch(seed=0), ["lpzero_flexibert_reference"])
        assert math.isfinite(score["lpzero_flexibert_reference"]) and score["lpzero_flexibert_reference"] > 0
