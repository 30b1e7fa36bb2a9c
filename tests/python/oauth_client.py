"""The official MCP Python SDK against the runtime: the whole OAuth flow (protected-resource
and authorization-server discovery, dynamic client registration, authorization code with
PKCE and a resource indicator, token exchange), then tools/list and a tools/call that crosses
the tunnel to a connector.

The SDK drives OAuth; this script only plays the user's browser: it opens the authorization
URL, signs in on the runtime's sign-in page, and hands the redirect back to the SDK.

Usage: oauth_client.py URL CA_PEM AGENT_KEY USER SECRET MODE   (MODE: legacy | 2026-07-28)
Prints one JSON line with what it saw.
"""

import asyncio
import json
import re
import sys
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def main() -> None:
    url, ca, agent_key, user, secret, mode = sys.argv[1:7]
    origin = "{0.scheme}://{0.netloc}".format(urlparse(url))
    seen: dict[str, object] = {}
    redirect: dict[str, str | None] = {}

    async def as_the_users_browser(authorization_url: str) -> None:
        seen["authorization_url"] = authorization_url
        async with httpx2.AsyncClient(verify=ca, follow_redirects=False) as browser:
            page = await browser.get(authorization_url)
            pending = re.search(r'name="pending" value="([^"]+)"', page.text)
            if pending is None:
                raise RuntimeError(f"no sign-in form: {page.status_code} {page.text[:300]}")
            answer = await browser.post(
                origin + "/oauth/login",
                data={"pending": pending.group(1), "username": user, "secret": secret},
            )
            query = parse_qs(urlparse(answer.headers["location"]).query)
            redirect["code"] = query["code"][0]
            redirect["state"] = query.get("state", [None])[0]
            redirect["iss"] = query.get("iss", [None])[0]

    async def callback() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=redirect["code"], state=redirect["state"], iss=redirect["iss"])

    storage = MemoryStorage()
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="python-sdk-e2e",
            redirect_uris=["http://127.0.0.1:33418/callback"],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=as_the_users_browser,
        callback_handler=callback,
    )
    http = httpx2.AsyncClient(auth=auth, headers={"X-MCP-Agent-Key": agent_key}, verify=ca, timeout=30)
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        tools = await client.list_tools()
        result = await client.call_tool("diag.ping", {})
        print(
            json.dumps(
                {
                    "mode": mode,
                    "tools": sorted(t.name for t in tools.tools),
                    "structured": result.structured_content,
                    "is_error": result.is_error,
                    "registered_client": storage.client.client_id if storage.client else None,
                    "has_refresh_token": bool(storage.tokens and storage.tokens.refresh_token),
                    "authorization_url": seen.get("authorization_url"),
                }
            )
        )


asyncio.run(main())
