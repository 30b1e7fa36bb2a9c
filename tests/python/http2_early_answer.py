"""HTTP/2 early answers, as an httpx client sees them (tests/tests/https_edge.rs).

Usage: http2_early_answer.py URL CA_PEM SIZE...

Posts an MCP initialize padded to each SIZE (bytes) several times on one HTTP/2 connection,
without credentials and sent in parts (so the answer comes before the body ends), and prints one line per request: "<http version> <status>", or
"error <exception>" when the request failed (a stream reset, for instance).
"""

import json
import ssl
import sys
import time

import httpx2 as httpx


def body(size: int) -> bytes:
    msg = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "early-answer-test", "version": "1"},
            "padding": "",
        },
    }
    base = len(json.dumps(msg).encode())
    msg["params"]["padding"] = "x" * max(0, size - base)
    return json.dumps(msg).encode()


def slowly(data: bytes):
    """The body in four parts a moment apart, as over a real network: the server has
    answered before the body ends."""
    step = max(1, len(data) // 4)
    for i in range(0, len(data), step):
        if i:
            time.sleep(0.1)
        yield data[i : i + step]


def main() -> None:
    url, ca, sizes = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]
    context = ssl.create_default_context(cafile=ca)
    with httpx.Client(http2=True, verify=context, timeout=30) as client:
        for size in sizes:
            for _ in range(4):
                try:
                    data = body(size)
                    r = client.post(
                        url,
                        content=slowly(data),
                        headers={
                            "content-type": "application/json",
                            "accept": "application/json, text/event-stream",
                            "content-length": str(len(data)),
                        },
                    )
                    print(r.http_version, r.status_code, flush=True)
                except Exception as e:  # noqa: BLE001 - every failure is the test's answer
                    print("error", type(e).__name__, e, flush=True)


if __name__ == "__main__":
    main()
