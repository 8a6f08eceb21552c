//! Group commit for registrations. Each registration is a complaint row and, unless intake owns
//! the case itself, the `case_routed` event for its owner; its history, acknowledgement and the
//! `registered` webhook deliveries of its branch. Registrations that arrive while a
//! writer's transaction is in flight are written together in its next transaction — multi-row
//! inserts and one commit for many complaints — and every caller is answered only after the
//! transaction holding its complaint has committed.
//!
//! What registration must know of the customers is read in that same transaction, for the whole
//! batch at once: the complaints about the same waybills, of which each registration keeps its
//! customer's in the same category, together with those that have one of the batch's keys (one
//! statement), and their grades (one more). Then each case
//! is made by [`Registration::register`], the rule, which does no I/O. (Complaints registered at
//! the same moment, in one batch or in two, do not see each other, as before the look-ups moved
//! here.)
//!
//! A batch is written on the kit's write path, `kefu_kit::write::create_all` with intake's
//! [`ComplaintKeeper`]: the same insert, history, effects (replies, webhook deliveries) and outbox
//! as any change, for many new complaints in one transaction.
//!
//! A batch's keys are looked at in its own transaction before anything is written (in the statement
//! that reads the complaints about its waybills, so they cost no statement of their own): a registration
//! whose `request_id` an earlier complaint has is answered [`Written::Conflict`] (its caller finds
//! that complaint), and a case number an earlier complaint or another registration of the batch
//! has is drawn again, so that the rest is written at once. A day's case numbers share 25⁶ values
//! (`kefu_kit::case_number`): in a day's fourth million one draw in about sixty is taken, and a
//! batch that learned of it only from the database's refusal was written twice (58,579 batches in
//! an hour at 64 callers, docs/benchmarks.md, "eighth round"). A key another writer commits after
//! the look (a retry racing its first call, the same number drawn at the same moment) still fails
//! the batch: it is written once more, in a new transaction that sees that key. If the batch fails
//! again, or on anything else the database refuses, it is rolled back and its registrations are
//! written one per transaction, so that each caller learns of its own failure and no one else's
//! call is lost.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    config::ServiceName,
    error::Failure,
    outbox::RelayWaker,
    trace::TraceContext,
    write::{self, Applied},
};
use sea_orm::{DatabaseConnection, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use crate::{
    complaint::{Complaint, Effects},
    domain::Kind,
    error::{self, Error},
    grades,
    keeper::ComplaintKeeper,
    registration::{Earlier, Registration},
    store,
};

/// Registrations in one transaction at most.
const MAX_BATCH: usize = 128;
/// How many times, at most, one batch looks up the case numbers it drew again ([`Customers::clear_keys`]).
const REDRAW_LOOK_UPS: usize = 3;

/// One registration to write under a freshly drawn case number, with who registered it, in which
/// trace, and when.
pub struct New {
    pub registration: Registration,
    pub case_number: String,
    pub request_id: Option<String>,
    pub caller: Caller,
    pub trace: TraceContext,
    pub now: DateTime<Utc>,
}

/// What became of a registration.
#[derive(Debug)]
pub enum Written {
    /// The case as it was registered.
    Committed(Box<Complaint>),
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
    /// Starts `count` writers on `db`, each waking `relay` once a batch has committed. They stop
    /// when every handle is dropped.
    pub fn start(db: DatabaseConnection, count: usize, keeper: ComplaintKeeper, relay: RelayWaker) -> Writers {
        Writers::start_drawing(db, count, keeper, relay, kefu_kit::case_number::generate)
    }

    /// [`Writers::start`], with the writers drawing a taken case number again by `draw` (a test's
    /// own numbers) instead of [`kefu_kit::case_number::generate`].
    pub fn start_drawing(
        db: DatabaseConnection,
        count: usize,
        keeper: ComplaintKeeper,
        relay: RelayWaker,
        draw: Draw,
    ) -> Writers {
        let mut queues = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let (sender, receiver) = mpsc::channel(MAX_BATCH * 4);
            tokio::spawn(write_batches(db.clone(), receiver, Drawing { keeper: keeper.clone(), draw }, relay.clone()));
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

/// How a case number is drawn: at a time, in the company's time zone.
pub type Draw = fn(DateTime<Utc>, chrono_tz::Tz) -> String;

/// What a writer writes with: the keeper, and how it draws a taken case number again.
#[derive(Clone)]
struct Drawing {
    keeper: ComplaintKeeper,
    draw: Draw,
}

async fn write_batches(
    db: DatabaseConnection,
    mut receiver: mpsc::Receiver<(New, Reply)>,
    drawing: Drawing,
    relay: RelayWaker,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut written = write(&db, &drawing, batch.iter().map(|(new, _)| new)).await;
        if written.as_ref().is_err_and(Error::is_unique_violation) {
            written = write(&db, &drawing, batch.iter().map(|(new, _)| new)).await;
        }
        match written {
            Ok(outcomes) => {
                for ((_, reply), written) in batch.drain(..).zip(outcomes) {
                    let _ = reply.send(Ok(written));
                }
            }
            Err(Error::Failure(failure)) if failure.is_unreachable() => {
                // Each alone would wait as long again, and so would what queued meanwhile: all of
                // them hear now, so no caller waits more than one wait for a connection.
                if let Failure::Database { context, error } = &failure {
                    kefu_kit::error::log_unreachable(context, error);
                }
                while let Ok(queued) = receiver.try_recv() {
                    batch.push(queued);
                }
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(Error::Unavailable(
                        "intake's database is unreachable; retry in a few seconds with the same request_id",
                    )));
                }
            }
            Err(_) if batch.len() > 1 => {
                for (new, reply) in batch.drain(..) {
                    let _ = reply.send(outcome(write(&db, &drawing, std::iter::once(&new)).await));
                }
            }
            Err(failure) => {
                // A registration alone in its batch learns its own outcome.
                if let Some((_, reply)) = batch.pop() {
                    let _ = reply.send(outcome(Err(failure)));
                }
            }
        }
        // The handoffs the batch committed go at once: one wake for the batch, not one per case.
        relay.wake();
    }
}

