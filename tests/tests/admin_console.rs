//! The tenant admin console (`/admin/t/{tenant}/...`) in a real browser: Debian's headless
//! Chromium, driven over WebDriver, against a real runtime and real connectors. The console
//! is HTML rendered by the runtime, without JavaScript (but for the live view, whose stream
//! `admin_api.rs` reads), so what is tested is what a person sees and does there:
//!
//! - Signing in: without a session the console sends the browser to the runtime's sign-in
//!   form, and back to the console once an admin of the tenant has signed in. Every page is
//!   reached from the same navigation, which has a sign-out; signing out ends the session
//!   (its cookie opens nothing after). A signed-in user who is not an admin of the tenant is
//!   refused every page (403), and an admin of one tenant does not see another's console.
//! - Connectors: a join token made on the page, whose install command enrolls a real
//!   connector; the connector shown online, then revoked with its button (its process
//!   exits). A revoke posted with the session cookie but without the form's CSRF token, or
//!   with a forged one, is refused and changes nothing.
//! - Policy: a broken file validated with the line of its error; a preview with the diff
//!   and the calls that would change (a dry run that puts nothing in force); applied, and
//!   the agent's `tools/list` follows.
//! - Audit: the denied call that follows, found by filtering; the page at a phone's width;
//!   markup typed into a filter comes back as text, both in the server's HTML and in the
//!   browser (no script element, no dialog).
//!
//! - Signing in at the tenant's identity provider (the test OpenID provider): an admin in
//!   its admin group lands on the console, registers an agent (its key shown once), and
//!   creates a gateway (its MCP URL shown, markup in its instructions shown as text) and
//!   removes it.
//!
//! Each step of note leaves a screenshot in `target/browser-screenshots/`, to look at.
//! `scripts/test` installs Chromium and chromedriver; without them the suite runs only as
//! root (which can install them), otherwise it says why it skipped.

mod browser;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use browser::{Browser, DESKTOP, PHONE};
use e2e::mcp_client::McpClient;
use e2e::oauth_client::field;
use e2e::{Connector, OPEN_POLICY, Process, Runtime, run, run_ok, wait_for};
use reqwest::blocking::Client;
use serde_json::json;

/// The runtime's browser session cookie (the sign-in sets it).
const SESSION_COOKIE: &str = "__Host-mcp-edge-session";
/// acme's console: its overview.
const CONSOLE: &str = "/admin/t/acme/";
const CONNECTORS: &str = "/admin/t/acme/connectors";
/// The runtime's sign-in form.
const SIGN_IN_FORM: &str = "form[action=\"/oauth/login\"]";
/// The navigation every console page has.
const NAV: [&str; 6] = [
    "a#nav-overview",
    "a#nav-connectors",
    "a#nav-policy",
    "a#nav-audit",
    "a#nav-people",
    "a#nav-gateways",
];
/// What a change takes to show (a connector coming online, the audit index following the
/// chain, the overview's counts).
const SETTLE: Duration = Duration::from_secs(20);

/// `user add` in acme (an admin of it if `admin`): the user's sign-in secret.
fn add_user(rt: &Runtime, name: &str, admin: bool) -> String {
    let mut cmd = rt.cli();
    cmd.args(["user", "add", "--tenant", "acme", name, "--groups", "dev"]);
    if admin {
        cmd.arg("--admin");
    }
    field(&run_ok(&mut cmd), "(shown once):")
}

/// Opens acme's console without a session, checks it sends the browser to the sign-in form
/// (screenshot `step`), and signs in as `user`; the browser is back at the console.
fn sign_in(b: &Browser, user: &str, secret: &str, step: &str) -> Result<()> {
    b.goto(CONSOLE)?;
    b.wait_for(SIGN_IN_FORM)
        .context("the console sends a browser without a session to sign in")?;
    b.type_into(&format!("{SIGN_IN_FORM} input[name=\"username\"]"), user)?;
    b.type_into(&format!("{SIGN_IN_FORM} input[name=\"secret\"]"), secret)?;
    b.screenshot(step)?;
    b.submit(&format!("{SIGN_IN_FORM} button[type=\"submit\"]"))?;
    let path = b.path()?;
    ensure!(path == CONSOLE, "signed in, the browser is at {path}");
    Ok(())
}

/// Checks the page shown is a console page: the whole navigation and the sign-out.
fn is_console_page(b: &Browser) -> Result<()> {
    for link in NAV.into_iter().chain(["form#sign-out"]) {
        ensure!(b.exists(link)?, "no {link} on {}", b.url()?);
    }
    Ok(())
}

