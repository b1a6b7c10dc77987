"""Voice activity (webrtcvad): is the user speaking right now?

The daemon reports it (`avatarcam ctl status`, the tray). The mouth itself follows the motion
engine, which has its own noise floor, so live and offline frames stay the same. webrtcvad
judges 10, 20 or 30 ms frames of 16-bit audio; a short hangover keeps the flag up through the
stops and gaps inside a sentence.
"""

from __future__ import annotations

import numpy as np

FRAME_S = 0.02  # webrtcvad's frame: 10, 20 or 30 ms
HANGOVER_S = 0.3  # speech stays "on" this long after the last voiced frame


class VoiceActivity:
    """Feed any chunks of 16 kHz mono float audio; `speaking` follows the voice."""

    def __init__(self, aggressiveness: int = 2, rate: int = 16000) -> None:
        import webrtcvad  # webrtcvad-wheels provides the module

        self._vad = webrtcvad.Vad(aggressiveness)
        self.rate = rate
        self._frame = int(FRAME_S * rate)
        self._pending = np.zeros(0, np.int16)
        self._hangover = int(round(HANGOVER_S / FRAME_S))
        self._since_voice = self._hangover + 1
        self.voiced_frames = self.frames = 0

    def push(self, samples: np.ndarray) -> bool:
        pcm = (np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767).astype(np.int16)
        data = np.concatenate([self._pending, pcm])
        whole = len(data) // self._frame * self._frame
        for start in range(0, whole, self._frame):
            voiced = self._vad.is_speech(data[start:start + self._frame].tobytes(), self.rate)
            self.frames += 1
            self.voiced_frames += voiced
            self._since_voice = 0 if voiced else self._since_voice + 1
        self._pending = data[whole:]
        return self.speaking

    @property
    def speaking(self) -> bool:
        return self._since_voice <= self._hangover
