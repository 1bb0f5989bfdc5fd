"""xrec_helpers: the helper package of the xrec explainable-recommendation course.

Modules depend in one direction only::

    data -> models -> explainers -> metrics -> plotting / notebook

Import what you need explicitly, e.g. ``from xrec_helpers.data import load_movielens``.
"""

__version__ = "0.1.0"