/// An HTTPS client of the runtime trusting its CA (`ca.pem`), following no redirects.
fn https(rt: &Runtime) -> Result<Client> {
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    Ok(Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()?)
}

/// The browser's session cookie, as a `Cookie` header value.
fn session_cookie(b: &Browser) -> Result<String> {
    let value = b
        .cookie(SESSION_COOKIE)?
        .with_context(|| format!("the browser holds no {SESSION_COOKIE}"))?;
    Ok(format!("{SESSION_COOKIE}={value}"))
}

/// The value after `flag` in a command line.
fn flag<'a>(command: &'a str, flag: &str) -> Result<&'a str> {
    let words: Vec<&str> = command.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == flag)
        .and_then(|i| words.get(i + 1))
        .copied()
        .with_context(|| format!("no {flag} in {command}"))
}

#[test]
fn an_admin_enrolls_a_connector_from_the_console_and_revokes_it() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let secret = add_user(&rt, "ada", true);
    let Some(b) = Browser::start(&rt, "connectors")? else {
        return Ok(());
    };

    sign_in(&b, "ada", &secret, "sign-in")?;
    is_console_page(&b)?;
    assert_eq!(b.text("#connectors-online")?, "0", "no connector yet");
    b.screenshot("overview-empty")?;

    // A join token made on the page: the install commands, with the enroll command in them.
    b.submit("a#nav-connectors")?;
    b.wait_for("table#connectors")?;
    b.submit("form#join-token-form button#create-join-token")?;
    b.wait_for("code#deb-command")?;
    b.screenshot("join-token")?;
    let deb = b.text("code#deb-command")?;
    let rpm = b.text("code#rpm-command")?;
    let token = b.text("code#join-token")?;
    let id = b.text("code#connector-id")?;
    ensure!(
        deb.starts_with("sudo apt-get install ./edge-connector_")
            && deb.ends_with("sudo systemctl enable --now edge-connector"),
        "{deb}"
    );
    let enroll = deb
        .split(" && ")
        .find(|part| part.contains(" enroll "))
        .context("an enroll command")?;
    ensure!(
        rpm.contains("dnf install") && rpm.contains(enroll),
        "the rpm command installs and enrolls the same way: {rpm}"
    );
    assert_eq!(
        flag(enroll, "--token")?,
        token,
        "the token shown is the one to use"
    );
    assert_eq!(flag(enroll, "--runtime")?, rt.https_endpoint());
    ensure!(flag(enroll, "--ca-fingerprint")?.starts_with("sha256:"));

    // The page's command enrolls a real connector (it pins the CA by that fingerprint).
    let state = rt.dir.path().join("c1");
    let out = run(Connector::cli()
        .args([
            "enroll",
            "--runtime",
            flag(enroll, "--runtime")?,
            "--token",
            flag(enroll, "--token")?,
            "--ca-fingerprint",
            flag(enroll, "--ca-fingerprint")?,
            "--state-dir",
        ])
        .arg(&state));
    ensure!(
        out.status.success(),
        "the page's enroll command enrolls: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = Connector::cli();
    cmd.arg("run").arg("--state-dir").arg(&state);
    let mut connector = Process::spawn(cmd, rt.dir.path().join("c1.log"))?;

    // The page shows it online (reloaded as a person would: the page does not refresh).
    let row = format!("tr[data-connector=\"{id}\"]");
    let status = format!("{row} td.status");
    wait_for(
        SETTLE,
        "the connector online on the connectors page",
        || {
            b.goto(CONNECTORS).ok()?;
            (b.text(&status).ok()? == "online").then_some(())
        },
    )
    .with_context(|| connector.log_text())?;
    is_console_page(&b)?;
    b.screenshot("connector-online")?;
    b.goto(CONSOLE)?;
    assert_eq!(b.text("#connectors-online")?, "1");
    b.screenshot("overview")?;

    // A revoke without the form's CSRF token, or with a forged one, is refused, though it
    // carries the admin's session cookie and comes from the console's own origin.
    b.goto(CONNECTORS)?;
    let form = format!("{row} form.revoke");
    let action = b.attr(&form, "action")?.unwrap_or_default();
    let path = format!("/admin/t/acme/connectors/{id}/revoke");
    ensure!(action.ends_with(&path), "the revoke form posts to {action}");
    ensure!(
        b.exists(&format!("{form} input[name=\"csrf\"]"))?,
        "the revoke form carries a CSRF token"
    );
    let http = https(&rt)?;
    let cookie = session_cookie(&b)?;
    for body in ["", "csrf=forged"] {
        let resp = http
            .post(format!("{}{path}", b.origin()))
            .header("cookie", &cookie)
            .header("origin", b.origin())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()?;
        assert_eq!(resp.status().as_u16(), 403, "a revoke posted with {body:?}");
    }
    ensure!(connector.try_wait().is_none(), "{}", connector.log_text());
    assert_eq!(
        rt.connector(&id).context("listed")?["status"],
        "online",
        "the refused revokes changed nothing"
    );
    b.goto(CONNECTORS)?;
    assert_eq!(b.text(&status)?, "online");

    // Revoked with its button: the page says so, offers no revoke again, and the connector,
    // its tunnel dropped and refused, exits.
    b.submit(&format!("{row} button.revoke"))?;
    wait_for(
        SETTLE,
        "the connector revoked on the connectors page",
        || {
            b.goto(CONNECTORS).ok()?;
            (b.text(&status).ok()? == "revoked").then_some(())
        },
    )?;
    ensure!(
        !b.exists(&form)?,
        "a revoked connector has no revoke button"
    );
    b.screenshot("connector-revoked")?;
    let exit = connector.wait_exit(SETTLE)?;
    ensure!(!exit.success(), "a revoked connector exits with an error");
    assert_eq!(rt.connector(&id).context("listed")?["status"], "revoked");
    b.goto(CONSOLE)?;
    assert_eq!(b.text("#connectors-online")?, "0");
    Ok(())
}

