//! Split trust (issue 17): the connector, not the cloud runtime, decides who a call's user is.
//!
//! Users sign in at the tenant's identity provider (a real OpenID Provider, npm
//! `oidc-provider`, on loopback); the runtime forwards the ID token the provider signed, and
//! the connector verifies it against the provider's own keys. Then the runtime is replaced by
//! a compromised one: this test process, holding the runtime's keys and data directory, runs
//! the runtime's tunnel and sends calls of its choosing straight through it, skipping sign-in,
//! agent roles and policy. It cannot act as a user without that user's proof.

use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use cloud_runtime::tunnel::call::NoPeer;
use cloud_runtime::tunnel::registry::{CallSpec, Registry};
use e2e::mcp_client::McpClient;
use e2e::oauth_client::{OAuthClient, field};
use e2e::{Connector, OidcProvider, Runtime, browser, run_ok};
use serde_json::{Value, json};
use shared::call::CallOutcome;
use shared::identity::TenantId;
use shared::wire::{self, ErrorCode};

/// Signs `user` in at `provider` for `tenant`'s gateway `eng`; returns their MCP client.
fn signed_in(
    rt: &Runtime,
    provider: &OidcProvider,
    tenant: &str,
    user: &str,
    agent_key: &str,
) -> Result<McpClient> {
    let base = format!("https://{}", rt.https_endpoint());
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    let oauth = OAuthClient::new(base.clone(), &ca)?;
    let resource = format!("{base}/t/{tenant}/g/eng/mcp");
    let token = browser::sign_in(&oauth, &ca, &provider.issuer, &resource, user)?;
    McpClient::with_token(rt, tenant, "eng", &token, agent_key)
}

/// The text of a tool result.
fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A call of `tool` as `user` carrying `proof`, as a compromised runtime would send it.
async fn rogue_call(registry: &Registry, tool: &str, user: &str, proof: &str) -> CallOutcome {
    rogue_call_with(registry, tool, user, proof, None, "").await
}

/// A call of `tool` (with `arguments`, else the tool's defaults) as `user` carrying `proof`
/// and `approval`, as a compromised runtime would send it.
async fn rogue_call_with(
    registry: &Registry,
    tool: &str,
    user: &str,
    proof: &str,
    arguments: Option<&str>,
    approval: &str,
) -> CallOutcome {
    let tenant: TenantId = "acme".parse().unwrap_or_else(|e| panic!("{e}"));
    let spec = CallSpec {
        call_id: registry.new_call_id(),
        tool: tool.into(),
        arguments_json: match arguments {
            Some(a) => a.as_bytes().to_vec(),
            None if tool == "diag.echo" => br#"{"message": "from the rogue runtime"}"#.to_vec(),
            None => b"{}".to_vec(),
        },
        timeout: Duration::from_secs(10),
        caller: wire::Caller {
            tenant: "acme".into(),
            user: user.into(),
            agent: "bot".into(),
        },
        site: shared::policy::Site::default(),
        traceparent: String::new(),
        binding: Default::default(),
        user_proof: proof.into(),
        approval: approval.into(),
    };
    registry.call(&tenant, None, spec, &NoPeer).await.outcome
}

/// The same token with its payload's subject replaced (the signature no longer matches).
fn with_subject(token: &str, sub: &str) -> Result<String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let payload = parts.get(1).context("not a JWS")?;
    let mut claims: Value = serde_json::from_slice(&b64.decode(payload)?)?;
    claims["sub"] = json!(sub);
    Ok(format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts.get(2).context("not a JWS")?
    ))
}

fn policy(issuer: &str, max_age: &str) -> String {
    format!(
        "version = 1\nrequire_user_proof = true\nuser_proof_max_age = \"{max_age}\"\n\
         [identity_provider]\nissuer = \"{issuer}\"\naudience = \"mcp-edge-runtime\"\n\
         [[allow]]\ntools = [\"diag.ping\"]\n\
         [[allow]]\ntools = [\"diag.echo\"]\ngroups = [\"admins\"]\n"
    )
}

