//! The one write path. Every change any service makes to what it keeps — a claim, an inspection
//! case, a waybill, a complaint, an access request — takes the same steps, here, once:
//!
//! 1. a request whose id is already in the aggregate's history is a retry, and changes nothing
//!    ([`Acted::Repeated`]);
//! 2. in one transaction, the aggregate is read with its version ([`Keeper::load`]);
//! 3. the command is applied to it — pure, no I/O — and yields the steps for its history and its
//!    effects, or a refusal ([`Keeper::apply`]);
//! 4. the aggregate is saved over the version read: if someone wrote in between, the request is
//!    `ABORTED` ([`Failure::Conflict`]) and nothing is written;
//! 5. the steps are recorded, the first under the request id: a unique violation there means the
//!    same request was written a moment earlier by a racing retry, which counts ([`Acted::Repeated`]);
//! 6. the service writes what its effects imply beside the aggregate (its own rows, webhook
//!    deliveries, replies, …) and names the events to send ([`Keeper::record`]);
//! 7. the events go to the outbox, the transaction commits, and the relay is woken.
//!
//! A service describes its aggregate by implementing [`Keeper`]; its API calls [`act`], its inbox
//! [`act_in`] (inside the transaction that applies an event) or, for a whole delivery of events,
//! [`act_all_in`], which takes the same steps for many changes in few statements. New aggregates arriving together
//! (intake's registrations) are written many to a transaction by [`create_all`], through the same
//! keeper's [`Batch`] methods (also inspection's own audits, one at a time). Settlement's resolutions, which change no aggregate of its own, send
//! their events through [`send`].
//!
//! Invariant: an aggregate, its history, its events and whatever else its effects write are
//! committed together or not at all; a request id changes an aggregate at most once.

use std::future::Future;

use chrono::{DateTime, Utc};
use kefu_proto::events::v1::event::Payload;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, TransactionTrait};

use crate::{
    caller::Caller,
    config::ServiceName,
    error::{Failure, is_unique_violation},
    history::{self, Step},
    outbox,
    server::ServiceContext,
    time::to_micros,
    trace::TraceContext,
};

/// What a command did: the steps for the aggregate's history, in order, and its effects.
#[derive(Debug)]
pub struct Applied<E> {
    pub steps: Vec<Step>,
    pub effects: E,
}

/// An event for another service, as an effect names it.
pub type Message = (ServiceName, Payload);

/// An aggregate as read, with the version it was read at (`None`: not yet saved).
pub type Loaded<K> = (<K as Keeper>::Aggregate, Option<<K as Keeper>::Version>);

/// How a service keeps one kind of aggregate. The aggregate's rules stay in its own pure `apply`;
/// a keeper only connects them to the tables.
pub trait Keeper: Sync {
    /// The aggregate: `Claim`, `Case`, `Waybill`, `Complaint`.
    type Aggregate: Clone + Send + Sync;
    /// How the table versions it (the column compared on save).
    type Version: Copy + Send + Sync;
    type Command: Send;
    /// What a command implies besides the aggregate and its history.
    type Effects: Send;
    /// The service's error: its refusals, and the kit's [`Failure`]s.
    type Error: From<Failure> + Send;

    /// Reads aggregate `key` in `tx`, with its version; `None` for the version of one not yet saved
    /// (saving inserts it). A keeper whose aggregates must exist answers `NOT_FOUND` here.
    fn load(
        &self,
        tx: &DatabaseTransaction,
        key: &str,
    ) -> impl Future<Output = Result<Loaded<Self>, Self::Error>> + Send;