#[test]
fn an_admin_changes_the_policy_and_finds_the_denial_in_the_audit_view() -> Result<()> {
    // Role dev may call diag.ping only; group dev anything of diag.
    const NARROWER: &str = "version = 1\n[roles.dev]\nallow = [{ tools = [\"diag.ping\"] }]\n\
                            [groups.dev]\nallow = [{ tools = [\"diag.*\"] }]\n";
    const BROKEN: &str = "version = 1\n[roles.dev]\nallow = [{ tools = 5 }]\n";
    const MARKUP: &str = "<script>alert(1)</script>";

    let mut rt = Runtime::init()?;
    rt.start()?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let mut c1 = Connector::enroll(&rt, "acme", "c1")?;
    c1.start(&rt, &[])?;
    let alice = McpClient::new_user(&rt, "acme", "eng", "alice", "dev", "bot", "dev")?;
    let tools = alice.tool_names()?;
    ensure!(
        tools.iter().any(|t| t == "diag.echo") && tools.iter().any(|t| t == "diag.ping"),
        "the open policy lets the agent call both: {tools:?}"
    );
    let secret = add_user(&rt, "ada", true);
    let Some(b) = Browser::start(&rt, "policy-audit")? else {
        return Ok(());
    };
    sign_in(&b, "ada", &secret, "sign-in")?;

    // The policy in force, in the form.
    b.submit("a#nav-policy")?;
    b.wait_for("form#policy-form textarea#policy-source")?;
    is_console_page(&b)?;
    assert_eq!(
        b.value("textarea#policy-source")?.trim_end(),
        OPEN_POLICY.trim_end(),
        "the form holds the policy in force"
    );
    b.screenshot("policy")?;

    // A broken file: validated, with the line of its error.
    b.type_into("textarea#policy-source", BROKEN)?;
    b.submit("button#validate")?;
    b.wait_for("ul#policy-errors li")?;
    let errors = b.texts("ul#policy-errors li")?;
    ensure!(
        errors.iter().any(|e| e.contains("line 3")),
        "the error names its line: {errors:?}"
    );
    b.screenshot("policy-invalid")?;

    // A narrower one, previewed: the diff, and the dry run's one change (bot acting for
    // alice may no longer call diag.echo; diag.ping does not change).
    b.type_into("textarea#policy-source", NARROWER)?;
    b.submit("button#preview")?;
    b.wait_for("pre#policy-diff")?;
    let diff = b.text("pre#policy-diff")?;
    let lines: Vec<&str> = diff.lines().collect();
    ensure!(
        lines.contains(&"-allow = [{ tools = [\"*\"] }]")
            && lines.contains(&"+allow = [{ tools = [\"diag.ping\"] }]"),
        "a unified diff of the file in force and the proposed one: {diff}"
    );
    let changes = b.table("table#policy-dry-run tr.change", &[])?;
    ensure!(
        changes.iter().any(|row| matches!(
            row.as_slice(),
            [agent, user, tool, before, after]
                if agent == "bot" && user == "alice" && tool == "diag.echo"
                    && before.contains("allow") && after.contains("deny")
        )),
        "the dry run shows the call that changes: {changes:?}"
    );
    ensure!(
        !changes
            .iter()
            .any(|row| row.get(2).is_some_and(|t| t == "diag.ping")),
        "only what changes: {changes:?}"
    );
    b.screenshot("policy-preview")?;
    ensure!(
        alice.tool_names()?.iter().any(|t| t == "diag.echo"),
        "a preview puts nothing in force"
    );
    ensure!(run_ok(rt.cli().args(["policy", "show", "--tenant", "acme"])).contains("revision 1"));

    // Applied from the preview (the proposed file stays in the form): the next revision,
    // and the agent's tools/list follows within the runtime's reload.
    assert_eq!(
        b.value("textarea#policy-source")?.trim_end(),
        NARROWER.trim_end()
    );
    b.submit("button#apply")?;
    b.wait_for("#policy-applied")?;
    let applied = b.text("#policy-applied")?;
    ensure!(applied.contains("revision 2"), "{applied}");
    b.screenshot("policy-applied")?;
    ensure!(
        run_ok(rt.cli().args(["policy", "show", "--tenant", "acme"])).contains("revision 2"),
        "the command line sees the same revision"
    );
    wait_for(SETTLE, "tools/list without diag.echo", || {
        let tools = alice.tool_names().ok()?;
        (!tools.iter().any(|t| t == "diag.echo") && tools.iter().any(|t| t == "diag.ping"))
            .then_some(())
    })?;

    // One call allowed, one denied; the overview counts them.
    let pinged = alice.call("diag.ping", json!({}))?;
    ensure!(pinged["isError"] == false, "{pinged}");
    let denied = alice.call("diag.echo", json!({"message": "hi"}))?;
    ensure!(
        denied["isError"] == true,
        "the role does not allow it: {denied}"
    );
    let count = |css: &str| b.text(css).ok()?.trim().parse::<u64>().ok();
    wait_for(SETTLE, "the overview to count the calls", || {
        b.goto(CONSOLE).ok()?;
        (count("#calls-last-hour")? >= 1 && count("#denials-last-hour")? >= 1).then_some(())
    })?;
    b.screenshot("overview")?;

    // The denied call, found by filtering (the search index follows the chain).
    b.submit("a#nav-audit")?;
    b.wait_for("form#audit-filter")?;
    is_console_page(&b)?;
    b.select("form#audit-filter select[name=\"decision\"]", "deny")?;
    b.type_into("form#audit-filter input[name=\"tool\"]", "diag.echo")?;
    b.submit("button#search")?;
    let results = b.url()?;
    let query: Vec<(String, String)> = results.query_pairs().into_owned().collect();
    for pair in [("decision", "deny"), ("tool", "diag.echo")] {
        ensure!(
            query.iter().any(|(k, v)| (k.as_str(), v.as_str()) == pair),
            "the filter is in the address (a GET form), to bookmark: {results}"
        );
    }
    let cells = [
        "td.time",
        "td.user",
        "td.agent",
        "td.tool",
        "td.decision",
        "td.layer",
    ];
    let records = wait_for(SETTLE, "the denied call in the audit view", || {
        let rows = b.table("table#audit-records tr.record", &cells).ok()?;
        if rows.is_empty() {
            b.goto(results.as_str()).ok()?;
            return None;
        }
        Some(rows)
    })?;
    let records: Vec<&[String]> = records.iter().map(Vec::as_slice).collect();
    ensure!(
        matches!(
            records.as_slice(),
            [[time, user, agent, tool, decision, layer]]
                if !time.is_empty() && (user.contains("alice") || user.contains(&alice.user_id))
                    && agent == "bot" && tool == "diag.echo" && decision == "deny"
                    && layer.contains("agent")
        ),
        "one record, alice's denied call, denied by the agent's role: {records:?}"
    );
    ensure!(!b.exists("a#next-page")?, "one page holds it");
    b.screenshot("audit")?;
    b.set_viewport(PHONE)?;
    ensure!(
        b.is_displayed("button#search")?,
        "the filter is there on a phone"
    );
    b.screenshot("audit-phone")?;
    b.set_viewport(DESKTOP)?;

    // Markup typed into a filter comes back as text: escaped in the HTML the server wrote,
    // no script element in the page, no dialog.
    b.type_into("form#audit-filter input[name=\"user\"]", MARKUP)?;
    b.select("form#audit-filter select[name=\"decision\"]", "")?;
    b.type_into("form#audit-filter input[name=\"tool\"]", "")?;
    b.submit("button#search")?;
    ensure!(!b.alert_open()?, "no script ran");
    assert_eq!(b.count("script")?, 0, "no script element");
    assert_eq!(
        b.value("form#audit-filter input[name=\"user\"]")?,
        MARKUP,
        "the filter comes back as typed, as a value"
    );
    ensure!(b.source()?.contains("&lt;script&gt;"));
    let raw = https(&rt)?
        .get(b.url()?.as_str())
        .header("cookie", session_cookie(&b)?)
        .send()?;
    assert_eq!(raw.status().as_u16(), 200);
    let html = raw.text()?;
    ensure!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>alert"),
        "the server escapes the filter it echoes: {html}"
    );
    b.screenshot("audit-markup")?;
    Ok(())
}

