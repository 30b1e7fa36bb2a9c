"""The official MCP Python SDK against the runtime: the whole OAuth flow (protected-resource
and authorization-server discovery, dynamic client registration, authorization code with
PKCE and a resource indicator, token exchange), then tools/list and a tools/call that crosses
the tunnel to a connector.

The SDK drives OAuth; this script only plays the user's browser: it opens the authorization
URL, signs in (on the runtime's page for local users, or at the tenant's identity provider),
and hands the redirect back to the SDK.

Usage: oauth_client.py URL CA_PEM AGENT_KEY USER SECRET MODE   (MODE: legacy | 2026-07-28)
Prints one JSON line with what it saw.
"""

import asyncio
import json
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from memory_storage import MemoryStorage


REDIRECT_URI = "http://127.0.0.1:33418/callback"


async def main() -> None:
    url, ca, agent_key, user, secret, mode = sys.argv[1:7]
    origin = "{0.scheme}://{0.netloc}".format(urlparse(url))
    seen: dict[str, object] = {}
    redirect: dict[str, str | None] = {}

    async def as_the_users_browser(authorization_url: str) -> None:
        """Follows the sign-in: the runtime's own page for local users, or the tenant's
        identity provider's login and consent forms, until the redirect back to us."""
        seen["authorization_url"] = authorization_url
        async with httpx2.AsyncClient(verify=ca, follow_redirects=False) as browser:
            url, form = authorization_url, None
            for _ in range(20):
                answer = await (browser.post(url, data=form) if form is not None else browser.get(url))
                form = None
                if answer.is_redirect:
                    location = urljoin(url, answer.headers["location"])
                    if location.startswith(REDIRECT_URI):
                        query = parse_qs(urlparse(location).query)
                        redirect["code"] = query["code"][0]
                        redirect["state"] = query.get("state", [None])[0]
                        redirect["iss"] = query.get("iss", [None])[0]
                        return
                    url = location
                    continue
                page = answer.text
                pending = re.search(r'name="pending" value="([^"]+)"', page)
                action = re.search(r'<form[^>]*action="([^"]+)"', page)
                if pending is not None:
                    url = origin + "/oauth/login"
                    form = {"pending": pending.group(1), "username": user, "secret": secret}
                elif action is not None:
                    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
                    if 'name="login"' in page:
                        form.update(login=user, password=secret)
                    url = urljoin(url, action.group(1))
                else:
                    raise RuntimeError(f"stuck at {url}: {answer.status_code} {page[:300]}")
            raise RuntimeError("too many steps in the sign-in")

    async def callback() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=redirect["code"], state=redirect["state"], iss=redirect["iss"])

    storage = MemoryStorage()
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="python-sdk-e2e",
            redirect_uris=[REDIRECT_URI],
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
