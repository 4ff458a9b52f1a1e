"""Foundations shared by every layer: settings, errors, database, clock, ids."""
