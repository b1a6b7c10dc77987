"""User-facing errors: each says what is wrong and what to do about it."""


class AvatarCamError(Exception):
    """An error the user can fix; the CLI prints it without a traceback and exits with status 2."""


class FaceError(AvatarCamError):
    """The portrait has no usable face."""


class ImageError(AvatarCamError):
    """An image file cannot be read."""


class AudioError(AvatarCamError):
    """An audio file cannot be read or holds nothing to animate."""


class ProfileError(AvatarCamError):
    """A profile is missing, incomplete or fails its consent check."""


class OutputError(AvatarCamError):
    """An output cannot be written."""


class SettingsError(AvatarCamError, ValueError):
    """A setting or option has a value AvatarCam cannot use."""
