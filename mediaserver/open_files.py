"""The process's open-files limit (RLIMIT_NOFILE) against the connections a server promises.

Every connection is a file descriptor. A connection cap above what the limit allows is a
lie that ends in EMFILE at the worst moment: accept() fails, and so does everything else
that opens a file (segments, the database, ffmpeg's pipes). So at start, `fit_connection_cap`
makes sure `cap + reserve` descriptors fit:

* the soft limit is raised, up to the hard limit, when it is lower (an unprivileged
  process may do that; Debian's default soft limit is 1024, the hard one far higher);
* if even the hard limit is too low, the cap is lowered to what fits, with a warning that
  says which setting and how to raise the limit. Refusing to start would take a whole
  node down over a setting whose default most containers cannot hold; a smaller cap only
  refuses some connections. Only when nothing is left for connections at all does it
  refuse to start (`TooFewOpenFiles`).
"""

from __future__ import annotations

import logging
import resource

__all__ = ["TooFewOpenFiles", "fit_connection_cap"]

log = logging.getLogger("mediaserver.open_files")


class TooFewOpenFiles(RuntimeError):
    """The open-files limit leaves no room for a single connection."""


def fit_connection_cap(cap: int, *, reserve: int, setting: str) -> int:
    """The connection cap that fits the open-files limit, raising the soft limit if needed.

    `reserve` descriptors are kept for everything but these connections; `setting` names
    the cap in log lines.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = cap + reserve
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return cap
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s",
                        soft, target, exc)
        else:
            log.info("raised the open-files limit from %d to %d for %s = %d",
                     soft, target, setting, cap)
            soft = target
    if soft >= needed:
        return cap
    fitting = soft - reserve
    if fitting < 1:
        raise TooFewOpenFiles(
            f"the open-files limit ({soft}) leaves no room for connections: {reserve} are "
            f"kept for files, workers and HTTP; raise it (ulimit -n, LimitNOFILE=, "
            f"docker --ulimit nofile=...)"
        )
    log.warning(
        "%s = %d does not fit the open-files limit (%d, hard %d; %d kept for files, workers "
        "and HTTP): using %d; raise the hard limit (ulimit -Hn, LimitNOFILE=, docker "
        "--ulimit nofile=...) to allow more", setting, cap, soft, hard, reserve, fitting,
    )
    return fitting
