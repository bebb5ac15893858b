"""The media edge: RTMP ingest, HLS delivery, and the process that ties it all together."""
