//! Carries a running call's progress, log messages and questions from the tunnel to the MCP
//! client, and the client's answers back.

#![allow(deprecated)] // logging and sampling are deprecated by SEP-2577 but current clients use them

use std::sync::{Arc, Mutex};

use rmcp::RoleServer;
use rmcp::model::{
    CreateMessageRequestParams, ElicitRequestParams, LoggingLevel, LoggingMessageNotificationParam,
    ProgressNotificationParam, ProgressToken, ProtocolVersion,
};
use rmcp::service::RequestContext;
use shared::wire::{self, PeerMethod};

use crate::tunnel::call::{BoxFuture, CallPeer};

/// Severity order of MCP logging levels.
pub fn rank(level: &LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// The relay of one call.
pub struct Relay<'a> {
    ctx: &'a RequestContext<RoleServer>,
    progress_token: Option<ProgressToken>,
    min_level: Arc<Mutex<LoggingLevel>>,
}

impl<'a> Relay<'a> {
    /// A relay for the call behind `ctx`, logging at `min_level` and above.
    pub fn new(ctx: &'a RequestContext<RoleServer>, min_level: Arc<Mutex<LoggingLevel>>) -> Self {
        Self {
            progress_token: ctx.meta.get_progress_token(),
            ctx,
            min_level,
        }
    }

    fn stateless(&self) -> bool {
        self.ctx
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
    }
}

impl CallPeer for Relay<'_> {
    fn progress(&self, p: wire::CallProgress) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(token) = self.progress_token.clone() else {
                return;
            };
            let mut n = ProgressNotificationParam::new(token, p.progress);
            if let Some(total) = p.total {
                n = n.with_total(total);
            }
            if !p.message.is_empty() {
                n = n.with_message(p.message);
            }
            let _ = self.ctx.peer.notify_progress(n).await;
        })
    }

    fn log(&self, l: wire::CallLog) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Ok(level) =
                serde_json::from_value::<LoggingLevel>(serde_json::Value::String(l.level))
            else {
                return;
            };
            let min = rank(&self.min_level.lock().unwrap_or_else(|p| p.into_inner()));
            if rank(&level) < min {
                return;
            }
            let data = serde_json::from_slice(&l.data_json).unwrap_or(serde_json::Value::Null);
            let mut n = LoggingMessageNotificationParam::new(level, data);
            if !l.logger.is_empty() {
                n = n.with_logger(l.logger);
            }
            let _ = self.ctx.peer.notify_logging_message(n).await;
        })
    }

    fn request(
        &self,
        method: PeerMethod,
        params_json: Vec<u8>,
    ) -> BoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move {
            if self.stateless() {
                return Err(
                    "this protocol revision has no server-to-client requests during a call"
                        .to_owned(),
                );
            }
            match method {
                PeerMethod::Elicit => {
                    let params: ElicitRequestParams = serde_json::from_slice(&params_json)
                        .map_err(|e| format!("invalid elicitation: {e}"))?;
                    let result = self
                        .ctx
                        .peer
                        .create_elicitation(params)
                        .await
                        .map_err(|e| e.to_string())?;
                    serde_json::to_vec(&result).map_err(|e| e.to_string())
                }
                PeerMethod::Sample => {
                    let params: CreateMessageRequestParams =
                        serde_json::from_slice(&params_json)
                            .map_err(|e| format!("invalid sampling request: {e}"))?;
                    let result = self
                        .ctx
                        .peer
                        .create_message(params)
                        .await
                        .map_err(|e| e.to_string())?;
                    serde_json::to_vec(&result).map_err(|e| e.to_string())
                }
                PeerMethod::Unspecified => Err("unknown request".to_owned()),
            }
        })
    }
}
