#!/usr/bin/python3
"""Checks AWS Signature V4 headers apfvm (through libcurl) sent, against
botocore's signer: an implementation independent of libcurl's.

Usage: sigv4_check.py FILE ACCESS_KEY SECRET REGION [TOKEN]
FILE holds requests as a test server received them, each:
    METHOD PATH
    Header: value
    ...
    (an empty line)
Prints one line per request; exit status 0 when every signature matches.
"""
import sys

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def requests(path):
    with open(path, "rb") as f:
        blocks = f.read().decode("latin-1").split("\n\n")
    for b in blocks:
        lines = [l for l in b.split("\n") if l]
        if not lines:
            continue
        method, target = lines[0].split(" ", 1)
        headers = {}
        for l in lines[1:]:
            k, v = l.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        yield method, target, headers


def main():
    path, key, secret, region = sys.argv[1:5]
    token = sys.argv[5] if len(sys.argv) > 5 else None
    creds = Credentials(key, secret, token)
    bad = 0
    n = 0
    for method, target, h in requests(path):
        n += 1
        auth_hdr = h.get("authorization", "")
        fields = dict(p.strip().split("=", 1) for p in auth_hdr.split(" ", 1)[1].split(","))
        signed = fields["SignedHeaders"].split(";")
        scope = fields["Credential"].split("/")
        if scope[0] != key or scope[2] != region or scope[3] != "s3" or scope[4] != "aws4_request":
            print(f"# signature wrong: {method} {target}: credential scope {fields['Credential']}")
            bad += 1
            continue
        # The request botocore would sign: the same method, URL, the
        # headers libcurl signed, with their values as received.
        req = AWSRequest(method=method, url="http://" + h["host"] + target,
                         headers={k: h[k] for k in signed if k != "host"}, data=b"")
        req.context["timestamp"] = h["x-amz-date"]
        signer = S3SigV4Auth(creds, "s3", region)
        if token and h.get("x-amz-security-token") != token:
            print(f"# signature wrong: {method} {target}: the session token was not sent")
            bad += 1
            continue
        canonical = signer.canonical_request(req)
        sig = signer.signature(signer.string_to_sign(req, canonical), req)
        if sig != fields["Signature"]:
            print(f"# signature wrong: {method} {target}: signature {fields['Signature']}, botocore {sig}")
            print("  canonical request (botocore):\n    " + canonical.replace("\n", "\n    "))
            bad += 1
        else:
            print(f"# signature ok: {method} {target} (signed: {';'.join(signed)})")
    if n == 0:
        print("# no request to check")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
