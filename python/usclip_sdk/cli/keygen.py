"""`usclip keygen KEY`: a new Ed25519 signing key (private file mode 0600, public KEY.pub)."""
from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keygen", help="create an Ed25519 key pair for signing bundles",
                       description="Write a new private key to KEY (PEM, mode 0600; never overwrites) "
                                   "and its public key to KEY.pub; print the public key and its id. "
                                   "Keep KEY off the devices and out of bundles and repositories; "
                                   "devices trust the public key (USCLIP_TRUSTED_KEYS).")
    p.add_argument("key", help="path of the private key file to create")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..signing import generate_key

    folder = Path(args.key).parent
    if not folder.exists():  # `usclip keygen ~/keys/release.pem` on a fresh machine (docs/deployment.md)
        folder.mkdir(mode=0o700, parents=True)
        print(f"created {folder} (mode 0700)", file=sys.stderr)
    try:
        pub = generate_key(args.key)
    except FileExistsError:
        raise ValueError(f"{args.key} exists; a key is never overwritten (choose another path)") from None
    print(f"private key: {args.key} (mode 0600)", file=sys.stderr)
    print(f"public key file: {args.key}.pub", file=sys.stderr)
    print(f"public key: {pub.text}")
    print(f"key id: {pub.key_id}")
    return 0