#[test]
fn a_compromised_runtime_cannot_act_as_a_user_without_the_identity_provider_s_proof() -> Result<()>
{
    let mut rt = Runtime::init()?;
    rt.start()?;
    let acme_idp = OidcProvider::start(&rt, "acme")?;
    let globex_idp = OidcProvider::start(&rt, "globex")?;
    let mut keys = Vec::new();
    for tenant in ["acme", "globex"] {
        run_ok(
            rt.cli()
                .args(["gateway", "create", "--tenant", tenant, "eng"]),
        );
        let agent = run_ok(rt.cli().args([
            "agent", "create", "--tenant", tenant, "bot", "--role", "triage",
        ]));
        keys.push(field(&agent, "X-MCP-Agent-Key):"));
    }
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    let config = c.configure("", &policy(&acme_idp.issuer, "12h"), &[])?;
    c.start_configured(&rt, &config)?;
    rt.wait_online(&c.id, Duration::from_secs(20))?;

    // The honest path: alice (groups eng, admins) and bob (triage) sign in at the provider;
    // the connector takes each from the provider's token, and its rule by group holds.
    let alice = signed_in(&rt, &acme_idp, "acme", "alice", &keys[0])?;
    let pong = alice.call("diag.ping", json!({}))?;
    assert_eq!(pong["isError"], false, "{pong}");
    assert_eq!(
        pong["structuredContent"]["caller"]["user"], alice.user_id,
        "{pong}"
    );
    let echoed = alice.call("diag.echo", json!({"message": "hi"}))?;
    assert_eq!(echoed["isError"], false, "{echoed}");
    let bob = signed_in(&rt, &acme_idp, "acme", "bob", &keys[0])?;
    assert_eq!(bob.call("diag.ping", json!({}))?["isError"], false);
    let refused = bob.call("diag.echo", json!({"message": "hi"}))?;
    println!("bob's diag.echo: {}", text(&refused));
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(
        text(&refused).contains("does not allow diag.echo for the user \"bob\""),
        "{refused}"
    );
    // An operator's call from the runtime's host carries no proof at all.
    let operator = rt.ping(&c.id).expect_err("an unproven operator call ran");
    assert!(operator.contains("carries no proof"), "{operator}");
    // alice at another tenant's provider, for the cross-provider case below.
    let alice_globex = signed_in(&rt, &globex_idp, "globex", "alice", &keys[1])?;

    // The runtime is compromised: stopped, and its keys and data used by this process,
    // which sends what it likes through the tunnel.
    rt.stop()?;
    let tokio = tokio::runtime::Runtime::new()?;
    tokio.block_on(async {
        let store = cloud_runtime::store::Store::connect(&rt.database_url().parse()?).await?;
        let proof_of = |tenant: &'static str, user: String| {
            let store = &store;
            async move {
                store
                    .user_proof(tenant, &user)
                    .await?
                    .context("no stored proof")
            }
        };
        let alice_proof = proof_of("acme", alice.user_id.clone()).await?;
        let bob_proof = proof_of("acme", bob.user_id.clone()).await?;
        let globex_proof = proof_of("globex", alice_globex.user_id.clone()).await?;
        drop(store);
        let rogue = e2e::bench::start_runtime_in_process(&rt, Default::default()).await?;
        let registry = rogue.registry.clone();
        // alice's own proof still works through the rogue tunnel once the connector is back.
        let mut back = None;
        for _ in 0..60 {
            match rogue_call(&registry, "diag.ping", &alice.user_id, &alice_proof).await {
                Ok(out) => {
                    back = Some(out);
                    break;
                }
                Err(f) if f.code == ErrorCode::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(f) => anyhow::bail!("alice's own proof refused: {f}"),
            }
        }
        back.context("the connector never came back to the rogue runtime")?;

        let cases = [
            ("bob, no proof", bob.user_id.clone(), String::new()),
            (
                "bob, with alice's proof",
                bob.user_id.clone(),
                alice_proof.clone(),
            ),
            (
                "alice, her proof edited to name bob",
                alice.user_id.clone(),
                with_subject(&alice_proof, "bob")?,
            ),
            (
                "alice, a proof from another tenant's provider",
                alice.user_id.clone(),
                globex_proof.clone(),
            ),
            (
                "bob's proof, echo (a tool his groups may not use)",
                bob.user_id.clone(),
                bob_proof.clone(),
            ),
        ];
        for (what, user, proof) in cases {
            let tool = if what.contains("echo") {
                "diag.echo"
            } else {
                "diag.ping"
            };
            let outcome = rogue_call(&registry, tool, &user, &proof).await;
            let f = outcome.expect_err(what);
            println!("rogue call ({what}): {:?}: {}", f.code, f.message);
            let expected = if proof.is_empty() {
                ErrorCode::SignInRequired
            } else {
                ErrorCode::Denied
            };
            assert_eq!(f.code, expected, "{what}: {}", f.message);
        }
        rogue.shutdown().await;
        anyhow::Ok(())
    })?;
    // Each refusal is in the connector's own signed log, which verifies.
    let tail = run_ok(
        Connector::cli()
            .args(["audit", "tail", "-n", "1000", "--config"])
            .arg(&config),
    );
    let denied: Vec<Value> = tail
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "call" && r["decision"] == "deny")
        .collect();
    println!("refusals in the connector's audit log: {}", denied.len());
    assert!(denied.len() >= 6, "{tail}");
    assert!(
        denied.iter().any(|r| r["user"] == bob.user_id.as_str()
            && r["reason"]
                .as_str()
                .is_some_and(|m| m.contains("another user's"))),
        "{tail}"
    );
    run_ok(
        Connector::cli()
            .args(["audit", "verify", "--config"])
            .arg(&config),
    );

    // A proof older than the local policy allows: the user is asked to sign in again, and
    // after that the call runs.
    std::thread::sleep(Duration::from_secs(6));
    if let Some(mut old) = c.process.take() {
        old.kill();
    }
    std::fs::write(
        config.with_file_name("policy.toml"),
        policy(&acme_idp.issuer, "5s"),
    )?;
    rt.start()?;
    c.start_configured(&rt, &config)?;
    let stale = alice.call("diag.ping", json!({}))?;
    let link = link_to(&stale, "/sign-in-again/").with_context(|| format!("{stale}"))?;
    println!("alice's stale proof: asked to sign in again at {link}");
    assert!(
        stale
            .to_string()
            .contains("longer than this connector allows (5 s)"),
        "{stale}"
    );
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    let page = browser::sign_in_again(&ca, &link, &acme_idp.issuer, "alice")?;
    assert!(page.contains("You signed in again"), "{page}");
    let fresh = alice.call("diag.ping", json!({}))?;
    assert_eq!(fresh["isError"], false, "{fresh}");
    Ok(())
}

