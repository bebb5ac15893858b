"""Scheduling: recurrence rules, their expansion, clashes, sessions from schedules."""
