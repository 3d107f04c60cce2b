//! Work done after a call has been answered (the lookup and mail of a reset or resend
//! request), so that the answer's timing does not depend on what the work finds.

use crate::error::AuthError;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Work that may run after its call has been answered, at most this much at once.
const BACKGROUND_TASKS: u32 = 64;

/// The permits of the work running after its call was answered.
#[derive(Clone)]
pub struct Background(Arc<Semaphore>);

impl Default for Background {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(BACKGROUND_TASKS as usize)))
    }
}

impl Background {
    /// Runs `work` after the caller has been answered. At most `BACKGROUND_TASKS` run at once;
    /// beyond that the caller waits for a slot (its wait then depends on load, never on the
    /// request).
    pub async fn spawn<F>(&self, what: &'static str, work: F)
    where
        F: Future<Output = Result<(), AuthError>> + Send + 'static,
    {
        let Ok(permit) = Arc::clone(&self.0).acquire_owned().await else {
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(err) = work.await {
                tracing::warn!(error = %err, what, "background work failed");
            }
        });
    }

    /// Waits until the work started by `spawn` has finished (at shutdown).
    pub async fn finish(&self) {
        let _ = self.0.acquire_many(BACKGROUND_TASKS).await;
    }
}
