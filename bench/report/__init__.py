"""The report side: reads only the results table (never torch) and writes figures, tables,
statistics, claims and ``reports/README.md``. ``python -m bench.report`` builds it."""
