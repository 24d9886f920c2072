"""Version fingerprints: a hash per object over what its version promises.

The hash covers each field's name and description (type, element type or object name, enum
values, nullability, default, read-only), the remotable methods with their signatures, and
the relationship map. A change to any of them without a `VERSION` bump makes the fingerprint
differ from the checked-in table at the same version, and `check_fingerprints` says which
object and what to bump. Regenerate the table after a deliberate bump with:

    .venv/bin/python -m schemas.fingerprints
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Mapping

from schemas.base import VersionedObject
from schemas.registry import ObjectRegistry


def fingerprint(cls: type[VersionedObject]) -> str:
    """ "<VERSION>-<hash>" for one object class."""
    lines = [f"field {name}: {field.describe()}" for name, field in cls._obj_fields.items()]
    for name, kind in sorted(cls._obj_remotable.items()):
        func = getattr(cls, name)
        func = getattr(func, "__wrapped__", func)
        lines.append(f"remotable {kind} {name}{inspect.signature(func)}")
    for name, pairs in sorted(cls.OBJ_RELATIONSHIPS.items()):
        lines.append(f"relationship {name}: {list(pairs)!r}")
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]
    return f"{cls.VERSION}-{digest}"


def fingerprints(registry: ObjectRegistry) -> dict[str, str]:
    """{object name: fingerprint} for every object in `registry`."""
    return {name: fingerprint(registry.lookup(name)) for name in registry}


def check_fingerprints(registry: ObjectRegistry, expected: Mapping[str, str]) -> list[str]:
    """One message per object whose fingerprint does not match `expected`; empty if all do."""
    problems = []
    actual = fingerprints(registry)
    for name in sorted(actual.keys() | expected.keys()):
        have, want = actual.get(name), expected.get(name)
        if have == want:
            continue
        if want is None:
            problems.append(
                f"{name}: new object, not in the fingerprint table; add {name!r}: {have!r}"
            )
        elif have is None:
            problems.append(f"{name}: in the fingerprint table but no longer registered")
        elif have.split("-")[0] == want.split("-")[0]:
            version = want.split("-")[0]
            major, minor = version.split(".")
            problems.append(
                f"{name}: fields, remotable methods or relationships changed but VERSION is "
                f"still {version}; bump {name}.VERSION to {major}.{int(minor) + 1} (a new "
                f"major for a removal or type change), note it in the version history, "
                f"handle the old version in make_compatible, then record {have!r} "
                f"(python -m schemas.fingerprints)"
            )
        else:
            problems.append(
                f"{name}: VERSION changed to {have.split('-')[0]}; record the new "
                f"fingerprint {have!r} in the table (python -m schemas.fingerprints)"
            )
    return problems


def main() -> None:
    """Print the fingerprint table of the default registry, ready to paste into
    tests/schemas/test_object_fingerprints.py."""
    import schemas.objects  # noqa: F401  (registers the objects)
    from schemas.registry import default_registry

    print("EXPECTED_FINGERPRINTS = {")
    for name, value in fingerprints(default_registry).items():
        print(f'    "{name}": "{value}",')
    print("}")


if __name__ == "__main__":
    main()
