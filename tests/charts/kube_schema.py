"""Checks rendered objects against the Kubernetes API models of the ``kubernetes`` client.

``helm template`` and ``helm lint`` accept any YAML: a misspelt field
(``readinesProbe``), a string where a number belongs or a missing required field
renders fine and only fails (or is dropped) at ``kubectl apply``. The client's
models (pydantic, extra fields forbidden) know every field, its type and which
are required.
"""

from __future__ import annotations

from typing import Any

import kubernetes.client as models
import pydantic


def model_name(api_version: str, kind: str) -> str:
    """``apps/v1`` ``Deployment`` -> ``V1Deployment``, as the client names its models."""
    version = api_version.rpartition("/")[2]
    return f"{version[:1].upper()}{version[1:]}{kind}"


def problems(obj: dict[str, Any]) -> list[str]:
    """``Kind.path: why`` for every field of ``obj`` its kind's model does not allow."""
    kind = obj.get("kind")
    name = model_name(str(obj.get("apiVersion", "")), str(kind))
    model = getattr(models, name, None)
    if not isinstance(model, type) or not issubclass(model, pydantic.BaseModel):
        return [f"{obj.get('apiVersion')} {kind}: no such kind in the API ({name})"]
    try:
        model.model_validate(obj)
    except pydantic.ValidationError as exc:
        return [
            f"{kind}.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        ]
    return []
