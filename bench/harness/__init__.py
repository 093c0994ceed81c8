"""The job side: configuration and its frozen spec, data, models, the engines and the training
loop, the torch twin, result files, and collect. ``bench.report`` imports only the torch-free
modules here: ``catalog`` (what the configuration offers; with ``config`` and ``spec``, which it
reads the schema from), ``results`` (the result schema) and ``collect``."""
