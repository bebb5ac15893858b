"""The nginx edge's whole configuration, made from the settings (`academia edge-config`).

Pure: an EdgePlan (mediaserver.edge.edge_plan) and a prefix folder in, nginx.conf text out,
runnable as `nginx -c FILE -p PREFIX` by Debian's nginx (which has auth_request). Every
path nginx writes (pid, logs, caches, temporary files) is under the prefix, so the edge
needs no other folder and several edges can run on one machine.

The choices, and why:

- Viewers never reach Python one by one. Everything under /play/ is answered from the
  edge's cache when it can be; everything else (API, pages, static files, the chat
  WebSocket, /openapi.json) goes to the control processes, one upstream with all of them,
  the next one tried when one fails to connect or times out (nginx never retries a POST).
- Tokens are checked by the edge, through an `auth_request` sub-request to the control
  plane (`GET /internal/edge/playback/{session_id}/{token}`, with the node secret; the
  contract is written out in the generated file). Its answer is cached for
  PLAYBACK_GRANT_SECONDS per (session, token) (a refusal for a second), the same window a
  media node keeps its own grants (the check's `X-Accel-Expires` may say less: a token
  about to expire, or a spread so students who joined together are not asked together):
  a removed student is refused within seconds, while one student's many requests cost
  the control plane one question per window. Past the window
  the answer is renewed in the background (`proxy_cache_background_update`) while the old
  one lets the request through, and a removal is seen a moment after the window, not at
  its end. nginx takes the next request on that keep-alive connection only once the
  renewal is done, so a player's next request may still wait (HTTP/2 in front would not).
- The answer names the origin (`X-Academia-Origin`): the media node carrying the live
  session (one upstream per node), or `storage` for a recording (an upstream of every node,
  any of which reads storage). So blocking playlist requests reach the node whose memory
  holds the live edge; a name the edge does not know gets 502 (regenerate the file when
  nodes change).
- Media bytes are shared between students: the cache key is the session and the file,
  without the token, so two students' URLs for `hd/000123.m4s` are one cache entry. The
  URL sent to the origin is rebuilt from the checked parts (session digits, token
  alphabet, file shapes), so the origin reads the same file the key names.
- Request flights (request_flights.lua, nginx's Lua module from Debian): identical
  concurrent requests (twenty students asking for the next part, or for the same blocking
  playlist) make one origin request; the others wait for it and are answered from the
  cache the moment it lands. nginx's own `proxy_cache_lock` does the collapsing too, but
  its waiters look again only every 500 ms (ngx_http_file_cache.c): every student but
  the first got each part up to half a second late. Waiters wait as long as the origin
  holds a blocking request (BLOCK_TARGETS target durations) and then ask it themselves.
- How long things are kept is the origin's word (its Cache-Control, honoured as sent):
  segments, parts and init files are immutable; a blocking playlist (`_HLS_msn`) is kept a
  second, keyed with its query, so students asking the same question share the answer; a
  plain playlist is never cached (`no-cache`), and skips the cache and its lock altogether
  (a lock on an answer that is never stored would queue students one by one). Refusals
  and errors are `no-store`. The recording download (large, ranged) passes through.
- Timeouts: the origin holds a blocking request up to BLOCK_TARGETS target durations,
  so /play/ waits longer than that for an answer.
- The access log never holds a token: it logs the path with the token replaced by `-`
  (and no query string anywhere: the chat WebSocket's one-time ticket is a query), the
  cache status and the origin. The error log may quote a failed request's line, as every
  nginx error log does: keep it as private as the tokens it may hold.
- X-Forwarded-For carries the client's address to control and media processes; list the
  edge's address in `trusted_proxies` so rate limits count students, not the edge.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

from config.loading import SettingsError
from config.settings import Settings

# The control plane's playback check, and the header its answer names the origin in.
from control.node_api.edge_check import CHECK_PATH, ORIGIN_HEADER, STORAGE_ORIGIN
from mediaserver.control_port import PLAYBACK_GRANT_SECONDS
from mediaserver.edge.edge_plan import Address, EdgePlan, edge_plan
from mediaserver.hls_delivery import BLOCK_TARGETS

__all__ = ["CHECK_PATH", "ORIGIN_HEADER", "edge_config", "render_nginx_config"]

# How long the edge keeps the check's answers (seconds): grants as long as a media node
# keeps them itself; refusals and unknown tokens briefly, so a flood costs little.
GRANT_SECONDS = int(PLAYBACK_GRANT_SECONDS)
REFUSAL_SECONDS = 1
# A segment may be up to twice its planned length (an encoder's sparse keyframes), and
# the origin holds a blocking request BLOCK_TARGETS target durations.
TARGET_SLACK = 2
# What the media cache may hold, and how long an entry nobody asks for is kept.
MEDIA_CACHE = "keys_zone=academia_media:64m max_size=8g inactive=10m"
AUTH_CACHE = "keys_zone=academia_auth:16m max_size=256m inactive=1m"
# Debian's nginx loads the Lua module (libnginx-mod-http-lua) and the kit it needs from here.
MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so",
           "/usr/lib/nginx/modules/ngx_http_lua_module.so")
# What the waiting requests' flights take in shared memory (a key and a flag each).
FLIGHTS_ZONE = "4m"
# A prefix is written into quoted nginx strings: nothing nginx reads inside quotes.
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/+@:,=-]*")

# The URL shapes the media nodes serve (mediaserver.hls_delivery's _PATH), split by how
# the edge treats them. The token is base64url (control.streaming.playback_tokens).
_PLAY = r"^/play/(?<academia_session>[0-9]{1,18})/(?<academia_token>[A-Za-z0-9_-]{1,256})/"
_MEDIA_FILE = (r"(?<academia_file>[a-z0-9_]{1,32}/(?:[0-9]{1,12}(?:\.[0-9]{1,4})?\.m4s"
               r"|[0-9]{1,12}\.ts|init_[0-9]{1,12}\.mp4))$")
_PLAYLIST_FILE = r"(?<academia_file>master\.m3u8|[a-z0-9_]{1,32}/index\.m3u8)$"
_DOWNLOAD_FILE = r"(?<academia_file>recording\.mp4|poster\.jpg)$"
# The access log's /play/ path: the token replaced by `-`.
_LOG_PLAY = ('"~^/play/(?<academia_log_session>[0-9]+)/[^/]*(?<academia_log_rest>/.*)?$"'
             " /play/$academia_log_session/-$academia_log_rest;")


def _json_error(code: str, message: str) -> str:
    """The origin's error body (mediaserver.http_errors), as a quoted nginx string."""
    return "'" + json.dumps({"error": {"code": code, "message": message}}) + "'"


