"""The reference for the edge's CPU: Debian's nginx serving a folder of the same playlist
and part files as plain static files (live_probe's mirror), at the same URLs.

Same shapes as the edge (`/play/{session}/{token}/{file}`, the token anything in its
alphabet and never checked), the same worker count and an access log line per request,
so the difference to the edge is what the edge does on top: the token check, the cache
and proxying to the origin. Run by tests/support/nginx_edge.py's NginxEdge, which owns
the process.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["static_config"]


def static_config(root: Path, prefix: Path, port: int) -> str:
    """nginx.conf serving `root` under /play/{session}/{token}/ on 127.0.0.1:`port`."""
    return f"""\
worker_processes auto;
pid "{prefix}/nginx.pid";
error_log "{prefix}/error.log" warn;
events {{
    worker_connections 4096;
}}
http {{
    server_tokens off;
    client_body_temp_path "{prefix}/temp-client-body";
    proxy_temp_path "{prefix}/temp-proxy";
    fastcgi_temp_path "{prefix}/temp-fastcgi";
    uwsgi_temp_path "{prefix}/temp-uwsgi";
    scgi_temp_path "{prefix}/temp-scgi";
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/iso.segment m4s;
        video/mp4 mp4;
    }}
    log_format reference '$remote_addr [$time_local] "$request_method $uri" '
                         '$status $body_bytes_sent $request_time';
    access_log "{prefix}/access.log" reference;
    server {{
        listen 127.0.0.1:{port};
        location ~ "^/play/[0-9]{{1,18}}/[A-Za-z0-9_-]{{1,256}}/(?<file>.+\\.m3u8)$" {{
            alias "{root}/$file";
            add_header Cache-Control no-cache;
        }}
        location ~ "^/play/[0-9]{{1,18}}/[A-Za-z0-9_-]{{1,256}}/(?<file>.+)$" {{
            alias "{root}/$file";
            add_header Cache-Control "public, max-age=86400, immutable";
        }}
    }}
}}
"""
