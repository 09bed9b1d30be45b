"""Dialogue state, stores, policy and responses. Imports no torch.

Public entry points: ``dialogue.domain.load_domain``, ``dialogue.service.DialogueService`` and
``dialogue.service.make_store``.
"""
