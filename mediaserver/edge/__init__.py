"""The nginx edge in front of control processes and media nodes: `academia edge-config`.

`edge_plan` reads and checks the `[cluster]` settings the edge needs; `nginx_config`
turns that plan into a whole nginx.conf. Nothing here runs nginx: operators (and the
tests) start Debian's nginx with the printed file.
"""
