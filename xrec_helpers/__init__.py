"""xrec_helpers: the helper package of the xrec explainable-recommendation course.

Organised by concept; modules depend in one direction only::

    data -> models -> explainers -> metrics -> app / plotting / notebook

``models`` declares capabilities, ``explainers`` returns one immutable ``Explanation``, ``metrics`` holds the
evaluation protocols, and :mod:`xrec_helpers.testing` is the public conformance suite run over every recommender
and explainer class by discovery. Import what you need explicitly, e.g.
``from xrec_helpers.data import load_movielens``.
"""

__version__ = "0.1.0"
