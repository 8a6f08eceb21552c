//! How intake keeps its complaints on the kit's one write path (`kefu_kit::write`): a complaint is
//! read by its case number, changed by [`Complaint::apply`], saved over the version it was read
//! at, and its effects written beside it in the same transaction — replies, visits, the steps on
//! a duplicated complaint, webhook deliveries for its branch, and the story archives files when it
//! closes. New complaints are inserted many to a transaction ([`write::Batch`]): the registration
//! group commit in `writer.rs`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use kefu_kit::{
    caller::Caller,
    config::ServiceName,
    error::Failure,
    history,
    server::ServiceContext,
    trace::TraceContext,
    write::{self, Acted, Applied, Message},
};
use kefu_proto::events::v1::event::Payload;
use sea_orm::{ActiveValue::NotSet, DatabaseTransaction, DbErr, Iterable, ModelTrait};

use crate::{
    closing,
    complaint::{Command, Complaint, Effects, Now},
    error::{Error, db},
    replies, store, visits, webhooks,
};

/// Intake's keeper of complaints: it holds the company's time zone and what wakes the webhook
/// sender, so every part that writes complaints (the API, the inbox, the chaser) has its own clone.
#[derive(Clone)]
pub struct ComplaintKeeper {
    pub time_zone: Tz,
    pub webhooks: webhooks::Wake,
}

impl write::Keeper for ComplaintKeeper {
    type Aggregate = Complaint;
    type Version = i64;
    type Command = Command;
    type Effects = Effects;
    type Error = Error;

    async fn load(&self, tx: &DatabaseTransaction, key: &str) -> Result<(Complaint, Option<i64>), Error> {
        let complaint = store::by_case_number(tx, key)
            .await
            .map_err(db("reading a complaint"))?
            .ok_or_else(|| Error::no_complaint(&kefu_kit::names::complaint_name(key)))?;
        let version = complaint.version;
        Ok((complaint, Some(version)))
    }

