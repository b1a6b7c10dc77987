"""AvatarCam: one portrait photo and a microphone become a talking webcam avatar."""

__version__ = "0.1.0"
