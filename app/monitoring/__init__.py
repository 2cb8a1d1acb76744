"""Monitoring services: system health, daily statistics, failure-rate and queue-depth alerts."""
