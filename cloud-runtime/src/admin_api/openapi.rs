//! The OpenAPI 3.1 document of the admin API, served at `/admin/api/v1/openapi.json`; the
//! tests validate every answer against it.

use axum::Json;
use serde_json::{Value, json};

use super::BASE;
use super::tokens::Scope;

/// `GET /admin/api/v1/openapi.json` (no authentication: it says nothing about any tenant).
pub async fn serve() -> Json<Value> {
    Json(document())
}

/// The document.
pub fn document() -> Value {
    let problem = |description: &str| {
        json!({"description": description,
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
    };
    let errors = |scope: Scope| {
        json!({
            "400": problem("Malformed request"),
            "401": problem("No usable admin token (missing, unknown, expired or revoked)"),
            "403": problem(&format!("The token lacks the scope {scope}")),
            "404": problem("No such tenant administered by this token, or no such object in it"),
            "503": problem("The store is unavailable; retry"),
        })
    };
    let with = |mut ok: Value, scope: Scope| {
        if let (Some(o), Some(e)) = (ok.as_object_mut(), errors(scope).as_object()) {
            o.extend(e.clone());
        }
        ok
    };
    let tenant = json!({"name": "tenant", "in": "path", "required": true,
                        "schema": {"type": "string", "maxLength": 63}});
    let security = |scope: Scope| json!([{"adminToken": [scope.as_str()]}, {"consoleSession": []}]);
    let policy_file = json!({"required": true, "description": "The policy file (TOML), as `cloud-runtime policy apply` reads it",
        "content": {"application/toml": {"schema": {"type": "string"}}}});
    let invalid_policy = json!({"description": "The file is invalid; nothing changed",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InvalidPolicy"}}}});
    let q = |name: &str, description: &str| {
        json!({"name": name, "in": "query", "required": false, "description": description,
               "schema": {"type": "string", "maxLength": 256}})
    };
    let mut search = vec![
        tenant.clone(),
        q(
            "from",
            "From (RFC 3339, inclusive; default: a day before `to`)",
        ),
        q(
            "to",
            "To (RFC 3339, inclusive; default: now). A search spans at most 366 days",
        ),
        json!({"name": "limit", "in": "query", "required": false,
               "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}),
        q(
            "cursor",
            "The `next_cursor` of the previous page, unchanged",
        ),
    ];
    search.extend(
        crate::audit::search::FILTERS
            .iter()
            .map(|f| q(f, "Only records whose field is exactly this")),
    );
    // Three values rather than one: a single `json!` this size passes the macro recursion limit.
    let paths = json!({
        "/t/{tenant}/connectors": {"get": {
            "operationId": "listConnectors",
            "summary": "The tenant's connectors with their state",
            "parameters": [tenant],
            "security": security(Scope::ConnectorsRead),
            "responses": with(json!({"200": {"description": "The connectors",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ConnectorList"}}}}}),
                Scope::ConnectorsRead),
        }},
        "/t/{tenant}/join-tokens": {"post": {
            "operationId": "createJoinToken",
            "summary": "A one-time join token for a new connector, with the commands that install and enroll it",
            "parameters": [tenant],
            "security": security(Scope::ConnectorsWrite),
            "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JoinTokenRequest"}}}},
            "responses": with(json!({"201": {"description": "The token (shown once)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JoinToken"}}}}}),
                Scope::ConnectorsWrite),
        }},
        "/t/{tenant}/policy": {
            "get": {
                "operationId": "showPolicy",
                "summary": "The policy in force, or revision N",
                "parameters": [tenant, {"name": "revision", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1}}],
                "security": security(Scope::PolicyRead),
                "responses": with(json!({"200": {"description": "The revision",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PolicyRevision"}}}}}),
                    Scope::PolicyRead),
            },
            "put": {
                "operationId": "applyPolicy",
                "summary": "Validate a policy file and put it in force as the next revision (every replica within a second)",
                "parameters": [tenant],
                "security": security(Scope::PolicyWrite),
                "requestBody": policy_file,
                "responses": with(json!({
                    "201": {"description": "Applied",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PolicyApplied"}}}},
                    "422": invalid_policy}),
                    Scope::PolicyWrite),
            },
        },
        "/t/{tenant}/policy/validate": {"post": {
            "operationId": "validatePolicy",
            "summary": "Validate a policy file; nothing is stored",
            "parameters": [tenant],
            "security": security(Scope::PolicyRead),
            "requestBody": policy_file,
            "responses": with(json!({
                "200": {"description": "Valid",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PolicyValid"}}}},
                "422": invalid_policy}),
                Scope::PolicyRead),
        }},
        "/t/{tenant}/policy/preview": {"post": {
            "operationId": "previewPolicy",
            "summary": "What applying a policy file would change: its diff and the (agent, user, tool) decisions that would turn; nothing is stored",
            "parameters": [tenant],
            "security": security(Scope::PolicyRead),
            "requestBody": policy_file,
            "responses": with(json!({
                "200": {"description": "The preview",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PolicyPreview"}}}},
                "422": invalid_policy}),
                Scope::PolicyRead),
        }},
        "/t/{tenant}/policy/revisions": {"get": {
            "operationId": "policyHistory",
            "summary": "Every revision of the policy, newest first",
            "parameters": [tenant],
            "security": security(Scope::PolicyRead),
            "responses": with(json!({"200": {"description": "The revisions",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PolicyHistory"}}}}}),
                Scope::PolicyRead),
        }},
        "/t/{tenant}/policy/rollback": {"post": {
            "operationId": "rollBackPolicy",
            "summary": "Put revision N's file in force again, as the next revision",
            "parameters": [tenant],
            "security": security(Scope::PolicyWrite),
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RollbackRequest"}}}},
            "responses": with(json!({
                "201": {"description": "In force again",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PolicyApplied"}}}},
                "422": invalid_policy}),
                Scope::PolicyWrite),
        }},
        "/t/{tenant}/users": {"get": {
            "operationId": "listUsers",
            "summary": "The tenant's users: ids, names and groups",
            "parameters": [tenant],
            "security": security(Scope::UsersRead),
            "responses": with(json!({"200": {"description": "The users",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UserList"}}}}}),
                Scope::UsersRead),
        }},
        "/t/{tenant}/agents": {"get": {
            "operationId": "listAgents",
            "summary": "The tenant's agents: names, roles and OAuth client bindings",
            "parameters": [tenant],
            "security": security(Scope::AgentsRead),
            "responses": with(json!({"200": {"description": "The agents",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AgentList"}}}}}),
                Scope::AgentsRead),
        }},
        "/t/{tenant}/agents/{name}/rotate-key": {"post": {
            "operationId": "rotateAgentKey",
            "summary": "Give an agent a new key, shown once here; the old one is refused from the next request on",
            "parameters": [tenant, {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
            "security": security(Scope::AgentsWrite),
            "responses": with(json!({"200": {"description": "The new key",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AgentKey"}}}}}),
                Scope::AgentsWrite),
        }},
        "/t/{tenant}/clients": {"get": {
            "operationId": "listClients",
            "summary": "The OAuth clients that got tokens in the tenant: name, redirect hosts, first and last use, bound agent, revocation",
            "parameters": [tenant],
            "security": security(Scope::ClientsRead),
            "responses": with(json!({"200": {"description": "The clients",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ClientList"}}}}}),
                Scope::ClientsRead),
        }},
        "/t/{tenant}/clients/{id}/revoke": {"post": {
            "operationId": "revokeClient",
            "summary": "Revoke a client in the tenant: no token from now on, its refresh tokens spent (idempotent)",
            "parameters": [tenant, {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "security": security(Scope::ClientsWrite),
            "responses": with(json!({"200": {"description": "Revoked",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ClientRevoked"}}}}}),
                Scope::ClientsWrite),
        }},
        "/t/{tenant}/gateways": {"get": {
            "operationId": "listGateways",
            "summary": "The tenant's gateways, each with the URL an MCP client connects to",
            "parameters": [tenant],
            "security": security(Scope::GatewaysRead),
            "responses": with(json!({"200": {"description": "The gateways",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GatewayList"}}}}}),
                Scope::GatewaysRead),
        }},
        "/t/{tenant}/audit": {"get": {
            "operationId": "searchAudit",
            "summary": "The tenant's audit records, newest first, one page at a time; every filter given must match",
            "parameters": search.clone(),
            "security": security(Scope::AuditRead),
            "responses": with(json!({"200": {"description": "A page of records",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AuditPage"}}}}}),
                Scope::AuditRead),
        }},
        "/t/{tenant}/audit/export": {"get": {
            "operationId": "exportAudit",
            "summary": "Every record the search matches, each line exactly as chained (NDJSON), to the end of the range; the export is itself audited",
            "parameters": search,
            "security": security(Scope::AuditRead),
            "responses": with(json!({"200": {"description": "One record line per line",
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}),
                Scope::AuditRead),
        }},
        "/t/{tenant}/audit/verify": {"get": {
            "operationId": "verifyAudit",
            "summary": "Whether every audit chain still holds: no record changed, removed, reordered or cut from the end",
            "parameters": [tenant],
            "security": security(Scope::AuditRead),
            "responses": with(json!({
                "200": {"description": "The chains checked",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AuditVerification"}}}},
                "429": problem("A verification is running; retry when it ends")}),
                Scope::AuditRead),
        }},
        "/t/{tenant}/connectors/{id}/revoke": {"post": {
            "operationId": "revokeConnector",
            "summary": "Revoke a connector: refused from now on, its live tunnels dropped within a second (idempotent)",
            "parameters": [tenant, {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "security": security(Scope::ConnectorsWrite),
            "responses": with(json!({"200": {"description": "Revoked",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Revoked"}}}}}),
                Scope::ConnectorsWrite),
        }},
    });
    let mut paths = paths;
    if let (Some(all), Value::Object(more)) = (
        paths.as_object_mut(),
        directory_paths(&tenant, &with, &security),
    ) {
        all.extend(more);
    }
    let mut schemas = json!({
        "Problem": {"type": "object", "additionalProperties": false,
            "required": ["error", "message"],
            "properties": {"error": {"type": "string", "enum": ["bad_request", "unauthorized", "insufficient_scope", "csrf", "not_admin", "not_found", "conflict", "busy", "unavailable"]},
                           "message": {"type": "string"}}},
        "Connector": {"type": "object", "additionalProperties": false,
            "required": ["id", "status", "version", "transport", "replica", "last_seen_ms", "cert_not_after_ms", "warnings"],
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "string", "enum": ["online", "offline", "revoked"]},
                "version": {"type": ["string", "null"]},
                "transport": {"type": ["string", "null"]},
                "replica": {"type": ["string", "null"]},
                "last_seen_ms": {"type": ["integer", "null"]},
                "cert_not_after_ms": {"type": "integer"},
                "warnings": {"type": "array", "items": {"type": "string"}}}},
        "ConnectorList": {"type": "object", "additionalProperties": false,
            "required": ["connectors"],
            "properties": {"connectors": {"type": "array", "items": {"$ref": "#/components/schemas/Connector"}}}},
        "JoinTokenRequest": {"type": "object", "additionalProperties": false,
            "properties": {"ttl_seconds": {"type": "integer", "minimum": 1, "maximum": 604800}}},
        "JoinToken": {"type": "object", "additionalProperties": false,
            "required": ["token", "connector_id", "ca_fingerprint", "expires_at_ms", "commands"],
            "properties": {
                "token": {"type": "string"},
                "connector_id": {"type": "string"},
                "ca_fingerprint": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                "expires_at_ms": {"type": "integer"},
                "commands": {"type": "object", "additionalProperties": false, "required": ["deb", "rpm"],
                    "properties": {"deb": {"type": "string"}, "rpm": {"type": "string"}}}}},
        "PolicyRevision": {"type": "object", "additionalProperties": false,
            "required": ["revision", "sha256", "file_name", "applied_at_ms", "source"],
            "properties": {"revision": {"type": "integer"}, "sha256": {"type": "string"},
                "file_name": {"type": "string"}, "applied_at_ms": {"type": "integer"},
                "source": {"type": "string"}}},
        "PolicyValid": {"type": "object", "additionalProperties": false,
            "required": ["valid", "sha256", "roles", "groups", "gateways"],
            "properties": {"valid": {"const": true}, "sha256": {"type": "string"},
                "roles": {"type": "integer"}, "groups": {"type": "integer"}, "gateways": {"type": "integer"}}},
        "PolicyApplied": {"type": "object", "additionalProperties": false,
            "required": ["revision", "sha256", "roles", "groups", "gateways"],
            "properties": {"revision": {"type": "integer"}, "sha256": {"type": "string"},
                "roles": {"type": "integer"}, "groups": {"type": "integer"}, "gateways": {"type": "integer"}}},
        "PolicyHistory": {"type": "object", "additionalProperties": false,
            "required": ["revisions"],
            "properties": {"revisions": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                "required": ["revision", "sha256", "file_name", "applied_at"],
                "properties": {"revision": {"type": "integer"}, "sha256": {"type": "string"},
                    "file_name": {"type": "string"}, "applied_at": {"type": "integer"}}}}}},
        "RollbackRequest": {"type": "object", "additionalProperties": false, "required": ["revision"],
            "properties": {"revision": {"type": "integer", "minimum": 1}}},
        "InvalidPolicy": {"type": "object", "additionalProperties": false,
            "required": ["error", "message", "line", "column", "field"],
            "properties": {"error": {"const": "invalid_policy"}, "message": {"type": "string"},
                "line": {"type": "integer", "minimum": 1}, "column": {"type": "integer", "minimum": 1},
                "field": {"type": "string"}}},
        "UserList": {"type": "object", "additionalProperties": false, "required": ["users"],
            "properties": {"users": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                "required": ["id", "name", "groups"],
                "properties": {"id": {"type": "string", "pattern": "^u-[0-9a-f]{32}$"}, "name": {"type": "string"},
                    "groups": {"type": "array", "items": {"type": "string"}}}}}}},
        "AgentList": {"type": "object", "additionalProperties": false, "required": ["agents"],
            "properties": {"agents": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                "required": ["name", "role", "oauth_client_id"],
                "properties": {"name": {"type": "string"}, "role": {"type": "string"},
                    "oauth_client_id": {"type": ["string", "null"]}}}}}},
        "GatewayList": {"type": "object", "additionalProperties": false, "required": ["gateways"],
            "properties": {"gateways": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                "required": ["name", "tools", "instructions", "mcp_url"],
                "properties": {"name": {"type": "string"}, "tools": {"type": "array", "items": {"type": "string"}},
                    "instructions": {"type": ["string", "null"]},
                    "mcp_url": {"type": "string", "pattern": "^https://.+/t/[^/]+/g/[^/]+/mcp$"}}}}}},
        "Revoked": {"type": "object", "additionalProperties": false,
            "required": ["id", "status", "already_revoked"],
            "properties": {"id": {"type": "string"}, "status": {"const": "revoked"},
                           "already_revoked": {"type": "boolean"}}},
    });
    for more in [answer_schemas(), directory_schemas()] {
        if let (Some(all), Value::Object(more)) = (schemas.as_object_mut(), more) {
            all.extend(more);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cloud-runtime tenant admin API",
            "version": "1",
            "description": "Administration of one tenant: its connectors, join tokens, policy, users, agents, gateways and audit trail. Authenticate with an admin token (`cloud-runtime admin-token create`) as a bearer token; a token acts on its own tenant only. A browser signed in to the console as an admin of the tenant (in its admin group) may call it too, with every scope: without `Authorization`, by its session cookie, and every request but GET carries the session's CSRF token (the console pages' `csrf-token` meta tag) in `X-CSRF-Token`.",
        },
        "servers": [{"url": BASE}],
        "paths": paths,
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer",
                "description": "An admin token: `crt_admin_` and 64 hex digits"},
                "consoleSession": {"type": "apiKey", "in": "cookie", "name": crate::oauth::browser::COOKIE,
                "description": "A console sign-in of a tenant admin; changes also need `X-CSRF-Token`"}},
            "schemas": schemas,
        },
    })
}

/// The paths that add, remove and bind users, agents and gateways (apart: see
/// [`answer_schemas`]). The listing `get`s are in [`document`]; these are merged beside them.
fn directory_paths(
    tenant: &Value,
    with: &dyn Fn(Value, Scope) -> Value,
    security: &dyn Fn(Scope) -> Value,
) -> Value {
    let name =
        json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}});
    let body = |schema: &str| json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    let created = |description: &str, schema: &str| {
        json!({"201": {"description": description,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}},
            "409": {"description": "One with this name exists already",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}})
    };
    let removed = json!({"204": {"description": "Removed"}});
    json!({
        "/t/{tenant}/users": {"post": {
            "operationId": "addUser",
            "summary": "Add a local user; their sign-in secret is shown once, in this answer",
            "parameters": [tenant],
            "security": security(Scope::UsersWrite),
            "requestBody": body("NewUser"),
            "responses": with(created("Added", "AddedUser"), Scope::UsersWrite),
        }},
        "/t/{tenant}/users/{name}": {"delete": {
            "operationId": "removeUser",
            "summary": "Remove a user: their refresh tokens and browser sessions end now, their access tokens within minutes",
            "parameters": [tenant, name],
            "security": security(Scope::UsersWrite),
            "responses": with(removed.clone(), Scope::UsersWrite),
        }},
        "/t/{tenant}/agents": {"post": {
            "operationId": "createAgent",
            "summary": "Register an agent; its key is shown once, in this answer",
            "parameters": [tenant],
            "security": security(Scope::AgentsWrite),
            "requestBody": body("NewAgent"),
            "responses": with(created("Registered", "CreatedAgent"), Scope::AgentsWrite),
        }},
        "/t/{tenant}/agents/{name}": {"delete": {
            "operationId": "removeAgent",
            "summary": "Remove an agent: its key is refused from the next request on",
            "parameters": [tenant, name],
            "security": security(Scope::AgentsWrite),
            "responses": with(removed.clone(), Scope::AgentsWrite),
        }},
        "/t/{tenant}/agents/{name}/bind-client": {"post": {
            "operationId": "bindAgentClient",
            "summary": "Bind an agent to a registered OAuth client: that client's users' tokens act as this agent",
            "parameters": [tenant, name],
            "security": security(Scope::AgentsWrite),
            "requestBody": body("ClientBinding"),
            "responses": with(json!({"200": {"description": "Bound",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AgentBound"}}}}}),
                Scope::AgentsWrite),
        }},
        "/t/{tenant}/gateways": {"post": {
            "operationId": "createGateway",
            "summary": "Create a gateway: a URL MCP clients connect to, exposing the tools its patterns name",
            "parameters": [tenant],
            "security": security(Scope::GatewaysWrite),
            "requestBody": body("NewGateway"),
            "responses": with(created("Created", "Gateway"), Scope::GatewaysWrite),
        }},
        "/t/{tenant}/connections": {"get": {
            "operationId": "listConnections",
            "summary": "The users' upstream connections (who connected which provider), asked of every online connector, which holds them in its vault; never a token",
            "parameters": [tenant],
            "security": security(Scope::UsersRead),
            "responses": with(json!({"200": {"description": "The connections, and the connectors that did not answer",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ConnectionList"}}}}}),
                Scope::UsersRead),
        }},
        "/t/{tenant}/connectors/{id}/connections/revoke": {"post": {
            "operationId": "revokeConnection",
            "summary": "Have the connector forget a user's connection: its tokens leave the vault, and the user's next call asks them to connect again",
            "parameters": [tenant, {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "security": security(Scope::UsersWrite),
            "requestBody": body("ConnectionRevokeRequest"),
            "responses": with(json!({"200": {"description": "Done (revoked: false if there was no such connection)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ConnectionRevoked"}}}}}),
                Scope::UsersWrite),
        }},
        "/t/{tenant}/gateways/{name}": {"delete": {
            "operationId": "removeGateway",
            "summary": "Remove a gateway: its URL answers 404 within five seconds",
            "parameters": [tenant, name],
            "security": security(Scope::GatewaysWrite),
            "responses": with(removed, Scope::GatewaysWrite),
        }},
    })
}

/// The request and answer schemas of [`directory_paths`].
fn directory_schemas() -> Value {
    let name = json!({"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$"});
    json!({
        "NewUser": {"type": "object", "additionalProperties": false, "required": ["name"],
            "properties": {"name": name, "groups": {"type": "array", "maxItems": 64, "items": name},
                "admin": {"type": "boolean", "default": false,
                    "description": "Also put the user in the tenant's admin group"}}},
        "AddedUser": {"type": "object", "additionalProperties": false,
            "required": ["id", "name", "groups", "secret"],
            "properties": {"id": {"type": "string", "pattern": "^u-[0-9a-f]{32}$"}, "name": {"type": "string"},
                "groups": {"type": "array", "items": {"type": "string"}},
                "secret": {"type": "string", "pattern": "^mcpus_", "description": "The sign-in secret, shown once"}}},
        "NewAgent": {"type": "object", "additionalProperties": false, "required": ["name", "role"],
            "properties": {"name": name, "role": name, "oauth_client_id": {"type": ["string", "null"]}}},
        "CreatedAgent": {"type": "object", "additionalProperties": false,
            "required": ["name", "role", "oauth_client_id", "key"],
            "properties": {"name": {"type": "string"}, "role": {"type": "string"},
                "oauth_client_id": {"type": ["string", "null"]},
                "key": {"type": "string", "pattern": "^mcpak_", "description": "The agent's key, shown once"}}},
        "ClientBinding": {"type": "object", "additionalProperties": false, "required": ["client_id"],
            "properties": {"client_id": {"type": "string"}}},
        "AgentBound": {"type": "object", "additionalProperties": false, "required": ["agent", "oauth_client_id"],
            "properties": {"agent": {"type": "string"}, "oauth_client_id": {"type": "string"}}},
        "NewGateway": {"type": "object", "additionalProperties": false, "required": ["name", "tools"],
            "properties": {"name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
                "tools": {"type": "array", "minItems": 1, "maxItems": 64,
                    "items": {"type": "string", "pattern": "^[A-Za-z0-9_.-]*\\*?$"}},
                "instructions": {"type": ["string", "null"], "maxLength": 4096}}},
        "ConnectionList": {"type": "object", "additionalProperties": false, "required": ["connections", "unreachable"],
            "properties": {
                "connections": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                    "required": ["connector", "provider", "user", "user_name", "account", "source", "refreshable", "expires_at_ms", "connected_at_ms", "updated_at_ms"],
                    "properties": {"connector": {"type": "string"}, "provider": {"type": "string"},
                        "user": {"type": "string", "description": "The user as the connector keys their tokens"},
                        "user_name": {"type": ["string", "null"]}, "account": {"type": ["string", "null"]},
                        "source": {"enum": ["oauth", "admin"]}, "refreshable": {"type": "boolean"},
                        "expires_at_ms": {"type": ["integer", "null"]}, "connected_at_ms": {"type": "integer"},
                        "updated_at_ms": {"type": "integer"}}}},
                "unreachable": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                    "required": ["connector", "message"],
                    "properties": {"connector": {"type": "string"}, "message": {"type": "string"}}}}}},
        "ConnectionRevokeRequest": {"type": "object", "additionalProperties": false, "required": ["provider", "user"],
            "properties": {"provider": {"type": "string", "maxLength": 200}, "user": {"type": "string", "maxLength": 200}}},
        "ConnectionRevoked": {"type": "object", "additionalProperties": false,
            "required": ["connector", "provider", "user", "revoked"],
            "properties": {"connector": {"type": "string"}, "provider": {"type": "string"},
                "user": {"type": "string"}, "revoked": {"type": "boolean"}}},
        "Gateway": {"type": "object", "additionalProperties": false,
            "required": ["name", "tools", "instructions", "mcp_url"],
            "properties": {"name": {"type": "string"}, "tools": {"type": "array", "items": {"type": "string"}},
                "instructions": {"type": ["string", "null"]},
                "mcp_url": {"type": "string", "pattern": "^https://.+/t/[^/]+/g/[^/]+/mcp$"}}},
    })
}

/// The schemas of the audit and policy-preview answers (apart: one `json!` for every
/// schema passes the macro recursion limit).
fn answer_schemas() -> Value {
    json!({
        "ClientList": {"type": "object", "additionalProperties": false, "required": ["clients"],
            "properties": {"clients": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                "required": ["client_id", "client_name", "redirect_hosts", "first_used_at_ms", "last_used_at_ms", "revoked_at_ms", "agent"],
                "properties": {"client_id": {"type": "string"}, "client_name": {"type": ["string", "null"]},
                    "redirect_hosts": {"type": "array", "items": {"type": "string"}},
                    "first_used_at_ms": {"type": "integer"}, "last_used_at_ms": {"type": "integer"},
                    "revoked_at_ms": {"type": ["integer", "null"]}, "agent": {"type": ["string", "null"]}}}}}},
        "ClientRevoked": {"type": "object", "additionalProperties": false,
            "required": ["client_id", "status", "already_revoked"],
            "properties": {"client_id": {"type": "string"}, "status": {"const": "revoked"},
                "already_revoked": {"type": "boolean"}}},
        "AgentKey": {"type": "object", "additionalProperties": false, "required": ["agent", "key"],
            "properties": {"agent": {"type": "string"}, "key": {"type": "string", "pattern": "^mcpak_"}}},
        "PolicyPreview": {"type": "object", "additionalProperties": false,
            "required": ["diff", "changes", "checked", "truncated", "tools"],
            "properties": {
                "diff": {"type": "string", "description": "Unified diff from the revision in force"},
                "changes": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                    "required": ["agent", "user", "tool", "before", "after"],
                    "properties": {"agent": {"type": "string"}, "user": {"type": "string"},
                        "tool": {"type": "string"}, "before": {"type": "string"}, "after": {"type": "string"}}}},
                "checked": {"type": "integer", "minimum": 0},
                "truncated": {"type": "boolean"},
                "tools": {"type": "integer", "minimum": 0}}},
        "AuditPage": {"type": "object", "additionalProperties": false,
            "required": ["records", "next_cursor"],
            "properties": {
                "records": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                    "required": ["chain", "seq", "at_ms", "record"],
                    "properties": {"chain": {"type": "string"}, "seq": {"type": "integer", "minimum": 1},
                        "at_ms": {"type": "integer"},
                        "record": {"type": "object",
                            "description": "The record as chained: seq, prev and hash with its fields",
                            "required": ["seq", "prev", "hash", "time", "kind", "tenant", "user", "agent", "tool", "call_id", "trace_id"],
                            "properties": {"seq": {"type": "integer"},
                                "prev": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                "time": {"type": "string"},
                                "kind": {"enum": ["decision", "upstream", "outcome", "authorization", "certificate", "admin"]},
                                "tenant": {"type": "string"}, "user": {"type": "string"},
                                "agent": {"type": "string"}, "tool": {"type": "string"},
                                "decision": {"enum": ["allow", "deny"]},
                                "layer": {"enum": ["gateway", "agent", "user", "connector", "hook"]},
                                "outcome": {"type": "string"},
                                "call_id": {"type": "integer"},
                                "trace_id": {"type": "string"}}}}}},
                "next_cursor": {"type": ["string", "null"]}}},
        "AuditVerification": {"type": "object", "additionalProperties": false,
            "required": ["intact", "chains", "tenant_records_indexed"],
            "properties": {
                "intact": {"type": "boolean"},
                "chains": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                    "required": ["chain", "intact", "problems", "first_problem"],
                    "properties": {"chain": {"type": "string"}, "intact": {"type": "boolean"},
                        "problems": {"type": "integer", "minimum": 0},
                        "first_problem": {"type": ["string", "null"]}}}},
                "tenant_records_indexed": {"type": "integer", "minimum": 0}}}
    })
}
