"""Zero-shot architecture search with a proxy: spaces, strategies, constraints, Pareto fronts."""
