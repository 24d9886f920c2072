"""Errors of the Guest layer: domain XML, images, volumes, interfaces and one guest's verbs.

    VirtactorError
    ├── GuestConfigError            a value cannot make a valid domain
    │   ├── GuestSettingsError      a configured value that cannot work
    │   ├── InvalidXMLValue         a value XML cannot carry (control characters, ...)
    │   ├── MalformedVolumeConnection   a volume connection lacks or garbles a field
    │   ├── InvalidVIF              a network interface lacks or garbles a field
    │   └── VIFPlugFailed           a tap cannot be put on (or taken off) its bridge
    ├── ImageError
    │   ├── ImageNotFound           no such image in the images directory
    │   └── InvalidImage            an image that must not be used (format, backing file)
    ├── InstanceExists              spawn of a uuid libvirt (or the disk) already has
    ├── DeviceNotAttached           detach of a device the domain does not have
    ├── DeviceDetachFailed          the guest never let go of a device
    ├── SnapshotFailed              qemu-img could not write the snapshot
    ├── ConsoleUnavailable          the guest has no console of that kind (right now)
    └── GuestAgentUnavailable       no guest agent answers in the guest (yet) (retryable)

Each message names the instance or object and the offending value.
"""

from __future__ import annotations

from schemas.errors import VirtactorError


class GuestConfigError(VirtactorError):
    msg_fmt = "cannot build the domain of instance {uuid}: {reason}"


class GuestSettingsError(GuestConfigError):
    msg_fmt = "guest setting {setting}: {reason}"


class InvalidXMLValue(GuestConfigError):
    msg_fmt = "{what} cannot go into domain XML: {reason} (value {value!r})"


class MalformedVolumeConnection(GuestConfigError):
    msg_fmt = "malformed {driver_volume_type!r} volume connection: {field} {reason}"


class InvalidVIF(GuestConfigError):
    msg_fmt = "invalid network interface {vif_id}: {field} {reason}"


class VIFPlugFailed(GuestConfigError):
    """A tap could not be plugged into (or taken off) its bridge on this host."""

    msg_fmt = "network interface {vif_id} cannot be plugged: {reason}"


class ImageError(VirtactorError):
    msg_fmt = "image {image_id!r}: {reason}"


class ImageNotFound(ImageError):
    msg_fmt = "image {image_id!r} is not in the images directory {images_path}"


class InvalidImage(ImageError):
    msg_fmt = "image {image_id!r} cannot be used: {reason}"


class InstanceExists(VirtactorError):
    msg_fmt = "instance {uuid} already exists on this host: {reason}"


class DeviceNotAttached(VirtactorError):
    msg_fmt = "instance {uuid} has no device {device!r} attached"


class DeviceDetachFailed(VirtactorError):
    msg_fmt = "instance {uuid} did not release device {device!r}: {reason}"
    retryable = True


class SnapshotFailed(VirtactorError):
    msg_fmt = "snapshot {image_id!r} of instance {uuid} failed: {reason}"


class ConsoleUnavailable(VirtactorError):
    msg_fmt = "instance {uuid} has no {console_type} console: {reason}"


class GuestAgentUnavailable(VirtactorError):
    """The domain has an agent channel but nothing answers on it: the agent is not installed,
    not started yet (early in the boot) or too slow. Retryable: an agent that is starting
    answers a later call; one that is not installed never will, so callers bound retries."""

    msg_fmt = "the guest agent of instance {uuid} is not answering: {reason}"
    retryable = True
