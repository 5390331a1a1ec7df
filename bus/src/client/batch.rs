//! A batch of sends published together when its guard is dropped.

use std::ops::{Deref, DerefMut};

use super::Sender;

/// Sends made through it (it derefs to the [`Sender`]) reach the router together when it is
/// dropped: one Release store and at most one wake-up per lane, instead of one per message
/// (sender batching). Nothing sent through it is visible to the router before the drop, except
/// when a blocking send must wait for room: the lane's batch so far is published first, since
/// its frames are what the router must read to make room.
///
/// ```
/// use std::time::Duration;
/// use agentbus::client::{Agent, AttachOptions, Raw};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-batch-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// let mut feed = Agent::attach(options("feed-1", "market_data"))?;
/// let mut strategy = Agent::attach(options("strategy-1", "strategy"))?;
/// let _book = strategy.subscribe("market.AAPL.book")?;
/// let book = feed.topic("market.AAPL.book")?;
/// {
///     let mut batch = feed.sender().batch();
///     for level in 0..10u8 {
///         batch.send(&book, Raw(&[level; 16]))?;
///     }
/// } // published here, all ten at once
/// for level in 0..10u8 {
///     let d = strategy.recv_timeout(Duration::from_secs(5))?.expect("published on drop");
///     assert_eq!(d.raw(), Some(&[level; 16][..]));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a batch publishes when dropped: bind it (`let mut batch = ..`) and send through it"]
pub struct Batch<'a> {
    sender: &'a mut Sender,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(sender: &'a mut Sender) -> Batch<'a> {
        Batch { sender }
    }

    /// Publishes now (the same as dropping it).
    pub fn publish(self) {}
}

impl Deref for Batch<'_> {
    type Target = Sender;

    fn deref(&self) -> &Sender {
        self.sender
    }
}

impl DerefMut for Batch<'_> {
    fn deref_mut(&mut self) -> &mut Sender {
        self.sender
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.sender.end_batch();
    }
}
