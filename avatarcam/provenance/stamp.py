"""The provenance stage of the frame chain: every frame gets the invisible watermark and the label.

`chain.run` passes each rendered frame through a :class:`Provenance` before the sink, offline and
live alike; its callers must give one, made from their own settings (the label's look, the
installation the watermark names). There is deliberately no way to switch either part off: no
setting, no argument. A stage with a `source` (the live daemon's renderer) follows the profile on
air; one without names its profile, or no one (*unattributed*: installation 0, record 0).
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from .label import Label, LabelStyle
from .watermark import UNATTRIBUTED, Payload, Watermarker

log = logging.getLogger(__name__)


def payload_for(consent, settings=None) -> Payload:
    """The payload naming this installation and `consent` (a ConsentRecord)."""
    from cryptography.hazmat.primitives import serialization

    from avatarcam.config import load_settings
    from avatarcam.provenance.consent import installation_key

    settings = settings if settings is not None else load_settings()
    public = installation_key(settings).public_key().public_bytes(serialization.Encoding.Raw,
                                                                  serialization.PublicFormat.Raw)
    return Payload.for_record(public.hex(), consent.record_id)


class OnAir(Protocol):
    """Whatever shows one profile at a time (the live daemon's renderer): its `profile` now."""

    @property
    def profile(self): ...


class Provenance:
    """Watermark then label, for frames of one size: ``marked = Provenance(size, payload)(frame)``.

    Returns a new frame (the input is left as it is) unless called with ``in_place=True``, as the
    chain does with the renderer's fresh frames. `source`, when given, tells the profile being
    shown (the daemon's renderer): the payload follows it when it changes.
    """

    def __init__(self, size: tuple[int, int], payload: Payload = UNATTRIBUTED, settings=None,
                 source: OnAir | None = None) -> None:
        from avatarcam.config import load_settings

        self.settings = settings if settings is not None else load_settings()
        self.size = (int(size[0]), int(size[1]))
        self.watermark = Watermarker(self.size, payload)
        self.label = Label(self.size, LabelStyle.from_settings(self.settings))
        self.source = source
        self._profile = source.profile if source is not None else None
        if self._profile is not None:
            self.set_payload(payload_for(self._profile.consent, self.settings))

    @classmethod
    def for_profile(cls, profile, size: tuple[int, int], settings=None) -> Provenance:
        """The stage for rendering `profile`: its consent record and this installation in the payload."""
        stage = cls(size, settings=settings)
        stage.set_payload(payload_for(profile.consent, stage.settings))
        return stage

    @property
    def payload(self) -> Payload:
        return self.watermark.payload

    def set_payload(self, payload: Payload) -> None:
        """Mark following frames with `payload` (rebuilds the pattern: tens of ms at 720p)."""
        if payload != self.watermark.payload:
            self.watermark = Watermarker(self.size, payload)
            log.debug("watermark payload: %s", payload)

    def __call__(self, frame: np.ndarray, in_place: bool = False) -> np.ndarray:
        """The frame watermarked and labelled: a new array, or `frame` itself when `in_place`."""
        self.follow()
        return self.label.draw(self.watermark(frame, in_place=in_place))

    def follow(self) -> None:
        """Switch the payload if the source now shows another profile (done for every frame; a
        renderer that marks frames itself calls it before each one)."""
        if self.source is not None:
            profile = self.source.profile
            if profile is not self._profile and profile is not None:
                self._profile = profile
                self.set_payload(payload_for(profile.consent, self.settings))
