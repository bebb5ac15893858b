"""Helpers the tests share: clients, fakes, servers started for a test run, the API client.

Nothing here is a test. A test module imports what it needs (`from support.live_stack
import LiveStack`); conftest.py at the tests root imports from here to build its fixtures.
No test module re-exports these names: a helper two test modules need lives here.
"""
