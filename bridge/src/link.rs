//! The NATS connection: connected once at start (an unreachable server is an error then), and
//! reconnected by the client crate for as long as the bridge runs, every loss and return
//! logged and counted.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};

use crate::stats::Counters;
use crate::BridgeConfig;

/// The longest wait between two reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// Connects to `cfg.nats`, with `cfg.buffer` messages of room while the server is slow or
/// away.
pub(crate) async fn connect(
    cfg: &BridgeConfig,
    origin: &str,
    counters: Arc<Counters>,
) -> Result<Client, async_nats::ConnectError> {
    let events = Arc::clone(&counters);
    let client = ConnectOptions::new()
        .name(format!("agentbus-bridge {origin}"))
        .client_capacity(cfg.buffer)
        .subscription_capacity(cfg.buffer)
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            (Duration::from_millis(50) * attempts as u32).min(MAX_RECONNECT_DELAY)
        })
        .event_callback(move |event| {
            let c = Arc::clone(&events);
            async move { on_event(&c, event) }
        })
        .connect(cfg.nats.as_str())
        .await?;
    counters.connected.store(true, Ordering::Relaxed);
    Ok(client)
}

fn on_event(c: &Counters, event: Event) {
    match event {
        Event::Connected => {
            let was_connected = c.connected.swap(true, Ordering::Relaxed);
            // The first connection's event may come before or after `connect` returns: only a
            // connection after a loss is a reconnection.
            let lost = c.disconnects.load(Ordering::Relaxed);
            if !was_connected && lost > c.reconnects.load(Ordering::Relaxed) {
                Counters::add(&c.reconnects);
                tracing::info!("NATS connection back: imports resubscribed, held exports sent");
            }
        }
        Event::Disconnected => {
            c.connected.store(false, Ordering::Relaxed);
            Counters::add(&c.disconnects);
            tracing::warn!("NATS connection lost: reconnecting; exports are held in the client's buffer until it is full, then each topic's back-pressure policy applies");
        }
        Event::SlowConsumer(sid) => {
            Counters::add(&c.slow_consumer);
            tracing::warn!(sid, "NATS dropped messages for this bridge: it reads too slowly (the local bus is not taking its imports fast enough)");
        }
        other => tracing::info!("NATS: {other}"),
    }
}
