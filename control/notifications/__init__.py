"""Notifications: who is told what, through which channel, and the outbox that sends it."""
