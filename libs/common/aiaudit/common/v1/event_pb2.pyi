import datetime

from aiaudit.common.v1 import options_pb2 as _options_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_INTERACTION: _ClassVar[EventType]
    EVENT_TYPE_TOOL_CALL: _ClassVar[EventType]
    EVENT_TYPE_AGENT_HANDOFF: _ClassVar[EventType]
    EVENT_TYPE_APPROVAL_CREATED: _ClassVar[EventType]
    EVENT_TYPE_APPROVAL_APPROVED: _ClassVar[EventType]
    EVENT_TYPE_APPROVAL_REJECTED: _ClassVar[EventType]
    EVENT_TYPE_APPROVAL_EXPIRED: _ClassVar[EventType]
    EVENT_TYPE_TASK_QUEUED: _ClassVar[EventType]
    EVENT_TYPE_TASK_COMPLETED: _ClassVar[EventType]
    EVENT_TYPE_TASK_FAILED: _ClassVar[EventType]
    EVENT_TYPE_RATE_LIMITED: _ClassVar[EventType]
    EVENT_TYPE_BUDGET_EXCEEDED: _ClassVar[EventType]
    EVENT_TYPE_FEEDBACK: _ClassVar[EventType]
    EVENT_TYPE_MODEL_CHANGE: _ClassVar[EventType]
    EVENT_TYPE_PRIVACY_CONSENT_CHANGED: _ClassVar[EventType]
    EVENT_TYPE_PRIVACY_ACCESS_REQUESTED: _ClassVar[EventType]
    EVENT_TYPE_PRIVACY_ERASURE: _ClassVar[EventType]
    EVENT_TYPE_RETENTION_APPLIED: _ClassVar[EventType]
    EVENT_TYPE_AUDIT_ACCESS: _ClassVar[EventType]
    EVENT_TYPE_RULE_CHANGE: _ClassVar[EventType]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_SYSTEM: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]
    ROLE_ASSISTANT: _ClassVar[Role]
    ROLE_TOOL: _ClassVar[Role]

class ToolCallStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOOL_CALL_STATUS_UNSPECIFIED: _ClassVar[ToolCallStatus]
    TOOL_CALL_STATUS_SUCCEEDED: _ClassVar[ToolCallStatus]
    TOOL_CALL_STATUS_FAILED: _ClassVar[ToolCallStatus]
    TOOL_CALL_STATUS_DENIED: _ClassVar[ToolCallStatus]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_LOW: _ClassVar[Severity]
    SEVERITY_MEDIUM: _ClassVar[Severity]
    SEVERITY_HIGH: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]

class TrustSignalSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRUST_SIGNAL_SOURCE_UNSPECIFIED: _ClassVar[TrustSignalSource]
    TRUST_SIGNAL_SOURCE_USER: _ClassVar[TrustSignalSource]
    TRUST_SIGNAL_SOURCE_MODEL: _ClassVar[TrustSignalSource]
    TRUST_SIGNAL_SOURCE_VERIFIER: _ClassVar[TrustSignalSource]

