#!/usr/bin/env python3
"""Checks Comity's signed objects with an independent COSE implementation (pycose).

Usage: cose-check.py FILE...   (each file holds one tagged COSE_Sign1 or COSE_Sign, raw bytes)

For each object: decodes it, requires EdDSA, takes the signer's Ed25519 key from the key id
(kid) and verifies every signature. Prints one JSON line per file and exits 0 only if every
object verified. This is the test suite's evidence that Comity's signatures are standard COSE
(RFC 9052), not merely consistent with Comity's own code.
"""
import json
import sys

from pycose.headers import KID, Algorithm, ContentType
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import CoseMessage, Sign1Message, SignMessage
from pycose.algorithms import EdDSA


def key_of(kid):
    if not isinstance(kid, bytes) or len(kid) != 32:
        raise ValueError("key id is not a 32-byte Ed25519 public key")
    return OKPKey(crv=Ed25519, x=kid)


def header(msg, attr):
    return msg.phdr.get(attr)


def check(data):
    msg = CoseMessage.decode(data)
    if isinstance(msg, Sign1Message):
        if header(msg, Algorithm) is not EdDSA:
            raise ValueError("algorithm is not EdDSA")
        kid = header(msg, KID)
        msg.key = key_of(kid)
        if not msg.verify_signature():
            raise ValueError("signature does not verify")
        return {"kind": "COSE_Sign1", "content_type": header(msg, ContentType),
                "signers": [kid.hex()]}
    if isinstance(msg, SignMessage):
        signers = []
        for signer in msg.signers:
            if signer.phdr.get(Algorithm) is not EdDSA:
                raise ValueError("a signature's algorithm is not EdDSA")
            kid = signer.phdr.get(KID)
            signer.key = key_of(kid)
            if not signer.verify_signature():
                raise ValueError("signature by %s does not verify" % kid.hex())
            signers.append(kid.hex())
        if not signers:
            raise ValueError("no signature")
        return {"kind": "COSE_Sign", "content_type": header(msg, ContentType),
                "signers": signers}
    raise ValueError("not a COSE_Sign1 or COSE_Sign but %s" % type(msg).__name__)


def main(paths):
    all_ok = True
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        try:
            result = {"file": path, "ok": True, **check(data)}
        except Exception as e:  # any failure of decoding or verification is a refusal
            all_ok = False
            result = {"file": path, "ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(result))
    return 0 if all_ok and paths else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
