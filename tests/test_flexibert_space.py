"""FlexiBERT search space: benchmark parsing, reference parameter counts, models and taps."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from lpzero_fw.registry import SEARCH_SPACES, LPZeroError
from lpzero_fw.search_spaces.flexibert import FlexiBERTSpace
from lpzero_fw.search_spaces.models import flexibert as fb

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _data_root() -> Path:
    env = os.environ.get("LPZERO_FW_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "lpzero"
    if not (root / "data" / "BERT_benchmark.json").is_file():
        pytest.skip(f"FlexiBERT benchmark not found under {root}")
    return root


SYNTHETIC = {"name": "synthetic", "batch_size": 2, "seq_len": 32, "seed": 0}


@pytest.fixture(scope="module")
def root() -> Path:
    return _data_root()


@pytest.fixture(scope="module")
def space(root) -> FlexiBERTSpace:
    return FlexiBERTSpace(benchmark=str(root / "data" / "BERT_benchmark.json"), data=SYNTHETIC)


@pytest.fixture(scope="module")
def quirk_space(root) -> FlexiBERTSpace:
    return FlexiBERTSpace(
        benchmark=str(root / "data" / "BERT_benchmark.json"), data=SYNTHETIC, reference_quirks=True
    )


def _reference_counts(root: Path) -> dict[int, int]:
    with open(root / "data" / "BERT_results_activation.csv", newline="") as handle:
        return {int(r["ID"]): int(float(r["Number of Parameters"])) for r in csv.DictReader(handle)}


def _first_arch_with(space: FlexiBERTSpace, op_type: str, param) -> str:
    for arch_id in space.arch_ids():
        if any(
            l.operation_type == op_type and l.operation_parameter == param
            for l in space.arch(arch_id).layers
        ):
            return arch_id
    raise AssertionError(f"no arch with {op_type}/{param}")


# --------------------------------------------------------------------------- benchmark
def test_registered():
    # the registry imports every built-in space; skip until the sibling gpt2 space exists
    pytest.importorskip("lpzero_fw.search_spaces.gpt2")
    assert SEARCH_SPACES.get("flexibert") is FlexiBERTSpace
    assert "FlexiBERT" in SEARCH_SPACES.entry("flexibert").description


def test_benchmark_read(space):
    ids = space.arch_ids()
    assert len(ids) == 500 and ids[0] == "flexibert_0" and ids[-1] == "flexibert_499"
    assert space.ground_truth("flexibert_0") == pytest.approx(74.73375)
    assert space.ground_truth("0") == space.ground_truth("flexibert_0")
    assert space.higher_is_better and space.metric_name == "glue"
    assert space.quality("flexibert_0") == space.ground_truth("flexibert_0")
    sizes = {space.arch(i).hidden_size for i in ids}
    assert sizes == {128, 256}


def test_unknown_arch_is_one_line_error(space):
    with pytest.raises(LPZeroError) as info:
        space.ground_truth("flexibert_500")
    message = str(info.value)
    assert "flexibert_500" in message and "flexibert_0" in message and "\n" not in message


def test_quirk_param_counts_equal_reference_csv_for_all_archs(root, quirk_space):
    reference = _reference_counts(root)
    assert len(reference) == 500
    mismatched = [
        arch_id
        for arch_id in quirk_space.arch_ids()
        if quirk_space.param_counts(arch_id)["total"] != reference[int(arch_id.split("_")[1])]
    ]
    assert mismatched == []


@pytest.mark.parametrize("quirks", [False, True])
def test_analytic_counts_equal_built_models(root, quirks):
    """Meta-device builds (no memory): all 500 archs with quirks, every 5th with real sizes."""
    archs = [fb.parse_arch(e) for e in json.loads((root / "data" / "BERT_benchmark.json").read_text())]
    for arch in archs if quirks else archs[::5]:
        model = fb.build_flexibert(arch, reference_quirks=quirks, device="meta")
        assert sum(p.numel() for p in model.parameters()) == fb.count_parameters(arch, quirks)["total"]


def test_honoured_sizes_differ_from_quirks(space, quirk_space):
    arch_id = next(i for i in space.arch_ids() if space.arch(i).hidden_size == 128)
    assert space.param_counts(arch_id)["total"] < quirk_space.param_counts(arch_id)["total"]
    model = space.build_model(arch_id)
    assert model.embeddings_project is None  # hidden 128 == embedding 128
    assert quirk_space.build_model(arch_id).embeddings_project.out_features == 256


# ------------------------------------------------------------------------------ models
@pytest.mark.parametrize("quirks", [False, True])
@pytest.mark.parametrize(
    "op_type,param", [("SA", "WMA"), ("SA", "SDP"), ("LT", "DFT"), ("LT", "DCT"), ("DSC", 5), ("DSC", 9)]
)
def test_forward_backward_and_taps(space, quirk_space, op_type, param, quirks):
    sp = quirk_space if quirks else space
    arch_id = _first_arch_with(sp, op_type, param)
    arch = sp.arch(arch_id).resolved(quirks)
    model = sp.build_model(arch_id, seed=0)
    assert sum(p.numel() for p in model.parameters()) == sp.param_counts(arch_id)["total"]
    ids = torch.randint(1, fb.VOCAB_SIZE, (2, 24), generator=torch.Generator().manual_seed(0))
    batch = sp.mask_tokens(ids, seed=0)
    assert (batch["labels"] != -100).any()

    taps = sp.taps(model)
    seen: dict[str, list[tuple]] = {"heads": [], "softmax": [], "activations": []}
    handles = [
        module.register_forward_hook(lambda _m, _i, out, key=key: seen[key].append(tuple(out.shape)))
        for key in seen
        for module in getattr(taps, key)
    ]
    loss = model(**batch)
    for handle in handles:
        handle.remove()
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name

    h = arch.hidden_size
    assert len(taps.blocks) == len(arch.layers) and all(isinstance(b, fb.FlexiBertLayer) for b in taps.blocks)
    assert seen["heads"] == [
        (2, l.num_operation_heads, 24, h // l.num_operation_heads) for l in arch.layers
    ]
    assert seen["softmax"] == [
        (2, l.num_operation_heads // (2 if l.operation_type == "DSC" else 1), 24, 24)
        for l in arch.layers
        if l.operation_type != "LT"
    ]
    assert seen["activations"] == [
        (2, 24, l.feed_forward_dimension) for l in arch.layers for _ in range(l.num_feed_forward)
    ]
    assert taps.linears and all(isinstance(m, nn.Linear) for m in taps.linears)
    assert all(m.weight.grad is not None for m in taps.linears)


def test_build_is_deterministic_and_seeded(space):
    a = space.build_model("flexibert_3", seed=1).state_dict()
    b = space.build_model("flexibert_3", seed=1).state_dict()
    c = space.build_model("flexibert_3", seed=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["embeddings.word_embeddings.weight"], c["embeddings.word_embeddings.weight"])
    assert torch.count_nonzero(a["embeddings.word_embeddings.weight"][fb.PAD_TOKEN_ID]) == 0


def test_hidden_sum_objective_needs_no_labels(root):
    sp = FlexiBERTSpace(
        benchmark=str(root / "data" / "BERT_benchmark.json"), data=SYNTHETIC, objective="hidden_sum"
    )
    model = sp.build_model("flexibert_0")
    loss = model(input_ids=torch.randint(0, fb.VOCAB_SIZE, (2, 8)))
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_dsc_matches_transformers_convbert():
    """The DSC operation equals transformers' ConvBERT mixed attention (head ratio 2)."""
    from transformers import ConvBertConfig, ElectraConfig
    from transformers.models.convbert.modeling_convbert import ConvBertSelfAttention

    torch.manual_seed(0)
    for heads, kernel in [(2, 5), (4, 9)]:
        ref = ConvBertSelfAttention(
            ConvBertConfig(
                hidden_size=64, num_attention_heads=heads, head_ratio=2,
                conv_kernel_size=kernel, attention_probs_dropout_prob=0.0,
            )
        ).eval()
        mine = fb.DynamicSeparableConv(ElectraConfig(hidden_size=64), heads, kernel).eval()
        with torch.no_grad():
            for name in ["query", "key", "value", "conv_kernel_layer", "conv_out_layer"]:
                getattr(mine, name).load_state_dict(getattr(ref, name).state_dict())
            mine.key_conv_depthwise.weight.copy_(ref.key_conv_attn_layer.depthwise.weight)
            mine.key_conv_pointwise.weight.copy_(ref.key_conv_attn_layer.pointwise.weight[:, :, 0])
            ref.key_conv_attn_layer.bias.normal_()
            mine.key_conv_bias.copy_(ref.key_conv_attn_layer.bias[:, 0])
        captured = {}
        mine.output.dense.register_forward_pre_hook(lambda _m, args: captured.update(ctx=args[0]))
        x = torch.randn(2, 11, 64)
        mine(x)
        torch.testing.assert_close(captured["ctx"], ref(x)[0], rtol=1e-5, atol=1e-5)


