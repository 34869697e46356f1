//! SIGINT and SIGTERM as a running count, so a command can act on the first one (stop
//! and finish cleanly) and on the second (stop at once).

use tokio::sync::watch;

/// Counts SIGINT and SIGTERM from now on. The handlers are installed before this
/// returns, so a signal sent right after (say, as soon as "listening on" is printed) is
/// counted instead of killing the process with the default action.
pub(crate) fn install() -> watch::Receiver<u32> {
    let (count, signals) = watch::channel(0);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        Some(()) = interrupt.recv() => {}
                        Some(()) = terminate.recv() => {}
                        else => return,
                    }
                    count.send_modify(|n| *n += 1);
                }
            });
            return signals;
        }
    }
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            count.send_modify(|n| *n += 1);
        }
    });
    signals
}

/// Resolves once at least `n` signals have arrived (never, if counting stopped).
pub(crate) async fn received(signals: &mut watch::Receiver<u32>, n: u32) {
    if signals.wait_for(|&count| count >= n).await.is_err() {
        std::future::pending::<()>().await;
    }
}
