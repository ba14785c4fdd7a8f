"""The next-token baseline: a GPT over residual-VQ tokens (model in `model.py`, kind in `kind.py`)."""

from arwave.models.nexttoken.model import NextToken, NextTokenConfig, delay_codes, flatten_codes

__all__ = ["NextToken", "NextTokenConfig", "delay_codes", "flatten_codes"]
