"""Explainers on the course contract (``base.py``); :mod:`.registry` finds and builds them by discovery.

Every concrete :class:`Explainer` in a module of this package is found by :func:`explainer_classes`; nothing
lists them by hand. Import a family from its module (``from xrec_helpers.explainers.lxr import LXRExplainer``).
"""

from xrec_helpers.explainers.base import Counterfactual, Explainer, Explanation, derive, top_pairs
from xrec_helpers.explainers.baselines import CosineExplainer, JaccardExplainer, PopularityExplainer, RandomExplainer
from xrec_helpers.explainers.registry import build_explainers, explainer_classes

__all__ = ["CosineExplainer", "Counterfactual", "Explainer", "Explanation", "JaccardExplainer",
           "PopularityExplainer", "RandomExplainer", "build_explainers", "derive", "explainer_classes", "top_pairs"]
