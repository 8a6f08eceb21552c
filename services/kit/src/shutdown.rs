//! Shutdown as a value passed in: every server and background loop holds a [`Shutdown`] and stops
//! when it fires (Ctrl-C in `kefu up`, SIGTERM from Kubernetes, the end of a test).
//!
//! Stopping has two phases. **Draining** (SIGTERM): servers report `NOT_SERVING` over
//! `grpc.health.v1` so that Kubernetes takes them out of its endpoints and balancers stop sending,
//! but they go on answering every call that still comes. **Stopping**: servers take no new
//! connections, finish the calls in flight, and background loops end. Ctrl-C goes straight to
//! stopping (a person at a terminal is the only caller); a test's end does too.

use tokio::sync::watch;

/// Where a process is in stopping; only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Running,
    Draining,
    Stopping,
}

/// Fires once; every clone sees it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<Phase>,
}

/// The side that fires the [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<Phase>,
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (sender, receiver) = watch::channel(Phase::Running);
        (ShutdownTrigger { sender }, Shutdown { receiver })
    }

    /// Completes when stopping has been asked for (at once if it already has been).
    pub async fn wait(self) {
        self.reached(Phase::Stopping).await;
    }

    /// Completes when draining or stopping has been asked for: stop reporting ready.
    pub async fn draining(self) {
        self.reached(Phase::Draining).await;
    }

    async fn reached(mut self, phase: Phase) {
        // An error means the trigger was dropped, which also means: stop.
        let _ = self.receiver.wait_for(|now| *now >= phase).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow() == Phase::Stopping
    }
}

impl ShutdownTrigger {
    /// Stop: no new connections, calls in flight finish, loops end.
    pub fn trigger(&self) {
        self.advance(Phase::Stopping);
    }

    /// Start draining: report `NOT_SERVING` and go on answering until [`ShutdownTrigger::trigger`].
    pub fn drain(&self) {
        self.advance(Phase::Draining);
    }

    fn advance(&self, to: Phase) {
        self.sender.send_if_modified(|now| {
            let moves = *now < to;
            if moves {
                *now = to;
            }
            moves
        });
    }

    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow() == Phase::Stopping
    }

    /// Forwards `shutdown`'s phases to this trigger's side as they come, until it stops.
    pub async fn follow(&self, shutdown: Shutdown) {
        shutdown.clone().draining().await;
        self.drain();
        shutdown.wait().await;
        self.trigger();
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
            _ = ticks.tick() => job_failed(what, job().await.err()),
        }
    }
}

/// Logs a background job's failure as `what` failing — except a database away (`UNAVAILABLE`),
/// which is logged where it was met, now and then while the cause lasts.
pub fn job_failed(what: &str, error: Option<tonic::Status>) {
    match error {
        None => {}
        Some(error) if error.code() == tonic::Code::Unavailable => {}
        Some(error) => tracing::error!(?error, "{what} failed"),
    }
}
