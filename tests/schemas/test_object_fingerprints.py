"""Version fingerprints: any change to an object's fields, remotable methods or relationships
must come with a VERSION bump. After a deliberate bump, regenerate the table below with

    .venv/bin/python -m schemas.fingerprints

(see docs/versioned-objects.md for the whole workflow).
"""

from __future__ import annotations

from typing import Any

from schemas import ObjectRegistry, VersionedObject, default_registry, fields, remotable
from schemas.fingerprints import check_fingerprints, fingerprint
from schemas.versions import parse_version

EXPECTED_FINGERPRINTS = {
    "BlockDeviceMapping": "1.0-fb341780ecee4e75288a214eb118bf24",
    "BlockDeviceMappingList": "1.0-5796e735545e751fd436ada9b5ab47c9",
    "ComputeNode": "1.3-1f3cbbcffabe4c8d2abd32540f072327",
    "ConvergenceStep": "1.0-d0f1d95838e319ed96b6a136e6890c2b",
    "ConsoleInfo": "1.0-4311a4a86668cdad3d74277b20445159",
    "CpuDiagnostics": "1.0-713e3e8cede0ec11a3a1000f152e30a8",
    "Diagnostics": "1.0-c457b9377db4bd6d6a44606c7b0ffc5a",
    "DiskDiagnostics": "1.0-c0bd64e66c19fd3bf4e86db8a2ed1f5d",
    "Flavor": "1.1-afd5984e0f6e56a5bb336dcfdf2b5d19",
    "ImageMeta": "1.1-9dab13478e4661c6ce82f3b265abb131",
    "ImageMetaProps": "1.1-1b8de668a13f9529ec88ac7a72c6f4ce",
    "Instance": "1.3-6c11a5d8380aa684b29d7624de157857",
    "InstanceInfo": "1.0-a95fe976aa529952b40838952b6f78f3",
    "LifecycleEvent": "1.0-89d1657af06b0e824d3a37df8c71398b",
    "LiveMigrateBDMInfo": "1.0-34dedcc28a81f33613e055ec59338448",
    "LiveMigrateData": "1.4-57566cf8bdc0da1442b8030eea18fc61",
    "LiveMigrateDisk": "1.0-ab4ed4c1936e2f216adc90bb279490ad",
    "MemoryDiagnostics": "1.0-6ac57b7a6e7f4ecf01b308aa096498c5",
    "Migration": "1.2-b5660b455ba65b698196eac5f87afc29",
    "MigrationPolicy": "1.0-c8b447087f3ae134106cbfd73ba6cc50",
    "MigrationProgress": "1.1-d2e354173614d4870f86dfb11f71c5cb",
    "Network": "1.0-7714b817051f95da7d6fb4cc6d5f9c3a",
    "NetworkInfo": "1.0-f2b0a84dee494d8c57ba76e930ab8c07",
    "NicDiagnostics": "1.0-0ce09bf76e026ea8d07f4b4e54c0dea9",
    "PciDevice": "1.0-6856746856bed3f2c567ab852c4da24e",
    "PciDevicePool": "1.0-02880a48cd6b431bc5486f2b3de36f4b",
    "PciDevicePoolList": "1.0-d89a0889c3c6edcced9fc952c3365180",
    "ProviderFirewallRule": "1.0-938fe62a08d1205c9d60621528563abe",
    "RequestContext": "1.0-1673d3789d6c6d72cecf91acb2290202",
    "ResourceClaim": "1.0-a52be9665a8a1f7c67890ece9730bce2",
    "SecurityGroup": "1.0-c62d22b64f596fe3b713c70a1e50c440",
    "SecurityGroupMembership": "1.1-e99a38bb03b5c4ef27150d5487f5de1a",
    "SecurityGroupRule": "1.0-016da03944f4b77c5558f63f66950383",
    "Service": "1.1-1584e26f940207198308cac5da447f96",
    "Subnet": "1.0-937f0d588b002a31ea41900a7488ecb6",
    "VIF": "1.0-b728fb9729ba7815496d173a0f143482",
    "VolumeConnection": "1.0-80b48b454b4507c001fa7203696d10f3",
    "VolumeConnectionData": "1.0-410f21e4bf924ca6848824a4feae6211",
    "VolumeConnector": "1.0-18507cb43a5d32fb0fe42d7c15380f5d",
}


