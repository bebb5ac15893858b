"""RenditionTrack's rendition report: what other playlists say of this rendition's edge."""

from __future__ import annotations

from transcode.rendition_track import RenditionTrack


def _track_with_one_segment() -> RenditionTrack:
    track = RenditionTrack("sd", part_target=0.2)
    track.new_init(b"init")
    for index in range(3):
        track.add_part(b"part", 0.2, index == 0, index == 0, start=index * 0.2)
    return track


def test_report_names_the_last_part_being_made() -> None:
    assert _track_with_one_segment().report() == (0, 2)


def test_report_after_a_segment_closed_names_its_last_part() -> None:
    # Between runs (the stream ended, nothing open) the report still names the last
    # part, which players near the edge have: LAST-PART is not dropped.
    track = _track_with_one_segment()
    track.close_segment()
    assert track.report() == (0, 2)


def test_report_of_an_empty_track() -> None:
    assert RenditionTrack("sd", part_target=0.2).report() == (0, None)
