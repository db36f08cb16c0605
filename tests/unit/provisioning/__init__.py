"""Provisioning and refunds (issue 4)."""
