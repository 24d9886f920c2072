"""`virtactor keys generate IDENTITY`: a signing key pair for one identity.

Writes the private key `<private-dir>/<identity>.pem` (mode 0600; an existing one is
replaced, which is the rotation's step 3 in docs/security.md) and the public key
`<trusted-dir>/<identity>/<key id>.pub`, the file to copy into every receiver's
`[security] trusted_keys`. Nothing else is read or changed; no broker is needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from agent.commands import EXIT_OK, EXIT_USAGE
from agent.commands.render import write_json
from agent.security import KeyFileError, generate_key
from agent.security.keys import check_identity


def run_generate(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        check_identity(args.identity)
        private, public = generate_key(
            args.identity, Path(args.private_dir), Path(args.trusted_dir)
        )
    except (ValueError, KeyFileError, OSError) as exc:
        print(f"virtactor keys generate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    key_id = public.stem
    if args.json:
        write_json({"identity": args.identity, "key_id": key_id, "private_key": str(private),
                    "public_key": str(public)}, out)  # fmt: skip
    else:
        print(f"identity     {args.identity}", file=out)
        print(f"key id       {key_id}", file=out)
        print(f"private key  {private}   ([security] private_key of {args.identity})", file=out)
        print(f"public key   {public}   (copy to every receiver's trusted_keys)", file=out)
    return EXIT_OK
