//! agentd's `/metrics` endpoint: a thread serving HTTP (`tiny_http`, no async runtime) that
//! reads the bus header at each scrape, as any monitor tool does, and answers with
//! [`crate::exposition::render`]. It never touches the router or the control thread: a scrape
//! costs them nothing, and works while they are wedged.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::bus_header::HeaderReader;
use crate::exposition::Format;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot serve metrics on {addr}: {why} (is the port taken? choose another with --metrics ADDR)"
)]
pub struct ServeError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// What failed.
    pub why: String,
}

/// The bound endpoint, before its thread runs.
pub struct MetricsServer {
    server: tiny_http::Server,
    addr: SocketAddr,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Binds `addr` (port 0: any free port; [`addr`](Self::addr) says which).
    pub fn bind(addr: SocketAddr) -> Result<MetricsServer, ServeError> {
        let server = tiny_http::Server::http(addr).map_err(|e| ServeError {
            addr,
            why: e.to_string(),
        })?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        Ok(MetricsServer {
            server,
            addr: bound,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves bus `bus`'s header until `shutdown` is set (checked every 100 ms).
    pub fn run(self, bus: String, shutdown: Arc<AtomicBool>) {
        let mut reader: Option<HeaderReader> = None;
        while !shutdown.load(Ordering::Acquire) {
            let request = match self.server.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("metrics endpoint: {e}");
                    continue;
                }
            };
            let path = request.url().split('?').next().unwrap_or("");
            let response = if path != "/metrics" {
                tiny_http::Response::from_string("not found: metrics are at /metrics\n")
                    .with_status_code(404)
            } else {
                if reader.is_none() {
                    reader = HeaderReader::open(&bus)
                        .map_err(|e| tracing::warn!("metrics endpoint: {e}"))
                        .ok();
                }
                match reader.as_ref() {
                    Some(r) => {
                        let accept = request
                            .headers()
                            .iter()
                            .find(|h| h.field.equiv("Accept"))
                            .map(|h| h.value.as_str());
                        let format = Format::negotiate(accept);
                        let body = crate::exposition::render(&bus, r.snapshot(), format);
                        let header =
                            tiny_http::Header::from_bytes("Content-Type", format.content_type())
                                .expect("a valid header");
                        tiny_http::Response::from_string(body).with_header(header)
                    }
                    None => tiny_http::Response::from_string("the bus header cannot be read\n")
                        .with_status_code(503),
                }
            };
            if let Err(e) = request.respond(response) {
                tracing::debug!("metrics endpoint: answering a scrape: {e}");
            }
        }
    }
}
