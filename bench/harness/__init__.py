"""The job side: configuration, data, models, the training loop, the torch twin, result files,
and collect. Nothing here is imported by ``bench.report`` except the torch-free modules
``catalog`` (what the config tree offers), ``results`` (the result schema) and ``collect``."""
