"""Moved to :mod:`lpzero_fw.formula.genotype` (the formula layer); kept so old imports work."""
from lpzero_fw.formula.genotype import LAYER_REDUCTIONS, Branch, Proxy

__all__ = ["LAYER_REDUCTIONS", "Branch", "Proxy"]
