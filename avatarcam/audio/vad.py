"""Voice activity (webrtcvad): is the user speaking right now?

`VoiceActivity`: the daemon reports it (`avatarcam ctl status`, the tray). `SpeechGate`: the
diffusion motion engine hears what is not speech as silence (the DSP driver has its own noise
floor); it runs inside the engine, so live and offline frames stay the same. webrtcvad judges
10, 20 or 30 ms frames of 16-bit audio; a short hangover keeps the flag up through the stops and
gaps inside a sentence.
"""

from __future__ import annotations

import numpy as np

from avatarcam.audio import mel

FRAME_S = 0.02  # webrtcvad's frame: 10, 20 or 30 ms
HANGOVER_S = 0.3  # speech stays "on" this long after the last voiced frame


class _PcmFrames:
    """Float audio in any pieces -> whole 16-bit frames of `size` samples, as webrtcvad takes them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pending = np.zeros(0, np.int16)

    def push(self, samples: np.ndarray) -> list[bytes]:
        pcm = (np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767).astype(np.int16)
        data = np.concatenate([self._pending, pcm])
        whole = len(data) // self.size * self.size
        self._pending = data[whole:]
        return [data[i:i + self.size].tobytes() for i in range(0, whole, self.size)]

    def flush(self) -> list[bytes]:
        """The last, partial frame padded with silence, if any."""
        if not len(self._pending):
            return []
        frame = np.concatenate([self._pending, np.zeros(self.size - len(self._pending), np.int16)])
        self._pending = np.zeros(0, np.int16)
        return [frame.tobytes()]


class VoiceActivity:
    """Feed any chunks of 16 kHz mono float audio; `speaking` follows the voice."""

    def __init__(self, aggressiveness: int = 2, rate: int = 16000) -> None:
        import webrtcvad  # webrtcvad-wheels provides the module

        self._vad = webrtcvad.Vad(aggressiveness)
        self.rate = rate
        self._frames = _PcmFrames(int(FRAME_S * rate))
        self._hangover = int(round(HANGOVER_S / FRAME_S))
        self._since_voice = self._hangover + 1
        self.voiced_frames = self.frames = 0

    def push(self, samples: np.ndarray) -> bool:
        for frame in self._frames.push(samples):
            voiced = self._vad.is_speech(frame, self.rate)
            self.frames += 1
            self.voiced_frames += voiced
            self._since_voice = 0 if voiced else self._since_voice + 1
        return self.speaking

    @property
    def speaking(self) -> bool:
        return self._since_voice <= self._hangover


class SpeechGate:
    """Which 10 ms frames of a stream are speech, decided causally as the samples arrive.

    For the motion model: it learned silence as silence, and hears steady room noise or hiss as a
    voice (its mouth would hang half open). Frames the gate calls not-speech are shown to it as
    silence. A frame is voiced when webrtcvad says so and it stands MARGIN_DB above the room's
    noise floor (webrtcvad alone lets a burst of steady hiss through now and then); it is speech
    when NEED of the last OF frames are voiced (a lone voiced frame is not speech), and stays so
    for `hangover_s` (the stops and gaps inside a phrase). Frame k covers samples
    [k * 160, (k + 1) * 160) at 16 kHz, so frame k is decided once those samples are in: the gate
    adds no latency.

    Music passes it (webrtcvad calls a guitar voiced, and periodicity does not tell them apart:
    docs/decisions.md); a motion model that heard a band in training keeps the mouth shut there
    itself (`avatarcam/corpus/build.py`).
    """

    FRAME = 160  # 10 ms at 16 kHz
    NEED, OF = 2, 3
    MARGIN_DB = 6.0
    # The floor follows the quietest frames at once and creeps up 3 dB a second, so a louder room
    # is learnt in seconds while a sentence (with its pauses and closures) never lifts it far.
    FLOOR_RISE_DB = 0.03

    def __init__(self, aggressiveness: int = 2, rate: int = 16000, hangover_s: float = 0.2) -> None:
        import webrtcvad

        if rate != 16000:
            raise ValueError(f"the speech gate takes 16 kHz audio, not {rate} Hz")
        self._vad = webrtcvad.Vad(aggressiveness)
        self._frames = _PcmFrames(self.FRAME)
        self._recent = [False] * self.OF
        self._hangover = int(round(hangover_s / 0.01))
        self._since_speech = self._hangover + 1
        self._floor_db = np.inf

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Decisions (bool per 10 ms frame) for the frames these samples complete."""
        return np.array([self._decide(f) for f in self._frames.push(samples)], bool)

    def flush(self) -> np.ndarray:
        """The last, partial frame (padded with silence), if any."""
        return np.array([self._decide(f) for f in self._frames.flush()], bool)

    def _decide(self, frame: bytes) -> bool:
        pcm = np.frombuffer(frame, np.int16).astype(np.float32)
        level_db = 10 * np.log10(float(pcm @ pcm) / len(pcm) + 1.0)  # +1: digital silence is 0 dB
        self._floor_db = min(self._floor_db + self.FLOOR_RISE_DB, level_db)
        voiced = level_db > self._floor_db + self.MARGIN_DB and self._vad.is_speech(frame, 16000)
        self._recent = self._recent[1:] + [voiced]
        self._since_speech = 0 if sum(self._recent) >= self.NEED else self._since_speech + 1
        return self._since_speech <= self._hangover


class GatedMelStream:
    """`mel.MelStream` whose rows outside speech (`SpeechGate`) are silence (FLOOR_DB)."""

    def __init__(self) -> None:
        self._mel = mel.MelStream()
        self._gate = SpeechGate()
        self._speech = np.zeros(0, bool)  # the gate's decisions, per 10 ms from frame `_first` on
        self._first = 0
        self._rows = 0  # mel rows made so far

    def push(self, samples: np.ndarray) -> np.ndarray:
        self._speech = np.concatenate([self._speech, self._gate.push(samples)])
        return self._gated(self._mel.push(samples))

    def flush(self) -> np.ndarray:
        self._speech = np.concatenate([self._speech, self._gate.flush()])
        return self._gated(self._mel.flush())

    def _gated(self, rows: np.ndarray) -> np.ndarray:
        # mel row r is centred on sample 160 r (its window reaches 10 ms frames r - 1 to r + 1);
        # it is speech if frame r - 1 or r is, both decided by the time the row is complete
        index = np.arange(self._rows, self._rows + len(rows)) - self._first
        speech = np.zeros(len(rows), bool)
        for k in (index - 1, index):
            inside = (k >= 0) & (k < len(self._speech))
            speech[inside] |= self._speech[k[inside]]
        self._rows += len(rows)
        drop = int(np.clip(self._rows - 1 - self._first, 0, len(self._speech)))  # no later row needs them
        self._speech, self._first = self._speech[drop:], self._first + drop
        return np.where(speech[:, None], rows, mel.FLOOR_DB).astype(np.float32)
