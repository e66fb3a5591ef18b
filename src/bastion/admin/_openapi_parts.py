"""Building blocks of the admin API's OpenAPI document, shared by its paths and components:
``ref`` to a component schema, JSON and error responses (and the 404 and 409 answers about an
``id``), the ``id`` path parameters (with the router's own bound, ``routes.MAX_PARAM``), query
parameters, and ``operation``, which
assembles one operation and adds the answers every authenticated operation can meet (401 and
403 without a body, AU-2; 413 from ``Content-Length`` before anything else, DS-1; 429 for an
address that failed too often or a principal over its rate limit, DS-3) and, when it takes a
body, the answers about that body (400, 408, 415). Data only, no I/O.
"""

from __future__ import annotations

from typing import Final

from bastion._types import JSONObject
from bastion.admin.routes import MAX_PARAM

__all__ = [
    "APPROVAL_ID_PARAM",
    "BODY_ERRORS",
    "DECIDED",
    "ID_PARAM",
    "NOT_FOUND",
    "REFUSALS",
    "error_response",
    "json_response",
    "operation",
    "query_param",
    "ref",
]


def ref(name: str) -> JSONObject:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: JSONObject, description: str) -> JSONObject:
    """A response whose body is JSON of ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_response(description: str) -> JSONObject:
    """A response whose body is the ``Error`` shape."""
    return json_response(ref("Error"), description)


REFUSALS: Final[JSONObject] = {
    "401": {"$ref": "#/components/responses/Unauthenticated"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "413": {"$ref": "#/components/responses/TooLarge"},
    "429": {"$ref": "#/components/responses/Throttled"},
}
BODY_ERRORS: Final[JSONObject] = {
    "400": error_response("The body is not valid for this operation (the message says why)."),
    "408": error_response("The body was not received in time."),
    "415": error_response("Unsupported Content-Type."),
}
ID_PARAM: Final[JSONObject] = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {
        "type": "string",
        "pattern": f"^[A-Za-z0-9_.:-]{{1,{MAX_PARAM}}}$",
        "not": {"enum": [".", ".."]},
    },
}
APPROVAL_ID_PARAM: Final[JSONObject] = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The approval's id as listed, percent-encoded (a held definition's is "
    "'<kind>:<server>:<sha256>'; a tool's id as listed before, 'pin:<server>:<tool>:<sha256>', "
    "carries the tool's name, which may contain '/').",
    "schema": {
        "type": "string",
        "pattern": f"^[^\\x00-\\x1f\\x7f-\\x9f]{{1,{MAX_PARAM}}}$",
        "not": {"enum": [".", ".."]},
    },
}

NOT_FOUND: Final[JSONObject] = {"404": error_response("No such object.")}
DECIDED: Final[JSONObject] = {"409": error_response("Already decided."), **NOT_FOUND}


def query_param(name: str, schema: JSONObject, description: str) -> JSONObject:
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def operation(
    operation_id: str,
    summary: str,
    responses: JSONObject,
    *,
    tag: str,
    parameters: list[JSONObject] | None = None,
    body: JSONObject | None = None,
    security: list[JSONObject] | None = None,
) -> JSONObject:
    """One operation; ``security=[]`` makes it public, without the refusals."""
    op: JSONObject = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "responses": {**responses, **(REFUSALS if security is None else {})},
    }
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
        op["responses"].update(BODY_ERRORS)
    if security is not None:
        op["security"] = security
    return op
