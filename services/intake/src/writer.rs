//! Group commit for registrations. Each registration is a complaint row and, unless intake owns
//! the case itself, the `case_routed` event for its owner; its history, acknowledgement and the
//! `registered` webhook deliveries of its branch. Registrations that arrive while a
//! writer's transaction is in flight are written together in its next transaction — multi-row
//! inserts and one commit for many complaints — and every caller is answered only after the
//! transaction holding its complaint has committed.
//!
//! A batch is written on the kit's write path, `kefu_kit::write::create_all` with intake's
//! [`ComplaintKeeper`]: the same insert, history, effects (replies, webhook deliveries) and outbox
//! as any change, for many new complaints in one transaction.
//!
//! If a batch fails — a unique-key conflict (a retried `request_id`, a case number drawn twice), or
//! any row the database refuses — it is rolled back and its registrations are written one per
//! transaction, so that each caller learns of its own failure and no one else's call is lost.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    config::ServiceName,
    trace::TraceContext,
    write::{self, Applied},
};
use sea_orm::{DatabaseConnection, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use crate::{
    complaint::{Complaint, Effects},
    error::{self, Error},
    keeper::ComplaintKeeper,
};

/// Registrations in one transaction at most.
const MAX_BATCH: usize = 128;

/// One new complaint to write, as [`crate::registration::Registration::register`] made it, with
/// who registered it, in which trace, and when.
pub struct New {
    pub complaint: Complaint,
    pub applied: Applied<Effects>,
    pub caller: Caller,
    pub trace: TraceContext,
    pub now: DateTime<Utc>,
}

/// What became of a registration.
#[derive(Debug)]
pub enum Written {
    Committed,
    /// A unique key was taken: by an earlier complaint with the same request id, or its case number.
    Conflict,
}

type Reply = oneshot::Sender<Result<Written, Error>>;

/// The handle the API writes through; writer tasks run behind it.
#[derive(Clone)]
pub struct Writers {
    queues: Arc<Vec<mpsc::Sender<(New, Reply)>>>,
    next: Arc<AtomicUsize>,
}

impl Writers {
    /// Starts `count` writers on `db`. They stop when every handle is dropped.
    pub fn start(db: DatabaseConnection, count: usize, keeper: ComplaintKeeper) -> Writers {
        let mut queues = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let (sender, receiver) = mpsc::channel(MAX_BATCH * 4);
            tokio::spawn(write_batches(db.clone(), receiver, keeper));
            queues.push(sender);
        }
        Writers { queues: Arc::new(queues), next: Arc::new(AtomicUsize::new(0)) }
    }

    /// Writes `new`; returns once it is committed or refused.
    pub async fn write(&self, new: New) -> Result<Written, Error> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len();
        let (reply, answer) = oneshot::channel();
        let shutting_down = || Error::Unavailable("intake is shutting down; retry with the same request_id");
        self.queues[index].send((new, reply)).await.map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())?
    }
}

async fn write_batches(db: DatabaseConnection, mut receiver: mpsc::Receiver<(New, Reply)>, keeper: ComplaintKeeper) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match write(&db, &keeper, batch.iter().map(|(new, _)| new)).await {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(Written::Committed));
                }
            }
            Err(_) if batch.len() > 1 => {
                for (new, reply) in batch.drain(..) {
                    let _ = reply.send(outcome(write(&db, &keeper, std::iter::once(&new)).await));
                }
            }
            Err(failure) => {
                // A registration alone in its batch learns its own outcome.
                if let Some((_, reply)) = batch.pop() {
                    let _ = reply.send(outcome(Err(failure)));
                }
            }
        }
    }
}

fn outcome(result: Result<(), Error>) -> Result<Written, Error> {
    match result {
        Ok(()) => Ok(Written::Committed),
        Err(conflict) if conflict.is_unique_violation() => Ok(Written::Conflict),
        Err(failure) => Err(failure),
    }
}

/// Writes the new complaints, their histories, replies, webhook deliveries and handoffs in one
/// transaction, on the kit's write path.
async fn write<'a>(
    db: &DatabaseConnection,
    keeper: &ComplaintKeeper,
    batch: impl Iterator<Item = &'a New>,
) -> Result<(), Error> {
    let created: Vec<_> = batch
        .map(|new| write::Created {
            key: &new.complaint.case_number,
            aggregate: &new.complaint,
            applied: &new.applied,
            request: write::Request {
                caller: &new.caller,
                trace: &new.trace,
                request_id: new.complaint.request_id.as_deref(),
            },
            now: new.now,
        })
        .collect();
    let tx = db.begin().await.map_err(error::db("registering a complaint"))?;
    write::create_all(keeper, &tx, ServiceName::Intake, &created).await?;
    tx.commit().await.map_err(error::db("registering a complaint"))
}
