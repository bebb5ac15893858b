"""The control plane's internal HTTP API for media nodes (`/internal/control/...`).

Served only when `cluster.node_secret` is set, and only to callers that send it; left
out of the public OpenAPI document: it is a contract between our own processes, not an
API for people. The media side's client is mediaserver/control_http.py.
"""
