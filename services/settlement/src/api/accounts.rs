//! The ledger's room: entries and their postings, reversals asked for and made (four eyes), the
//! trial balance, account statements, the monthly summary, and `Reconcile`.

use std::collections::BTreeMap;

use kefu_kit::{
    caller::Caller,
    error::{FieldViolations, collect_violations},
    report::{Month, csv_field},
    time::{to_micros, to_timestamp},
};
use kefu_proto::settlement::v1 as pb;
use sea_orm::{EntityTrait as _, TransactionTrait};
use tonic::{Request, Response, Status};

use super::{Reply, SettlementApi, time};
use crate::{
    error::{Error, db as db_error},
    ledger, reconcile, store,
};

fn entry_to_proto(entry: ledger::entry::Model, postings: Vec<ledger::posting::Model>) -> pb::LedgerEntry {
    pb::LedgerEntry {
        name: format!("ledgerEntries/{}", entry.seq),
        origin: entry.origin,
        kind: entry.kind,
        memo: entry.memo,
        postings: postings
            .into_iter()
            .map(|posting| pb::Posting { account: posting.account, amount_fen: posting.amount_fen })
            .collect(),
        create_time: Some(to_timestamp(entry.create_time)),
        event_id: entry.event_id,
    }
}

fn trial_balance(accounts: Vec<(String, i64)>) -> pb::TrialBalance {
    let debit_total_fen = accounts.iter().map(|(_, fen)| *fen).filter(|fen| *fen > 0).sum();
    let credit_total_fen = accounts.iter().map(|(_, fen)| *fen).filter(|fen| *fen < 0).sum();
    let total_fen = accounts.iter().map(|(_, fen)| *fen).sum();
    pb::TrialBalance {
        accounts: accounts
            .into_iter()
            .map(|(account, balance_fen)| pb::AccountBalance { account, balance_fen })
            .collect(),
        total_fen,
        debit_total_fen,
        credit_total_fen,
    }
}

/// An account name as the ledger writes them: `{kind}:{id}`.
fn check_account(account: &str, field: &str) -> Result<(), Error> {
    let kinds = ["company", "customer", "shipper", "person", "department", "branch", "insurer"];
    match account.split_once(':') {
        Some((kind, id)) if kinds.contains(&kind) && !id.is_empty() && account.len() <= 160 => Ok(()),
        _ => Err(Error::Invalid(FieldViolations::of(
            field,
            "an account like branch:SH01, shipper:S1001, person:B042, company:fines_income",
        ))),
    }
}

/// The entry a reversal names and its reason, checked; every bad field at once.
fn reversal_fields<'a>(name: &str, reason: &'a str, request_id: &str) -> Result<(i64, &'a str), Status> {
    let mut violations = FieldViolations::new();
    let seq = name.strip_prefix("ledgerEntries/").and_then(|seq| seq.parse::<i64>().ok());
    if seq.is_none() {
        violations.add("name", "expected ledgerEntries/{id}");
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        violations.add("reason", "required: why the entry is corrected (at most 500 characters)");
    }
    let seq = collect_violations(violations, seq.ok_or_else(FieldViolations::new), request_id)
        .map_err(|violations| Status::from(Error::Invalid(violations)))?;
    Ok((seq, reason))
}

impl SettlementApi {
    /// The entry `seq` and its postings, if the ledger may reverse it: a claim's or a fine's entry,
    /// not a waybill's (a change request corrects those) and not itself a reversal.
    async fn reversible(
        &self,
        tx: &sea_orm::DatabaseTransaction,
        seq: i64,
        name: &str,
    ) -> Result<(ledger::entry::Model, Vec<ledger::posting::Model>), Status> {
        let (original, postings) = ledger::get(tx, seq)
            .await
            .map_err(db_error("reading an entry"))?
            .ok_or_else(|| Error::NotFound(format!("no ledger entry named {name}")))?;
        if original.origin.starts_with("waybills/") {
            return Err(Error::Precondition(format!(
                "{name} belongs to a waybill: correct the waybill with a change request, and the ledger follows"
            ))
            .into());
        }
        if original.kind == "reversal" {
            return Err(Error::Precondition(format!("{name} is itself a reversal and is not reversed")).into());
        }
        Ok((original, postings))
    }

    pub(super) async fn list_ledger_entries(
        &self,
        request: Request<pb::ListLedgerEntriesRequest>,
    ) -> Reply<pb::ListLedgerEntriesResponse> {
        let request = request.into_inner();
        if request.origin_prefix.len() > 160 {
            return Err(kefu_kit::error::invalid_field("origin_prefix", "at most 160 characters"));
        }
        let page_size = kefu_kit::paging::page_size(request.page_size)?;
        let after = kefu_kit::paging::decode_token(&request.page_token, &request.origin_prefix)?;
        let (entries, next) = ledger::list(&self.context.db, &request.origin_prefix, page_size, after)
            .await
            .map_err(|e| kefu_kit::error::from_db("listing the ledger", e))?;
        let entries = entries.into_iter().map(|(entry, postings)| entry_to_proto(entry, postings)).collect();
        let next_page_token =
            next.map(|seq| kefu_kit::paging::encode_token(seq, &request.origin_prefix)).unwrap_or_default();
        Ok(Response::new(pb::ListLedgerEntriesResponse { entries, next_page_token }))
    }

