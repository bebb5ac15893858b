"""recording_quality: which renditions a recording keeps (transcode/recording_quality.py)."""

from __future__ import annotations

import pytest

from transcode.ladder import SOURCE_NAME, Rendition
from transcode.recording_quality import check_quality, kept_renditions

HD = Rendition("hd", "HD", 1280, 720, 2500, 0, False, "avc1.64001f")
SD = Rendition("sd", "SD", 854, 480, 1000, 0, False, "avc1.64001e")
MOBILE = Rendition("mobile", "mobile", 640, 360, 600, 0, False, "avc1.64001e")
AUDIO = Rendition("audio", "audio only", 0, 0, 0, 64, True, "mp4a.40.2")
LADDER = [HD, SD, MOBILE, AUDIO]
RECORDED = {"hd", "sd", "mobile", "audio", SOURCE_NAME}


@pytest.mark.parametrize(("quality", "kept"), [
    ("all", RECORDED),
    ("HD", {"hd", "audio"}),
    ("sd", {"sd", "audio"}),
    ("source", {SOURCE_NAME}),
])
def test_each_setting_keeps(quality: str, kept: set[str]) -> None:
    assert kept_renditions(quality, LADDER, RECORDED, source_known=True) == kept


def test_a_source_below_the_label_keeps_its_tallest_rung() -> None:
    assert kept_renditions("HD", [SD, MOBILE, AUDIO], {"sd", "mobile", "audio", "source"},
                           source_known=True) == {"sd", "audio"}


def test_source_without_its_description_keeps_everything() -> None:
    # Another node began the class and died: no variant to name, so nothing is dropped.
    assert kept_renditions("source", LADDER, RECORDED, source_known=False) == RECORDED


def test_passthrough_keeps_the_source_whatever_the_setting() -> None:
    assert kept_renditions("SD", [], {SOURCE_NAME}, source_known=False) == {SOURCE_NAME}


def test_unknown_settings_are_refused() -> None:
    assert check_quality("hd") == "HD"
    with pytest.raises(ValueError, match="recording_quality"):
        check_quality("4K")
