"""Shared package: messages, keys, settings, bus, service base."""
