"""Ranking, explanation and counterfactual metrics."""
