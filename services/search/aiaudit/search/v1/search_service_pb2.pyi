import datetime

from aiaudit.common.v1 import event_pb2 as _event_pb2
from aiaudit.common.v1 import proof_pb2 as _proof_pb2
from aiaudit.integrity.v1 import integrity_service_pb2 as _integrity_service_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_JSONL: _ClassVar[ExportFormat]
    EXPORT_FORMAT_CSV: _ClassVar[ExportFormat]
    EXPORT_FORMAT_XML: _ClassVar[ExportFormat]
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_JSONL: ExportFormat
EXPORT_FORMAT_CSV: ExportFormat
EXPORT_FORMAT_XML: ExportFormat

class SearchEventsRequest(_message.Message):
    __slots__ = ("tenant_id", "filter", "query", "order_by", "page_size", "page_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    filter: str
    query: str
    order_by: str
    page_size: int
    page_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., filter: _Optional[str] = ..., query: _Optional[str] = ..., order_by: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchEventsResponse(_message.Message):
    __slots__ = ("results", "next_page_token", "total_size")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResult]
    next_page_token: str
    total_size: int
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResult, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class SearchResult(_message.Message):
    __slots__ = ("event", "sequence", "highlights")
    class HighlightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Highlights
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Highlights, _Mapping]] = ...) -> None: ...
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HIGHLIGHTS_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.Event
    sequence: int
    highlights: _containers.MessageMap[str, Highlights]
    def __init__(self, event: _Optional[_Union[_event_pb2.Event, _Mapping]] = ..., sequence: _Optional[int] = ..., highlights: _Optional[_Mapping[str, Highlights]] = ...) -> None: ...

class Highlights(_message.Message):
    __slots__ = ("fragments",)
    FRAGMENTS_FIELD_NUMBER: _ClassVar[int]
    fragments: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, fragments: _Optional[_Iterable[str]] = ...) -> None: ...

class GetEventRequest(_message.Message):
    __slots__ = ("tenant_id", "event_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    event_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

class GetEventResponse(_message.Message):
    __slots__ = ("event", "sequence", "integrity_status")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_STATUS_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.Event
    sequence: int
    integrity_status: _integrity_service_pb2.VerifyStatus
    def __init__(self, event: _Optional[_Union[_event_pb2.Event, _Mapping]] = ..., sequence: _Optional[int] = ..., integrity_status: _Optional[_Union[_integrity_service_pb2.VerifyStatus, str]] = ...) -> None: ...

class AggregateRequest(_message.Message):
    __slots__ = ("tenant_id", "filter", "query", "group_by", "histogram", "metrics", "percentiles", "page_size", "page_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PERCENTILES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    filter: str
    query: str
    group_by: _containers.RepeatedScalarFieldContainer[str]
    histogram: Histogram
    metrics: _containers.RepeatedScalarFieldContainer[str]
    percentiles: _containers.RepeatedScalarFieldContainer[float]
    page_size: int
    page_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., filter: _Optional[str] = ..., query: _Optional[str] = ..., group_by: _Optional[_Iterable[str]] = ..., histogram: _Optional[_Union[Histogram, _Mapping]] = ..., metrics: _Optional[_Iterable[str]] = ..., percentiles: _Optional[_Iterable[float]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Histogram(_message.Message):
    __slots__ = ("interval",)
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    interval: str
    def __init__(self, interval: _Optional[str] = ...) -> None: ...

class AggregateResponse(_message.Message):
    __slots__ = ("buckets", "time_buckets", "next_page_token")
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    TIME_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[Bucket]
    time_buckets: _containers.RepeatedCompositeFieldContainer[TimeBucket]
    next_page_token: str
    def __init__(self, buckets: _Optional[_Iterable[_Union[Bucket, _Mapping]]] = ..., time_buckets: _Optional[_Iterable[_Union[TimeBucket, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Bucket(_message.Message):
    __slots__ = ("keys", "count", "stats")
    class StatsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Stats
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Stats, _Mapping]] = ...) -> None: ...
    KEYS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    count: int
    stats: _containers.MessageMap[str, Stats]
    def __init__(self, keys: _Optional[_Iterable[str]] = ..., count: _Optional[int] = ..., stats: _Optional[_Mapping[str, Stats]] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("count", "min", "max", "avg", "sum", "percentiles")
    class PercentilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    AVG_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    PERCENTILES_FIELD_NUMBER: _ClassVar[int]
    count: int
    min: float
    max: float
    avg: float
    sum: float
    percentiles: _containers.ScalarMap[str, float]
    def __init__(self, count: _Optional[int] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., avg: _Optional[float] = ..., sum: _Optional[float] = ..., percentiles: _Optional[_Mapping[str, float]] = ...) -> None: ...

class TimeBucket(_message.Message):
    __slots__ = ("start_time", "count")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    count: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., count: _Optional[int] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ("tenant_id", "filter", "query", "format", "include_proofs")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PROOFS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    filter: str
    query: str
    format: ExportFormat
    include_proofs: bool
    def __init__(self, tenant_id: _Optional[str] = ..., filter: _Optional[str] = ..., query: _Optional[str] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., include_proofs: _Optional[bool] = ...) -> None: ...

class ExportResponse(_message.Message):
    __slots__ = ("data", "checkpoint")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    checkpoint: _proof_pb2.Checkpoint
    def __init__(self, data: _Optional[bytes] = ..., checkpoint: _Optional[_Union[_proof_pb2.Checkpoint, _Mapping]] = ...) -> None: ...
