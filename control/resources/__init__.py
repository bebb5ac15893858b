"""Course resources: files a teacher attaches to a course or a session (slides, notes,
exercises), streamed to media storage under a size cap, typed by their content, seen by
those who may see the course's content and downloaded through short signed URLs."""