    pub(super) async fn request_reversal(
        &self,
        request: Request<pb::RequestReversalRequest>,
    ) -> Reply<pb::ReversalRequest> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        let (seq, reason) = reversal_fields(&request.name, &request.reason, "")?;
        let db = &self.context.db;
        let now = to_micros(self.context.clock.now());
        let tx = db.begin().await.map_err(db_error("asking for a reversal"))?;
        self.reversible(&tx, seq, &request.name).await?;
        if ledger::by_origin(&tx, &ledger::reversal_origin(seq)).await.map_err(db_error("reading an entry"))?.is_some()
        {
            return Err(Error::Precondition(format!("{} is already reversed", request.name)).into());
        }
        let row = ledger::reversal_request::Model {
            entry_seq: seq,
            requested_by: caller.user.clone(),
            reason: reason.to_owned(),
            request_time: now,
        };
        let active: ledger::reversal_request::ActiveModel = row.clone().into();
        ledger::reversal_request::Entity::insert(active)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(ledger::reversal_request::Column::EntrySeq)
                    .update_columns([
                        ledger::reversal_request::Column::RequestedBy,
                        ledger::reversal_request::Column::Reason,
                        ledger::reversal_request::Column::RequestTime,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&tx)
            .await
            .map_err(db_error("asking for a reversal"))?;
        tx.commit().await.map_err(db_error("asking for a reversal"))?;
        tracing::info!(entry = %request.name, by = %caller.user, "reversal asked for");
        Ok(Response::new(pb::ReversalRequest {
            entry: request.name,
            requested_by: row.requested_by,
            reason: row.reason,
            request_time: Some(to_timestamp(now)),
        }))
    }

