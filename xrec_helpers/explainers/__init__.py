"""Explainers on the course contract (``base.py``)."""

from xrec_helpers.explainers.base import Explainer, Explanation
from xrec_helpers.explainers.baselines import CosineExplainer, JaccardExplainer, PopularityExplainer, RandomExplainer

__all__ = ["CosineExplainer", "Explainer", "Explanation", "JaccardExplainer", "PopularityExplainer",
           "RandomExplainer"]
