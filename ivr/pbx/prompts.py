"""Text-to-speech prompts: espeak-ng then sox to 8 kHz mono WAV, cached by content hash.

Prompts are made ahead of time (at PBX start and rules load), never while a caller waits.
The text is passed on standard input, never on a command line, so admin-written text
cannot become an option or reach a shell.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ivr.secure import files
from ivr.texts import en

#: The fallback dialplan's own prompts (ivr.texts.en): fixed, it runs without the
#: controller.
FALLBACK_PROMPTS = en.FALLBACK


class PromptError(RuntimeError):
    """A prompt could not be generated; the message names the tool that is missing."""


def cache_key(text: str, voice: str = "en-us", speed: int = 160) -> str:
    return hashlib.sha256(f"{voice}\0{speed}\0{text}".encode()).hexdigest()[:24]


def synthesize(text: str, cache_dir: Path, voice: str = "en-us", speed: int = 160) -> Path:
    """A prompt file for `text` (8 kHz, mono, 16-bit WAV), generated once per content."""
    files.private_dir(cache_dir)
    target = cache_dir / f"tts-{cache_key(text, voice, speed)}.wav"
    if target.exists() and target.stat().st_size > 44:
        return target
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if not espeak or not sox:
        raise PromptError("espeak-ng and sox are needed for prompts: apt-get install "
                          "espeak-ng sox (make run does it)")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run([espeak, "-v", voice, "-s", str(speed), "-w", str(raw), "--stdin"],
                       input=text.encode(), check=True, capture_output=True, timeout=60)
        part = target.with_suffix(".part.wav")
        subprocess.run([sox, str(raw), "-r", "8000", "-c", "1", "-b", "16", str(part)],
                       check=True, capture_output=True, timeout=60)
        os.chmod(part, files.FILE_MODE)  # sox made it with the umask of the moment
        part.replace(target)
    return target


def install(text: str, dest: Path, cache_dir: Path, voice: str = "en-us") -> Path:
    """Generate (or reuse) the prompt for `text`, spoken by espeak-ng's `voice` (the
    language's, ivr.texts: VOICE), and place it at dest (a .wav path).

    Run as root, the file (and any folder made for it) takes the owner of the folder it
    lands in, 0600/0700: prompts go into the PBX user's sounds folder, and Asterisk, not
    running as root, must be able to read them.
    """
    source = synthesize(text, cache_dir, voice)
    _make_folder(dest.parent)
    data = source.read_bytes()
    if dest.is_symlink() or not dest.is_file() or dest.read_bytes() != data:
        # A new file renamed into place: a link planted at dest is replaced, not followed.
        part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        part.unlink(missing_ok=True)
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                _like_folder(out.fileno(), dest.parent, 0o600)
            part.replace(dest)
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise
    return dest


def _make_folder(folder: Path) -> None:
    if folder.is_dir():
        return
    _make_folder(folder.parent)
    with contextlib.suppress(FileExistsError):
        folder.mkdir()
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        _like_folder(fd, folder.parent, 0o700)
    finally:
        os.close(fd)


def _like_folder(fd: int, folder: Path, mode: int) -> None:
    """As root: give what fd names the owner of `folder`, with `mode`."""
    if os.geteuid() != 0:
        return
    st = folder.stat()
    if st.st_uid != 0:
        os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, mode)
