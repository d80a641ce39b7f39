"""The ops parity registry and harness (`twinlm check`, parity_tests/)."""
