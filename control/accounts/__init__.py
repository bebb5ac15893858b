"""Accounts and signing in: users, passwords, sign-in tokens, sign-in limits."""
