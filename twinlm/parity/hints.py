"""Hints for `twinlm check --impl`: where a learner's failure matches a mistake people commonly make,
one line saying which. Each hint is a test of the failure's evidence, derived from real wrong
implementations (parity_tests/learner/wrong/); a hint that does not match stays silent."""

from __future__ import annotations


def shape_hint(got: tuple[int, ...], want: tuple[int, ...]) -> str:
    """A clause for a gradient or output of the wrong shape."""
    if len(got) == len(want) >= 2 and got == want[::-1]:
        return " (the transpose)"
    return ""


def diagnose(result) -> list[str]:
    return []
