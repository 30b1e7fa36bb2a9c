"""The official MCP Python SDK calling source-control tools through the runtime, with
just-in-time authorization: when the user has not connected their upstream (GitHub
Enterprise / GitLab) account yet, the runtime answers with a URL elicitation (an
input-required result on 2026-07-28, the -32042 error on 2025-11-25); this script plays the
user and their browser: it opens the link, the runtime checks the browser is signed in as
the same user (the cookie from the OAuth sign-in), sends it to the upstream's consent page,
where the user allows access, and the upstream sends the browser back to the runtime.

Usage: jit_client.py URL CA_PEM AGENT_KEY USER SECRET UPSTREAM_USER MODE CALLS_JSON [CONFIRM]
  MODE: legacy | 2026-07-28
  CALLS_JSON: [{"tool": name, "arguments": {...}}, ...], called in order.
  CONFIRM: accept | decline, the user's answer when asked to confirm a destructive call
  (a form elicitation); default decline.
Prints one JSON line: {"calls": [{"tool", "elicitations", "is_error", "structured", "text",
"error"}], "browser": [pages seen]}.
"""

import asyncio
import json
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import Client, MCPError, UrlElicitationRequiredError
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from memory_storage import MemoryStorage
import mcp.types as types

REDIRECT_URI = "http://127.0.0.1:33419/callback"


async def main() -> None:
    url, ca, agent_key, user, secret, upstream_user, mode, calls = sys.argv[1:9]
    confirm = sys.argv[9] if len(sys.argv) > 9 else "decline"
    calls = json.loads(calls)
    origin = "{0.scheme}://{0.netloc}".format(urlparse(url))
    redirect: dict[str, str | None] = {}
    pages: list[str] = []
    # One browser for the whole session: the cookie of the runtime sign-in is what lets the
    # connect page recognise the user later.
    browser = httpx2.AsyncClient(verify=ca, follow_redirects=False)

    async def walk(start: str, stop_at: str | None) -> str | None:
        """Follows redirects and fills the forms on the way (the runtime's sign-in, the
        upstream's consent); returns the location that starts with `stop_at`, if any."""
        target, form = start, None
        for _ in range(20):
            answer = await (browser.post(target, data=form) if form is not None else browser.get(target))
            form = None
            if answer.is_redirect:
                location = urljoin(target, answer.headers["location"])
                if stop_at is not None and location.startswith(stop_at):
                    return location
                target = location
                continue
            page = answer.text
            note = "" if answer.status_code < 400 else " " + re.sub(r"<[^>]+>", " ", page)[:200].strip()
            pages.append(f"{answer.status_code} {urlparse(target).path}{note}")
            pending = re.search(r'name="pending" value="([^"]+)"', page)
            action = re.search(r'<form[^>]*action="([^"]+)"', page)
            if pending is not None:
                target = origin + "/oauth/login"
                form = {"pending": pending.group(1), "username": user, "secret": secret}
            elif action is not None and 'name="username"' in page:
                # The upstream's consent page: sign in there as the user and allow.
                form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
                form.update(username=upstream_user, decision="authorize")
                target = urljoin(target, action.group(1))
            elif answer.status_code == 200 and stop_at is None:
                return None
            else:
                raise RuntimeError(f"stuck at {target}: {answer.status_code} {page[:300]}")
        raise RuntimeError("too many steps")

    async def sign_in(authorization_url: str) -> None:
        location = await walk(authorization_url, REDIRECT_URI)
        query = parse_qs(urlparse(location).query)
        redirect["code"] = query["code"][0]
        redirect["state"] = query.get("state", [None])[0]
        redirect["iss"] = query.get("iss", [None])[0]

    async def callback() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=redirect["code"], state=redirect["state"], iss=redirect["iss"])

    elicited: list[str] = []
    asked: list[str] = []

    async def on_elicitation(context, params):  # the MCP client's elicitation UI
        if isinstance(params, types.ElicitRequestURLParams):
            elicited.append(params.url)
            await walk(params.url, None)
            return types.ElicitResult(action="accept")
        asked.append(params.message)
        if confirm == "accept":
            return types.ElicitResult(action="accept", content={"confirm": True})
        return types.ElicitResult(action="decline")

    storage = MemoryStorage()
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="python-sdk-jit",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=sign_in,
        callback_handler=callback,
    )
    http = httpx2.AsyncClient(auth=auth, headers={"X-MCP-Agent-Key": agent_key}, verify=ca, timeout=60)
    out = []
    async with browser, http, Client(
        streamable_http_client(url, http_client=http), mode=mode, elicitation_callback=on_elicitation
    ) as client:
        for c in calls:
            elicited.clear()
            asked.clear()
            entry = {"tool": c["tool"]}
            for attempt in range(3):
                try:
                    result = await client.call_tool(c["tool"], c.get("arguments", {}))
                    entry.update(
                        is_error=result.is_error,
                        structured=result.structured_content,
                        text=" ".join(b.text for b in result.content if getattr(b, "text", None)),
                    )
                    break
                except MCPError as e:
                    if e.code != -32042:
                        entry["error"] = f"MCPError {e.code}: {e.message}"
                        break
                    # 2025-11-25: the error names the links; the user opens them, then the
                    # agent calls again.
                    for el in UrlElicitationRequiredError.from_error(e.error).elicitations:
                        elicited.append(el.url)
                        await walk(el.url, None)
                except Exception as e:  # anything else: report it
                    entry["error"] = f"{type(e).__name__}: {e}"
                    break
            entry["elicitations"] = list(elicited)
            entry["asked"] = list(asked)
            out.append(entry)
    print(json.dumps({"mode": mode, "calls": out, "browser": pages}))


asyncio.run(main())
