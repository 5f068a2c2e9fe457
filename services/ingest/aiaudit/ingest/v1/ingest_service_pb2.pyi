from aiaudit.common.v1 import event_pb2 as _event_pb2
from aiaudit.common.v1 import proof_pb2 as _proof_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AppendRequest(_message.Message):
    __slots__ = ("events", "sign_receipts")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SIGN_RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.Event]
    sign_receipts: bool
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.Event, _Mapping]]] = ..., sign_receipts: _Optional[bool] = ...) -> None: ...

class AppendResponse(_message.Message):
    __slots__ = ("receipts", "signed_receipts")
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    SIGNED_RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[_proof_pb2.Receipt]
    signed_receipts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, receipts: _Optional[_Iterable[_Union[_proof_pb2.Receipt, _Mapping]]] = ..., signed_receipts: _Optional[_Iterable[str]] = ...) -> None: ...

class AppendStreamRequest(_message.Message):
    __slots__ = ("request_id", "events", "sign_receipts")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SIGN_RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.Event]
    sign_receipts: bool
    def __init__(self, request_id: _Optional[int] = ..., events: _Optional[_Iterable[_Union[_event_pb2.Event, _Mapping]]] = ..., sign_receipts: _Optional[bool] = ...) -> None: ...

class AppendStreamResponse(_message.Message):
    __slots__ = ("request_id", "receipts", "status", "signed_receipts")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SIGNED_RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    receipts: _containers.RepeatedCompositeFieldContainer[_proof_pb2.Receipt]
    status: _status_pb2.Status
    signed_receipts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[int] = ..., receipts: _Optional[_Iterable[_Union[_proof_pb2.Receipt, _Mapping]]] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., signed_receipts: _Optional[_Iterable[str]] = ...) -> None: ...

class EraseEventsRequest(_message.Message):
    __slots__ = ("tenant_id", "event_ids", "subject_id", "reason")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    subject_id: str
    reason: str
    def __init__(self, tenant_id: _Optional[str] = ..., event_ids: _Optional[_Iterable[str]] = ..., subject_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EraseEventsResponse(_message.Message):
    __slots__ = ("record_event_id", "erased_event_ids", "named_event_ids", "record_event_ids", "erased_count", "named_count", "event_ids_truncated")
    RECORD_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ERASED_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    NAMED_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    RECORD_EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    ERASED_COUNT_FIELD_NUMBER: _ClassVar[int]
    NAMED_COUNT_FIELD_NUMBER: _ClassVar[int]
    EVENT_IDS_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    record_event_id: str
    erased_event_ids: _containers.RepeatedScalarFieldContainer[str]
    named_event_ids: _containers.RepeatedScalarFieldContainer[str]
    record_event_ids: _containers.RepeatedScalarFieldContainer[str]
    erased_count: int
    named_count: int
    event_ids_truncated: bool
    def __init__(self, record_event_id: _Optional[str] = ..., erased_event_ids: _Optional[_Iterable[str]] = ..., named_event_ids: _Optional[_Iterable[str]] = ..., record_event_ids: _Optional[_Iterable[str]] = ..., erased_count: _Optional[int] = ..., named_count: _Optional[int] = ..., event_ids_truncated: _Optional[bool] = ...) -> None: ...
