"""The least any search server can add: a gRPC hop that only forwards the DSL.

The search benchmark times `SearchEvents` against the same DSL sent directly
to OpenSearch. Between them lies the search server's own work, and also the
cost of being a server at all: a second process, a gRPC call, a reply. This
process measures that second part on its own: a gRPC server (the suite's
thread pool, no auth, no access record, no store) whose one method takes the
DSL as JSON bytes, sends it with opensearch-py to the benchmark's indices and
answers OpenSearch's reply as JSON bytes. Its latency against the direct
query's bounds the ratio any server could reach on the same machine.

Run by the search benchmark as ``python -m bench.forwarding_floor URL PREFIX
ROUTING``; prints its address once it listens.
"""

from __future__ import annotations

import sys
from concurrent import futures
from typing import Any

import grpc
import orjson
from opensearchpy import OpenSearch

METHOD = "/bench.Forward/Search"


def serve(url: str, prefix: str, routing: str) -> None:
    search = OpenSearch(hosts=[url], timeout=60, pool_maxsize=16)

    def forward(request: bytes, _context: Any) -> bytes:
        found = search.search(index=f"{prefix}-*", body=orjson.loads(request), routing=routing)
        return orjson.dumps(found)

    handler = grpc.method_handlers_generic_handler(
        "bench.Forward", {"Search": grpc.unary_unary_rpc_method_handler(forward)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"forwarding on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    serve(*sys.argv[1:4])
