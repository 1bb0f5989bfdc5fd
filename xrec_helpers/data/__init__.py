"""Data layer: loaders, the Dataset contract, synthetic data, splits (no model code here)."""

from xrec_helpers.data.cache import DataUnavailableError, HashMismatchError
from xrec_helpers.data.dataset import GENRES, Dataset, to_csr
from xrec_helpers.data.movielens import load_movielens

__all__ = ["GENRES", "DataUnavailableError", "Dataset", "HashMismatchError", "load_movielens", "to_csr"]
