"""The transcription settings: read from IVR_* variables, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.config import ConfigError, from_env, to_env
from ivr.transcribe.registry import DEFAULT_ENGINE, ENGINES


def test_defaults_and_values():
    s = from_env({})
    assert (s.transcribe_engine, s.transcribe_model_path, s.transcribe_workers) == \
        (DEFAULT_ENGINE, None, 1)
    assert list(ENGINES) == ["whisper", "pocketsphinx"]
    s = from_env({"IVR_TRANSCRIBE_ENGINE": "pocketsphinx", "IVR_TRANSCRIBE_WORKERS": "2",
                  "IVR_TRANSCRIBE_MODEL_PATH": "/opt/models/whisper-small"})
    assert s.transcribe_model_path == Path("/opt/models/whisper-small")
    assert from_env(to_env(s)) == s
    assert to_env(from_env({}))["IVR_TRANSCRIBE_MODEL_PATH"] == ""  # none: read back as none


@pytest.mark.parametrize(("env", "named"), [
    ({"IVR_TRANSCRIBE_ENGINE": "cloud"}, "IVR_TRANSCRIBE_ENGINE='cloud'"),
    ({"IVR_TRANSCRIBE_WORKERS": "0"}, "IVR_TRANSCRIBE_WORKERS=0"),
    ({"IVR_TRANSCRIBE_WORKERS": "two"}, "IVR_TRANSCRIBE_WORKERS='two': expected a whole"),
])
def test_bad_values_are_named(env, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        from_env(env)