    pub(super) async fn reverse_ledger_entry(
        &self,
        request: Request<pb::ReverseLedgerEntryRequest>,
    ) -> Reply<pb::LedgerEntry> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        let (seq, reason) = reversal_fields(&request.name, &request.reason, &request.request_id)?;
        if !caller.is_supervisor() {
            return Err(Error::NotSupervisor(
                "only a supervisor may reverse a ledger entry: the caller's roles do not include supervisor".into(),
            )
            .into());
        }
        let db = &self.context.db;
        let now = to_micros(self.context.clock.now());
        let origin = ledger::reversal_origin(seq);
        let tx = db.begin().await.map_err(db_error("reversing an entry"))?;
        let (original, postings) = self.reversible(&tx, seq, &request.name).await?;
        // Already reversed (a retry, or a second supervisor): the reversal there is the answer.
        if ledger::by_origin(&tx, &origin).await.map_err(db_error("reading an entry"))?.is_none() {
            let asked = ledger::reversal_request::Entity::find_by_id(seq)
                .one(&tx)
                .await
                .map_err(db_error("reading a reversal request"))?
                .ok_or_else(|| {
                    Error::Precondition(format!(
                        "no one has asked for {} to be reversed: someone asks with RequestReversal, and another supervisor reverses it",
                        request.name
                    ))
                })?;
            if asked.requested_by == caller.user {
                return Err(Error::NotSupervisor(format!(
                    "four eyes: {} asked for this reversal, so another supervisor decides it",
                    caller.user
                ))
                .into());
            }
            let reversal = ledger::reversal(&original, &postings, reason, &asked.requested_by, &caller.user);
            ledger::post(&tx, &reversal, "", now).await.map_err(db_error("reversing an entry"))?;
            ledger::reversal_request::Entity::delete_by_id(seq)
                .exec(&tx)
                .await
                .map_err(db_error("reversing an entry"))?;
            tracing::info!(entry = %request.name, origin = %original.origin, "entry reversed");
        }
        tx.commit().await.map_err(db_error("reversing an entry"))?;
        let (entry, postings) = ledger::by_origin(db, &origin)
            .await
            .map_err(db_error("reading an entry"))?
            .ok_or_else(|| Error::NotFound(format!("the reversal of {}", request.name)))?;
        Ok(Response::new(entry_to_proto(entry, postings)))
    }

    pub(super) async fn get_trial_balance(
        &self,
        request: Request<pb::GetTrialBalanceRequest>,
    ) -> Reply<pb::TrialBalance> {
        let request = request.into_inner();
        if request.account_prefix.len() > 160 {
            return Err(kefu_kit::error::invalid_field("account_prefix", "at most 160 characters"));
        }
        let as_of = time(request.as_of.as_ref(), "as_of")?;
        let accounts = ledger::balances(&self.context.db, as_of, &request.account_prefix)
            .await
            .map_err(db_error("computing balances"))?;
        Ok(Response::new(trial_balance(accounts)))
    }

    pub(super) async fn get_account_statement(
        &self,
        request: Request<pb::GetAccountStatementRequest>,
    ) -> Reply<pb::AccountStatement> {
        let request = request.into_inner();
        let month = Month::parse(&request.month, self.context.time_zone);
        let account_ok = check_account(&request.account, "account");
        let month = match (month, account_ok) {
            (Ok(month), Ok(())) => month,
            (month, account) => {
                let mut violations = month.err().unwrap_or_default();
                if let Err(Error::Invalid(more)) = account {
                    violations.extend(more);
                }
                return Err(violations.into_status());
            }
        };
        let db = &self.context.db;
        let opening: i64 = ledger::balances(db, Some(month.start), &request.account)
            .await
            .map_err(db_error("computing balances"))?
            .into_iter()
            .filter(|(account, _)| *account == request.account)
            .map(|(_, fen)| fen)
            .sum();
        let postings = ledger::account_postings(db, &request.account, month.start, month.end)
            .await
            .map_err(db_error("reading the account"))?;
        let mut balance = opening;
        let mut csv = String::from("entry,time,origin,kind,memo,amount_fen,balance_fen\n");
        csv.push_str(&format!(",,,opening,,,{opening}\n"));
        let mut lines = Vec::with_capacity(postings.len());
        for (entry, amount_fen) in postings {
            balance += amount_fen;
            let local = entry.create_time.with_timezone(&self.context.time_zone).format("%Y-%m-%d %H:%M:%S");
            csv.push_str(&format!(
                "ledgerEntries/{},{local},{},{},{},{amount_fen},{balance}\n",
                entry.seq,
                csv_field(&entry.origin),
                csv_field(&entry.kind),
                csv_field(&entry.memo)
            ));
            lines.push(pb::StatementLine {
                entry: format!("ledgerEntries/{}", entry.seq),
                origin: entry.origin,
                kind: entry.kind,
                memo: entry.memo,
                time: Some(to_timestamp(entry.create_time)),
                amount_fen,
                balance_fen: balance,
            });
        }
        csv.push_str(&format!(",,,closing,,,{balance}\n"));
        Ok(Response::new(pb::AccountStatement {
            account: request.account,
            month: month.label,
            opening_balance_fen: opening,
            lines,
            closing_balance_fen: balance,
            csv,
        }))
    }

    pub(super) async fn get_monthly_summary(
        &self,
        request: Request<pb::GetMonthlySummaryRequest>,
    ) -> Reply<pb::MonthlySummary> {
        let month = Month::parse(&request.get_ref().month, self.context.time_zone).map_err(Error::Invalid)?;
        let db = &self.context.db;
        let moved = ledger::moved_between(db, Some(month.start), Some(month.end))
            .await
            .map_err(db_error("building the summary"))?;
        let mut kinds: BTreeMap<String, (i32, i64)> = BTreeMap::new();
        for (entry, fen) in moved {
            let row = kinds.entry(entry.kind).or_default();
            row.0 += 1;
            row.1 += fen;
        }
        let mut cod_outstanding_fen = 0;
        let mut late_remittances = 0;
        for waybill in store::all(db).await.map_err(db_error("building the summary"))? {
            let (Some(due), true) = (waybill.cod.remit_due_time, waybill.cod_owed()) else { continue };
            let owed_since =
                waybill.cod.collect_time.unwrap_or(due - chrono::Duration::days(i64::from(waybill.cod_remit_days)));
            let open_at_end =
                owed_since < month.end && waybill.cod.remit_time.is_none_or(|remitted| remitted >= month.end);
            if open_at_end {
                cod_outstanding_fen += waybill.cod_amount_fen;
                if due < month.end {
                    late_remittances += 1;
                }
            }
        }
        let closing =
            trial_balance(ledger::balances(db, Some(month.end), "").await.map_err(db_error("computing balances"))?);
        let label = &month.label;
        let mut csv = String::from("month,section,name,entries,amount_fen\n");
        for (kind, (entries, fen)) in &kinds {
            csv.push_str(&format!("{label},movement,{},{entries},{fen}\n", csv_field(kind)));
        }
        csv.push_str(&format!("{label},cod,outstanding,,{cod_outstanding_fen}\n"));
        csv.push_str(&format!("{label},cod,late,{late_remittances},\n"));
        for balance in &closing.accounts {
            csv.push_str(&format!("{label},balance,{},,{}\n", csv_field(&balance.account), balance.balance_fen));
        }
        csv.push_str(&format!("{label},balance,total,,{}\n", closing.total_fen));
        Ok(Response::new(pb::MonthlySummary {
            month: month.label,
            rows: kinds
                .into_iter()
                .map(|(kind, (entries, amount_fen))| pb::SummaryRow { kind, entries, amount_fen })
                .collect(),
            cod_outstanding_fen,
            late_remittances,
            closing: Some(closing),
            csv,
        }))
    }

    pub(super) async fn reconcile(&self, _request: Request<pb::ReconcileRequest>) -> Reply<pb::Reconciliation> {
        let found = reconcile::reconcile(&self.context.db).await.map_err(db_error("reconciling"))?;
        if !found.problems.is_empty() {
            tracing::error!(problems = found.problems.len(), "reconciliation found problems");
        }
        Ok(Response::new(pb::Reconciliation {
            events_received: found.events_received,
            entries: found.entries,
            waybills: found.waybills,
            problems: found.problems,
        }))
    }
}
