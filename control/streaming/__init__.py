"""Streaming: stream keys, their revocation, playback grants and tokens."""
