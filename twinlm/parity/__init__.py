"""The ops parity registry and harness (`twinlm check`, parity_tests/), and `verify`: the same
battery turned on a learner's own ops (`twinlm check --impl`, docs/check-your-backward.md)."""


def __getattr__(name: str):
    if name == "verify":  # imported on first use: it brings hypothesis and every backend
        from twinlm.parity.learner_check import verify

        return verify
    raise AttributeError(f"module 'twinlm.parity' has no attribute {name!r}")
