"""The synthetic training corpus of the motion model: speech with exact phoneme timings
(espeak-ng), teacher motion tracks made from those timings, and microphone-like degradation."""
