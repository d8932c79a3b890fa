"""media: what the bot knows about video files, with no Discord, database or provider in sight.

* :func:`probe` says what a file is (:class:`VideoInfo`) or raises :class:`NotAVideo`;
* :func:`fit` re-encodes it into an H.264/AAC MP4 under a byte limit, or raises :class:`CannotFit`
  with a sentence a member can read;
* :func:`last_frame` and :func:`poster` take a still picture from it (:class:`Still`).

Every function is a coroutine that runs ``ffmpeg`` in a child process and waits for it: the work never
happens on the event loop, at most ``MEDIA_WORKERS`` children run at once for the whole bot, and each
is killed at ``MEDIA_TIMEOUT_SECONDS`` (:class:`MediaTimeout`). That is :class:`MediaRunner`'s job;
the functions use the process-wide runner (:func:`configure` sets it up from the settings) unless
given one with ``runner=``. Outputs are written to a file (``dest=``, or a new temporary file the
caller deletes); nothing here holds a video in memory.

**Why the ffmpeg binary of imageio-ffmpeg, not PyAV.** Both ship FFmpeg with libx264 and the AAC
encoder inside their wheels for Linux x86_64 and aarch64 on Python 3.11 (``imageio-ffmpeg`` 0.8.1:
ffmpeg 9.0.2; ``av`` 18.1.0: FFmpeg's libraries; both checked by encoding), so neither needs a system
package. The binary wins on the three things this package must promise:

* **A hard time limit is a kill.** A child ffmpeg that runs too long gets SIGKILL, and nothing in the
  bot's process is left in a strange state. PyAV would run in a process pool, whose stuck worker
  cannot be killed without breaking the pool.
* **ffmpeg does the whole transcode.** Demuxing, decoding, scaling, audio resampling, timestamps and
  ``+faststart`` are ffmpeg's own well-worn pipeline, not a loop over frames written here.
* **Memory is ffmpeg's alone.** The child holds only ffmpeg (no second Python interpreter), and the
  bot holds two small pipes.

What it costs: the wheel carries no ``ffprobe``, so :func:`probe` reads ffmpeg's report, a format
stable for many years, from a binary pinned to one version (see :mod:`media.info`).
"""

from __future__ import annotations

from media.encode import Fitted, Plan, budget_for, fit, plan_encode
from media.errors import CannotFit, MediaError, MediaTimeout, NotAVideo
from media.frames import MAX_STILL_BYTES, Still, StillKind, last_frame, poster
from media.info import VideoInfo, probe
from media.runner import MediaRunner, configure, default_runner

__all__ = [
    "MAX_STILL_BYTES",
    "CannotFit",
    "Fitted",
    "MediaError",
    "MediaRunner",
    "MediaTimeout",
    "NotAVideo",
    "Plan",
    "Still",
    "StillKind",
    "VideoInfo",
    "budget_for",
    "configure",
    "default_runner",
    "fit",
    "last_frame",
    "plan_encode",
    "poster",
    "probe",
]
