"""WHIP ingest: publishing a live class over WebRTC (browsers, OBS 30) into the same
pipeline as RTMP. endpoint.py serves the HTTP resource, publisher.py runs one publish,
frame_encoder.py turns aiortc's decoded frames into the FLV tag bodies the worker reads.
"""
