//! Group commit for registrations. Each registration is a complaint row and, unless intake owns
//! the case itself, the `case_routed` event for its owner; its history, acknowledgement and the
//! `registered` webhook deliveries of its branch. Registrations that arrive while a
//! writer's transaction is in flight are written together in its next transaction — multi-row
//! inserts and one commit for many complaints — and every caller is answered only after the
//! transaction holding its complaint has committed.
//!
//! If a batch fails — a unique-key conflict (a retried `request_id`, a case number drawn twice), or
//! any row the database refuses — it is rolled back and its registrations are written one per
//! transaction, so that each caller learns of its own failure and no one else's call is lost.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use kefu_kit::{config::ServiceName, error, history, outbox};
use kefu_proto::events::v1::Event;
use sea_orm::{ActiveValue::NotSet, DatabaseConnection, DbErr, EntityTrait, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use crate::{
    store,
    webhooks::{self, CaseEvent},
};
use chrono_tz::Tz;

/// Registrations in one transaction at most.
const MAX_BATCH: usize = 128;

/// One complaint to write, with the event that hands it to its owner, the steps of its history
/// (and of the complaint it duplicates), and its acknowledgement.
pub struct Registration {
    pub row: store::Model,
    pub handoff: Option<(ServiceName, Event)>,
    pub steps: Vec<(String, history::Step)>,
    pub replies: Vec<crate::replies::NewReply>,
}

/// What became of a registration.
#[derive(Debug, Clone)]
pub enum Written {
    Committed,
    /// A unique key was taken: by an earlier complaint with the same request id, or its case number.
    Conflict,
}

type Reply = oneshot::Sender<Result<Written, Status>>;

/// The handle the API writes through; writer tasks run behind it.
#[derive(Clone)]
pub struct Writers {
    queues: Arc<Vec<mpsc::Sender<(Registration, Reply)>>>,
    next: Arc<AtomicUsize>,
}

impl Writers {
    /// Starts `count` writers on `db`. They stop when every handle is dropped.
    pub fn start(db: DatabaseConnection, count: usize, time_zone: Tz) -> Writers {
        let mut queues = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let (sender, receiver) = mpsc::channel(MAX_BATCH * 4);
            tokio::spawn(write_batches(db.clone(), receiver, time_zone));
            queues.push(sender);
        }
        Writers { queues: Arc::new(queues), next: Arc::new(AtomicUsize::new(0)) }
    }

    /// Writes `registration`; returns once it is committed or refused.
    pub async fn write(&self, registration: Registration) -> Result<Written, Status> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len();
        let (reply, answer) = oneshot::channel();
        self.queues[index]
            .send((registration, reply))
            .await
            .map_err(|_| Status::unavailable("intake is shutting down; retry with the same request_id"))?;
        answer.await.map_err(|_| Status::unavailable("intake is shutting down; retry with the same request_id"))?
    }
}

async fn write_batches(db: DatabaseConnection, mut receiver: mpsc::Receiver<(Registration, Reply)>, time_zone: Tz) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match write(&db, batch.iter().map(|(registration, _)| registration), time_zone).await {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(Written::Committed));
                }
            }
            Err(_) if batch.len() > 1 => {
                for (registration, reply) in batch.drain(..) {
                    let _ = reply.send(outcome(write(&db, std::iter::once(&registration), time_zone).await));
                }
            }
            Err(failure) => {
                let outcome = outcome(Err(failure));
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(outcome.clone());
                }
            }
        }
    }
}

fn outcome(result: Result<(), DbErr>) -> Result<Written, Status> {
    match result {
        Ok(()) => Ok(Written::Committed),
        Err(conflict) if error::is_unique_violation(&conflict) => Ok(Written::Conflict),
        Err(failure) => Err(error::from_db("registering a complaint", failure)),
    }
}

/// Writes the registrations and their handoffs in one transaction.
async fn write<'a>(
    db: &DatabaseConnection,
    registrations: impl Iterator<Item = &'a Registration> + Clone,
    time_zone: Tz,
) -> Result<(), DbErr> {
    let tx = db.begin().await?;
    let rows = registrations.clone().map(|registration| {
        let mut row: store::ActiveModel = registration.row.clone().into();
        row.seq = NotSet;
        row
    });
    store::Entity::insert_many(rows).exec_without_returning(&tx).await?;
    let handoffs: Vec<_> = registrations
        .clone()
        .filter_map(|registration| {
            registration.handoff.as_ref().map(|(owner, event)| (*owner, event, registration.row.create_time))
        })
        .collect();
    outbox::enqueue_many(&tx, handoffs).await?;
    let steps: Vec<(&str, &history::Step)> = registrations
        .clone()
        .flat_map(|registration| registration.steps.iter().map(|(case_number, step)| (case_number.as_str(), step)))
        .collect();
    history::record_many(&tx, &steps).await?;
    let replies: Vec<_> = registrations
        .clone()
        .flat_map(|registration| {
            let row = &registration.row;
            registration.replies.iter().map(|reply| (row.case_number.as_str(), reply, row.create_time))
        })
        .collect();
    crate::replies::insert(&tx, &replies).await?;
    let registered: Vec<_> = registrations
        .map(|registration| (&registration.row, CaseEvent::Registered, registration.row.create_time))
        .collect();
    webhooks::enqueue(&tx, &registered, time_zone).await?;
    tx.commit().await
}
