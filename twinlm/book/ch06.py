"""Chapter 6 replayed (placeholder until the recipe lands)."""

from __future__ import annotations


def run_ch06(args, stream, encode, decode):
    raise FileNotFoundError(
        "ch06 needs GPT-2 124M weights (--weights) and the SMS spam data "
        "(`twinlm data get sms-spam`, or --data PATH)"
    )
