"""Moved to :mod:`lpzero_fw.formula.parse` (the formula layer); kept so old imports work."""
from lpzero_fw.formula.parse import FormulaError, format_proxy, parse

__all__ = ["FormulaError", "format_proxy", "parse"]
