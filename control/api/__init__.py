"""The control plane's HTTP API (aiohttp): JSON in, JSON out, bearer tokens."""