def test_every_object_matches_its_recorded_fingerprint() -> None:
    problems = check_fingerprints(default_registry, EXPECTED_FINGERPRINTS)
    assert not problems, "\n".join(problems)


def test_every_relationship_map_ends_at_the_childs_current_version() -> None:
    """A parent must bump (and extend its map) whenever a child it carries bumps."""
    problems = []
    for name in default_registry:
        cls = default_registry.lookup(name)
        for field in cls._obj_object_fields:
            pairs = cls.OBJ_RELATIONSHIPS.get(field.name)
            child = default_registry.lookup(field.objname)  # type: ignore[attr-defined]
            if not pairs:
                problems.append(f"{name}.{field.name}: no OBJ_RELATIONSHIPS entry")
                continue
            parent_version, child_version = pairs[-1]
            if child_version != child.VERSION:
                problems.append(
                    f"{name}.{field.name}: {child.OBJ_NAME} is at {child.VERSION} but the map "
                    f"ends at {child_version}; bump {name}.VERSION and add "
                    f"('<new {name} version>', '{child.VERSION}')"
                )
            if parse_version(parent_version) > cls._obj_version:
                problems.append(f"{name}.{field.name}: map names {name} {parent_version}")
    assert not problems, "\n".join(problems)


def make_thing(version: str, **extra: Any) -> type[VersionedObject]:
    namespace: dict[str, Any] = {
        "__slots__": (),
        "__annotations__": {"size": "int", **{k: "Any" for k in extra}},
        "VERSION": version,
        "OBJ_NAME": "Thing",
        "size": fields.Integer(),
        **extra,
    }
    return type("Thing", (VersionedObject,), namespace)


def registry_with(cls: type[VersionedObject]) -> ObjectRegistry:
    registry = ObjectRegistry()
    registry.register(cls)
    return registry


def test_a_field_added_without_a_version_bump_is_caught_and_says_what_to_bump() -> None:
    recorded = {"Thing": fingerprint(make_thing("1.3"))}
    changed = make_thing("1.3", colour=fields.String(nullable=True))
    problems = check_fingerprints(registry_with(changed), recorded)
    assert len(problems) == 1
    assert problems[0].startswith(
        "Thing: fields, remotable methods or relationships changed but VERSION is still 1.3; "
        "bump Thing.VERSION to 1.4"
    )


def test_nullability_type_and_remotable_changes_are_caught_too() -> None:
    recorded = {"Thing": fingerprint(make_thing("1.0"))}

    class Nullable(VersionedObject):
        VERSION = "1.0"
        OBJ_NAME = "Thing"
        __slots__ = ()
        size: int | None = fields.Integer(nullable=True)

    class Retyped(VersionedObject):
        VERSION = "1.0"
        OBJ_NAME = "Thing"
        __slots__ = ()
        size: float = fields.Float()

    class WithMethod(VersionedObject):
        VERSION = "1.0"
        OBJ_NAME = "Thing"
        __slots__ = ()
        size: int = fields.Integer()

        @remotable
        async def grow(self) -> None:
            self.size += 1

    for changed in (Nullable, Retyped, WithMethod):
        assert len(check_fingerprints(registry_with(changed), recorded)) == 1, changed


def test_a_bumped_version_asks_for_the_table_to_be_updated() -> None:
    recorded = {"Thing": fingerprint(make_thing("1.0"))}
    bumped = make_thing("1.1", colour=fields.String(nullable=True))
    problems = check_fingerprints(registry_with(bumped), recorded)
    assert problems == [
        f"Thing: VERSION changed to 1.1; record the new fingerprint {fingerprint(bumped)!r} "
        "in the table (python -m schemas.fingerprints)"
    ]


def test_new_and_removed_objects_are_reported() -> None:
    thing = make_thing("1.0")
    assert check_fingerprints(registry_with(thing), {}) == [
        f"Thing: new object, not in the fingerprint table; add 'Thing': {fingerprint(thing)!r}"
    ]
    assert check_fingerprints(ObjectRegistry(), {"Thing": "1.0-x"}) == [
        "Thing: in the fingerprint table but no longer registered"
    ]


def test_an_unchanged_class_keeps_its_fingerprint() -> None:
    assert fingerprint(make_thing("1.0")) == fingerprint(make_thing("1.0"))
