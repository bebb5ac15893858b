"""ffmpeg workers: the ladder, the ffmpeg command, supervision, segment upload, storage."""
