"""pytest-benchmark suites racing NumPy, torch-CPU and torch-GPU; see bench/README.md."""
