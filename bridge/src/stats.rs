//! What a bridge counted: messages out and in, echoes refused, failures, requests, and its
//! NATS connection's ups and downs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The bridge's counters, shared by its threads (Relaxed adds: independent counters).
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) exported: AtomicU64,
    pub(crate) imported: AtomicU64,
    pub(crate) echoes: AtomicU64,
    pub(crate) export_failed: AtomicU64,
    pub(crate) import_failed: AtomicU64,
    pub(crate) served: AtomicU64,
    pub(crate) proxied: AtomicU64,
    pub(crate) requests_failed: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) slow_consumer: AtomicU64,
    pub(crate) connected: AtomicBool,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> BridgeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeStats {
            exported: get(&self.exported),
            imported: get(&self.imported),
            echoes: get(&self.echoes),
            export_failed: get(&self.export_failed),
            import_failed: get(&self.import_failed),
            served: get(&self.served),
            proxied: get(&self.proxied),
            requests_failed: get(&self.requests_failed),
            disconnects: get(&self.disconnects),
            reconnects: get(&self.reconnects),
            slow_consumer: get(&self.slow_consumer),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }
}

/// A bridge's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BridgeStats {
    /// Local messages published to NATS.
    pub exported: u64,
    /// NATS messages republished on the local bus.
    pub imported: u64,
    /// NATS messages this bus exported itself, not imported back (loop prevention).
    pub echoes: u64,
    /// Local messages that could not go out (NATS refused them; the bridge was stopping).
    pub export_failed: u64,
    /// NATS messages not republished: not an agentbus message, or the local bus refused it.
    pub import_failed: u64,
    /// Requests from other hosts answered here.
    pub served: u64,
    /// Local requests sent to other hosts.
    pub proxied: u64,
    /// Requests either way that ended in an error or timed out.
    pub requests_failed: u64,
    /// Times the NATS connection was lost.
    pub disconnects: u64,
    /// Times it came back.
    pub reconnects: u64,
    /// Times NATS said this bridge read too slowly (it dropped messages for it).
    pub slow_consumer: u64,
    /// Whether it is connected now.
    pub connected: bool,
}

impl std::fmt::Display for BridgeStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; exported {}, imported {}, echoes refused {}, export failed {}, import failed {}; requests served {}, proxied {}, failed {}; disconnects {}, reconnects {}, slow-consumer warnings {}",
            if self.connected { "connected" } else { "DISCONNECTED" },
            self.exported,
            self.imported,
            self.echoes,
            self.export_failed,
            self.import_failed,
            self.served,
            self.proxied,
            self.requests_failed,
            self.disconnects,
            self.reconnects,
            self.slow_consumer
        )
    }
}
