//! Opening the spool (with the ballast's help on a full disk), and stopping hermod when
//! its disk fills up while it runs.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use hermod_actors::core::disk_space::Ballast;
use hermod_actors::store::spool::SledSpool;
use tokio::sync::watch;

use crate::config::Config;

/// Opens the spool in `queue.data_dir`; on a disk too full to open it, releases the
/// ballast and tries once more.
pub(super) fn open_spool(config: &Config) -> anyhow::Result<SledSpool> {
    let ballast = Ballast::new(&config.queue.data_dir);
    let cache = config.queue.spool_cache_size;
    match SledSpool::open_with_cache(&config.queue.data_dir, cache) {
        Err(e) if e.is_disk_full() && ballast.release() => {
            tracing::warn!(
                dir = %config.queue.data_dir.display(),
                "spool disk full at start-up: released the ballast to open the spool; delivering queued mail, new mail refused until space returns"
            );
            SledSpool::open_with_cache(&config.queue.data_dir, cache)
        }
        opened => opened,
    }
    .with_context(|| {
        format!(
            "opening the spool in {} (is another hermod using it? is its disk full?)",
            config.queue.data_dir.display()
        )
    })
}

/// `shutdown`, or the spool's disk filling up (sled cannot write again in this process):
/// either stops hermod; the flag says it was the disk.
pub(super) fn or_full_disk(
    shutdown: impl Future<Output = ()> + 'static,
    mut stuck: watch::Receiver<bool>,
) -> (
    impl Future<Output = ()> + 'static,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let stopped_by_full_disk = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let full_disk = stopped_by_full_disk.clone();
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            Ok(_) = stuck.wait_for(|stuck| *stuck) => {
                full_disk.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::error!("stopping: the spool's disk is full; start hermod again once space is freed (a service manager does it by itself: it opens a full disk by releasing its ballast, and delivers)");
            }
        }
    };
    (shutdown, stopped_by_full_disk)
}
