"""The benchmark harness and its report, around one registry:

- ``bench.registry``: every component the harness offers (activations, losses, optimizers,
  initialisers, datasets, models), one entry each; torch-free;
- ``bench.harness``: the job (config schema and validation, the frozen job spec, datasets, model
  building, the two engines and one training loop with an adapter per framework, the torch.nn
  twin, the result schema) and ``collect``;
- ``bench.report``: views of the results table, statistics, tables, figures, claims, the speed
  summary and the generated README. It reads only the table and never imports torch.

``python -m bench [overrides]`` runs jobs (Hydra), ``python -m bench.collect RUNS --out FILE``
tabulates them, ``python -m bench.report`` builds the report. The configuration tree ships
inside the package, in ``bench/conf``.
"""
