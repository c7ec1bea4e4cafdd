"""The formula layer: the proxy genotype, its printer and its parser.

It sits below operators, statistics and rules (which read formulas) and above only
the registries, so every layer that handles formulas can import it.
"""
from lpzero_fw.formula.genotype import Branch, Formula
from lpzero_fw.formula.parse import FormulaError, format_proxy, parse

__all__ = ["Branch", "FormulaError", "Formula", "format_proxy", "parse"]
