//! Where `top`'s frames come from: one mapping of the bus header, read each interval, mapped
//! again when the agentd that wrote it may be gone (a restarted agentd writes a new header).
//!
//! A stopped agentd clears its header's magic ([`HeaderReader::is_current`]); a router beat
//! older than [`STALLED_NS`] also sends `top` to the header's name again: that finds the new
//! agentd's header, none (the bus has no agentd), or the same header of a stalled router, which
//! the summary then flags.

use agentd::bus_header::{process_alive, HeaderReader, ReadError, Snapshot};

use super::rows::{self, View, STALLED_NS};

/// Reads bus headers, keeping the last reading for the next frame's rates.
#[derive(Debug)]
pub struct HeaderFeed {
    bus: String,
    reader: Option<HeaderReader>,
    last: Option<Snapshot>,
}

impl HeaderFeed {
    /// Maps bus `bus`'s header; fails when no live agentd serves the bus.
    pub fn open(bus: &str) -> Result<HeaderFeed, ReadError> {
        Ok(HeaderFeed {
            bus: bus.to_string(),
            reader: Some(HeaderReader::open(bus)?),
            last: None,
        })
    }

    /// The bus it reads.
    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// Reads the header and makes a frame of it, with rates since the last reading; after an
    /// error the next frame has totals only.
    pub fn next_view(&mut self) -> Result<View, ReadError> {
        let now = match self.read() {
            Ok(now) => now,
            Err(e) => {
                self.last = None;
                return Err(e);
            }
        };
        let view = rows::view(self.last.as_ref(), &now, agentbus_ipc::clock::realtime_ns());
        self.last = Some(now);
        Ok(view)
    }

    /// A reading of the live agentd's header, mapping the bus's header again if the one held
    /// may have been left by an agentd that is gone.
    fn read(&mut self) -> Result<Snapshot, ReadError> {
        if let Some(reader) = self.reader.as_ref().filter(|r| r.is_current()) {
            let now = reader.snapshot();
            if current(&now) {
                return Ok(now);
            }
        }
        self.reader = None;
        let reader = HeaderReader::open(&self.bus)?;
        let now = reader.snapshot();
        self.reader = Some(reader);
        Ok(now)
    }
}

/// Whether reading `now` is of a live agentd whose router still beats.
fn current(now: &Snapshot) -> bool {
    process_alive(now.pid) && now.read_at.saturating_sub(now.router.beat) <= STALLED_NS
}