#[test]
fn every_console_page_is_reached_from_the_navigation_and_by_admins_only() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let ada = add_user(&rt, "ada", true);
    let bob = add_user(&rt, "bob", false);
    let agent = run_ok(rt.cli().args([
        "agent", "create", "--tenant", "acme", "bot", "--role", "dev",
    ]));
    let agent_key = field(&agent, "X-MCP-Agent-Key):");
    ensure!(!agent_key.is_empty(), "{agent}");
    let Some(b) = Browser::start(&rt, "navigation")? else {
        return Ok(());
    };
    sign_in(&b, "ada", &ada, "sign-in")?;

    // Each page from the navigation, each with the whole navigation.
    let pages = [
        (
            "nav-connectors",
            "/admin/t/acme/connectors",
            "table#connectors",
        ),
        ("nav-policy", "/admin/t/acme/policy", "form#policy-form"),
        ("nav-audit", "/admin/t/acme/audit", "form#audit-filter"),
        ("nav-people", "/admin/t/acme/people", "table#users"),
        ("nav-gateways", "/admin/t/acme/gateways", "table#gateways"),
        ("nav-overview", CONSOLE, "#connectors-online"),
    ];
    for (link, path, shows) in pages {
        b.submit(&format!("a#{link}"))?;
        b.wait_for(shows)?;
        assert_eq!(b.path()?, path, "{link}");
        is_console_page(&b)?;
        b.screenshot(link.trim_start_matches("nav-"))?;
    }

    // People: the users and the agents, never a key or a secret.
    b.goto("/admin/t/acme/people")?;
    let users = b.text("table#users")?;
    ensure!(users.contains("ada") && users.contains("bob"), "{users}");
    let agents = b.text("table#agents")?;
    ensure!(agents.contains("bot") && agents.contains("dev"), "{agents}");
    let page = b.source()?;
    ensure!(
        ![agent_key.as_str(), ada.as_str(), bob.as_str()]
            .iter()
            .any(|secret| page.contains(secret)),
        "no agent key or sign-in secret on the page"
    );
    // Gateways: the URL an MCP client connects to.
    b.goto("/admin/t/acme/gateways")?;
    let urls = b.texts("table#gateways code.mcp-url")?;
    let eng = format!("https://localhost:{}/t/acme/g/eng/mcp", rt.https_port);
    ensure!(urls.contains(&eng), "{urls:?}");

    // An admin of acme does not see globex's console.
    b.goto("/admin/t/globex/")?;
    ensure!(
        !b.exists("#connectors-online")?,
        "acme's admin sees globex's overview"
    );

    // Signing out ends the session: the console asks to sign in again, and the cookie the
    // browser had opens nothing.
    b.goto(CONSOLE)?;
    let http = https(&rt)?;
    let cookie = session_cookie(&b)?;
    b.submit("form#sign-out button, form#sign-out input[type=\"submit\"]")?;
    b.goto(CONSOLE)?;
    b.wait_for(SIGN_IN_FORM)?;
    b.screenshot("signed-out")?;
    let after = http
        .get(format!("{}{CONSOLE}", b.origin()))
        .header("cookie", &cookie)
        .send()?
        .text()?;
    ensure!(
        after.contains("action=\"/oauth/login\"") && !after.contains("connectors-online"),
        "the signed-out session still opens the console: {after}"
    );

    // A user who is not an admin of the tenant signs in and is refused, on every page.
    sign_in(&b, "bob", &bob, "sign-in-not-admin")?;
    let body = b.text("body")?;
    ensure!(
        body.contains("not an administrator of this tenant"),
        "{body}"
    );
    ensure!(!b.exists("#connectors-online")?, "no overview for bob");
    b.screenshot("not-an-admin")?;
    let cookie = session_cookie(&b)?;
    for (_, path, _) in pages {
        let resp = http
            .get(format!("{}{path}", b.origin()))
            .header("cookie", &cookie)
            .send()?;
        assert_eq!(resp.status().as_u16(), 403, "bob at {path}");
    }
    Ok(())
}

