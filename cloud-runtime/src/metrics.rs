//! Prometheus metrics of the runtime: tool calls by outcome, denials by layer, call latency,
//! and connectors online, served as OpenMetrics text on `GET /metrics` of a listener of its
//! own (`serve --metrics-listen`), apart from the public HTTPS endpoint.
//!
//! Label values are bounded: tenants and tools are names the operator and the connectors
//! define, outcomes and layers are fixed sets; users and agents are never labels.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as PromRegistry;
use tokio_util::sync::CancellationToken;

use crate::policy::Layer;
use crate::tunnel::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tenant: String,
    tool: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    tenant: String,
    layer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tenant: String,
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

fn latency_histogram() -> Histogram {
    // 250 µs to about 65 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 19))
}

/// The runtime's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: PromRegistry,
    calls: Family<CallLabels, Counter>,
    denials: Family<DenialLabels, Counter>,
    latency: Family<ToolLabels, Histogram, fn() -> Histogram>,
    online: Family<TenantLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = PromRegistry::with_prefix("mcp_edge");
        let calls = Family::<CallLabels, Counter>::default();
        let denials = Family::<DenialLabels, Counter>::default();
        let latency = Family::<ToolLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let online = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "tool_calls",
            "Tool calls by tenant, tool and outcome (ok, tool_error, denied, or the failure code)",
            calls.clone(),
        );
        registry.register(
            "denials",
            "Calls denied, by tenant and the layer that denied",
            denials.clone(),
        );
        registry.register(
            "tool_call_duration_seconds",
            "Time from the permission decision to the result, allowed calls only",
            latency.clone(),
        );
        registry.register("connectors_online", "Tunnels up, by tenant", online.clone());
        Self {
            registry,
            calls,
            denials,
            latency,
            online,
        }
    }
}

impl Metrics {
    /// Counts a denied call.
    pub fn denied(&self, tenant: &str, tool: &str, layer: Layer) {
        self.denials
            .get_or_create(&DenialLabels {
                tenant: tenant.to_owned(),
                layer: layer.as_str().to_owned(),
            })
            .inc();
        self.finished(tenant, tool, "denied", None);
    }

    /// Counts a finished call; `seconds` for allowed calls.
    pub fn finished(&self, tenant: &str, tool: &str, outcome: &str, seconds: Option<f64>) {
        self.calls
            .get_or_create(&CallLabels {
                tenant: tenant.to_owned(),
                tool: tool.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if let Some(s) = seconds {
            self.latency
                .get_or_create(&ToolLabels {
                    tenant: tenant.to_owned(),
                    tool: tool.to_owned(),
                })
                .observe(s);
        }
    }

    /// The OpenMetrics text, with connector counts read from `tunnels` now.
    pub fn render(&self, tunnels: &Registry) -> String {
        self.online.clear();
        for c in tunnels.online() {
            self.online
                .get_or_create(&TenantLabels { tenant: c.tenant })
                .inc();
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    tunnels: Arc<Registry>,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state((metrics, tunnels));
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::warn!(error = %e, ?addr, "metrics listener stopped");
    }
}

async fn scrape(
    State((metrics, tunnels)): State<(Arc<Metrics>, Arc<Registry>)>,
) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(&tunnels),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_calls_denials_and_latency() {
        let m = Metrics::default();
        m.finished("acme", "diag.ping", "ok", Some(0.001));
        m.denied("acme", "github_merge_pull_request", Layer::Agent);
        let text = m.render(&Registry::default());
        assert!(
            text.contains(
                "mcp_edge_tool_calls_total{tenant=\"acme\",tool=\"diag.ping\",outcome=\"ok\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("mcp_edge_denials_total{tenant=\"acme\",layer=\"agent\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("mcp_edge_tool_call_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
