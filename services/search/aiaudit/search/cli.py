"""``aiaudit search``, ``aggregate`` and ``export``: the SearchService from a terminal.

All three are thin clients of the running server (same --address, --config and
--api-key as the other client commands), so they see exactly what the API
returns to the caller's key: same tenant scope, same redaction, and every run
is recorded in the tenant's log like any other read.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from aiaudit.common import arguments, client, config
from aiaudit.common.files import written_whole
from aiaudit.common.v1 import event_pb2
from aiaudit.search import aggregate_table
from aiaudit.search.v1 import search_service_pb2 as pb
from aiaudit.search.v1 import search_service_pb2_grpc as pb_grpc

Common = Callable[[argparse.ArgumentParser], None]
_FORMATS = {
    "jsonl": pb.EXPORT_FORMAT_JSONL,
    "csv": pb.EXPORT_FORMAT_CSV,
    "xml": pb.EXPORT_FORMAT_XML,
}


def _stub(args: argparse.Namespace) -> pb_grpc.SearchServiceStub:
    settings = config.load(args.config, overrides={"address": args.address})
    config.client_tls(settings, args.ca_file)
    channel = client.for_command(
        settings.address, args.api_key, args.ca_file, args.client_cert, args.client_key
    )
    return pb_grpc.SearchServiceStub(channel)  # type: ignore[no-untyped-call]


_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""C0 controls, DEL and C1 controls: what a terminal may act on instead of showing; and
the bidirectional marks and overrides, which reorder what follows them on the line."""


def visible(text: str) -> str:
    r"""``text`` with every control character and DEL written ``\xNN``, bidi ones ``\uNNNN``.

    Event data is whatever a gateway sent, and a terminal acts on control
    characters: ESC (or the C1 CSI, U+009B) starts sequences that clear the
    screen, hide or recolour text, set the window title or write the
    clipboard (OSC 52), BEL rings. Printed raw, a prompt could make its line
    say what the event does not; a right-to-left override (U+202E) shows the
    rest of the line backwards. A literal ``\x1b`` in the text
    looks the same: the line is for reading, ``--json`` is exact.
    """
    return _CONTROLS.sub(_escaped, text)


