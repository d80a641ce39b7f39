"""Reports: training plots, and the benchmark report (machine facts, tables, plots)."""
