//! Shutdown as a value passed in: every server and background loop holds a [`Shutdown`] and stops
//! when it fires (Ctrl-C in `kefu up`, SIGTERM from Kubernetes, the end of a test).

use tokio::sync::watch;

/// Fires once; every clone sees it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// The side that fires the [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (sender, receiver) = watch::channel(false);
        (ShutdownTrigger { sender }, Shutdown { receiver })
    }

    /// Completes when shutdown has been asked for (at once if it already has been).
    pub async fn wait(mut self) {
        // An error means the trigger was dropped, which also means: stop.
        let _ = self.receiver.wait_for(|stop| *stop).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.sender.send(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        self.trigger();
    }
}

/// Runs `job` at once and then every `period` until `shutdown`; a failure is logged as `what`
/// failing and the next round comes as usual. A round that overruns delays the next.
pub async fn every<F, Fut>(period: std::time::Duration, shutdown: Shutdown, what: &'static str, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.clone().wait() => return,
            _ = ticks.tick() => {
                if let Err(error) = job().await {
                    tracing::error!(?error, "{what} failed");
                }
            }
        }
    }
}
