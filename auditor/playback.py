"""Clips as a browser plays them, for the Review page (playback only: the model decodes the original file).

A browser plays H.264 (8-bit 4:2:0) with AAC or MP3 in MP4, and VP8/VP9/AV1 with Opus or Vorbis in WebM
(:data:`BROWSER_FORMATS`). Such a clip is served as it is; any other (UCF101's Xvid-in-AVI, Matroska, MPEG-4
Part 2, FLAC sound, ...) is transcoded once with PyAV (:func:`auditor.data.mux.transcode`: H.264 + AAC in MP4)
into the data set's playback cache, ``<work folder>/playback/<key>.mp4`` (:mod:`auditor.workspace`), where
``key`` = sha1 of the file's absolute path, size and modification time: a changed clip is converted again.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import av
from PIL import Image

from auditor.data.mux import transcode
from auditor.errors import UserError
from auditor.text import error_text
from auditor.workspace import PLAYBACK, work_folder

# Suffix -> (MIME type, demuxer name PyAV reports, video codecs, audio codecs) a browser plays as they are.
BROWSER_FORMATS = {
    ".mp4": ("video/mp4", "mp4", {"h264"}, {"aac", "mp3"}),
    ".m4v": ("video/mp4", "mp4", {"h264"}, {"aac", "mp3"}),
    ".webm": ("video/webm", "webm", {"vp8", "vp9", "av1"}, {"opus", "vorbis"}),
}
# Pixel formats of H.264 that browsers decode (10-bit and 4:4:4 profiles are not widely supported).
BROWSER_PIX_FMTS = {"yuv420p", "yuvj420p"}
TRANSCODED_MIME = "video/mp4"
THUMB_SIZE = 160  # px, the longer side of a thumbnail
THUMBS = "thumbs"  # the thumbnails' folder inside the playback cache
_LOCK = threading.Lock()  # one conversion at a time in this process (the app's sessions share it)


class PlaybackError(UserError):
    """A clip cannot be made playable in a browser; the message names the file and the reason."""


def browser_mime(path: str | os.PathLike[str]) -> str | None:
    """The MIME type to serve ``path`` with when a browser plays it as it is, else None (it needs converting).
    Raises PlaybackError when the file cannot be opened at all."""
    path = Path(path)
    known = BROWSER_FORMATS.get(path.suffix.lower())
    if known is None:
        return None
    mime, demuxer, video_codecs, audio_codecs = known
    try:
        with av.open(str(path)) as container:
            if demuxer not in container.format.name.split(","):
                return None
            video = container.streams.video
            if not video or video[0].codec_context.name not in video_codecs:
                return None
            if video[0].codec_context.name == "h264" and video[0].codec_context.pix_fmt not in BROWSER_PIX_FMTS:
                return None
            audio = container.streams.audio
            return mime if not audio or audio[0].codec_context.name in audio_codecs else None
    except (av.error.FFmpegError, OSError) as err:
        raise PlaybackError(f"{path.name}: cannot be opened ({error_text(err)})") from None


def playback_file(data_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> tuple[Path, str]:
    """(file, MIME type) a browser plays for clip file ``path`` of data set ``data_dir``: the clip itself when
    it plays as it is, else its converted copy in the playback cache (converted now when missing). Raises
    PlaybackError naming the clip and the reason when it cannot be converted."""
    path = Path(path)
    mime = browser_mime(path)
    if mime is not None:
        return path, mime
    target = cached_copy(data_dir, path)
    if not target.is_file():
        _convert(path, target)
    return target, TRANSCODED_MIME


def playback_file_ready(data_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> tuple[Path, str] | None:
    """What :func:`playback_file` returns for clip ``path``, but only when nothing has to be converted now: the
    clip itself when it plays as it is, its converted copy when the playback cache already has it, else None.
    Raises PlaybackError when the file cannot be opened at all."""
    path = Path(path)
    mime = browser_mime(path)
    if mime is not None:
        return path, mime
    target = cached_copy(data_dir, path)
    return (target, TRANSCODED_MIME) if target.is_file() else None


def thumbnail(data_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> bytes:
    """A JPEG of the frame in the middle of clip ``path`` (longer side THUMB_SIZE), made once and kept in the
    playback cache. Raises PlaybackError when the clip has no decodable picture."""
    path = Path(path)
    target = _thumbnail_file(data_dir, path)
    if not target.is_file():
        try:
            image = _middle_frame(path)
        except (av.error.FFmpegError, OSError, IndexError, StopIteration) as err:
            raise PlaybackError(f"{path.name}: no picture for a thumbnail ({error_text(err)})") from None
        image.thumbnail((THUMB_SIZE, THUMB_SIZE))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.stem}-{os.getpid()}-{threading.get_ident()}.jpg")
        image.save(tmp, format="JPEG", quality=85)
        os.replace(tmp, target)
    return target.read_bytes()


def cached_thumbnail(data_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> bytes | None:
    """The JPEG :func:`thumbnail` made of clip ``path`` when the playback cache has it, else None (nothing is
    decoded). Raises OSError when the clip file is gone."""
    target = _thumbnail_file(data_dir, Path(path))
    try:
        return target.read_bytes()
    except FileNotFoundError:
        return None


def _thumbnail_file(data_dir: str | os.PathLike[str], path: Path) -> Path:
    copy = cached_copy(data_dir, path)
    return copy.parent / THUMBS / f"{copy.stem}.jpg"


def _middle_frame(path: Path) -> Image.Image:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        seconds = float(stream.duration * stream.time_base) if stream.duration else \
            (container.duration or 0) / av.time_base
        if seconds > 0:
            container.seek(int(seconds / 2 / stream.time_base), stream=stream)
        return next(container.decode(stream)).to_image()


def cached_copy(data_dir: str | os.PathLike[str], path: Path) -> Path:
    """Where the converted copy of ``path`` lives (whether it exists yet or not)."""
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:24]
    return work_folder(data_dir) / PLAYBACK / f"{key}.mp4"


def _convert(src: Path, target: Path) -> None:
    """Transcode ``src`` to ``target`` under a temporary name (concurrent callers never see a partial file)."""
    tmp = target.with_name(f".{target.stem}-{os.getpid()}-{threading.get_ident()}.mp4")
    with _LOCK:
        if target.is_file():  # another session converted it while this one waited
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            transcode(src, tmp)
            os.replace(tmp, target)
        except (av.error.FFmpegError, OSError, IndexError, ValueError) as err:
            raise PlaybackError(f"{src.name}: cannot be converted for playback in the browser "
                                f"({error_text(err)})") from None
        finally:
            tmp.unlink(missing_ok=True)