/// The first link to a page whose path has `part` in a tool call's answer.
fn link_to(answer: &Value, part: &str) -> Option<String> {
    let text = answer.to_string();
    text.match_indices("https://").find_map(|(start, _)| {
        let link: String = text[start..]
            .chars()
            .take_while(|c| !matches!(c, '"' | '\\' | ' '))
            .collect();
        link.contains(part).then_some(link)
    })
}

/// The approval link in a tool call's answer.
fn approval_link(answer: &Value) -> Option<String> {
    link_to(answer, "/approve/")
}

#[test]
fn an_approval_made_at_the_identity_provider_runs_exactly_its_call_once() -> Result<()> {
    let mut rt = Runtime::init()?;
    rt.start()?;
    let idp = OidcProvider::start(&rt, "acme")?;
    run_ok(
        rt.cli()
            .args(["gateway", "create", "--tenant", "acme", "eng"]),
    );
    let agent = run_ok(rt.cli().args([
        "agent", "create", "--tenant", "acme", "bot", "--role", "triage",
    ]));
    let key = field(&agent, "X-MCP-Agent-Key):");
    let mut c = Connector::enroll(&rt, "acme", "c1")?;
    let policy = format!(
        "version = 1\nrequire_user_proof = true\nrequire_approval = [\"diag.echo\"]\n\
         [identity_provider]\nissuer = \"{}\"\naudience = \"mcp-edge-runtime\"\n\
         [[allow]]\ntools = [\"diag.*\"]\n",
        idp.issuer
    );
    let config = c.configure("", &policy, &[])?;
    c.start_configured(&rt, &config)?;
    let ca = std::fs::read(rt.data_dir().join("ca.pem"))?;
    let alice = signed_in(&rt, &idp, "acme", "alice", &key)?;
    let ship = json!({"message": "ship release 7"});

    // The call waits for alice's approval: a link to the runtime's approval page.
    let asked = alice.call("diag.echo", ship.clone())?;
    let link = approval_link(&asked).with_context(|| format!("no approval link: {asked}"))?;
    println!("approval asked with {link}");
    // Reads need none.
    assert_eq!(alice.call("diag.ping", json!({}))?["isError"], false);
    let done = browser::approve(&ca, &link, &idp.issuer, "alice", "ship release 7")?;
    assert!(done.contains("You approved this call"), "{done}");
    let ran = alice.call("diag.echo", ship.clone())?;
    assert_eq!(ran["isError"], false, "{ran}");
    assert_eq!(text(&ran), "ship release 7", "{ran}");
    // Once: the same call again needs a new approval.
    let again = alice.call("diag.echo", ship.clone())?;
    assert!(approval_link(&again).is_some(), "{again}");

    // bob cannot approve alice's call: the page keeps asking, and her call still waits.
    let other = approval_link(&alice.call("diag.echo", json!({"message": "tag v7"}))?)
        .context("no second approval link")?;
    let by_bob = browser::approve(&ca, &other, &idp.issuer, "bob", "tag v7")?;
    assert!(!by_bob.contains("You approved this call"), "{by_bob}");
    assert!(approval_link(&alice.call("diag.echo", json!({"message": "tag v7"}))?).is_some());

    // alice approves one more call; then the runtime is compromised, and tries her approval
    // on another call, then on the call itself twice.
    let third = approval_link(&alice.call("diag.echo", json!({"message": "delete the tag"}))?)
        .context("no third approval link")?;
    let done = browser::approve(&ca, &third, &idp.issuer, "alice", "delete the tag")?;
    assert!(done.contains("You approved this call"), "{done}");
    rt.stop()?;
    let tokio = tokio::runtime::Runtime::new()?;
    tokio.block_on(async {
        let store = cloud_runtime::store::Store::connect(&rt.database_url().parse()?).await?;
        let approved = r#"{"message":"delete the tag"}"#;
        let proofs = store
            .call_proofs("acme", &alice.user_id, Some(("diag.echo", approved)))
            .await?;
        let proof = proofs.user_proof.context("no proof")?;
        let approval = proofs.approval.context("no approval token")?;
        drop(store);
        let rogue = e2e::bench::start_runtime_in_process(&rt, Default::default()).await?;
        let registry = rogue.registry.clone();
        let mut up = false;
        for _ in 0..60 {
            if rogue_call(&registry, "diag.ping", &alice.user_id, &proof)
                .await
                .is_ok()
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        anyhow::ensure!(up, "the connector never came back to the rogue runtime");
        let call = |arguments: &'static str| {
            rogue_call_with(
                &registry,
                "diag.echo",
                &alice.user_id,
                &proof,
                Some(arguments),
                &approval,
            )
        };
        let other = call(r#"{"message":"delete every tag"}"#)
            .await
            .expect_err("another call ran");
        println!(
            "rogue: her approval on another call: {:?}: {}",
            other.code, other.message
        );
        assert_eq!(other.code, ErrorCode::ApprovalRequired);
        assert!(
            other.message.contains("different call"),
            "{}",
            other.message
        );
        let out = call(approved).await.map_err(|f| anyhow::anyhow!("{f}"))?;
        assert_eq!(out.text, "delete the tag");
        let replay = call(approved).await.expect_err("a replayed approval ran");
        println!(
            "rogue: her approval replayed: {:?}: {}",
            replay.code, replay.message
        );
        assert_eq!(replay.code, ErrorCode::ApprovalRequired);
        assert!(
            replay.message.contains("no open challenge"),
            "{}",
            replay.message
        );
        let none = rogue_call_with(
            &registry,
            "diag.echo",
            &alice.user_id,
            &proof,
            Some(approved),
            "",
        )
        .await
        .expect_err("an unapproved call ran");
        assert_eq!(none.code, ErrorCode::ApprovalRequired);
        rogue.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(())
}
