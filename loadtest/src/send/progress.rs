//! A progress bar on stderr while a run is going, only when stderr is a terminal (so
//! logs and CI output get nothing extra).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

use super::ctx::Ctx;

/// Starts the bar's refresh task, or nothing when stderr is not a terminal.
pub(crate) fn start(ctx: &Arc<Ctx>) -> Option<(ProgressBar, JoinHandle<()>)> {
    if !ctx.config.progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let (bar, style) = match (ctx.config.messages, ctx.config.duration) {
        (_, Some(d)) => (
            ProgressBar::new(d.as_secs().max(1)),
            "{elapsed_precise} [{bar:40}] {pos}/{len}s {msg}",
        ),
        (Some(n), None) => (
            ProgressBar::new(n),
            "{elapsed_precise} [{bar:40}] {pos}/{len} {msg}",
        ),
        (None, None) => (ProgressBar::new_spinner(), "{elapsed_precise} {pos} {msg}"),
    };
    if let Ok(style) = ProgressStyle::with_template(style) {
        bar.set_style(style.progress_chars("=> "));
    }
    let by_time = ctx.config.duration.is_some();
    let (ctx, shown) = (Arc::clone(ctx), bar.clone());
    let task = tokio::spawn(async move {
        let mut last = (0u64, std::time::Instant::now());
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let finished = ctx.finished.load(Ordering::Relaxed);
            let accepted = ctx.accepted.load(Ordering::Relaxed);
            let elapsed = ctx.start.elapsed();
            shown.set_position(if by_time { elapsed.as_secs() } else { finished });
            let rate = (finished - last.0) as f64 / last.1.elapsed().as_secs_f64().max(1e-3);
            last = (finished, std::time::Instant::now());
            shown.set_message(format!("{finished} sent, {accepted} accepted, {rate:.0}/s"));
        }
    });
    Some((bar, task))
}
