"""Train the WordPiece vocabulary shipped as ``lpzero_fw/data/vocab/wordpiece_wikitext2.txt``.

FlexiBERT models take BERT/ELECTRA uncased token ids (vocabulary 30,522, [MASK] = 103).
No BERT vocabulary can be downloaded here, so one is trained offline with the
``tokenizers`` library on the WikiText-2 validation and test text (CC BY-SA 3.0) in
``$LPZERO_FW_CORPUS/wikitext-2``, lower-cased like the uncased vocabulary, with BERT's
special-token layout: [PAD] 0, [unused0..98] 1-99, [UNK] 100, [CLS] 101, [SEP] 102,
[MASK] 103. WikiText-2 has fewer word pieces than BERT's 30,522, so the trained vocabulary
is smaller; ids above it are simply never used (the embedding table keeps 30,522 rows).

    python tools/train_wordpiece.py   # rewrites the shipped file (ties may order a few pieces differently)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from tokenizers import BertWordPieceTokenizer

SPECIAL = ["[PAD]", *[f"[unused{i}]" for i in range(99)], "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB_SIZE = 30522
OUT = Path(__file__).resolve().parents[1] / "lpzero_fw" / "data" / "vocab" / "wordpiece_wikitext2.txt"


def main() -> None:
    corpus = Path(os.environ.get("LPZERO_FW_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
    files = [str(corpus / "wikitext-2" / name) for name in ("valid.txt", "test.txt")]
    tok = BertWordPieceTokenizer(lowercase=True, strip_accents=True, clean_text=True)
    tok.train(files, vocab_size=VOCAB_SIZE, min_frequency=1, special_tokens=SPECIAL, show_progress=False,
              limit_alphabet=1000, wordpieces_prefix="##")
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    assert [t for t, _ in vocab[:104]] == SPECIAL, "special tokens must keep BERT's ids"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(f"{t}\n" for t, _ in vocab), encoding="utf-8")
    print(f"{len(vocab)} word pieces -> {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
