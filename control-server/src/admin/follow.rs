//! Following changes made by other processes: the CLI (or another replica)
//! writes to the database a running server reads through its mapping cache.
//! Every association change writes `history` and every other admin change
//! writes `admin_log`, both in commit order; this task reads what is new
//! every [`FOLLOW_INTERVAL`] and drops the cached rows it names, so such a
//! change reaches resolve within about a second rather than
//! `policy.mapping_cache_ttl_ms`.

use std::time::Duration;

use crate::mapping::MappingTable;
use crate::store::Store;

/// How often the database is asked what changed.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);
/// Rows read per table and look.
const BATCH: i64 = 10_000;

/// Aborts the task it holds when dropped (the server stops).
#[derive(Debug)]
pub struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Starts following from the current heads of `history` and `admin_log`.
pub async fn start(store: Store, mapping: MappingTable) -> Background {
    let heads = match store.change_heads().await {
        Ok(h) => h,
        Err(err) => {
            tracing::warn!(%err, "cannot read where history ends; following changes from the start");
            (0, 0)
        }
    };
    Background(vec![tokio::spawn(follow(store, mapping, heads))])
}

async fn follow(store: Store, mapping: MappingTable, (mut history, mut admin): (i64, i64)) {
    let mut warned = false;
    loop {
        match store.changes_after(history, admin, BATCH).await {
            Ok(changes) => {
                warned = false;
                let full = changes.history.len() as i64 == BATCH || changes.admin.len() as i64 == BATCH;
                if let Some((id, _)) = changes.history.last() {
                    history = *id;
                }
                if let Some((id, _)) = changes.admin.last() {
                    admin = *id;
                }
                let devices = changes
                    .history
                    .iter()
                    .map(|(_, d)| d.as_str())
                    .chain(changes.admin.iter().filter_map(|(_, d)| d.as_deref()));
                mapping.invalidate(devices);
                if full {
                    continue;
                }
            }
            Err(err) if !warned => {
                tracing::warn!(%err, "cannot read recent changes; cached mapping rows expire by their TTL meanwhile");
                warned = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(FOLLOW_INTERVAL).await;
    }
}