fn outcome(result: Result<Vec<Written>, Error>) -> Result<Written, Error> {
    match result {
        Ok(mut outcomes) => {
            outcomes.pop().ok_or(Error::Unavailable("nothing was registered; retry with the same request_id"))
        }
        Err(conflict) if conflict.is_unique_violation() => Ok(Written::Conflict),
        Err(failure) => Err(failure),
    }
}

/// Registers the batch in one transaction, on the kit's write path: reads what is known of its
/// customers and keys, clears its keys, makes each case, and writes the new complaints, their histories,
/// replies, webhook deliveries and handoffs. What became of each registration, in the batch's order.
async fn write<'a>(
    db: &DatabaseConnection,
    drawing: &Drawing,
    batch: impl Iterator<Item = &'a New>,
) -> Result<Vec<Written>, Error> {
    let batch: Vec<&New> = batch.collect();
    // Where traces are exported, each registration's trace has the batch's transaction in it, and
    // the first one's has its statements besides.
    let spans: Vec<tracing::Span> =
        batch.iter().map(|new| kefu_kit::trace::transaction_span(db, "kefu.register", Some(&new.trace))).collect();
    let first = spans.first().cloned().unwrap_or_else(tracing::Span::none);
    tracing::Instrument::instrument(write_batch(db, drawing, &batch), first).await
}

