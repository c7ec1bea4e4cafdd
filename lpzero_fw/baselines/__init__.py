"""Human-designed zero-cost proxies (registry ``BASELINES``), one module per family, and the
reference's searched formulas (``reference``).

Every baseline reads a model only through the search space's :class:`~lpzero_fw.search_spaces.base.Taps`
(plus ``model.parameters()`` / ``model.modules()`` for counting), so it works for any space
that honours the taps contract. Scores are sums over layers of per-layer quantities, as in
the LPZero reference (``lpzero/predictor/measures``), whose GPT-2 scores were computed on one
16x192 WikiText-103 batch and are stored beside the benchmark as ``<name>_scores_seed_1111.yaml``.

Conventions
-----------
* "linears" = ``taps.linears`` (for GPT-2: the Linear/Conv1D layers of the blocks; the
  reference summed over every ``nn.Linear``/``transformers.Conv1D`` module, which for its
  GPT-2 (adaptive-softmax head, no Linear there) is the same set).
* A weight's gradient is the gradient of the shared LM-loss backward (``model(**batch)``
  returns the mean token cross-entropy); a layer the loss does not reach contributes 0.
* ``higher_is_better`` is the orientation the reference's ranking script used
  (``eval_rank_gpt2.py`` ranks by ``-score``, i.e. higher score = lower perplexity, after
  negating GraSP first).
* Shared-pass baselines register hooks in ``attach`` and read weights, ``.grad`` and what
  the hooks recorded in ``score``; they never modify the model. One pass per architecture
  serves all of them and, in ``task=rank``, the statistics the formulas need (the store's
  :class:`~lpzero_fw.stats.extract.ExtractionPlan`). GraSP (``second_order``) reads that
  pass's gradients with their graph. SynFlow and LogSynFlow modify a fresh model of their
  own (absolute weights, float64) and share it (``own_pass``).

Where the reference is buggy or depends on the weight layout, the class docstring says what
was done instead; ``benchmarks/compare_reference.py`` measures the resulting rank agreement.
"""
