"""Live chat of a class session: the in-process hub, its rules and its WebSocket."""
