"""`usclip sign BUNDLE --key KEY`: add an Ed25519 signature (manifest.sig) to an existing bundle."""
from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sign", help="sign a bundle (folder or .zip) with a private key from usclip keygen",
                       description="Check the bundle's files against its manifest, then write manifest.sig "
                                   "(an Ed25519 signature of manifest.json naming the key id) beside it, "
                                   "replacing any earlier signature, and verify the result.")
    p.add_argument("bundle", help="bundle folder or .zip")
    p.add_argument("--key", required=True, help="private key file (from usclip keygen)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..signing import sign_bundle

    info = sign_bundle(args.bundle, args.key)
    print(f"{args.bundle}\tsigned\tkey_id={info.key_id}\tmanifest_sha256={info.manifest_sha256[:16]}")
    return 0
