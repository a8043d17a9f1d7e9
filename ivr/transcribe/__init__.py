"""Offline transcripts of the name and reason recordings, and the red-flag words in them.

engines.py: the engine interface and its registration table (faster-whisper, PocketSphinx);
audio.py: recordings as the 16 kHz samples engines take; worker.py: the process pool that
runs an engine off the call's event loop; service.py: one transcript per recording, started
the moment it is sealed, stored sealed; redflags.py: the pure phrase matcher.
"""