class DataClassification(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_CLASSIFICATION_UNSPECIFIED: _ClassVar[DataClassification]
    DATA_CLASSIFICATION_PUBLIC: _ClassVar[DataClassification]
    DATA_CLASSIFICATION_INTERNAL: _ClassVar[DataClassification]
    DATA_CLASSIFICATION_CONFIDENTIAL: _ClassVar[DataClassification]
    DATA_CLASSIFICATION_RESTRICTED: _ClassVar[DataClassification]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_INTERACTION: EventType
EVENT_TYPE_TOOL_CALL: EventType
EVENT_TYPE_AGENT_HANDOFF: EventType
EVENT_TYPE_APPROVAL_CREATED: EventType
EVENT_TYPE_APPROVAL_APPROVED: EventType
EVENT_TYPE_APPROVAL_REJECTED: EventType
EVENT_TYPE_APPROVAL_EXPIRED: EventType
EVENT_TYPE_TASK_QUEUED: EventType
EVENT_TYPE_TASK_COMPLETED: EventType
EVENT_TYPE_TASK_FAILED: EventType
EVENT_TYPE_RATE_LIMITED: EventType
EVENT_TYPE_BUDGET_EXCEEDED: EventType
EVENT_TYPE_FEEDBACK: EventType
EVENT_TYPE_MODEL_CHANGE: EventType
EVENT_TYPE_PRIVACY_CONSENT_CHANGED: EventType
EVENT_TYPE_PRIVACY_ACCESS_REQUESTED: EventType
EVENT_TYPE_PRIVACY_ERASURE: EventType
EVENT_TYPE_RETENTION_APPLIED: EventType
EVENT_TYPE_AUDIT_ACCESS: EventType
EVENT_TYPE_RULE_CHANGE: EventType
ROLE_UNSPECIFIED: Role
ROLE_SYSTEM: Role
ROLE_USER: Role
ROLE_ASSISTANT: Role
ROLE_TOOL: Role
TOOL_CALL_STATUS_UNSPECIFIED: ToolCallStatus
TOOL_CALL_STATUS_SUCCEEDED: ToolCallStatus
TOOL_CALL_STATUS_FAILED: ToolCallStatus
TOOL_CALL_STATUS_DENIED: ToolCallStatus
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_LOW: Severity
SEVERITY_MEDIUM: Severity
SEVERITY_HIGH: Severity
SEVERITY_CRITICAL: Severity
TRUST_SIGNAL_SOURCE_UNSPECIFIED: TrustSignalSource
TRUST_SIGNAL_SOURCE_USER: TrustSignalSource
TRUST_SIGNAL_SOURCE_MODEL: TrustSignalSource
TRUST_SIGNAL_SOURCE_VERIFIER: TrustSignalSource
DATA_CLASSIFICATION_UNSPECIFIED: DataClassification
DATA_CLASSIFICATION_PUBLIC: DataClassification
DATA_CLASSIFICATION_INTERNAL: DataClassification
DATA_CLASSIFICATION_CONFIDENTIAL: DataClassification
DATA_CLASSIFICATION_RESTRICTED: DataClassification

class Event(_message.Message):
    __slots__ = ("event_id", "tenant_id", "event_type", "occurred_time", "receive_time", "correlation", "actor", "model", "input", "output", "usage", "timing", "safety_flags", "trust_signals", "tool_call", "agent_handoff", "approval", "task", "budget", "model_change", "privacy_action", "error", "data_classification", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AttributeValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AttributeValue, _Mapping]] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_TIME_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    SAFETY_FLAGS_FIELD_NUMBER: _ClassVar[int]
    TRUST_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_FIELD_NUMBER: _ClassVar[int]
    AGENT_HANDOFF_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    MODEL_CHANGE_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_ACTION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DATA_CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    tenant_id: str
    event_type: EventType
    occurred_time: _timestamp_pb2.Timestamp
    receive_time: _timestamp_pb2.Timestamp
    correlation: Correlation
    actor: Actor
    model: Model
    input: Input
    output: Output
    usage: Usage
    timing: Timing
    safety_flags: _containers.RepeatedCompositeFieldContainer[SafetyFlag]
    trust_signals: _containers.RepeatedCompositeFieldContainer[TrustSignal]
    tool_call: ToolCall
    agent_handoff: AgentHandoff
    approval: Approval
    task: Task
    budget: Budget
    model_change: ModelChange
    privacy_action: PrivacyAction
    error: ErrorInfo
    data_classification: DataClassification
    attributes: _containers.MessageMap[str, AttributeValue]
    def __init__(self, event_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., event_type: _Optional[_Union[EventType, str]] = ..., occurred_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., correlation: _Optional[_Union[Correlation, _Mapping]] = ..., actor: _Optional[_Union[Actor, _Mapping]] = ..., model: _Optional[_Union[Model, _Mapping]] = ..., input: _Optional[_Union[Input, _Mapping]] = ..., output: _Optional[_Union[Output, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., safety_flags: _Optional[_Iterable[_Union[SafetyFlag, _Mapping]]] = ..., trust_signals: _Optional[_Iterable[_Union[TrustSignal, _Mapping]]] = ..., tool_call: _Optional[_Union[ToolCall, _Mapping]] = ..., agent_handoff: _Optional[_Union[AgentHandoff, _Mapping]] = ..., approval: _Optional[_Union[Approval, _Mapping]] = ..., task: _Optional[_Union[Task, _Mapping]] = ..., budget: _Optional[_Union[Budget, _Mapping]] = ..., model_change: _Optional[_Union[ModelChange, _Mapping]] = ..., privacy_action: _Optional[_Union[PrivacyAction, _Mapping]] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ..., data_classification: _Optional[_Union[DataClassification, str]] = ..., attributes: _Optional[_Mapping[str, AttributeValue]] = ...) -> None: ...

class Correlation(_message.Message):
    __slots__ = ("correlation_id", "trace_id", "span_id", "session_id", "conversation_id", "parent_event_id")
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    correlation_id: str
    trace_id: str
    span_id: str
    session_id: str
    conversation_id: str
    parent_event_id: str
    def __init__(self, correlation_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., session_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., parent_event_id: _Optional[str] = ...) -> None: ...

class Actor(_message.Message):
    __slots__ = ("user_id", "user_role", "ip_address", "api_key_id", "application", "environment", "agent_name", "agent_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ROLE_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    user_role: str
    ip_address: str
    api_key_id: str
    application: str
    environment: str
    agent_name: str
    agent_id: str
    def __init__(self, user_id: _Optional[str] = ..., user_role: _Optional[str] = ..., ip_address: _Optional[str] = ..., api_key_id: _Optional[str] = ..., application: _Optional[str] = ..., environment: _Optional[str] = ..., agent_name: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("provider", "name", "version", "operation", "temperature", "top_p", "top_k", "max_tokens", "seed", "stop_sequences", "frequency_penalty", "presence_penalty", "parameters")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_PENALTY_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_PENALTY_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    provider: str
    name: str
    version: str
    operation: str
    temperature: float
    top_p: float
    top_k: float
    max_tokens: int
    seed: int
    stop_sequences: _containers.RepeatedScalarFieldContainer[str]
    frequency_penalty: float
    presence_penalty: float
    parameters: _struct_pb2.Struct
    def __init__(self, provider: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., operation: _Optional[str] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[float] = ..., max_tokens: _Optional[int] = ..., seed: _Optional[int] = ..., stop_sequences: _Optional[_Iterable[str]] = ..., frequency_penalty: _Optional[float] = ..., presence_penalty: _Optional[float] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Input(_message.Message):
    __slots__ = ("system_instructions", "messages", "retrieved_context", "tool_definitions")
    SYSTEM_INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    RETRIEVED_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TOOL_DEFINITIONS_FIELD_NUMBER: _ClassVar[int]
    system_instructions: _containers.RepeatedCompositeFieldContainer[Part]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    retrieved_context: _containers.RepeatedCompositeFieldContainer[RetrievedChunk]
    tool_definitions: _containers.RepeatedCompositeFieldContainer[ToolDefinition]
    def __init__(self, system_instructions: _Optional[_Iterable[_Union[Part, _Mapping]]] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., retrieved_context: _Optional[_Iterable[_Union[RetrievedChunk, _Mapping]]] = ..., tool_definitions: _Optional[_Iterable[_Union[ToolDefinition, _Mapping]]] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("messages", "tool_calls", "reasoning", "finish_reasons", "response_id")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASONS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_ID_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    reasoning: str
    finish_reasons: _containers.RepeatedScalarFieldContainer[str]
    response_id: str
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., reasoning: _Optional[str] = ..., finish_reasons: _Optional[_Iterable[str]] = ..., response_id: _Optional[str] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("role", "parts", "name")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    role: Role
    parts: _containers.RepeatedCompositeFieldContainer[Part]
    name: str
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., parts: _Optional[_Iterable[_Union[Part, _Mapping]]] = ..., name: _Optional[str] = ...) -> None: ...

class Part(_message.Message):
    __slots__ = ("text", "media")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    text: str
    media: Media
    def __init__(self, text: _Optional[str] = ..., media: _Optional[_Union[Media, _Mapping]] = ...) -> None: ...

class Media(_message.Message):
    __slots__ = ("mime_type", "size_bytes", "sha256", "data", "uri")
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    mime_type: str
    size_bytes: int
    sha256: str
    data: bytes
    uri: str
    def __init__(self, mime_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., data: _Optional[bytes] = ..., uri: _Optional[str] = ...) -> None: ...

class RetrievedChunk(_message.Message):
    __slots__ = ("document_id", "chunk_id", "source", "score", "content")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    chunk_id: str
    source: str
    score: float
    content: str
    def __init__(self, document_id: _Optional[str] = ..., chunk_id: _Optional[str] = ..., source: _Optional[str] = ..., score: _Optional[float] = ..., content: _Optional[str] = ...) -> None: ...

class ToolDefinition(_message.Message):
    __slots__ = ("name", "description", "parameters_schema")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters_schema: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("id", "name", "arguments", "result", "status", "duration")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    arguments: str
    result: str
    status: ToolCallStatus
    duration: _duration_pb2.Duration
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[str] = ..., result: _Optional[str] = ..., status: _Optional[_Union[ToolCallStatus, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cost")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost: Money
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cached_input_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., cost: _Optional[_Union[Money, _Mapping]] = ...) -> None: ...

class Money(_message.Message):
    __slots__ = ("currency_code", "units", "nanos")
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    NANOS_FIELD_NUMBER: _ClassVar[int]
    currency_code: str
    units: int
    nanos: int
    def __init__(self, currency_code: _Optional[str] = ..., units: _Optional[int] = ..., nanos: _Optional[int] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("latency", "time_to_first_token")
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    latency: _duration_pb2.Duration
    time_to_first_token: _duration_pb2.Duration
    def __init__(self, latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_to_first_token: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SafetyFlag(_message.Message):
    __slots__ = ("category", "severity", "score", "source", "blocked")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    category: str
    severity: Severity
    score: float
    source: str
    blocked: bool
    def __init__(self, category: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., score: _Optional[float] = ..., source: _Optional[str] = ..., blocked: _Optional[bool] = ...) -> None: ...

class TrustSignal(_message.Message):
    __slots__ = ("name", "value", "source", "explanation", "subject_event_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: AttributeValue
    source: TrustSignalSource
    explanation: str
    subject_event_id: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[_Union[AttributeValue, _Mapping]] = ..., source: _Optional[_Union[TrustSignalSource, str]] = ..., explanation: _Optional[str] = ..., subject_event_id: _Optional[str] = ...) -> None: ...

class AttributeValue(_message.Message):
    __slots__ = ("string_value", "int_value", "double_value", "bool_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    int_value: int
    double_value: float
    bool_value: bool
    def __init__(self, string_value: _Optional[str] = ..., int_value: _Optional[int] = ..., double_value: _Optional[float] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class AgentHandoff(_message.Message):
    __slots__ = ("from_agent", "to_agent", "reason")
    FROM_AGENT_FIELD_NUMBER: _ClassVar[int]
    TO_AGENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    from_agent: str
    to_agent: str
    reason: str
    def __init__(self, from_agent: _Optional[str] = ..., to_agent: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("approval_id", "action", "requested_by", "approver_id", "approver_role", "reason", "expire_time")
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVER_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVER_ROLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    approval_id: str
    action: str
    requested_by: str
    approver_id: str
    approver_role: str
    reason: str
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, approval_id: _Optional[str] = ..., action: _Optional[str] = ..., requested_by: _Optional[str] = ..., approver_id: _Optional[str] = ..., approver_role: _Optional[str] = ..., reason: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "name", "failure_reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    name: str
    failure_reason: str
    def __init__(self, task_id: _Optional[str] = ..., name: _Optional[str] = ..., failure_reason: _Optional[str] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("limit_name", "used", "limit", "window", "unit")
    LIMIT_NAME_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    limit_name: str
    used: float
    limit: float
    window: _duration_pb2.Duration
    unit: str
    def __init__(self, limit_name: _Optional[str] = ..., used: _Optional[float] = ..., limit: _Optional[float] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., unit: _Optional[str] = ...) -> None: ...

class ModelChange(_message.Message):
    __slots__ = ("previous", "current", "changed_by", "reason")
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    previous: Model
    current: Model
    changed_by: str
    reason: str
    def __init__(self, previous: _Optional[_Union[Model, _Mapping]] = ..., current: _Optional[_Union[Model, _Mapping]] = ..., changed_by: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PrivacyAction(_message.Message):
    __slots__ = ("subject_id", "event_ids", "reason", "requested_by", "consent_granted", "consent_purpose")
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    CONSENT_GRANTED_FIELD_NUMBER: _ClassVar[int]
    CONSENT_PURPOSE_FIELD_NUMBER: _ClassVar[int]
    subject_id: str
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    requested_by: str
    consent_granted: bool
    consent_purpose: str
    def __init__(self, subject_id: _Optional[str] = ..., event_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., requested_by: _Optional[str] = ..., consent_granted: _Optional[bool] = ..., consent_purpose: _Optional[str] = ...) -> None: ...

class ErrorInfo(_message.Message):
    __slots__ = ("type", "message")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