def _escaped(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _line(result: pb.SearchResult) -> str:
    """One event for a terminal: every value from the event made :func:`visible`."""
    e = result.event
    when = e.occurred_time.ToDatetime().isoformat(timespec="seconds") + "Z"
    kind = event_pb2.EventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower()
    parts = [f"{result.sequence:>8}", when, kind, e.event_id, e.actor.user_id or "-"]
    parts.append(e.model.name or "-")
    marks = [f for h in result.highlights.values() for f in h.fragments]
    if marks:
        parts.append(marks[0].replace("\n", " "))
    return "  ".join(visible(p) for p in parts)


def _json_line(message: Message) -> str:
    r"""The message (an event, an aggregate's page) as one JSON line a terminal shows as is.

    JSON escapes C0 controls, and ASCII-only output every C1 one (``\u009b``);
    DEL is ASCII and allowed raw in JSON, so it is escaped here (only a string
    can hold it).
    """
    return json_format.MessageToJson(message, indent=None, ensure_ascii=True).replace(
        "\x7f", "\\u007f"
    )


_TOKEN_FILE_BYTES = 1 << 20
"""What ``--page-token-file`` reads at most: eight times the longest token (four keys of
4,096 characters, each escaped in at most 6 bytes of JSON: 131,328 bytes of base64)."""


class TokenFileError(Exception):
    """``--page-token-file`` names no file holding a token: the message says which, and why."""


def token_from(path: str) -> str:
    """The page token in the file at ``path`` (``-``: stdin), surrounding whitespace dropped.

    A token is one argument on the command line, and Linux takes none longer than
    128 KiB (MAX_ARG_STRLEN): the token after four long keys (up to 131,328 bytes,
    printed whole on stderr) could not be passed back. A file has no such bound.
    ``path`` is the argument as given: ``./-`` names a file (a ``Path`` reads as ``-``).
    """
    stdin = path == "-"
    where = "stdin" if stdin else path
    try:
        if stdin:
            if sys.stdin is None:  # descriptor 0 closed when Python started (``<&-``)
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            raw = _token_bytes(sys.stdin.buffer, where)
        else:
            with open(path, "rb") as f:
                raw = _token_bytes(f, where)
    except OSError as exc:
        raise TokenFileError(f"cannot read --page-token-file {where}: {exc.strerror}") from None
    if len(raw) > _TOKEN_FILE_BYTES:
        raise TokenFileError(
            f"--page-token-file {where} is over {_TOKEN_FILE_BYTES:,} bytes: no page token is"
        )
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise TokenFileError(f"--page-token-file {where} holds no page token (not ASCII)") from None
    if not token:
        raise TokenFileError(f"--page-token-file {where} is empty")
    return token


def _token_bytes(f: BinaryIO, where: str) -> bytes:
    """What ``f`` holds, to its end, up to a byte past the most a token file may hold.

    Never a terminal's: it is read to its end (Ctrl-D), not its line, so the command
    sat there after the token's Enter; and a line there holds at most 4,095
    characters (the kernel's canonical mode), none of the tokens this option is for.
    A non-blocking stdin with nothing in it yet reads as None. Until 2026-12-07 the
    one waited, the other ended the command with a traceback, as did a stdin closed
    at the start (review).
    """
    if f.isatty():
        raise TokenFileError(
            f"--page-token-file {where} is a terminal: pipe the token in, or name its file"
        )
    raw = f.read(_TOKEN_FILE_BYTES + 1)
    if raw is None:
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
    return raw


def run_search(args: argparse.Namespace) -> int:
    """Prints matching events (one line each, or --json lines), following pages up to --limit."""
    stub = _stub(args)
    token, printed, total = "", 0, 0
    try:
        while printed < args.limit:
            page = stub.SearchEvents(
                pb.SearchEventsRequest(
                    tenant_id=args.tenant,
                    filter=args.filter,
                    query=args.query,
                    order_by=args.order_by,
                    page_size=min(1000, args.limit - printed),
                    page_token=token,
                )
            )
            total = page.total_size
            for result in page.results:
                if args.json:
                    print(_json_line(result.event))
                else:
                    print(_line(result))
                printed += 1
            token = page.next_page_token
            if not token:
                break
    except grpc.RpcError as err:
        print(f"aiaudit search: {err.code().name}: {visible(err.details() or '')}", file=sys.stderr)
        return 1
    sys.stdout.flush()  # printed, before the count says so (a reader gone: main's quiet exit)
    print(f"{printed} of {total} matching event(s)", file=sys.stderr)
    return 0


def run_aggregate(args: argparse.Namespace) -> int:
    """Prints the groups and histogram (a table, or each page as a line of JSON).

    With ``--page-size`` one page is printed and the token of the next named on
    stderr, to go on from with ``--page-token``, or ``--page-token-file`` for one too
    long for the command line (the token keeps the first page's
    snapshot, so pages fetched later still add up to one answer); ``--all-pages``
    follows the tokens to the last page, printing each page as it arrives (a
    table's histogram, which comes with the first page, after the last page's groups).
    An error after some pages still names the page that failed, to go on from.
    """
    if args.all_pages and not args.page_size:
        print("aiaudit aggregate: --all-pages needs --page-size", file=sys.stderr)
        return 2
    try:
        token = (
            args.page_token if args.page_token_file is None else token_from(args.page_token_file)
        )
    except TokenFileError as exc:
        print(f"aiaudit aggregate: {exc}", file=sys.stderr)
        return 2
    stub = _stub(args)
    request = pb.AggregateRequest(
        tenant_id=args.tenant,
        filter=args.filter,
        query=args.query,
        group_by=args.group_by,
        metrics=args.metric,
        percentiles=args.percentile,
        page_size=args.page_size,
        page_token=token,
    )
    if args.histogram:
        request.histogram.interval = args.histogram
    pages = groups = events = 0
    times: list[pb.TimeBucket] = []  # the first page's: printed after every page's groups
    failed: grpc.RpcError | None = None
    try:
        while True:
            page = stub.Aggregate(request)
            if args.json:
                print(_json_line(page))
            else:
                for line in aggregate_table.group_lines(
                    page, args.group_by, args.metric, args.percentile, visible, not pages
                ):
                    print(line)
                times += page.time_buckets
            pages += 1
            groups += len(page.buckets)
            events += sum(b.count for b in page.buckets)
            request.page_token = page.next_page_token
            if not (args.all_pages and page.next_page_token):
                break
    except grpc.RpcError as err:
        failed = err
    if times:
        print()
        for line in aggregate_table.histogram_lines(times):
            print(line)
    if failed is not None:
        print(
            f"aiaudit aggregate: {failed.code().name}: {visible(failed.details() or '')}",
            file=sys.stderr,
        )
        if not pages:
            return 1
    # After an error, what was printed and the page that failed, to go on from.
    sys.stdout.flush()  # printed, before the count says so (a reader gone: main's quiet exit)
    print(f"{groups} group(s) of {events} event(s)", file=sys.stderr)
    if request.page_token:
        print(f"next page: --page-token {request.page_token}", file=sys.stderr)
    return 0 if failed is None else 1


def run_export(args: argparse.Namespace) -> int:
    """Streams an export to --output (or stdout) chunk by chunk, in constant memory."""
    stub = _stub(args)
    request = pb.ExportRequest(
        tenant_id=args.tenant,
        filter=args.filter,
        query=args.query,
        format=_FORMATS[args.format],
        include_proofs=args.include_proofs,
    )
    try:
        if args.output is None:
            written = _stream(stub, request, sys.stdout.buffer)
            sys.stdout.buffer.flush()  # written, before "exported N bytes" says so
        else:
            written = _stream_to_file(stub, request, args.output)
    except grpc.RpcError as err:
        print(f"aiaudit export: {err.code().name}: {visible(err.details() or '')}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # stdout's reader closed it (--output is a file of its own):
        raise  # the quiet exit 1 of every command (aiaudit.cli.main)
    except OSError as err:  # the destination: --output before the export starts, stdout as
        # it goes (a closed pipe, a full disk); until 2026-12-07 the latter read "cannot write None"
        where = args.output if args.output is not None else "stdout"
        print(f"aiaudit export: cannot write {where}: {err.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        unwritten = f"; {args.output} not written" if args.output else ""
        print(f"aiaudit export: interrupted{unwritten}", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports a command Ctrl-C stopped
    print(f"exported {written} bytes", file=sys.stderr)
    return 0


def _stream(stub: pb_grpc.SearchServiceStub, request: pb.ExportRequest, out: BinaryIO) -> int:
    """Writes the export's chunks to ``out`` as they arrive; the bytes written."""
    call = stub.Export(request)
    written = 0
    try:
        for chunk in call:
            out.write(chunk.data)
            written += len(chunk.data)
    except BaseException:
        call.cancel()  # the server's export slot is free now, not when the channel closes
        raise
    return written


def _stream_to_file(
    stub: pb_grpc.SearchServiceStub, request: pb.ExportRequest, target: Path
) -> int:
    """The export into ``target``, which appears whole or not at all.

    Written in place, an interrupted export left a partial file that could pass
    for the whole one, and a failed one had already truncated an earlier file of
    that name (:func:`written_whole`).
    """
    with written_whole(target) as out:
        return _stream(stub, request, out)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Common, client: Common
) -> None:
    """Adds ``search``, ``aggregate`` and ``export`` to the ``aiaudit`` command.

    ``common`` adds the options of every command, ``client`` a client command's.
    """

    def query_options(parser: argparse.ArgumentParser) -> None:
        common(parser)
        client(parser)
        parser.add_argument("--tenant", required=True, help="tenant to search")
        parser.add_argument(
            "--filter", default="", help="AIP-160 filter, e.g. 'actor.user_id = \"alice\"'"
        )
        parser.add_argument("--query", default="", help='full text: terms, "phrases", AND/OR/NOT')

    search = sub.add_parser("search", help="find events by filter and full text")
    query_options(search)
    search.add_argument("--order-by", default="", help="e.g. 'occurred_time desc' (default)")
    search.add_argument(
        "--limit", type=arguments.at_least(1), default=50, help="at most this many events"
    )
    search.add_argument("--json", action="store_true", help="print events as JSON lines")
    search.set_defaults(func=run_search)

    aggregate = sub.add_parser("aggregate", help="count events by group and time, with statistics")
    query_options(aggregate)
    aggregate.add_argument(
        "--group-by",
        action="append",
        default=[],
        metavar="FIELD",
        help="keyword field to group by, e.g. model.name (repeat for up to 4)",
    )
    aggregate.add_argument(
        "--histogram", default="", metavar="INTERVAL", help="occurred_time buckets: 30s, 5m, 1h, 1d"
    )
    aggregate.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="FIELD",
        help="numeric field to compute statistics of, e.g. timing.latency (repeatable)",
    )
    aggregate.add_argument(
        "--percentile",
        action="append",
        default=[],
        type=float,
        metavar="P",
        help="percentile of each metric, e.g. 99 (repeatable)",
    )
    aggregate.add_argument(
        "--page-size",
        type=arguments.at_least(1),
        default=0,
        help="groups per page, in key order (default: every group, the largest first, at once)",
    )
    token = aggregate.add_mutually_exclusive_group()
    token.add_argument("--page-token", default="", help="go on from a page's next token")
    token.add_argument(
        "--page-token-file",
        metavar="FILE",
        help="go on from the token in FILE ('-': stdin), one too long for the command line",
    )
    aggregate.add_argument(
        "--all-pages", action="store_true", help="with --page-size: follow every page to the last"
    )
    aggregate.add_argument("--json", action="store_true", help="print each page as a JSON line")
    aggregate.set_defaults(func=run_aggregate)

    export = sub.add_parser("export", help="export matching events as JSON Lines, CSV or XML")
    query_options(export)
    export.add_argument("--format", choices=sorted(_FORMATS), default="jsonl")
    export.add_argument("--output", type=Path, help="file to write (default: stdout)")
    export.add_argument(
        "--include-proofs",
        action="store_true",
        help="jsonl only: write an offline proof bundle (verify with `aiaudit verify --bundle`)",
    )
    export.set_defaults(func=run_export)
