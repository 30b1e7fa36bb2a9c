//! Many calls on one subscription: each message names its call by a key (a reply subject),
//! and a demultiplexer hands it to that call's channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// Messages of live calls, by key, for one subscription's demultiplexer.
pub type Routes<T> = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<T>>>>;

/// A call's route; removed when the call ends, however it ends.
pub struct Route<T> {
    routes: Routes<T>,
    key: String,
}

impl<T> Route<T> {
    /// Adds the route `key`; returns it and the receiving end of its messages.
    pub fn open(routes: &Routes<T>, key: String) -> (Self, mpsc::UnboundedReceiver<T>) {
        let (tx, rx) = mpsc::unbounded_channel();
        routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), tx);
        (
            Self {
                routes: routes.clone(),
                key,
            },
            rx,
        )
    }
}

impl<T> Drop for Route<T> {
    fn drop(&mut self) {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// Hands `item` to the call with route `key`, if it is still there.
pub fn deliver<T>(routes: &Routes<T>, key: &str, item: T) {
    let tx = routes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)
        .cloned();
    if let Some(tx) = tx {
        let _ = tx.send(item);
    }
}
