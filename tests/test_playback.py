"""Clips as a browser plays them (auditor.playback): which file is served, and what is ready without a
conversion."""

from __future__ import annotations

from auditor.playback import TRANSCODED_MIME, playback_file, playback_file_ready
from tests.fakerun import write_tiny_clip
from tests.media import write_clip


def test_a_clip_that_needs_converting_is_ready_only_once_converted(tmp_path):
    data = tmp_path / "data"
    mp4 = write_tiny_clip(data / "a.mp4")
    assert playback_file_ready(data, mp4) == (mp4, "video/mp4") == playback_file(data, mp4)
    avi = write_clip(data / "b.avi", container="avi", vcodec="mpeg4", acodec="mp3")
    assert playback_file_ready(data, avi) is None  # nothing converted by asking
    copy, mime = playback_file(data, avi)
    assert mime == TRANSCODED_MIME and copy != avi and copy.is_file()
    assert playback_file_ready(data, avi) == (copy, TRANSCODED_MIME)
