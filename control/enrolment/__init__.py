"""Enrolment: places in courses, its state machine, invite codes, payments."""