#[test]
fn an_admin_signs_in_at_the_identity_provider_and_manages_agents_and_gateways() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    // alice is in the provider's group `admins`, which administers acme.
    let idp = e2e::OidcProvider::start_with(&rt, "acme", None, &["--admin-group", "admins"])?;
    let Some(b) = Browser::start(&rt, "idp-directory")? else {
        return Ok(());
    };

    // Without a session the console sends the browser to the tenant's provider; alice
    // signs in there and allows the runtime, and is back at the console.
    b.goto(CONSOLE)?;
    b.wait_for("input[name=\"login\"]")
        .context("the provider's sign-in form")?;
    let at = b.url()?;
    ensure!(
        at.as_str().starts_with(&idp.issuer),
        "the console sent the browser to {at}, not to {}",
        idp.issuer
    );
    b.type_into("input[name=\"login\"]", "alice")?;
    b.type_into("input[name=\"password\"]", "anything")?;
    b.screenshot("provider-sign-in")?;
    b.submit("button[type=\"submit\"]")?;
    if b.path()? != CONSOLE {
        // The provider asks once to let the runtime see who alice is.
        b.wait_for("button[type=\"submit\"]")?;
        b.screenshot("provider-consent")?;
        b.submit("button[type=\"submit\"]")?;
    }
    let path = b.path()?;
    ensure!(
        path == CONSOLE,
        "signed in at the provider, the browser is at {path}"
    );
    is_console_page(&b)?;
    ensure!(
        b.text("form#sign-out")?.contains("alice"),
        "the console names its admin"
    );

    // An agent registered from the form: its key shown once, then listed.
    b.submit("a#nav-people")?;
    b.wait_for("form#create-agent")?;
    b.type_into("form#create-agent input[name=\"name\"]", "triage-bot")?;
    b.type_into("form#create-agent input[name=\"role\"]", "triage")?;
    b.submit("button#create-agent-submit")?;
    b.wait_for("code#agent-key")?;
    ensure!(
        b.text("code#agent-key")?.starts_with("mcpak_"),
        "the key is shown"
    );
    b.screenshot("agent-registered")?;
    b.submit("a#nav-people")?;
    b.wait_for("table#agents")?;
    let agents = b.texts("table#agents tr[data-agent] td:first-child")?;
    ensure!(agents.contains(&"triage-bot".to_owned()), "{agents:?}");

    // A gateway created from the form shows the MCP URL a client connects to; removed with
    // its button, it is gone.
    b.submit("a#nav-gateways")?;
    b.wait_for("form#create-gateway")?;
    b.type_into("form#create-gateway input[name=\"name\"]", "triage")?;
    b.type_into("form#create-gateway input[name=\"tools\"]", "diag.*")?;
    b.type_into(
        "form#create-gateway input[name=\"instructions\"]",
        "<b>triage only</b>",
    )?;
    b.submit("button#create-gateway-submit")?;
    b.wait_for("tr[data-gateway=\"triage\"]")?;
    let url = b.text("tr[data-gateway=\"triage\"] code.mcp-url")?;
    ensure!(
        url.ends_with("/t/acme/g/triage/mcp"),
        "the gateway's MCP URL: {url}"
    );
    ensure!(
        b.text("tr[data-gateway=\"triage\"]")?
            .contains("<b>triage only</b>")
            && !b.exists("tr[data-gateway=\"triage\"] b")?,
        "the instructions are shown as text"
    );
    b.screenshot("gateway-created")?;
    b.submit("tr[data-gateway=\"triage\"] button.remove-gateway")?;
    b.wait_for("form#create-gateway")?;
    ensure!(
        !b.exists("tr[data-gateway=\"triage\"]")?,
        "the removed gateway is gone"
    );
    let listed = run_ok(rt.cli().args(["gateway", "list", "--tenant", "acme"]));
    ensure!(!listed.contains("triage"), "{listed}");
    Ok(())
}