    fn apply(
        &self,
        complaint: &mut Complaint,
        command: Command,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Applied<Effects>, Error> {
        complaint.apply(command, &Now { time: now, time_zone: self.time_zone, caller })
    }

    async fn save(
        &self,
        tx: &DatabaseTransaction,
        before: &Complaint,
        complaint: &Complaint,
        version: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let saved = write::Saved { before, after: complaint, version, now };
        write::Keeper::save_many(self, tx, std::slice::from_ref(&saved)).await
    }

    /// New complaints inserted; changed ones written over the versions they were read at, one
    /// statement for all that changed the same columns (an owner's acceptance: its state, times,
    /// reference and deadline), and only those columns, not all fifty: less to encode, send and
    /// parse for every event applied.
    async fn save_many(&self, tx: &DatabaseTransaction, saved: &[write::Saved<'_, Self>]) -> Result<bool, DbErr> {
        // Complaints that changed the same columns, each with the version it was read at.
        type Alike<'a> = (Vec<store::Column>, Vec<(&'a Complaint, i64)>);
        let mut alike: Vec<Alike> = Vec::new();
        for item in saved {
            let Some(version) = item.version else {
                self.insert(tx, &[item.after]).await?;
                continue;
            };
            let columns: Vec<store::Column> = store::Column::iter()
                .filter(|column| !matches!(column, store::Column::Seq | store::Column::Version))
                .filter(|column| item.after.get(*column) != item.before.get(*column))
                .collect();
            let same_columns = |other: &[store::Column]| {
                other.len() == columns.len()
                    && other.iter().zip(&columns).all(|(a, b)| std::mem::discriminant(a) == std::mem::discriminant(b))
            };
            match alike.iter_mut().find(|(other, _)| same_columns(other)) {
                Some((_, rows)) => rows.push((item.after, version)),
                None => alike.push((columns, vec![(item.after, version)])),
            }
        }
        for (columns, rows) in &alike {
            if !store::save_changed(tx, columns, rows).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn record(
        &self,
        tx: &DatabaseTransaction,
        change: write::Change<'_, Complaint>,
        effects: Effects,
    ) -> Result<Vec<Message>, Error> {
        Ok(self.record_many(tx, vec![(change, effects)]).await?.pop().unwrap_or_default())
    }

    /// One statement for each kind of row every change writes (the steps on other cases, replies,
    /// webhook deliveries); visits, reply attempts and the closing story, which come one at a time
    /// in a staff member's call, each on its own.
    async fn record_many(
        &self,
        tx: &DatabaseTransaction,
        changes: Vec<(write::Change<'_, Complaint>, Effects)>,
    ) -> Result<Vec<Vec<Message>>, Error> {
        let other_steps: Vec<(&str, &history::Step)> = changes
            .iter()
            .flat_map(|(_, effects)| effects.other_steps.iter().map(|(case_number, step)| (case_number.as_str(), step)))
            .collect();
        history::record_many(tx, &other_steps).await.map_err(db("recording the case's history"))?;
        let replies: Vec<_> = changes
            .iter()
            .flat_map(|(change, effects)| {
                effects.replies.iter().map(move |reply| (change.after.case_number.as_str(), reply, change.now))
            })
            .collect();
        replies::insert(tx, &replies).await.map_err(db("recording replies"))?;
        let signals: Vec<_> = changes
            .iter()
            .flat_map(|(change, _)| {
                webhooks::signals(change.before, change.after, change.steps)
                    .into_iter()
                    .map(move |signal| (change.after, signal, change.now))
            })
            .collect();
        webhooks::enqueue(tx, &signals, self.time_zone, &self.webhooks)
            .await
            .map_err(db("queueing webhook deliveries"))?;
        let mut messages = Vec::with_capacity(changes.len());
        for (change, effects) in changes {
            let (complaint, now) = (change.after, change.now);
            visits::insert(tx, &complaint.case_number, &effects.visits, now).await.map_err(db("planning a visit"))?;
            if let Some(recorded) = &effects.recorded_visit
                && !visits::update(tx, recorded, visits::PLANNED).await.map_err(db("recording a visit"))?
            {
                let what = format!("{}/visits/{}", complaint.name(), recorded.seq);
                return Err(Failure::Conflict { what }.into());
            }
            if let Some((reply, reached, note)) = &effects.reply_attempt {
                replies::record_attempt(tx, reply, *reached, note, now, self.time_zone)
                    .await
                    .map_err(db("recording a reply attempt"))?;
            }
            let mut events = effects.events;
            if effects.story_to_archives {
                // The story archives files: everything recorded, this change's steps included.
                let recorded = history::story(tx, change.key, ServiceName::Intake)
                    .await
                    .map_err(db("reading the case's history"))?;
                let (steps, payments) = closing::merge(recorded, complaint);
                events.push((ServiceName::Archives, Payload::CaseClosed(closing::story(complaint, steps, payments))));
            }
            messages.push(events);
        }
        Ok(messages)
    }

    /// In one statement; a case number not found is `NOT_FOUND`, as [`write::Keeper::load`] says.
    async fn load_many(&self, tx: &DatabaseTransaction, keys: &[&str]) -> Result<Vec<(Complaint, Option<i64>)>, Error> {
        let mut found = store::by_case_numbers(tx, keys).await.map_err(db("reading complaints"))?;
        keys.iter()
            .map(|key| {
                let at = found
                    .iter()
                    .position(|complaint| complaint.case_number == *key)
                    .ok_or_else(|| Error::no_complaint(&kefu_kit::names::complaint_name(key)))?;
                let complaint = found.swap_remove(at);
                let version = complaint.version;
                Ok((complaint, Some(version)))
            })
            .collect()
    }

    fn describe(&self, key: &str) -> String {
        kefu_kit::names::complaint_name(key)
    }
}

impl write::Batch for ComplaintKeeper {
    async fn insert_all(&self, tx: &DatabaseTransaction, created: &[write::Created<'_, Self>]) -> Result<(), DbErr> {
        let complaints: Vec<&Complaint> = created.iter().map(|item| item.aggregate).collect();
        self.insert(tx, &complaints).await
    }

    async fn record_all(
        &self,
        tx: &DatabaseTransaction,
        created: &[write::Created<'_, Self>],
    ) -> Result<Vec<Vec<Message>>, Error> {
        let other_steps: Vec<(&str, &history::Step)> = created
            .iter()
            .flat_map(|item| item.applied.effects.other_steps.iter().map(|(key, step)| (key.as_str(), step)))
            .collect();
        history::record_many(tx, &other_steps).await.map_err(db("recording the case's history"))?;
        let replies: Vec<_> = created
            .iter()
            .flat_map(|item| item.applied.effects.replies.iter().map(move |reply| (item.key, reply, item.now)))
            .collect();
        replies::insert(tx, &replies).await.map_err(db("recording replies"))?;
        let registered: Vec<_> =
            created.iter().map(|item| (item.aggregate, webhooks::CaseEvent::Registered, item.now)).collect();
        webhooks::enqueue(tx, &registered, self.time_zone, &self.webhooks)
            .await
            .map_err(db("queueing webhook deliveries"))?;
        Ok(created.iter().map(|item| item.applied.effects.events.clone()).collect())
    }
}

impl ComplaintKeeper {
    async fn insert(&self, tx: &DatabaseTransaction, complaints: &[&Complaint]) -> Result<(), DbErr> {
        let rows = complaints.iter().map(|complaint| {
            let mut row: store::ActiveModel = (*complaint).clone().into();
            row.seq = NotSet;
            row
        });
        kefu_kit::statements::insert_many(tx, rows).await?;
        Ok(())
    }

    /// Applies `command` to complaint `case_number` on the write path, once per `request_id`;
    /// the complaint as it then is (as it was, for a retry).
    pub async fn act(
        &self,
        context: &ServiceContext,
        case_number: &str,
        request_id: Option<&str>,
        caller: &Caller,
        trace: &TraceContext,
        command: Command,
    ) -> Result<Complaint, Error> {
        let request = write::Request { caller, trace, request_id };
        match write::act(self, context, case_number, request, command).await? {
            Acted::Changed(complaint) => Ok(complaint),
            Acted::Repeated => store::by_case_number(&context.db, case_number)
                .await
                .map_err(db("reading a complaint"))?
                .ok_or_else(|| Error::no_complaint(&kefu_kit::names::complaint_name(case_number))),
        }
    }

    /// Chases every case due at the clock's now (found by the `chase_at` index, at most 500 a
    /// round); their names.
    pub async fn chase_overdue(&self, context: &ServiceContext) -> Result<Vec<String>, Error> {
        let now = kefu_kit::time::to_micros(context.clock.now());
        let due = store::due_for_chase(&context.db, now, 500).await.map_err(db("finding overdue cases"))?;
        let caller = Caller { user: "intake".into(), department: "intake".into(), ..Caller::default() };
        let trace = TraceContext::new_root();
        let mut chased = Vec::new();
        for complaint in due {
            match self.act(context, &complaint.case_number, None, &caller, &trace, Command::Chase).await {
                Ok(complaint) => {
                    tracing::warn!(case_number = %complaint.case_number, owner = %complaint.owner, "overdue case chased");
                    chased.push(complaint.name());
                }
                // No longer overdue, or changed at the same moment: the next round sees it again.
                Err(Error::Precondition(_) | Error::Failure(Failure::Conflict { .. })) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(chased)
    }
}