async fn write_batch(db: &DatabaseConnection, drawing: &Drawing, batch: &[&New]) -> Result<Vec<Written>, Error> {
    let keeper = &drawing.keeper;
    let tx = db.begin().await.map_err(error::db("registering a complaint"))?;
    let mut known = Customers::read(&tx, batch).await?;
    let case_numbers = known.clear_keys(&tx, drawing, batch).await?;
    let going: Vec<(&New, &String)> =
        batch.iter().zip(&case_numbers).filter_map(|(new, case_number)| Some((*new, case_number.as_ref()?))).collect();
    if going.is_empty() {
        return Ok(batch.iter().map(|_| Written::Conflict).collect());
    }
    let registered: Vec<(Complaint, Applied<Effects>)> = going
        .iter()
        .map(|(new, case_number)| {
            let complaint = &new.registration.complaint;
            let earlier = if Customers::compares(&new.registration) {
                let same: Vec<Complaint> =
                    known.earlier.iter().filter(|earlier| same_event(earlier, complaint)).cloned().collect();
                Earlier::find(&same, complaint.channel, new.now)
            } else {
                Earlier::default()
            };
            let grade = known.grades.get(&complaint.contact_phone).map(String::as_str).unwrap_or_default();
            let time_zone = keeper.time_zone;
            new.registration.register(
                case_number,
                new.request_id.clone(),
                &earlier,
                grade,
                &new.caller,
                new.now,
                time_zone,
            )
        })
        .collect();
    let created: Vec<_> = going
        .iter()
        .zip(&registered)
        .map(|((new, _), (complaint, applied))| write::Created {
            key: &complaint.case_number,
            aggregate: complaint,
            applied,
            request: write::Request {
                caller: &new.caller,
                trace: &new.trace,
                request_id: complaint.request_id.as_deref(),
            },
            now: new.now,
        })
        .collect();
    write::create_all(keeper, &tx, ServiceName::Intake, &created).await?;
    tx.commit().await.map_err(error::db("registering a complaint"))?;
    let mut registered = registered.into_iter().map(|(complaint, _)| Written::Committed(Box::new(complaint)));
    Ok(case_numbers
        .iter()
        .map(|case_number| case_number.as_ref().and_then(|_| registered.next()).unwrap_or(Written::Conflict))
        .collect())
}

/// What registration must know of a batch's customers and keys, read in two statements.
struct Customers {
    /// The complaints about their waybills, oldest first (of the same customer and category or not).
    earlier: Vec<Complaint>,
    /// Archives' grade of each phone that has one.
    grades: HashMap<String, String>,
    /// The batch's case numbers that earlier complaints have.
    taken_case_numbers: HashSet<String>,
    /// The batch's request ids that earlier complaints have.
    taken_request_ids: HashSet<String>,
}

impl Customers {
    /// Reads, in one statement, the complaints about the batch's waybills together with those that
    /// have one of its keys (both are look-ups in `complaints`, by its indexes), and in another the
    /// grades of its phones.
    async fn read(tx: &impl sea_orm::ConnectionTrait, batch: &[&New]) -> Result<Customers, Error> {
        let mut waybills: Vec<&str> = batch
            .iter()
            .filter(|new| Customers::compares(&new.registration))
            .map(|new| new.registration.complaint.waybill_number.as_str())
            .collect();
        waybills.sort_unstable();
        waybills.dedup();
        let case_numbers: Vec<&str> = batch.iter().map(|new| new.case_number.as_str()).collect();
        let request_ids: Vec<&str> = batch.iter().filter_map(|new| new.request_id.as_deref()).collect();
        let found = store::about_batch(tx, &waybills, &case_numbers, &request_ids)
            .await
            .map_err(error::db("looking for an earlier complaint"))?;
        let mut known = Customers {
            earlier: Vec::with_capacity(found.len()),
            grades: HashMap::new(),
            taken_case_numbers: HashSet::new(),
            taken_request_ids: HashSet::new(),
        };
        for complaint in found {
            if case_numbers.contains(&complaint.case_number.as_str()) {
                known.taken_case_numbers.insert(complaint.case_number.clone());
            }
            if let Some(request_id) = complaint.request_id.as_deref().filter(|id| request_ids.contains(id)) {
                known.taken_request_ids.insert(request_id.to_owned());
            }
            if waybills.binary_search(&complaint.waybill_number.as_str()).is_ok() {
                known.earlier.push(complaint);
            }
        }
        let phones: Vec<&str> = batch.iter().map(|new| new.registration.complaint.contact_phone.as_str()).collect();
        known.grades = grades::of_phones(tx, &phones).await.map_err(error::db("reading the customer's grade"))?;
        Ok(known)
    }

