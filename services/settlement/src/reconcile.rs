//! Reconciliation (对账): the checks that say the ledger is whole.
//!
//! - every event received has exactly one effect: each origin it asked for is in the ledger, with
//!   the money it asked for (origins are unique, so there is never a second);
//! - every entry made for an event names an event that was received;
//! - every entry balances, and all balances together sum to zero;
//! - every waybill's entries add up, account by account, to what its state says the ledger holds
//!   ([`crate::waybill::Waybill::footprint`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use sea_orm::{ConnectionTrait, DbErr};

use crate::{ledger, store, waybill::yuan};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub events_received: i64,
    pub entries: i64,
    pub waybills: i64,
    /// Empty when everything holds.
    pub problems: Vec<String>,
}

pub async fn reconcile(db: &impl ConnectionTrait) -> Result<Reconciliation, DbErr> {
    let mut problems = Vec::new();
    let receipts = store::receipts(db).await?;
    let entries = ledger::moved_between(db, None, None).await?;
    let by_origin: HashMap<&str, (i64, i64)> =
        entries.iter().map(|(entry, moved)| (entry.origin.as_str(), (entry.seq, *moved))).collect();
    let received: HashSet<&str> = receipts.iter().map(|receipt| receipt.event_id.as_str()).collect();

    for receipt in &receipts {
        match by_origin.get(receipt.origin.as_str()) {
            None => problems.push(format!(
                "event {} asked for {} under {}, which is not in the ledger",
                receipt.event_id,
                yuan(receipt.amount_fen),
                receipt.origin
            )),
            Some((seq, moved)) if *moved != receipt.amount_fen => problems.push(format!(
                "event {} asked for {} under {}, but ledgerEntries/{seq} moved {}",
                receipt.event_id,
                yuan(receipt.amount_fen),
                receipt.origin,
                yuan(*moved)
            )),
            Some(_) => {}
        }
    }
    for (entry, _) in &entries {
        if !entry.event_id.is_empty() && !received.contains(entry.event_id.as_str()) {
            problems.push(format!(
                "ledgerEntries/{} ({}) names event {}, which has no receipt",
                entry.seq, entry.origin, entry.event_id
            ));
        }
    }
    for seq in ledger::unbalanced(db).await? {
        problems.push(format!("ledgerEntries/{seq} does not balance: its postings do not sum to 0"));
    }
    let total: i64 = ledger::balances(db, None, "").await?.iter().map(|(_, balance)| balance).sum();
    if total != 0 {
        problems.push(format!("the accounts sum to {}, not 0", yuan(total)));
    }

    let mut held: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (origin, account, fen) in ledger::postings_under(db, "waybills/").await? {
        let number = origin.trim_start_matches("waybills/").split('/').next().unwrap_or_default().to_owned();
        *held.entry(number).or_default().entry(account).or_default() += fen;
    }
    let waybills = store::all(db).await?;
    for waybill in &waybills {
        let mut holds = held.remove(&waybill.number).unwrap_or_default();
        holds.retain(|_, fen| *fen != 0);
        let says = waybill.footprint();
        if holds != says {
            problems.push(format!("{}: the ledger holds {holds:?}, its state says {says:?}", waybill.name()));
        }
    }
    for number in held.keys() {
        problems.push(format!("the ledger has entries for waybills/{number}, which settlement has no record of"));
    }

    Ok(Reconciliation {
        events_received: received.len() as i64,
        entries: entries.len() as i64,
        waybills: waybills.len() as i64,
        problems,
    })
}
