//! A client classifying through the gateway back to back, counting every answer that is not
//! a 200: the evidence that a swap drops nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The running client; [`Load::stop`] returns its counts.
pub struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

/// A question every model answers.
const TEXT: &str = "how do i sort a dict by value in a list comprehension";
/// Pause between requests: enough load to catch a dropped request, little enough to leave
/// the 2 cores to the training and the bake.
const PAUSE: Duration = Duration::from_millis(50);

impl Load {
    /// Starts classifying through `gateway` (`http://HOST:PORT`).
    pub fn start(http: reqwest::Client, gateway: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{gateway}/classify");
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
                while !stop.load(Ordering::Relaxed) {
                    let answer = http.post(&url).header("content-type", "text/plain").body(TEXT).send().await;
                    // A 200 whose body arrives whole; anything else failed.
                    let answered = match answer {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    let counter = if answered { &ok } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(PAUSE).await;
                }
                (ok.into_inner(), failed.into_inner())
            })
        };
        Self { stop, task }
    }

    /// Stops and returns `(answered, failed)`.
    pub async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or((0, 0))
    }
}
