//! Whether a server should be sent new calls, as `grpc.health.v1` reports it (Kubernetes'
//! readiness probe, and any balancer that reads health).
//!
//! A server is `SERVING` while both hold:
//! - it is not draining (see [`crate::shutdown`]: SIGTERM starts the drain);
//! - its database answers: on PostgreSQL, [`Readiness::watch_database`] pings it every
//!   [`PING_EVERY`]; a SQLite file on the pod's own volume is reachable as long as the process is.
//!
//! Liveness is another question: a server whose database is away is alive and recovers by itself
//! once it returns, so only readiness turns `NOT_SERVING`; nothing restarts it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use sea_orm::DatabaseConnection;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::shutdown::Shutdown;

/// The health service name Kubernetes' liveness probe asks for: `SERVING` whenever the server
/// answers, draining or not, database or not (restarting would not bring the database back).
pub const LIVENESS: &str = "liveness";

/// How often the database is pinged, and how long a ping may take before it counts as unanswered.
pub const PING_EVERY: Duration = Duration::from_secs(1);
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What health reports for a server: the overall status (`""`) and each of its gRPC services'.
#[derive(Clone)]
pub struct Readiness {
    reporter: HealthReporter,
    part: &'static str,
    service_names: Arc<[String]>,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    draining: bool,
    database_answers: bool,
}

impl State {
    fn serving(self) -> bool {
        !self.draining && self.database_answers
    }
}

impl Readiness {
    /// Readiness for the named services, reported by `reporter`; serving until told otherwise.
    pub async fn new(reporter: HealthReporter, part: &'static str, service_names: &[&str]) -> Readiness {
        let readiness = Readiness {
            reporter,
            part,
            service_names: service_names.iter().map(|name| (*name).to_owned()).collect(),
            state: Arc::new(Mutex::new(State { draining: false, database_answers: true })),
        };
        readiness.report(true).await;
        // What the liveness probe asks: alive as long as it answers at all.
        readiness.reporter.set_service_status(LIVENESS, ServingStatus::Serving).await;
        readiness
    }

    /// Whether the server reports `SERVING` now.
    pub fn is_serving(&self) -> bool {
        self.state.lock().map(|state| state.serving()).unwrap_or(false)
    }

    /// The drain has begun: `NOT_SERVING` from now on.
    pub async fn drain(&self) {
        self.change(|state| state.draining = true).await;
    }

    /// Whether the database answered the last ping.
    pub async fn database_answers(&self, answers: bool) {
        self.change(|state| state.database_answers = answers).await;
    }

    async fn change(&self, change: impl FnOnce(&mut State)) {
        let (was, now) = {
            let Ok(mut state) = self.state.lock() else { return };
            let was = state.serving();
            change(&mut state);
            (was, state.serving())
        };
        if was != now {
            self.report(now).await;
        }
    }

    async fn report(&self, serving: bool) {
        crate::metrics::ready(self.part, serving);
        let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
        self.reporter.set_service_status("", status).await;
        for name in self.service_names.iter() {
            self.reporter.set_service_status(name, status).await;
        }
    }

    /// Pings `db` every [`PING_EVERY`] until `shutdown`, reporting `NOT_SERVING` while it does not
    /// answer within [`PING_TIMEOUT`], and logging each change once.
    pub async fn watch_database(self, db: DatabaseConnection, part: &'static str, shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(PING_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut answered = true;
        loop {
            tokio::select! {
                () = shutdown.clone().wait() => return,
                _ = ticks.tick() => {}
            }
            let answers = matches!(tokio::time::timeout(PING_TIMEOUT, db.ping()).await, Ok(Ok(())));
            if answers != answered {
                if answers {
                    tracing::info!(%part, "the database answers again: ready");
                } else {
                    tracing::error!(%part, "the database does not answer: not ready until it does");
                }
                answered = answers;
            }
            self.database_answers(answers).await;
        }
    }
}
