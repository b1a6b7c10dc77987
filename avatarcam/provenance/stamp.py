"""The provenance stage of the frame chain: every frame gets the invisible watermark and the label.

The frame chain passes each rendered frame through a :class:`Provenance` before the sink, offline
and live alike; its callers must give one, made from their own settings (the label's look, the
installation the watermark names). There is deliberately no way to switch either part off: no
setting, no argument. A stage names one profile (`Provenance.for_profile`), or no one
(`watermark.UNATTRIBUTED`: installation 0, record 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .label import Label, LabelStyle
from .watermark import Payload, Watermarker

if TYPE_CHECKING:
    from avatarcam.config import Settings


def payload_for(consent, settings: Settings) -> Payload:
    """The payload naming this installation (by `settings`' key) and `consent` (a ConsentRecord)."""
    from avatarcam.provenance.consent import installation_key, public_hex

    return Payload.for_record(public_hex(installation_key(settings).public_key()), consent.record_id)


class Provenance:
    """Watermark then label, for frames of one size: ``marked = Provenance(size, payload, settings)(frame)``.

    Returns a new frame (the input is left as it is) unless called with ``in_place=True``, as the
    renderers do with their fresh frames. One stage marks one profile's frames: the live daemon
    makes a stage with each profile it puts on air (`chain.Shot`).
    """

    def __init__(self, size: tuple[int, int], payload: Payload, settings: Settings) -> None:
        self.settings = settings
        self.size = (int(size[0]), int(size[1]))
        self.watermark = Watermarker(self.size, payload)
        self.label = Label(self.size, LabelStyle.from_settings(settings))

    @classmethod
    def for_profile(cls, profile, size: tuple[int, int], settings: Settings) -> Provenance:
        """The stage for rendering `profile`: its consent record and this installation in the payload."""
        return cls(size, payload_for(profile.consent, settings), settings)

    @property
    def payload(self) -> Payload:
        return self.watermark.payload

    def __call__(self, frame: np.ndarray, in_place: bool = False) -> np.ndarray:
        """The frame watermarked and labelled: a new array, or `frame` itself when `in_place`."""
        return self.label.draw(self.watermark(frame, in_place=in_place))