def test_dct_matrix_is_unnormalised_dct2():
    x = torch.randn(6, dtype=torch.float64)
    n = torch.arange(6, dtype=torch.float64)
    expected = torch.stack(
        [2 * (x * torch.cos(torch.pi * k * (2 * n + 1) / 12)).sum() for k in range(6)]
    )
    torch.testing.assert_close(fb.dct_matrix(6, torch.float64, torch.device("cpu")) @ x, expected)


# ------------------------------------------------------------------------------ batches
def test_make_batch_masks_and_is_deterministic(space):
    pytest.importorskip("lpzero_fw.data.batches")
    a, b = space.make_batch(0), space.make_batch(0)
    assert set(a) == {"input_ids", "labels"}
    assert a["input_ids"].shape == (SYNTHETIC["batch_size"], SYNTHETIC["seq_len"])
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    masked = a["labels"] != -100
    assert masked.any() and (a["input_ids"][masked] == 103).all()
    model = space.build_model("flexibert_0")
    loss = model(**a)
    assert torch.isfinite(loss)


def test_describe_has_statistics_settings(space, quirk_space):
    d = space.describe()
    assert d["reference_quirks"] is False and quirk_space.describe()["reference_quirks"] is True
    assert d["data"] == SYNTHETIC and d["objective"] == "mlm"


