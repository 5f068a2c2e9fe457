from aiaudit.common.v1 import proof_pb2 as _proof_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VerifyStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFY_STATUS_UNSPECIFIED: _ClassVar[VerifyStatus]
    VERIFY_STATUS_VERIFIED: _ClassVar[VerifyStatus]
    VERIFY_STATUS_PENDING: _ClassVar[VerifyStatus]
    VERIFY_STATUS_TAMPERED: _ClassVar[VerifyStatus]
    VERIFY_STATUS_VERIFIED_ERASED: _ClassVar[VerifyStatus]
VERIFY_STATUS_UNSPECIFIED: VerifyStatus
VERIFY_STATUS_VERIFIED: VerifyStatus
VERIFY_STATUS_PENDING: VerifyStatus
VERIFY_STATUS_TAMPERED: VerifyStatus
VERIFY_STATUS_VERIFIED_ERASED: VerifyStatus

class GetCheckpointRequest(_message.Message):
    __slots__ = ("log_id", "tree_size")
    LOG_ID_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    log_id: str
    tree_size: int
    def __init__(self, log_id: _Optional[str] = ..., tree_size: _Optional[int] = ...) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: _proof_pb2.Checkpoint
    def __init__(self, checkpoint: _Optional[_Union[_proof_pb2.Checkpoint, _Mapping]] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("log_id", "event_id", "sequence", "tree_size")
    LOG_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    log_id: str
    event_id: str
    sequence: int
    tree_size: int
    def __init__(self, log_id: _Optional[str] = ..., event_id: _Optional[str] = ..., sequence: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class GetInclusionProofResponse(_message.Message):
    __slots__ = ("proof", "checkpoint", "leaf_hash")
    PROOF_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    proof: _proof_pb2.InclusionProof
    checkpoint: _proof_pb2.Checkpoint
    leaf_hash: bytes
    def __init__(self, proof: _Optional[_Union[_proof_pb2.InclusionProof, _Mapping]] = ..., checkpoint: _Optional[_Union[_proof_pb2.Checkpoint, _Mapping]] = ..., leaf_hash: _Optional[bytes] = ...) -> None: ...

class BatchGetInclusionProofsRequest(_message.Message):
    __slots__ = ("log_id", "sequences", "tree_size")
    LOG_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    log_id: str
    sequences: _containers.RepeatedScalarFieldContainer[int]
    tree_size: int
    def __init__(self, log_id: _Optional[str] = ..., sequences: _Optional[_Iterable[int]] = ..., tree_size: _Optional[int] = ...) -> None: ...

class BatchGetInclusionProofsResponse(_message.Message):
    __slots__ = ("proofs", "checkpoint")
    PROOFS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    proofs: _containers.RepeatedCompositeFieldContainer[_proof_pb2.InclusionProof]
    checkpoint: _proof_pb2.Checkpoint
    def __init__(self, proofs: _Optional[_Iterable[_Union[_proof_pb2.InclusionProof, _Mapping]]] = ..., checkpoint: _Optional[_Union[_proof_pb2.Checkpoint, _Mapping]] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("log_id", "from_size", "to_size", "from_origin")
    LOG_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SIZE_FIELD_NUMBER: _ClassVar[int]
    TO_SIZE_FIELD_NUMBER: _ClassVar[int]
    FROM_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    log_id: str
    from_size: int
    to_size: int
    from_origin: str
    def __init__(self, log_id: _Optional[str] = ..., from_size: _Optional[int] = ..., to_size: _Optional[int] = ..., from_origin: _Optional[str] = ...) -> None: ...

class GetConsistencyProofResponse(_message.Message):
    __slots__ = ("proof",)
    PROOF_FIELD_NUMBER: _ClassVar[int]
    proof: _proof_pb2.ConsistencyProof
    def __init__(self, proof: _Optional[_Union[_proof_pb2.ConsistencyProof, _Mapping]] = ...) -> None: ...

class VerifyEventRequest(_message.Message):
    __slots__ = ("log_id", "event_id")
    LOG_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    log_id: str
    event_id: str
    def __init__(self, log_id: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

class VerifyEventResponse(_message.Message):
    __slots__ = ("status", "problems", "proof", "checkpoint")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    status: VerifyStatus
    problems: _containers.RepeatedScalarFieldContainer[str]
    proof: _proof_pb2.InclusionProof
    checkpoint: _proof_pb2.Checkpoint
    def __init__(self, status: _Optional[_Union[VerifyStatus, str]] = ..., problems: _Optional[_Iterable[str]] = ..., proof: _Optional[_Union[_proof_pb2.InclusionProof, _Mapping]] = ..., checkpoint: _Optional[_Union[_proof_pb2.Checkpoint, _Mapping]] = ...) -> None: ...

class GetVerifierKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetVerifierKeyResponse(_message.Message):
    __slots__ = ("verifier_keys", "origin_prefix")
    VERIFIER_KEYS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_PREFIX_FIELD_NUMBER: _ClassVar[int]
    verifier_keys: _containers.RepeatedScalarFieldContainer[str]
    origin_prefix: str
    def __init__(self, verifier_keys: _Optional[_Iterable[str]] = ..., origin_prefix: _Optional[str] = ...) -> None: ...
