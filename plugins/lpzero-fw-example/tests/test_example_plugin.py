"""The example plugin's components work through lpzero_fw's registries."""
import torch

from lpzero_fw.ops.base import Values
from lpzero_fw.proxy.parse import parse
from lpzero_fw.registry import BASELINES, RULES, UNARY_OPS


def test_components_are_registered_with_their_origin():
    assert UNARY_OPS.entry("example.cube").origin.startswith("lpzero-fw-example")
    assert "example.no_cube_of_exp" in RULES and "example.depth" in BASELINES


def test_cube_does_not_modify_its_input():
    x = torch.tensor([[-2.0, 3.0]])
    out = UNARY_OPS.get("example.cube")()(Values(x, torch.tensor([[2.0]])))
    assert out.x.tolist() == [[-8.0, 27.0]] and x.tolist() == [[-2.0, 3.0]]


def test_rule_rejects_its_example_and_accepts_its_near_miss():
    rule = RULES.get("example.no_cube_of_exp")()
    assert rule.rejects(parse(rule.example)) and not rule.rejects(parse(rule.near_miss))
