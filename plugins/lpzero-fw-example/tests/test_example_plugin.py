"""The example plugin's components work through lpzero_fw's public API."""
import torch

from lpzero_fw import BASELINES, RULES, STATS, UNARY_OPS, Values, parse


def test_components_are_registered_with_their_origin_and_one_identity():
    for registry, name in [(UNARY_OPS, "example.cube"), (UNARY_OPS, "example.log2"), (STATS, "example.GB"),
                           (RULES, "example.no_cube_of_exp"), (BASELINES, "example.depth")]:
        entry = registry.entry(name)
        assert entry.origin.startswith("lpzero-fw-example")
        assert entry.obj.name == name and entry.obj.description == entry.description


def test_ops_do_not_modify_their_input():
    x = torch.tensor([[-2.0, 3.0]])
    out = UNARY_OPS.get("example.cube")()(Values(x, torch.tensor([[2.0]])))
    assert out.x.tolist() == [[-8.0, 27.0]] and x.tolist() == [[-2.0, 3.0]]
    out = UNARY_OPS.get("example.log2")()(Values(x, torch.tensor([[2.0]])))
    assert out.x[0, 1].item() == torch.log2(torch.tensor(3.0)).item() and x.tolist() == [[-2.0, 3.0]]


def test_rule_rejects_its_example_and_accepts_its_near_miss():
    rule = RULES.get("example.no_cube_of_exp")()
    assert rule.rejects(parse(rule.example)) and not rule.rejects(parse(rule.near_miss))
