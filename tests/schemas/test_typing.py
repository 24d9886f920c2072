"""Declared fields type-check as their annotations: mypy sees `inst.host` as `str | None`,
refuses a wrong type or a misspelt field, and accepts a valid assignment."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SNIPPET = """
from schemas.objects import Instance, RequestContext


async def use(ctx: RequestContext) -> None:
    inst = await Instance.get_by_uuid(ctx, "x")
    reveal_type(inst)
    reveal_type(inst.host)
    reveal_type(inst.flavor.extra_specs)
    reveal_type(await Instance.get_by_host(ctx, "h"))
    inst.host = "compute-2"
    await inst.save()
    inst.memory_mb = "lots"
    inst.hots = "typo"
"""


def test_mypy_types_fields_and_remotable_methods_from_their_declarations(tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    out, err, _ = api.run(
        [str(source), "--cache-dir", str(tmp_path / "cache"), "--no-error-summary"]
    )
    lines = [line.split(": ", 1)[1] for line in out.splitlines()]
    assert lines == [
        'note: Revealed type is "schemas.objects.instance.Instance"',
        'note: Revealed type is "str | None"',
        'note: Revealed type is "dict[str, str]"',
        'note: Revealed type is "list[schemas.objects.instance.Instance]"',
        'error: Incompatible types in assignment (expression has type "str", variable has '
        'type "int")  [assignment]',
        'error: "Instance" has no attribute "hots"  [attr-defined]',
    ], out + err
