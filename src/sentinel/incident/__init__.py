"""Incidents and their alerts: lifecycle, grouping, read API."""
