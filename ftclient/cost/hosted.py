"""Hosted training: billed tokens x price per 1M.

A size tier's price for providers that price by model size, also for models the catalogue
does not list, with a minimum charge where the catalogue gives one. Billed tokens = sum over
examples of min(tokens, model's example limit) x epochs (the cookbook's
``n_billing_tokens_in_dataset x n_epochs``).
"""

from __future__ import annotations

from typing import Sequence

from ..prices import ModelEntry


def hosted_training(entry: ModelEntry, totals: Sequence[int], epochs: int, method: str, adapter: str):
    """Training ``entry`` on examples of ``totals`` tokens for ``epochs``: (tokens per epoch, examples
    over the limit, billed tokens, price per 1M, cost before the minimum, cost, minimum applied, basis)."""
    cap = entry.max_example_tokens
    if cap:
        per_epoch = sum(t if t < cap else cap for t in totals)
        over = sum(1 for t in totals if t > cap)
    else:
        per_epoch, over = sum(totals), 0
    billed = per_epoch * epochs
    price = entry.training_price(method, adapter)
    raw = billed / 1e6 * price
    cost = max(raw, entry.min_charge_usd)
    applied = entry.min_charge_usd > 0 and raw < entry.min_charge_usd
    basis = f"{billed:,} billed tokens x ${price:g}/1M"
    tier = entry.tier_basis(method, adapter)
    if tier:
        basis += f" ({tier})"
    if cap:
        basis += f" (each example capped at {cap:,} tokens)"
    if applied:
        basis += f"; minimum charge ${entry.min_charge_usd:g} applied"
    return per_epoch, over, billed, price, raw, cost, applied, basis