def _upstream_name(node: str) -> str:
    return f"academia_node_{node}"


def _servers(addresses: list[Address], indent: str = "        ") -> str:
    return "\n".join(f"{indent}server {address} max_fails=1 fail_timeout=5s;"
                     for address in addresses)


def _hold_seconds(plan: EdgePlan) -> int:
    """The longest the origin holds a blocking request, rounded up."""
    return int(BLOCK_TARGETS * TARGET_SLACK * max(plan.segment_seconds, 1)) + 1


def _request_flights() -> str:
    """request_flights.lua, as a chunk nginx's Lua module runs once in each worker."""
    return (resources.files("mediaserver.edge") / "request_flights.lua").read_text()


def _flights(key: str, hold: int) -> str:
    """A location's part in the request flights: requests with the same `key` (an nginx
    value; empty: never collapsed) wait for the first, `hold` seconds at most."""
    return f"""\
            set $academia_flight_key "{key}";
            access_by_lua_block {{
                academia_request_flights.board(ngx.var.academia_flight_key, {hold})
            }}
            body_filter_by_lua_block {{ if ngx.arg[2] then academia_request_flights.land() end }}
            log_by_lua_block {{ academia_request_flights.land() }}"""


def _play_location(pattern: str, *, cache: str, upstream_uri: str, hold: int) -> str:
    """One /play/ location: check the token, route to the origin, cache as `cache`."""
    return f"""\
        location ~ "{pattern}" {{
            auth_request /_academia/playback-check;
            auth_request_set $academia_origin $upstream_http_x_academia_origin;
            auth_request_set $academia_check_status $status;
            error_page 403 = @academia_refused;
            error_page 500 = @academia_check_failed;
{cache}
            proxy_pass http://$academia_origin_upstream{upstream_uri};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 3s;
            proxy_read_timeout {hold + 10}s;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 2;
            add_header X-Academia-Edge-Cache $upstream_cache_status always;
        }}
"""


