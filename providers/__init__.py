"""Hosted fine-tuning providers (installed as ``ftclient.providers``)."""