    /// The case number each registration of the batch is written under, or `None` for one whose
    /// `request_id` an earlier complaint has: a number an earlier complaint or an earlier
    /// registration of the batch has is drawn again, and a number drawn again is looked up in turn
    /// (at most [`REDRAW_LOOK_UPS`] times), so the insert meets a taken one only when another
    /// writer took it meanwhile. Late in a busy day a fresh draw is itself taken now and then (the
    /// numbers of a ten-second span share their first character with a twenty-fifth of the day's),
    /// and an insert that meets it rolls the whole batch back to be written again.
    async fn clear_keys(
        &mut self,
        tx: &impl sea_orm::ConnectionTrait,
        drawing: &Drawing,
        batch: &[&New],
    ) -> Result<Vec<Option<String>>, Error> {
        // The batch's own numbers were looked up with its customers.
        let mut looked_up: HashSet<String> = batch.iter().map(|new| new.case_number.clone()).collect();
        let mut case_numbers: Vec<Option<String>> = batch.iter().map(|new| Some(new.case_number.clone())).collect();
        for _ in 0..REDRAW_LOOK_UPS {
            case_numbers = self.draw_again_where_taken(drawing, batch, case_numbers);
            let drawn_again: Vec<&str> = case_numbers
                .iter()
                .flatten()
                .filter(|number| !looked_up.contains(*number))
                .map(String::as_str)
                .collect();
            if drawn_again.is_empty() {
                break;
            }
            let taken = store::about_batch(tx, &[], &drawn_again, &[])
                .await
                .map_err(error::db("looking up a case number drawn again"))?;
            looked_up.extend(drawn_again.iter().map(|number| (*number).to_owned()));
            if taken.is_empty() {
                break;
            }
            self.taken_case_numbers.extend(taken.into_iter().map(|complaint| complaint.case_number));
        }
        // After the last look-up, a number it found taken is drawn once more (unlooked-up).
        Ok(self.draw_again_where_taken(drawing, batch, case_numbers))
    }

    /// `case_numbers` with each number that is taken, or that an earlier registration of the batch
    /// has, drawn again; `None` for a registration whose `request_id` is taken.
    fn draw_again_where_taken(
        &self,
        drawing: &Drawing,
        batch: &[&New],
        case_numbers: Vec<Option<String>>,
    ) -> Vec<Option<String>> {
        let mut drawn = HashSet::with_capacity(batch.len());
        batch
            .iter()
            .zip(case_numbers)
            .map(|(new, case_number)| {
                if new.request_id.as_ref().is_some_and(|request_id| self.taken_request_ids.contains(request_id)) {
                    return None;
                }
                let mut case_number = case_number.unwrap_or_else(|| new.case_number.clone());
                while self.taken_case_numbers.contains(&case_number) || !drawn.insert(case_number.clone()) {
                    case_number = (drawing.draw)(new.now, drawing.keeper.time_zone);
                }
                Some(case_number)
            })
            .collect()
    }

    /// Whether a registration is compared with the customer's earlier complaints (001 §8 4.10):
    /// a complaint, from a customer who left a phone.
    fn compares(registration: &Registration) -> bool {
        registration.kind == Kind::Complaint && !registration.complaint.contact_phone.is_empty()
    }
}

/// The same customer about the same waybill and category.
fn same_event(earlier: &Complaint, new: &crate::domain::NewComplaint) -> bool {
    earlier.waybill_number == new.waybill_number
        && earlier.category == new.category
        && earlier.contact_phone == new.contact_phone
}
