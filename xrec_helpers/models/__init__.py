"""Recommenders on the course contract (see ``base.py``)."""

from xrec_helpers.models.base import HistoryRecommender, NotFittedError, Recommender
from xrec_helpers.models.bpr import BPRMF
from xrec_helpers.models.history_mf import HistoryMF
from xrec_helpers.models.popularity import PopularityRecommender

__all__ = ["BPRMF", "HistoryMF", "HistoryRecommender", "NotFittedError", "PopularityRecommender", "Recommender"]