    /// Completes `command` with what only the database knows (an earlier case, a recurrence)
    /// before the pure rule runs. Most commands need nothing.
    fn prepare(
        &self,
        _tx: &DatabaseTransaction,
        _aggregate: &Self::Aggregate,
        command: Self::Command,
        _now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Self::Command, Self::Error>> + Send {
        async move { Ok(command) }
    }

    /// The rule: changes `aggregate` by `command`, or refuses. No I/O.
    fn apply(
        &self,
        aggregate: &mut Self::Aggregate,
        command: Self::Command,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Applied<Self::Effects>, Self::Error>;

    /// Writes `aggregate` over `version` (inserts it when `None`); false when the version moved.
    /// `before` is the aggregate as it was read, so that a keeper may write only what changed.
    fn save(
        &self,
        tx: &DatabaseTransaction,
        before: &Self::Aggregate,
        aggregate: &Self::Aggregate,
        version: Option<Self::Version>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, DbErr>> + Send;

    /// Writes what `effects` imply beside the aggregate, in `tx`, and returns the events to send.
    fn record(
        &self,
        tx: &DatabaseTransaction,
        change: Change<'_, Self::Aggregate>,
        effects: Self::Effects,
    ) -> impl Future<Output = Result<Vec<Message>, Self::Error>> + Send;

    /// Saves many changed aggregates (distinct, each read at `version`), as [`Keeper::save`] saves
    /// one: for [`act_all_in`]. False when any version moved (the caller rolls back). A keeper
    /// may save them in one statement; by default, one by one.
    fn save_many(
        &self,
        tx: &DatabaseTransaction,
        saved: &[Saved<'_, Self>],
    ) -> impl Future<Output = Result<bool, DbErr>> + Send
    where
        Self: Sized,
    {
        async move {
            for item in saved {
                if !self.save(tx, item.before, item.after, item.version, item.now).await? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    }

    /// Reads aggregates `keys` (distinct) in `tx`, in their order, as [`Keeper::load`] reads one:
    /// for [`act_all_in`]. A keeper may read them in one statement; by default, one by one.
    fn load_many(
        &self,
        tx: &DatabaseTransaction,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Loaded<Self>>, Self::Error>> + Send {
        async move {
            let mut loaded = Vec::with_capacity(keys.len());
            for key in keys {
                loaded.push(self.load(tx, key).await?);
            }
            Ok(loaded)
        }
    }

    /// Writes what many changes' effects imply, as [`Keeper::record`] writes one's, and returns
    /// each one's events, in order: for [`act_all_in`]. A keeper may write them in few statements;
    /// by default, one by one.
    fn record_many(
        &self,
        tx: &DatabaseTransaction,
        changes: Vec<(Change<'_, Self::Aggregate>, Self::Effects)>,
    ) -> impl Future<Output = Result<Vec<Vec<Message>>, Self::Error>> + Send {
        async move {
            let mut messages = Vec::with_capacity(changes.len());
            for (change, effects) in changes {
                messages.push(self.record(tx, change, effects).await?);
            }
            Ok(messages)
        }
    }

    /// The aggregate in messages: "the claim", "complaints/20261122-7K3M9Q".
    fn describe(&self, key: &str) -> String {
        key.to_owned()
    }
}

/// A keeper whose new aggregates are created many to a transaction ([`create_all`]): intake's
/// registrations, group-committed.
pub trait Batch: Keeper {
    /// Inserts new aggregates in `tx` ([`create_all`]); a keeper may write them in one statement.
    fn insert_all(
        &self,
        tx: &DatabaseTransaction,
        created: &[Created<'_, Self>],
    ) -> impl Future<Output = Result<(), DbErr>> + Send
    where
        Self: Sized;

    /// Records what new aggregates' effects imply ([`create_all`]), in few statements, and returns
    /// each one's events, in order.
    fn record_all(
        &self,
        tx: &DatabaseTransaction,
        created: &[Created<'_, Self>],
    ) -> impl Future<Output = Result<Vec<Vec<Message>>, Self::Error>> + Send
    where
        Self: Sized;
}

/// A change being written: the aggregate as it was read and as it is now, and what made it.
pub struct Change<'a, A> {
    pub key: &'a str,
    pub before: &'a A,
    pub after: &'a A,
    pub steps: &'a [Step],
    pub caller: &'a Caller,
    pub now: DateTime<Utc>,
}

/// Who asks for a change, under which request id, in which trace.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub caller: &'a Caller,
    pub trace: &'a TraceContext,
    /// The idempotency key; `None` when the caller gave none (a system's own action).
    pub request_id: Option<&'a str>,
}

/// What [`act`] did.
#[derive(Debug)]
pub enum Acted<A> {
    /// The aggregate as it now is, committed.
    Changed(A),
    /// The request id had already changed the aggregate: nothing was written this time.
    Repeated,
}

/// Applies `command` to aggregate `key` through `keeper`, once per request id: the whole write
/// path in one transaction (see the module's doc).
pub async fn act<K: Keeper>(
    keeper: &K,
    context: &ServiceContext,
    key: &str,
    request: Request<'_>,
    command: K::Command,
) -> Result<Acted<K::Aggregate>, K::Error> {
    let db = &context.db;
    if let Some(request_id) = request.request_id
        && history::has_request(db, key, request_id).await.map_err(Failure::db("reading a history"))?
    {
        return Ok(Acted::Repeated);
    }
    let now = to_micros(context.clock.now());
    let span = crate::trace::transaction_span(db, "kefu.write", None);
    let transaction = async {
        let tx = db.begin().await.map_err(Failure::db("starting a change"))?;
        let (acted, sent) = act_in(keeper, &tx, context.name, key, request, command, now).await?;
        if let Acted::Changed(_) = &acted {
            tx.commit().await.map_err(Failure::db("committing a change"))?;
            if sent {
                context.relay.wake();
            }
        }
        Ok(acted)
    };
    tracing::Instrument::instrument(transaction, span).await
}

/// Steps 2–7 of the write path in `tx`, which the caller commits: for a change made inside a
/// transaction already open (an inbox applying an event with the event's own time `now`). Also
/// whether events were sent (the relay is to be woken after the commit).
pub async fn act_in<K: Keeper>(
    keeper: &K,
    tx: &DatabaseTransaction,
    source: ServiceName,
    key: &str,
    request: Request<'_>,
    command: K::Command,
    now: DateTime<Utc>,
) -> Result<(Acted<K::Aggregate>, bool), K::Error> {
    let (mut aggregate, version) = keeper.load(tx, key).await?;
    let (before, applied) = apply(keeper, tx, &mut aggregate, command, request.caller, now).await?;
    if !keeper.save(tx, &before, &aggregate, version, now).await.map_err(Failure::db("saving a change"))? {
        return Err(Failure::Conflict { what: keeper.describe(key) }.into());
    }
    match history::record(tx, key, request.request_id, &applied.steps).await {
        Ok(()) => {}
        // The same request, retried while the first was being written: the first one counts.
        Err(error) if is_unique_violation(&error) => return Ok((Acted::Repeated, false)),
        Err(error) => return Err(Failure::db("recording a history")(error).into()),
    }
    let change = Change { key, before: &before, after: &aggregate, steps: &applied.steps, caller: request.caller, now };
    let messages = keeper.record(tx, change, applied.effects).await?;
    let sent = send(tx, source, &messages, request, now).await?;
    Ok((Acted::Changed(aggregate), sent))
}

/// Step 3 of the write path: `command`, completed with what only the database knows, applied to
/// `aggregate` by the keeper's pure rule. The aggregate as it was, and what the command did.
async fn apply<K: Keeper>(
    keeper: &K,
    tx: &DatabaseTransaction,
    aggregate: &mut K::Aggregate,
    command: K::Command,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<(K::Aggregate, Applied<K::Effects>), K::Error> {
    let command = keeper.prepare(tx, aggregate, command, now).await?;
    let before = aggregate.clone();
    let applied = keeper.apply(aggregate, command, caller, now)?;
    Ok((before, applied))
}

/// A change that an event asks for, applied by [`act_all_in`]. It has no request id: the inbox
/// keeps the event's id, which makes it happen once.
pub struct Asked<'a, K: Keeper> {
    pub key: &'a str,
    pub caller: &'a Caller,
    pub trace: &'a TraceContext,
    pub command: K::Command,
    /// When the event was made.
    pub now: DateTime<Utc>,
}

/// Steps 2–7 of the write path for many changes in `tx`, which the caller commits: an inbox
/// applying a delivery of events, in few statements rather than several per event. The aggregates
/// are read together ([`Keeper::load_many`]) and changed in order, then saved together
/// ([`Keeper::save_many`]; so a keeper's `prepare` sees the others as they were read), then every
/// step is recorded, every effect written ([`Keeper::record_many`]) and every event queued, each in
/// one statement. A key that comes again starts a new round, so that its second change finds the
/// first's. Any refusal fails the whole, which the caller rolls back (the inbox then applies the
/// events one at a time). Whether events were sent.
pub async fn act_all_in<K: Keeper>(
    keeper: &K,
    tx: &DatabaseTransaction,
    source: ServiceName,
    asked: Vec<Asked<'_, K>>,
) -> Result<bool, K::Error> {
    let mut sent = false;
    let mut asked = asked.into_iter().peekable();
    while asked.peek().is_some() {
        let mut keys = Vec::new();
        let mut round = Vec::new();
        while let Some(next) = asked.next_if(|next| !keys.contains(&next.key)) {
            keys.push(next.key);
            round.push(next);
        }
        let loaded = keeper.load_many(tx, &keys).await?;
        let mut changed = Vec::with_capacity(round.len());
        let mut effects = Vec::with_capacity(round.len());
        for (asked, (mut aggregate, version)) in round.into_iter().zip(loaded) {
            let (before, applied) = apply(keeper, tx, &mut aggregate, asked.command, asked.caller, asked.now).await?;
            let request = Request { caller: asked.caller, trace: asked.trace, request_id: None };
            let item: Changed<K> =
                Changed { key: asked.key, request, now: asked.now, before, after: aggregate, version };
            changed.push((item, applied.steps));
            effects.push(applied.effects);
        }
        let saved: Vec<Saved<'_, K>> = changed
            .iter()
            .map(|(item, _)| Saved { before: &item.before, after: &item.after, version: item.version, now: item.now })
            .collect();
        if !keeper.save_many(tx, &saved).await.map_err(Failure::db("saving changes"))? {
            let what = keys.iter().map(|key| keeper.describe(key)).collect::<Vec<_>>().join(", ");
            return Err(Failure::Conflict { what }.into());
        }
        let steps: Vec<(&str, &Step)> =
            changed.iter().flat_map(|(item, steps)| steps.iter().map(move |step| (item.key, step))).collect();
        history::record_many(tx, &steps).await.map_err(Failure::db("recording a history"))?;
        let changes = changed
            .iter()
            .zip(effects)
            .map(|((item, steps), effects)| {
                let change = Change {
                    key: item.key,
                    before: &item.before,
                    after: &item.after,
                    steps,
                    caller: item.request.caller,
                    now: item.now,
                };
                (change, effects)
            })
            .collect();
        let messages = keeper.record_many(tx, changes).await?;
        let outgoing =
            changed.iter().zip(&messages).map(|((item, _), messages)| (item.request, item.now, &messages[..]));
        sent |= queue(tx, source, outgoing).await?;
    }
    Ok(sent)
}

/// One change of [`act_all_in`], made, not yet saved.
struct Changed<'a, K: Keeper> {
    key: &'a str,
    request: Request<'a>,
    now: DateTime<Utc>,
    before: K::Aggregate,
    after: K::Aggregate,
    version: Option<K::Version>,
}

/// An aggregate to save over the version it was read at ([`Keeper::save_many`]).
pub struct Saved<'a, K: Keeper> {
    pub before: &'a K::Aggregate,
    pub after: &'a K::Aggregate,
    pub version: Option<K::Version>,
    pub now: DateTime<Utc>,
}

/// A new aggregate, its command already applied, to be written with others.
pub struct Created<'a, K: Keeper> {
    pub key: &'a str,
    pub aggregate: &'a K::Aggregate,
    pub applied: &'a Applied<K::Effects>,
    pub request: Request<'a>,
    /// When it was made.
    pub now: DateTime<Utc>,
}

/// Writes new aggregates together in `tx`, which the caller commits — a batch is one transaction —
/// each as [`act_in`] writes a change: inserted ([`Batch::insert_all`]), its steps recorded (not
/// under its request id, which a new aggregate keeps itself), its effects recorded
/// ([`Batch::record_all`]) and its events sent. Whether events were sent. A unique violation
/// (a key or request id taken) fails the whole batch: the caller retries its items one by one.
pub async fn create_all<K: Batch>(
    keeper: &K,
    tx: &DatabaseTransaction,
    source: ServiceName,
    created: &[Created<'_, K>],
) -> Result<bool, K::Error> {
    keeper.insert_all(tx, created).await.map_err(Failure::db("saving new records"))?;
    let steps: Vec<(&str, &Step)> =
        created.iter().flat_map(|item| item.applied.steps.iter().map(|step| (item.key, step))).collect();
    history::record_many(tx, &steps).await.map_err(Failure::db("recording a history"))?;
    let messages = keeper.record_all(tx, created).await?;
    let outgoing = created.iter().zip(&messages).map(|(item, messages)| (item.request, item.now, &messages[..]));
    Ok(queue(tx, source, outgoing).await?)
}

/// Writes `messages` to the outbox as events from `source`, in `tx`; whether there were any (the
/// relay is to be woken once `tx` commits).
pub async fn send(
    tx: &impl ConnectionTrait,
    source: ServiceName,
    messages: &[Message],
    request: Request<'_>,
    now: DateTime<Utc>,
) -> Result<bool, Failure> {
    queue(tx, source, [(request, now, messages)]).await
}

/// Writes each change's messages to the outbox, as events from `source` made at its time, for its
/// caller, in its trace: in one statement. Whether there were any.
async fn queue<'a>(
    tx: &impl ConnectionTrait,
    source: ServiceName,
    changes: impl IntoIterator<Item = (Request<'a>, DateTime<Utc>, &'a [Message])>,
) -> Result<bool, Failure> {
    let events: Vec<_> = changes
        .into_iter()
        .flat_map(|(request, now, messages)| {
            messages.iter().map(move |(destination, payload)| {
                let event = outbox::new_event(source, now, request.trace, request.caller, payload.clone());
                (*destination, event, now)
            })
        })
        .collect();
    if events.is_empty() {
        return Ok(false);
    }
    outbox::enqueue_many(tx, events.iter().map(|(destination, event, now)| (*destination, event, *now)))
        .await
        .map_err(Failure::db("queueing events"))?;
    Ok(true)
}
