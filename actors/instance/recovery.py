"""What an instance actor keeps in its domain's <metadata> to rebuild itself after a restart.

The record is the instance's versioned `Instance` (states, flavor, block device mappings,
network info, metadata) and the `ImageMeta` it was built from, packed by the schemas codec.
Each object carries its name and version, so an agent of a later release reads what an
earlier one stored (older minor versions decode as today's class). `FORMAT` numbers the
layout of the record around the objects; a record of another format is refused, never
guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.codec import decode, encode
from schemas.errors import SchemaError, VirtactorError
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance

# 1: {"format": 1, "instance": Instance, "image_meta": ImageMeta | None}
FORMAT = 1


class RecoveryDataInvalid(VirtactorError):
    """The recovery data in a domain's <metadata> cannot be read back."""

    uuid: str
    reason: str

    msg_fmt = "recovery data of instance {uuid} is unreadable: {reason}"


@dataclass(slots=True)
class RecoveryRecord:
    """The instance as its actor keeps it, and the image it was built from (None when the
    actor adopted a guest it did not build)."""

    instance: Instance
    image_meta: ImageMeta | None = None


def encode_recovery(record: RecoveryRecord) -> bytes:
    """The record as bytes for the domain's <metadata>; no change marks travel with it."""
    instance = record.instance.obj_clone()
    instance.obj_reset_changes(recursive=True)
    image_meta = None
    if record.image_meta is not None:
        image_meta = record.image_meta.obj_clone()
        image_meta.obj_reset_changes(recursive=True)
    return encode({"format": FORMAT, "instance": instance, "image_meta": image_meta})


def decode_recovery(uuid: str, data: bytes) -> RecoveryRecord:
    """The record of instance `uuid` from `data`; `RecoveryDataInvalid` if it is not one."""
    try:
        value = decode(data)
    except SchemaError as exc:
        raise RecoveryDataInvalid(uuid=uuid, reason=exc.message) from exc
    if not isinstance(value, dict):
        raise RecoveryDataInvalid(uuid=uuid, reason=f"a {type(value).__name__}, not a record")
    if value.get("format") != FORMAT:
        reason = f"format {value.get('format')!r}, this agent reads format {FORMAT}"
        raise RecoveryDataInvalid(uuid=uuid, reason=reason)
    instance, image_meta = value.get("instance"), value.get("image_meta")
    if not isinstance(instance, Instance):
        raise RecoveryDataInvalid(uuid=uuid, reason="it holds no Instance")
    if image_meta is not None and not isinstance(image_meta, ImageMeta):
        reason = f"its image_meta is a {type(image_meta).__name__}"
        raise RecoveryDataInvalid(uuid=uuid, reason=reason)
    if instance.uuid != uuid:
        raise RecoveryDataInvalid(uuid=uuid, reason=f"it names instance {instance.uuid}")
    return RecoveryRecord(instance, image_meta)
