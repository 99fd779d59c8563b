//! The hook an embedder uses to survive the one window of an enrollment
//! whose outcome the assistant cannot see.
//!
//! Between relaying a device's identity to its SP and hearing `Committed`,
//! a crash of either side or a lost link leaves the assistant not knowing
//! whether the device committed. An embedder that must end up agreeing with
//! the device and the SP (a gateway) records, durably and before anything is
//! relayed, that this device may commit this identity; after a crash it asks
//! the device ([`crate::status::ask_status`]) and then confirms its record
//! or tells the SP to drop the key. [`CommitJournal::prepare`] is that
//! record. A phone that keeps no state passes none.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::capability::RelayedDevice;

/// Durable notes of enrollments whose outcome may become unknown.
pub trait CommitJournal: Send + Sync {
    /// The device staged `staged`; nothing has been relayed or committed
    /// yet. Record durably that the device may commit it. An error aborts
    /// the enrollment: nothing is relayed and the device stays as it was.
    fn prepare<'a>(&'a self, staged: &'a RelayedDevice, rebind: bool) -> BoxFuture<'a, Result<(), String>>;
}

/// A [`CommitJournal`] in [`crate::EnrollOptions`].
#[derive(Clone)]
pub struct Journal(pub Arc<dyn CommitJournal>);

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Journal(..)")
    }
}
