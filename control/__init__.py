"""The control plane: courses, people and schedules; knows nothing of media bytes."""
