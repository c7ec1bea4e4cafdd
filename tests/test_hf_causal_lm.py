"""Bring-your-own tables and transformers causal LMs: table errors, heterogeneous LLaMA
layers, generic taps, and the six inputs against a forward pass written out by hand."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from lpzero_fw.data.table import BenchmarkTable
from lpzero_fw.registry import SEARCH_SPACES, LPZeroError
from lpzero_fw.stats.extract import extract_raw

TINY = {"hidden_size": 32, "vocab_size": 97, "max_position_embeddings": 64}
DATA = {"name": "synthetic", "batch_size": 2, "seq_len": 11, "seed": 3}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def llama_rows() -> list[dict]:
    return [
        {"id": "a", "num_hidden_layers": 2, "num_attention_heads": [4, 2], "intermediate_size": [48, 32],
         "valid_ppl": 100.0},
        {"id": "b", "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64, "valid_ppl": 120.0},
        {"id": "c", "num_hidden_layers": 3, "num_attention_heads": [2, 4, 1], "intermediate_size": 16,
         "valid_ppl": 90.0},
    ]


@pytest.fixture()
def llama_space(tmp_path):
    table = write_jsonl(tmp_path / "t.jsonl", llama_rows())
    return SEARCH_SPACES.get("llama")(benchmark=str(table), base=TINY, data=DATA)


# ------------------------------------------------------------------------------ tables
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda rows: rows[1].update(num_hiden_layers=2), "row 2 (id=b), column 'num_hiden_layers': unknown llama"),
        (lambda rows: rows[2].pop("valid_ppl"), "row 3 (id=c), column 'valid_ppl': the metric is missing"),
        (lambda rows: rows[0].update(valid_ppl="high"), "row 1 (id=a), column 'valid_ppl': 'high' is not"),
        (lambda rows: rows[2].update(id="a"), "row 3 (id=a): duplicate id 'a'"),
        (lambda rows: rows.pop(), "2 usable rows; a benchmark needs at least 3"),
        (lambda rows: rows[0].update(intermediate_size=[8, 8, 8]), "id=a, column 'intermediate_size': 3 per-layer"),
    ],
)
def test_bad_tables_are_one_line_errors(tmp_path, change, message):
    rows = llama_rows()
    change(rows)
    table = write_jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(LPZeroError) as info:
        SEARCH_SPACES.get("llama")(benchmark=str(table), base=TINY, data=DATA)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_table_of_another_family_names_row_and_column(tmp_path):
    rows = [{"id": f"g{i}", "n_layer": 2, "n_embd": 32, "n_head": 2, "valid_ppl": 50.0 + i} for i in range(3)]
    table = write_jsonl(tmp_path / "gpt2.jsonl", rows)
    with pytest.raises(LPZeroError, match=r"row 1 \(id=g0\), column 'n_layer': unknown llama config key"):
        SEARCH_SPACES.get("hf_causal_lm")(benchmark=str(table), family="llama")
    space = SEARCH_SPACES.get("hf_causal_lm")(benchmark=str(table), family="gpt2", base={"vocab_size": 97})
    assert space.arch_ids() == ["g0", "g1", "g2"]


def test_csv_table_with_per_layer_lists_and_error_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "id,num_hidden_layers,num_attention_heads,acc,error\n"
        'x,2,"[2, 4]",0.5,\n'
        "y,1,4,0.7,\n"
        "z,1,2,0.6,\n"
        "w,1,2,,OOM\n"
    )
    table = BenchmarkTable(path, metric="acc", config_keys={"num_hidden_layers", "num_attention_heads"},
                           family="llama")
    assert table.ids() == ["x", "y", "z"] and table.failed == {"w": "OOM"}
    assert table.config("x") == {"num_hidden_layers": 2, "num_attention_heads": [2, 4]}
    space = SEARCH_SPACES.get("hf_causal_lm")(benchmark=str(path), family="llama", metric="acc",
                                             higher_is_better=True, base=TINY)
    assert space.quality("y") == pytest.approx(0.7) and space.quality("x") < space.quality("y")


# ------------------------------------------------------------------------------ models
def test_llama_layers_are_heterogeneous(llama_space):
    lm = llama_space.build_model("a").lm
    first, second = lm.model.layers
    assert first.self_attn.q_proj.out_features == 4 * 8 and second.self_attn.q_proj.out_features == 2 * 8
    assert second.self_attn.k_proj.out_features == 2 * 8  # kv heads follow the layer's heads
    assert first.mlp.gate_proj.out_features == 48 and second.mlp.down_proj.in_features == 32
    again = llama_space.build_model("a").lm
    assert all(torch.equal(p, q) for p, q in zip(lm.parameters(), again.parameters()))  # deterministic


@pytest.mark.parametrize("family, fields", [
    ("gpt2", {"n_layer": 2, "n_embd": 32, "n_head": [2, 4], "n_positions": 64}),
    ("qwen2", {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
               "intermediate_size": [32, 64]}),
    ("mistral", {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "intermediate_size": 48}),
])
def test_generic_taps_on_other_families(tmp_path, family, fields):
    rows = [{"id": f"r{i}", **fields, "valid_ppl": 10.0 + i} for i in range(3)]
    table = write_jsonl(tmp_path / f"{family}.jsonl", rows)
    space = SEARCH_SPACES.get("hf_causal_lm")(benchmark=str(table), family=family, base={"vocab_size": 97},
                                             data=DATA)
    raw = extract_raw(space, "r0", space.make_batch())
    assert {k: len(v) for k, v in raw.items()} == {"A": 2, "G": len(raw["W"]), "H": 2, "J": 2, "S": 2,
                                                   "W": len(raw["W"])}
    assert len(raw["W"]) >= 8 and all(s.shape[-1] == s.shape[-2] == 12 for s in raw["S"])
    assert all(torch.allclose(s.sum(-1), torch.ones(())) for s in raw["S"])
    assert all(float(g.abs().sum()) > 0 for g in raw["G"])


# -------------------------------------------------------------------- six inputs by hand
def _rms(x, weight, eps):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rope(x, theta):
    dim, tokens = x.shape[-1], x.shape[-2]
    inv = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    angles = torch.arange(tokens, dtype=torch.float32)[:, None] * inv[None]
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    half = dim // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


def test_six_inputs_match_a_hand_written_llama_forward(llama_space):
    """A 2-layer LLaMA with 4 then 2 heads: A, H, S, J, W, G equal the same quantities
    computed by an independent forward pass written with plain tensor algebra."""
    batch = llama_space.make_batch()
    raw = extract_raw(llama_space, "a", batch)
    lm = llama_space.build_model("a").lm
    config = lm.config
    theta = float((getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0))
    eps, head_dim = config.rms_norm_eps, config.hidden_size // 4
    P = {n: p.detach().clone().requires_grad_() for n, p in lm.named_parameters()}
    ids = batch["input_ids"]
    b, t = ids.shape
    x = P["model.embed_tokens.weight"][ids]
    mask = torch.full((t, t), float("-inf")).triu(1)
    hand = {"A": [], "H": [], "S": [], "J": [], "W": [], "G": []}
    inputs, names = [], []
    for layer, heads in enumerate((4, 2)):
        pre = f"model.layers.{layer}."
        x.retain_grad()
        inputs.append(x)
        h = _rms(x, P[pre + "input_layernorm.weight"], eps)

        def split(w):
            return (h @ w.T).view(b, t, heads, head_dim).transpose(1, 2)

        q = _rope(split(P[pre + "self_attn.q_proj.weight"]), theta)
        k = _rope(split(P[pre + "self_attn.k_proj.weight"]), theta)
        v = split(P[pre + "self_attn.v_proj.weight"])
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim) + mask, dim=-1)
        context = probs @ v
        hand["S"].append(probs)
        hand["H"].append(context)
        x = x + context.transpose(1, 2).reshape(b, t, heads * head_dim) @ P[pre + "self_attn.o_proj.weight"].T
        h = _rms(x, P[pre + "post_attention_layernorm.weight"], eps)
        act = torch.nn.functional.silu(h @ P[pre + "mlp.gate_proj.weight"].T)
        hand["A"].append(act)
        x = x + (act * (h @ P[pre + "mlp.up_proj.weight"].T)) @ P[pre + "mlp.down_proj.weight"].T
        names += [pre + f"self_attn.{m}.weight" for m in ("q_proj", "k_proj", "v_proj", "o_proj")]
        names += [pre + f"mlp.{m}.weight" for m in ("gate_proj", "up_proj", "down_proj")]
    logits = _rms(x, P["model.norm.weight"], eps) @ P["lm_head.weight"].T
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    loss.backward()
    hand["J"] = [x_in.grad for x_in in inputs]
    hand["W"] = [P[n].detach() for n in names]
    hand["G"] = [P[n].grad for n in names]
    for symbol in "AHSJWG":
        assert len(raw[symbol]) == len(hand[symbol]), symbol
        for got, want in zip(raw[symbol], hand[symbol]):
            assert got.shape == want.shape, symbol
            assert torch.allclose(got, want.detach(), rtol=1e-4, atol=1e-6), symbol


# --------------------------------------------------------------------- plugin search space
def test_plugin_registers_a_search_space_with_its_config(tmp_path):
    """The example plugin's ``search_space=example_qwen2`` (config from the plugin package,
    class registered by the plugin module) ranks a Qwen2 table."""
    from tests.test_cli import REPO, run_cli

    rows = [{"id": f"q{i}", "num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 4,
             "num_key_value_heads": 2, "intermediate_size": 32 * (1 + i), "vocab_size": 97,
             "valid_ppl": 30.0 - i} for i in range(3)]
    table = write_jsonl(tmp_path / "qwen2.jsonl", rows)
    result = run_cli(
        "search_space=example_qwen2", f"search_space.benchmark={table}", "plugins=[lpzero_fw_example]",
        "task=rank", "proxy=num_parameters", "data.batch_size=2", "data.seq_len=8", "logger=none",
        "threads=1", f"cache.dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}",
        env={"PYTHONPATH": str(REPO / "plugins" / "lpzero-fw-example")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranking = json.loads((tmp_path / "run" / "ranking.json").read_text())
    assert ranking[0]["name"] == "num_parameters" and ranking[0]["n_archs"] == 3
    assert ranking[0]["kendall_tau"] == pytest.approx(1.0)  # wider MLP ↔ lower ppl in this table
    config = (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert "name: example.qwen2" in config


def test_windows_longer_than_the_position_table_are_refused(tmp_path):
    rows = [{"id": f"g{i}", "n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 16, "valid_ppl": 5.0 + i}
            for i in range(3)]
    table = write_jsonl(tmp_path / "gpt2.jsonl", rows)
    space = SEARCH_SPACES.get("hf_causal_lm")(benchmark=str(table), family="gpt2", base={"vocab_size": 97},
                                             data={**DATA, "seq_len": 16})
    with pytest.raises(LPZeroError, match="data.seq_len=16: windows of seq_len \\+ 1 tokens exceed"):
        space.make_batch()
