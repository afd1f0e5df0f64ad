"""Auth routes: `POST /auth/token`, `POST /auth/clients`, `DELETE /auth/clients/{client_id}`,
`POST /auth/clients/{client_id}/secret`, `GET /.well-known/jwks.json`."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field, ValidationError

from ghostpay.auth import service
from ghostpay.core import problems
from ghostpay.core.api_models import Text
from ghostpay.core.deps import RuntimeDep, require_roles
from ghostpay.core.errors import InvalidRequest
from ghostpay.core.tokens import Principal

router = APIRouter(tags=["auth"])


class TokenRequest(BaseModel):
    grant_type: Literal["client_credentials"] = "client_credentials"
    client_id: Text = Field(min_length=1, max_length=200)
    client_secret: Text = Field(min_length=1, max_length=500)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme's name, not a secret
    expires_in: int


class ClientRequest(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    role: Literal["admin", "merchant", "user"]
    user_id: Text | None = Field(default=None, min_length=1, max_length=200)


class ClientResponse(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown once; only a slow hash is stored.")
    name: str
    role: Literal["admin", "merchant", "user"]
    user_id: str | None = None
    merchant_id: str | None = None


class ClientSecretResponse(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown once; only a slow hash is stored.")


class JsonWebKeySet(BaseModel):
    keys: list[dict[str, Any]]


_TOKEN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": TokenRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": TokenRequest.model_json_schema()},
        },
    }
}


async def _token_request(request: Request) -> TokenRequest:
    """JSON or an OAuth 2.0 form body, validated by the same model."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/x-www-form-urlencoded") or content_type.startswith(
            "multipart/form-data"
        ):
            data: Any = dict(await request.form())
        else:
            data = json.loads(await request.body() or b"null")
        return TokenRequest.model_validate(data)
    # ValueError covers bad JSON, invalid UTF-8 and over-long numbers; RecursionError deep nesting.
    except (ValueError, RecursionError, ValidationError) as exc:
        raise InvalidRequest(
            "Send JSON {client_id, client_secret} or a form with grant_type=client_credentials."
        ) from exc


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    openapi_extra=_TOKEN_BODY,
    responses=problems.documented(400, 503),
    summary="Exchange client credentials for an access token",
    description="503 `keys_unavailable` while the signing keys (Vault) cannot be reached; 503 `auth_busy` (with "
    "`Retry-After`) when more secret checks are running and waiting than the service admits. Retry later.",
)
async def create_token(runtime: RuntimeDep, request: Request) -> TokenResponse:
    body = await _token_request(request)
    issued = await service.issue_for_credentials(runtime, body.client_id, body.client_secret)
    return TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in)


@router.post(
    "/auth/clients",
    status_code=201,
    response_model=ClientResponse,
    response_model_exclude_none=True,
    responses=problems.documented(400),
    summary="Create an API client (admin)",
)
async def create_client(
    body: ClientRequest,
    runtime: RuntimeDep,
    _: Annotated[Principal, Depends(require_roles("admin"))],
) -> ClientResponse:
    created = await service.create_client(runtime, body.name, body.role, body.user_id)
    principal = service.principal_of(created.client)
    return ClientResponse(
        client_id=created.client.client_id,
        client_secret=created.client_secret,
        name=created.client.name,
        role=principal.role,
        user_id=principal.user_id,
        merchant_id=principal.merchant_id,
    )


AdminDep = Annotated[Principal, Depends(require_roles("admin"))]
ClientIdPath = Annotated[str, Path(min_length=1, max_length=200)]


@router.delete(
    "/auth/clients/{client_id}",
    status_code=204,
    response_class=Response,
    summary="Disable an API client (admin)",
    description="Its secret no longer gets a token, and every token already issued to it is refused with 401 within "
    "5 seconds. Disabling again changes nothing.",
)
async def disable_client(client_id: ClientIdPath, runtime: RuntimeDep, _: AdminDep) -> Response:
    await service.disable_client(runtime, client_id)
    return Response(status_code=204)


@router.post(
    "/auth/clients/{client_id}/secret",
    status_code=201,
    response_model=ClientSecretResponse,
    responses=problems.documented(503),
    summary="Rotate an API client's secret (admin)",
    description="The new secret is shown once; the old one stops working at once, tokens already issued stay "
    "valid until they expire. A disabled client is 404.",
)
async def rotate_client_secret(client_id: ClientIdPath, runtime: RuntimeDep, _: AdminDep) -> ClientSecretResponse:
    return ClientSecretResponse(client_id=client_id, client_secret=await service.rotate_secret(runtime, client_id))


@router.get("/.well-known/jwks.json", response_model=JsonWebKeySet, summary="Public keys that verify tokens")
async def get_jwks(runtime: RuntimeDep) -> dict[str, list[dict[str, Any]]]:
    return service.jwks(runtime)