def render_nginx_config(plan: EdgePlan, prefix: Path) -> str:
    """The whole nginx.conf for `plan`, writing under the absolute folder `prefix`."""
    root = str(prefix)
    if not prefix.is_absolute() or _SAFE_PATH.fullmatch(root) is None:
        raise SettingsError(f"edge prefix: {root!r} must be an absolute path of letters,"
                            " digits and ._/+@:,=-")
    root = root.rstrip("/") or ""
    hold = _hold_seconds(plan)
    media_cache = ("            proxy_cache academia_media;\n"
                   "            proxy_cache_key $academia_session/$academia_file;\n"
                   + _flights("$academia_session/$academia_file", hold + 3))
    playlist_cache = ("            proxy_cache academia_media;\n"
                      "            proxy_cache_key $academia_session/$academia_file$is_args$args;\n"
                      "            proxy_cache_bypass $academia_plain_reload;\n"
                      "            proxy_no_cache $academia_plain_reload;\n"
                      + _flights("$academia_playlist_flight", hold + 3))
    download_cache = "            proxy_cache off;"
    play_uri = "/play/$academia_session/$academia_token/$academia_file"

    node_upstreams = "\n".join(f"""\
    upstream {_upstream_name(node.name)} {{
{_servers([node.address])}
        keepalive 16;
    }}
""" for node in plan.media_nodes)
    origin_map = "\n".join(f"        {node.name} {_upstream_name(node.name)};"
                           for node in plan.media_nodes)
    secret = plan.node_secret

    return f"""\
# The Academia Live edge: made by `academia edge-config`; regenerate it, do not edit it.
# Run: nginx -c THIS_FILE -p {root}/   (this file holds the node secret: keep it private)
#
# The playback check (the control plane answers it; the edge caches the answer):
#   GET {CHECK_PATH}/{{session_id}}/{{token}}
#   Authorization: Bearer <node_secret>
#   -> 204 with "{ORIGIN_HEADER}: <media node name>" when the token may play the live
#          session that node carries, or "{ORIGIN_HEADER}: {STORAGE_ORIGIN}" when it may
#          play the recording (any media node serves it from storage);
#      403 refused; 404 unknown session or token; 503 the control plane cannot tell now.
#   Grants are kept {GRANT_SECONDS} s, or the whole seconds a grant's "X-Accel-Expires" says;
#   refusals and unknowns {REFUSAL_SECONDS} s, failures never: a student whose access ends is
#   refused within {GRANT_SECONDS} s (and the moment a background renewal takes).

{"".join(f'load_module "{module}";{chr(10)}' for module in MODULES)}
worker_processes auto;
pid "{root}/nginx.pid";
error_log "{root}/error.log" warn;

events {{
    worker_connections 4096;
}}

http {{
    server_tokens off;
    default_type application/octet-stream;
    client_body_temp_path "{root}/temp-client-body";
    proxy_temp_path "{root}/temp-proxy";
    fastcgi_temp_path "{root}/temp-fastcgi";
    uwsgi_temp_path "{root}/temp-uwsgi";
    scgi_temp_path "{root}/temp-scgi";

    # Identical concurrent /play/ requests wait for the first (request_flights.lua).
    lua_package_path "/usr/share/lua/5.1/?.lua;;";
    lua_shared_dict academia_flights {FLIGHTS_ZONE};
    init_by_lua_block {{
        academia_request_flights = (function()
{_request_flights()}
        end)()
    }}

    # Media shared between students (key without the token); playback checks per token.
    proxy_cache_path "{root}/cache-media" levels=1:2 use_temp_path=off {MEDIA_CACHE};
    proxy_cache_path "{root}/cache-auth" levels=1:2 use_temp_path=off {AUTH_CACHE};

    # The access log never holds a token, nor any query string (the chat WebSocket's
    # ticket is one): /play/{{session}}/-/{{file}}, the cache status, the origin. Paths
    # under /internal/ (refused here) may hold tokens too.
    map $uri $academia_log_path {{
        {_LOG_PLAY}
        "~^/internal/" /internal/-;
        default $uri;
    }}
    log_format academia_edge '$remote_addr [$time_local] "$request_method $academia_log_path" '
                             '$status $body_bytes_sent $request_time '
                             'cache=$upstream_cache_status origin=$academia_origin '
                             'upstream=$upstream_addr "$http_user_agent"';
    access_log "{root}/access.log" academia_edge;

    # Where the playback check's answer sends /play/: the named node, or any node for a
    # recording; a name this file does not know goes nowhere (502).
    map $academia_origin $academia_origin_upstream {{
        default academia_unknown_origin;
        {STORAGE_ORIGIN} academia_media_all;
{origin_map}
    }}
    # A blocking playlist request (_HLS_msn) is cached and collapsed; a plain reload is not.
    map $args $academia_plain_reload {{
        "~(^|&)_HLS_msn=" 0;
        default 1;
    }}
    map $academia_plain_reload $academia_playlist_flight {{
        0 "$academia_session/$academia_file?$args";
        default "";
    }}
    # The chat WebSocket's upgrade passes through; other requests keep connections open.
    map $http_upgrade $academia_connection {{
        default upgrade;
        "" "";
    }}

    upstream academia_control {{
{_servers(list(plan.controls))}
        keepalive 32;
    }}
{node_upstreams}
    upstream academia_media_all {{
{_servers([node.address for node in plan.media_nodes])}
        keepalive 32;
    }}
    upstream academia_unknown_origin {{
        server 127.0.0.1:9 down;
    }}

    server {{
        listen {plan.listen};
        server_name _;
        client_max_body_size {plan.max_body_bytes};

        # The API, pages, static files and /openapi.json.
        location / {{
            proxy_pass http://academia_control;
            proxy_http_version 1.1;
            proxy_set_header Connection $academia_connection;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 3s;
            proxy_next_upstream error timeout;
        }}
        # The chat WebSocket: open for as long as the class.
        location ~ "^/sessions/[0-9]+/chat$" {{
            proxy_pass http://academia_control;
            proxy_http_version 1.1;
            proxy_set_header Connection $academia_connection;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 3s;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
            proxy_next_upstream error timeout;
        }}
        # Between processes (node registry, playback checks): never from the public.
        location /internal/ {{
            return 404;
        }}

        # /play/ in a shape the media nodes do not serve: not found, nobody asked.
        location /play/ {{
            default_type application/json;
            add_header Cache-Control no-store always;
            add_header Access-Control-Allow-Origin * always;
            return 404 {_json_error("not_found", "no such playback file")};
        }}
        # Segments, parts and init files: immutable, shared by every student.
{_play_location(_PLAY + _MEDIA_FILE, cache=media_cache, upstream_uri=play_uri, hold=hold)}
        # Playlists: blocking ones shared for the second the origin allows, others not kept.
{_play_location(_PLAY + _PLAYLIST_FILE, cache=playlist_cache,
                upstream_uri=play_uri + "$is_args$args", hold=hold)}
        # The recording download and its poster: large and ranged; passed through.
{_play_location(_PLAY + _DOWNLOAD_FILE, cache=download_cache, upstream_uri=play_uri, hold=hold)}
        # The playback check, asked of the control plane (the contract is at the top).
        location = /_academia/playback-check {{
            internal;
            proxy_pass http://academia_control{CHECK_PATH}/$academia_session/$academia_token;
            proxy_method GET;
            proxy_pass_request_headers off;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Authorization "Bearer {secret}";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 2s;
            proxy_read_timeout 5s;
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_cache academia_auth;
            proxy_cache_key $academia_session/$academia_token;
            proxy_cache_valid 204 {GRANT_SECONDS}s;
            proxy_cache_valid 403 404 {REFUSAL_SECONDS}s;
            # Past its window an answer is renewed in the background, the student's
            # request answered by the old one meanwhile: a class that joined together
            # would otherwise wait on the control plane together, every window.
            proxy_cache_use_stale updating;
            proxy_cache_background_update on;
            # X-Accel-Expires is the check's word on how long a grant may be kept.
            proxy_ignore_headers Cache-Control Expires Set-Cookie Vary;
        }}
        location @academia_refused {{
            default_type application/json;
            add_header Cache-Control no-store always;
            add_header Access-Control-Allow-Origin * always;
            return 403 {_json_error("forbidden", "this playback token may not play this")};
        }}
        location @academia_check_failed {{
            default_type application/json;
            add_header Cache-Control no-store always;
            add_header Access-Control-Allow-Origin * always;
            if ($academia_check_status = 404) {{
                return 404 {_json_error("not_found", "no such session or token")};
            }}
            return 503 {_json_error("control_unavailable",
                                    "playback cannot be checked now; retry")};
        }}
    }}
}}
"""


def edge_config(settings: Settings, prefix: Path) -> str:
    """The edge's nginx.conf for these settings; SettingsError names a bad value."""
    return render_nginx_config(edge_plan(settings), prefix)
