"""The conference demo: "Which explanation is true?" and "Top reviews for you", served with Voilà.

Taught in apps/why_this_recommendation. Layers: :mod:`~xrec_helpers.app.compare` and
:mod:`~xrec_helpers.app.reviews` hold the logic (plain Python, unit-tested); :mod:`~xrec_helpers.app.cache`
keeps what is trained between starts; :mod:`~xrec_helpers.app.widgets` renders; :mod:`~xrec_helpers.app.server`
is the served configuration (``make demo``). Import from the submodules.
"""
