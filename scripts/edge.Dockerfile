# The nginx edge: Debian's nginx with its Lua module (the request flights of
# mediaserver/edge/request_flights.lua), as the tests run it. Its configuration comes from
# `academia edge-config` (the edge-config service in docker-compose.yml).
FROM debian:bookworm-20250908-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx libnginx-mod-http-lua \
    && rm -rf /var/lib/apt/lists/*
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
