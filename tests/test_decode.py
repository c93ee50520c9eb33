"""decode_clip: frames and sound of real files, and a typed problem for files that cannot be used."""

import numpy as np
import pytest

from auditor.data.decode import DecodeError, decode_clip
from auditor.data.features import SILENCE, crop_or_pad_time, frame_indices, log_mel
from tests.media import write_clip


def test_frames_and_sound_are_decoded(tmp_path):
    clip = write_clip(tmp_path / "a.mp4", seconds=2.0, size=(80, 60), tone_hz=1000.0)
    dec = decode_clip(clip, num_frames=8, size=32)
    assert dec.frames.shape == (8, 32, 32, 3) and dec.frames.dtype == np.uint8
    assert dec.has_audio and abs(dec.duration - 2.0) < 0.1
    assert dec.audio.shape == (32_000,)
    # the sine survived decoding: loud, and its energy is near 1 kHz
    assert np.abs(dec.audio).max() > 0.1
    spectrum = np.abs(np.fft.rfft(dec.audio))
    assert abs(np.argmax(spectrum) * 16_000 / dec.audio.size - 1000) < 20
    # frames differ over time (they are sampled across the clip, not one frame repeated)
    assert np.abs(dec.frames[0].astype(int) - dec.frames[-1].astype(int)).mean() > 5


def test_no_audio_stream_gives_silence(tmp_path):
    clip = write_clip(tmp_path / "silent.mp4", seconds=1.0, tone_hz=None)
    dec = decode_clip(clip, num_frames=4, size=16)
    assert not dec.has_audio and dec.audio.size == 16_000 and not dec.audio.any()


@pytest.mark.parametrize("content,kind", [(b"", "empty_file"), (b"hello, not a video\n" * 50, "not_media")])
def test_unusable_files_raise_typed_problem(tmp_path, content, kind):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(DecodeError) as err:
        decode_clip(bad)
    assert err.value.kind == kind


def test_audio_only_file_is_no_video_stream(tmp_path):
    import av

    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16_000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16_000
        for pkt in stream.encode(frame):
            out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    with pytest.raises(DecodeError) as err:
        decode_clip(path)
    assert err.value.kind == "no_video_stream"


def test_log_mel_shape_and_silence():
    mel = log_mel(np.zeros(16_000, np.float32))
    assert mel.shape == (64, 101)
    assert np.allclose(mel, SILENCE, atol=1e-3)
    tone = np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000).astype(np.float32)
    assert log_mel(tone).max() > 0


def test_crop_or_pad_and_frame_indices():
    mel = np.arange(10, dtype=np.float32)[None].repeat(2, 0)
    assert crop_or_pad_time(mel, 4).tolist()[0] == [3, 4, 5, 6]
    padded = crop_or_pad_time(mel, 14)
    assert padded.shape == (2, 14) and padded[0, 0] == SILENCE and padded[0, 2] == 0
    assert frame_indices(8, 4).tolist() == [0, 2, 4, 6] or frame_indices(8, 4).tolist() == [1, 3, 5, 7]
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = frame_indices(8, 4, rng)
        assert all(2 * k <= i < 2 * k + 2 for k, i in enumerate(idx))