# ------------------------------------------------------------------------------- errors
def test_missing_file_is_lpzero_error(tmp_path):
    with pytest.raises(LPZeroError, match="does not exist"):
        FlexiBERTSpace(benchmark=str(tmp_path / "nope.json"), data=SYNTHETIC)


@pytest.mark.parametrize(
    "content,match",
    [
        ("{not json", "not valid JSON"),
        ("{}", "non-empty JSON list"),
        (json.dumps([{"id": 0, "scores": {}}]), "scores.glue"),
        (json.dumps([{"id": 0, "scores": {"glue": 1.0}, "hparams": {}}]), "model_hparam_overrides"),
    ],
)
def test_malformed_json_is_lpzero_error(tmp_path, content, match):
    path = tmp_path / "bench.json"
    path.write_text(content)
    with pytest.raises(LPZeroError, match=match):
        FlexiBERTSpace(benchmark=str(path), data=SYNTHETIC)


def _entry(**layer) -> dict:
    base = {
        "operation_type": "SA", "operation_parameter": "SDP", "num_operation_heads": 4,
        "feed_forward_dimension": 512, "num_feed_forward": 1,
    }
    base.update(layer)
    return {
        "id": 0, "scores": {"glue": 70.0},
        "hparams": {"model_hparam_overrides": {"hidden_size": 128, "nas_config": {"encoder_layers": [base]}}},
    }


@pytest.mark.parametrize(
    "layer,match",
    [
        ({"operation_type": "XX"}, "operation_type 'XX'.*SA, LT, DSC"),
        ({"operation_parameter": "DFT"}, "operation_parameter 'DFT'.*SDP, WMA"),
        ({"operation_type": "DSC", "operation_parameter": 7}, "operation_parameter 7.*5, 9"),
        ({"num_operation_heads": 3}, "not divisible"),
        ({"num_feed_forward": 0}, "num_feed_forward"),
    ],
)
def test_bad_layer_is_one_line_lpzero_error(tmp_path, layer, match):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps([_entry(**layer)]))
    with pytest.raises(LPZeroError, match=match) as info:
        FlexiBERTSpace(benchmark=str(path), data=SYNTHETIC)
    assert "\n" not in str(info.value)


def test_bad_data_and_objective(root):
    bench = str(root / "data" / "BERT_benchmark.json")
    with pytest.raises(LPZeroError, match="seq_len"):
        FlexiBERTSpace(benchmark=bench, data={**SYNTHETIC, "seq_len": 1000})
    with pytest.raises(LPZeroError, match="mlm, hidden_sum"):
        FlexiBERTSpace(benchmark=bench, data=SYNTHETIC, objective="rtd")
