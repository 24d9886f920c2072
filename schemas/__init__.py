"""Versioned objects: fields, registry, change tracking, back-levelling and the msgpack codec.

An agent of release N and a control plane of release N+1 talk because every object on the
wire carries its name and version, and a sender back-levels objects to the versions its peer
advertises (`encode(value, manifest=peer_manifest)`). See docs/versioned-objects.md.

Importing `schemas` registers the objects of `schemas.objects` into `default_registry`.
"""

from __future__ import annotations

from schemas import fields
from schemas.base import VersionedObject
from schemas.codec import DEFAULT_LIMITS, DecodeLimits, decode, encode
from schemas.compat import ObjectPrimitive
from schemas.errors import (
    DecodeError,
    EncodeError,
    IncompatibleObjectVersion,
    NoObjectStore,
    NotRemotable,
    ObjectFieldError,
    ObjectNotFound,
    ObjectVersionError,
    ReadOnlyFieldError,
    SchemaError,
    UnexpectedStateError,
    UnexpectedTaskStateError,
    UnexpectedVMStateError,
    UnknownFieldError,
    UnknownObjectError,
    UnsetFieldError,
    VirtactorError,
)
from schemas.registry import ObjectRegistry, default_registry, obj_manifest
from schemas.remotable import (
    ObjectIndirectionAPI,
    current_indirection,
    dispatch_object_action,
    dispatch_object_class_action,
    remotable,
    remotable_classmethod,
    use_indirection,
)
from schemas.store import ObjectStore, PersistentObject, use_object_store
from schemas.versions import Version, parse_version

# Registers the objects into default_registry; imported last as they need all of the above.
from schemas import objects  # isort: skip
from schemas.objects import RequestContext  # isort: skip

__all__ = [
    "DEFAULT_LIMITS",
    "DecodeError",
    "DecodeLimits",
    "EncodeError",
    "IncompatibleObjectVersion",
    "NoObjectStore",
    "NotRemotable",
    "ObjectFieldError",
    "ObjectIndirectionAPI",
    "ObjectNotFound",
    "ObjectPrimitive",
    "ObjectRegistry",
    "ObjectStore",
    "ObjectVersionError",
    "PersistentObject",
    "ReadOnlyFieldError",
    "RequestContext",
    "SchemaError",
    "UnexpectedStateError",
    "UnexpectedTaskStateError",
    "UnexpectedVMStateError",
    "UnknownFieldError",
    "UnknownObjectError",
    "UnsetFieldError",
    "Version",
    "VersionedObject",
    "VirtactorError",
    "current_indirection",
    "decode",
    "default_registry",
    "dispatch_object_action",
    "dispatch_object_class_action",
    "encode",
    "fields",
    "obj_manifest",
    "objects",
    "parse_version",
    "remotable",
    "remotable_classmethod",
    "use_indirection",
    "use_object_store",
]
