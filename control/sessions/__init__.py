"""Class sessions: going live and ending, the session state machine, attendance."""
