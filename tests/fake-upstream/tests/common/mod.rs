//! Shared test helpers: an in-process fake on loopback and an HTTP client.
#![allow(dead_code)]

pub mod openapi;

use fake_upstream::{Config, Handle, Kind};
use reqwest::{Client, Method, Response};
use serde_json::Value;

pub const ALICE_GH: &str = "ghp_aliceFakeToken000000000000000000000";
pub const BOB_GH: &str = "ghp_bobFakeToken00000000000000000000000";
pub const CAROL_GH: &str = "ghp_carolFakeToken000000000000000000000";
pub const ALICE_GL: &str = "glpat-aliceFakeToken0000";
pub const BOB_GL: &str = "glpat-bobFakeToken000000";
pub const CAROL_GL: &str = "glpat-carolFakeToken0000";

pub async fn start(kind: Kind) -> Handle {
    start_with(Config::new(
        kind,
        fake_upstream::builtin::builtin().unwrap(),
    ))
    .await
}

pub async fn start_with(config: Config) -> Handle {
    fake_upstream::serve(config).await.unwrap()
}

pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn call(
    h: &Handle,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut req = client()
        .request(method, format!("{}{path}", h.base_url()))
        .header("authorization", format!("Bearer {token}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

pub async fn get_json(h: &Handle, token: &str, path: &str) -> (u16, Value) {
    let r = call(h, token, Method::GET, path, None).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}
