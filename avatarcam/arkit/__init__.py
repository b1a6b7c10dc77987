"""The motion latent for 3D avatars: ARKit face tracking live over VMC and to files.

The latent is the ARKit blendshape set plus head pose and gaze (see `avatarcam.latent`), the
convention 3D avatar apps speak. This package only translates it, never makes motion:
- `shapes`: the 52 ARKit blendshapes (eyeLook* made from the gaze), head and eye angles, the head
  as quaternions, VRM's vowel presets;
- `vmc`: a live sink sending each frame as Virtual Motion Capture (OSC over UDP) messages;
- `livelink`: motion tracks written as Live Link Face CSV or plain JSON.

There are no pixels here, so nothing to watermark, and no portrait, so no consent record.
"""
