"""Low-Latency HLS packaging of ffmpeg's fragmented MP4 (CMAF): sans-I/O, bytes in, parts out.

`boxes` splits the byte stream into ISO-BMFF boxes, `fragments` reads the few fields that
packaging needs (timescales, decode times, durations, sync samples), and `packager` turns
one rendition's stream into its init segment and its parts, cut into segments on a grid
shared by every rendition of the same ffmpeg.
"""

from transcode.cmaf.boxes import DEFAULT_MAX_BOX_BYTES, Box, BoxSplitter, CmafError, iter_children
from transcode.cmaf.fragments import (
    FragmentInfo,
    InitInfo,
    TrackFragment,
    TrackInfo,
    parse_fragment,
    parse_init,
)
from transcode.cmaf.packager import CmafPackager, Init, Part

__all__ = [
    "DEFAULT_MAX_BOX_BYTES",
    "Box",
    "BoxSplitter",
    "CmafError",
    "CmafPackager",
    "FragmentInfo",
    "Init",
    "InitInfo",
    "Part",
    "TrackFragment",
    "TrackInfo",
    "iter_children",
    "parse_fragment",
    "parse_init",
]
