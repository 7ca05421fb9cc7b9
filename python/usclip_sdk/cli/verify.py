"""`usclip verify BUNDLE --trusted PUBKEY`: check a bundle's signature and every file, as a device would."""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify a bundle's signature against trusted public keys",
                       description="Open the bundle exactly as Classifier(trusted_keys=...) does: the "
                                   "signature of manifest.json must be by a trusted key, and every file "
                                   "must match the manifest's size and sha256. Exit 0 when it verifies, "
                                   "1 with the reason when it does not.")
    p.add_argument("bundle", help="bundle folder or .zip")
    p.add_argument("--trusted", action="append", required=True, metavar="PUBKEY",
                   help="public key ('ed25519:<base64>') or public key file; repeat for several")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bundle import Bundle

    with Bundle.open(args.bundle, trusted_keys=args.trusted) as b:
        n = len(b.manifest.files)
        print(f"{args.bundle}\tverified\tkey_id={b.signature.key_id}\tmodel={b.manifest.model.name}\t"
              f"id={b.id[:16]}\tfiles={n}")
    return 0
