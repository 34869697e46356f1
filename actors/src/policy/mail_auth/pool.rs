//! A tokio runtime of its own for the CPU work of mail authentication (body hashes, RSA
//! and Ed25519 verification), so that a flood of signed mail slows verification, not the
//! sessions: their arbiters never run it.

use std::future::Future;

/// The runtime; stopped without waiting when dropped (its tasks are answers nobody
/// waits for any more).
pub struct VerifyPool {
    runtime: Option<tokio::runtime::Runtime>,
}

impl VerifyPool {
    /// A runtime of `threads` worker threads (at least one), named `mail-auth`.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("mail-auth")
            .enable_all()
            .build()?;
        Ok(VerifyPool {
            runtime: Some(runtime),
        })
    }

    /// Runs `work` on the pool; its output, or `None` if the pool stopped first.
    pub async fn run<F>(&self, work: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.runtime.as_ref()?;
        runtime.spawn(work).await.ok()
    }
}

impl Drop for VerifyPool {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
