//! A subscription, ended when its handle is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use super::shared::{unexpected, Shared, SubscriptionEntry};
use super::ClientError;
use crate::control::{Request, Response};

/// A subscription to a topic pattern ([`super::Agent::subscribe`]), with its handler when it
/// has one ([`super::Agent::subscribe_with`], [`super::Agent::on_event`]: the listener handle).
///
/// Dropping it unsubscribes: its handler is never called again, and agentd routes no later
/// publish to this agent for it (messages already in this agent's lanes are still received).
/// [`Subscription::detach`] keeps it for the rest of the agent's life instead. It does not keep
/// the agent's connection open: dropped after its agent, it has nothing left to undo.
///
/// ```
/// use std::time::Duration;
/// use agentbus::client::{Agent, AttachOptions, Raw};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-subscription-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// let mut strategy = Agent::attach(options("strategy-1", "strategy"))?;
/// let mut feed = Agent::attach(options("feed-1", "feed"))?;
/// let market = strategy.subscribe("market.>")?;            // exact, `*` or trailing `>`
/// let fills = strategy.subscribe_with("fills.*", None, |fill, _tx| println!("fill {}", fill.id()))?;
/// fills.detach();                                           // kept until the agent detaches
/// let aapl = feed.topic("market.AAPL")?;
/// feed.send(&aapl, Raw(b"101.25"))?;
/// assert!(strategy.recv_timeout(Duration::from_secs(5))?.is_some());
/// drop(market);                                             // unsubscribed when the drop returns
/// feed.send(&aapl, Raw(b"101.30"))?;
/// assert!(strategy.recv_timeout(Duration::from_millis(100))?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping a Subscription unsubscribes at once: bind it, or `detach()` it to keep it"]
pub struct Subscription {
    /// Its pattern and its id this generation (the agent's book holds it too, to subscribe it
    /// again if agentd restarts).
    entry: Arc<SubscriptionEntry>,
    shared: Weak<Shared>,
    /// Read by the dispatcher before it calls the handler; cleared on drop.
    live: Arc<AtomicBool>,
    kept: bool,
}

impl Subscription {
    /// The subscription agentd gave `id` to, entered in the book of the agent of `shared`.
    pub(crate) fn new(
        id: u64,
        pattern: Arc<str>,
        shared: &Arc<Shared>,
        live: Arc<AtomicBool>,
    ) -> Subscription {
        let entry = Arc::new(SubscriptionEntry {
            pattern,
            id: AtomicU64::new(id),
        });
        shared.book().subscriptions.push(Arc::clone(&entry));
        Subscription {
            entry,
            shared: Arc::downgrade(shared),
            live,
            kept: false,
        }
    }

    /// The pattern subscribed to.
    pub fn pattern(&self) -> &str {
        &self.entry.pattern
    }

    /// Keeps the subscription (and its handler) for the rest of the agent's life (across
    /// agentd restarts too).
    pub fn detach(mut self) {
        self.kept = true;
    }

    /// Unsubscribes now, reporting what went wrong (dropping it does the same and ignores
    /// errors). When it returns, agentd routes no later publish to this agent for it.
    pub fn unsubscribe(mut self) -> Result<(), ClientError> {
        self.kept = true; // undone here, not again on drop
        self.end()
    }

    fn end(&mut self) -> Result<(), ClientError> {
        // Release: pairs with the dispatcher's Acquire load; the handler is never called after
        // the load that sees `false`.
        self.live.store(false, Ordering::Release);
        let Some(shared) = self.shared.upgrade() else {
            return Ok(()); // the agent is gone, and its subscriptions with it
        };
        // Out of the book first: a re-attach from now on does not subscribe it again (and one
        // under way finishes first, so the id read below is the current one).
        shared
            .book()
            .subscriptions
            .retain(|e| !Arc::ptr_eq(e, &self.entry));
        match shared.call(&Request::Unsubscribe(self.entry.id.load(Ordering::Relaxed)))? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !self.kept {
            let _ = self.end();
        }
    }
}
