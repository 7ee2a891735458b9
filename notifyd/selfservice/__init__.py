"""Subscribers who manage themselves: public sign-up, double opt-in, the preference page,
following one incident, and page templates in the subscriber's language.

Dependencies point downward: ``api/`` and ``pipeline/`` use these modules; these use
``state/`` and ``models``, never the API or the pipeline.
"""
