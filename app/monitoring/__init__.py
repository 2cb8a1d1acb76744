"""Monitoring services: system health, failure-rate and queue-depth alerts."""
