//! A waybill's money at settlement (运单结算): the freight, the cash on delivery (代收货款) and
//! what becomes of them — collection, remittance to the shipper, change requests, seizure.
//!
//! Every rule of the handbook that moves a waybill's money is in [`Waybill::apply`]; what the
//! ledger must hold for a waybill in each state is [`Waybill::footprint`]. A change posts exactly
//! the difference between the footprint after and before, under an origin named for the step
//! (`waybills/{number}/cod_collection`, …), so the ledger and the waybill cannot drift apart and
//! nothing is posted twice. This module does no I/O.
//!
//! What the ledger holds for a waybill, by account (debits positive: owed to the company):
//!
//! - freight to collect (到付): the delivering branch owes it, `company:freight_income` earns it;
//!   billed monthly (月结): the shipper owes it; prepaid (现付): nothing is left to settle;
//! - COD: the delivering branch must collect it (`branch +`, `company:cod_pending −`); once
//!   collected the company owes it to the shipper (`company:cod_pending +`, `shipper −`); once
//!   remitted the branch's money has reached the shipper (`shipper +`, `branch −`);
//! - a seizure by the customer's fault, written off after six months: the branch no longer owes
//!   the freight or the COD; the freight is the company's loss (`company:seizure_write_offs`);
//! - a seizure the branch bears (its fault, a lost certificate, lost or released cargo): the COD is
//!   owed to the shipper as if collected, and the branch pays it (`001 §11 4.3, 4.4`).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use kefu_kit::{caller::Caller, error::FieldViolations, history::Step};
use serde::{Deserialize, Serialize};

pub const FREIGHT_INCOME: &str = "company:freight_income";
pub const COD_PENDING: &str = "company:cod_pending";
pub const SEIZURE_WRITE_OFFS: &str = "company:seizure_write_offs";

/// How long after collection the COD must reach the shipper, unless the waybill says otherwise.
/// The handbook sets no term; seven days is the company's usual agreement with shippers.
pub const DEFAULT_COD_REMIT_DAYS: u32 = 7;
/// The longest remittance term a waybill may carry.
pub const MAX_COD_REMIT_DAYS: u32 = 90;
/// Seized cargo's freight and COD are written off this many months after the seizure (`001 §11 4.5`).
pub const SEIZURE_WRITE_OFF_MONTHS: u32 = 6;
/// The largest amount a waybill may carry: ten million yuan.
pub const MAX_AMOUNT_FEN: i64 = 1_000_000_000;
/// Waybill numbers are short enough to name a history (`waybills/{number}`, 32 characters).
pub const MAX_NUMBER_LEN: usize = 22;
const MAX_TEXT: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// 现付: paid when shipped.
    Prepaid,
    /// 到付: the delivering branch collects it.
    Collect,
    /// 月结: the shipper is billed.
    Monthly,
}

impl PaymentMethod {
    pub fn parse(text: &str) -> Option<PaymentMethod> {
        match text {
            "prepaid" => Some(PaymentMethod::Prepaid),
            "collect" => Some(PaymentMethod::Collect),
            "monthly" => Some(PaymentMethod::Monthly),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Prepaid => "prepaid",
            PaymentMethod::Collect => "collect",
            PaymentMethod::Monthly => "monthly",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cod {
    pub collect_time: Option<DateTime<Utc>>,
    pub remit_due_time: Option<DateTime<Utc>>,
    pub remit_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seizure {
    pub authority: String,
    pub certificate_number: String,
    pub seize_time: DateTime<Utc>,
    pub by_branch_fault: bool,
    pub shipper_notify_time: Option<DateTime<Utc>>,
    pub notified_by: String,
    pub problem: Option<String>,
    /// Why the branch bears the loss, once it does.
    pub branch_bears_loss: Option<String>,
    pub write_off_from: DateTime<Utc>,
    pub write_off_time: Option<DateTime<Utc>>,
}

/// The fields a change request may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Shipper,
    CodAmountFen,
    FreightFen,
    PaymentMethod,
    Consignee,
    ConsigneePhone,
}

impl Field {
    pub const ALL: [Field; 6] = [
        Field::Shipper,
        Field::CodAmountFen,
        Field::FreightFen,
        Field::PaymentMethod,
        Field::Consignee,
        Field::ConsigneePhone,
    ];

    pub fn parse(text: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Shipper => "shipper",
            Field::CodAmountFen => "cod_amount_fen",
            Field::FreightFen => "freight_fen",
            Field::PaymentMethod => "payment_method",
            Field::Consignee => "consignee",
            Field::ConsigneePhone => "consignee_phone",
        }
    }

    /// Whether the customer service center handles this change on its own (`001 §8 4.9.1`):
    /// the consignee and their phone. Every other change is settlement's.
    pub fn is_service_centers(self) -> bool {
        matches!(self, Field::Consignee | Field::ConsigneePhone)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    Pending,
    Applied,
    Rejected,
}

impl ChangeState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Pending => "pending",
            ChangeState::Applied => "applied",
            ChangeState::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: Field,
    pub before: String,
    pub after: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    pub state: ChangeState,
    pub changes: Vec<FieldChange>,
    pub reason: String,
    pub requested_by: String,
    pub request_time: DateTime<Utc>,
    pub decided_by: String,
    pub decision_reason: String,
    pub decide_time: Option<DateTime<Utc>>,
}

/// Settlement's account of one waybill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waybill {
    pub number: String,
    pub shipper: String,
    pub branch: String,
    pub freight_fen: i64,
    pub payment_method: PaymentMethod,
    pub cod_amount_fen: i64,
    pub cod_remit_days: u32,
    pub consignee: String,
    pub consignee_phone: String,
    pub cod: Cod,
    pub seizure: Option<Seizure>,
    pub change_requests: Vec<ChangeRequest>,
    pub create_time: DateTime<Utc>,
}

/// What a waybill is opened with, as given.
#[derive(Debug, Clone, Default)]
pub struct WaybillFields<'a> {
    pub number: &'a str,
    pub shipper: &'a str,
    pub branch: &'a str,
    pub freight_fen: i64,
    pub payment_method: &'a str,
    pub cod_amount_fen: i64,
    pub cod_remit_days: i32,
    pub consignee: &'a str,
    pub consignee_phone: &'a str,
}

/// The facts of a seizure, as given.
#[derive(Debug, Clone)]
pub struct SeizureFacts {
    pub authority: String,
    pub certificate_number: String,
    pub seize_time: Option<DateTime<Utc>>,
    pub cause: String,
    pub shipper_notify_time: Option<DateTime<Utc>>,
    pub notified_by: String,
}

/// What may be done to a waybill.
#[derive(Debug, Clone)]
pub enum Command {
    CollectCod { time: Option<DateTime<Utc>> },
    RemitCod { time: Option<DateTime<Utc>> },
    RequestChange { changes: Vec<(Field, String)>, reason: String },
    ApproveChange { index: usize, reason: String },
    RejectChange { index: usize, reason: String },
    Seize(SeizureFacts),
    NotifyShipper { time: Option<DateTime<Utc>>, by: String },
    ReportProblem { problem: String },
    WriteOff { original_certificate: bool },
}

/// Why a command was refused; the waybill is unchanged.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `INVALID_ARGUMENT`, naming the fields.
    Invalid(FieldViolations),
    /// `FAILED_PRECONDITION`: the rule does not allow it now.
    Precondition(String),
    /// `PERMISSION_DENIED`: only a supervisor may.
    NotSupervisor(String),
}

/// The ledger movement a step makes: the footprint's difference is posted under
/// `waybills/{number}/{origin}` with this kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub kind: &'static str,
    pub origin: String,
}

/// What an applied command did.
#[derive(Debug)]
pub struct Applied {
    pub step: Step,
    pub movement: Option<Movement>,
}

/// Problems with seized cargo that make the branch bear the loss (`001 §11 4.3, 4.4`).
pub const SEIZURE_PROBLEMS: [(&str, &str); 3] = [
    ("certificate_lost", "the original seizure certificate was lost (001 §11 4.3)"),
    ("cargo_lost", "the seized cargo was lost or damaged (001 §11 4.4)"),
    ("cargo_released", "the seized cargo was released from the warehouse without authority (001 §11 4.4)"),
];

fn precondition<T>(message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::Precondition(message.into()))
}

fn invalid<T>(field: &str, description: &str) -> Result<T, Refusal> {
    let mut violations = FieldViolations::new();
    violations.add(field, description);
    Err(Refusal::Invalid(violations))
}

fn is_phone(text: &str) -> bool {
    text.len() <= 32 && text.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c))
}

/// Yuan with two decimals, for messages and memos.
pub use kefu_kit::money::yuan;

fn day(time: DateTime<Utc>, time_zone: Tz) -> String {
    time.with_timezone(&time_zone).format("%Y-%m-%d %H:%M").to_string()
}

/// The first moment seized cargo may be written off: six calendar months after the seizure, in
/// the company's time zone (31 August + 6 months is the last day of February).
pub fn write_off_from(seize_time: DateTime<Utc>, time_zone: Tz) -> DateTime<Utc> {
    kefu_kit::time::add_months(seize_time, SEIZURE_WRITE_OFF_MONTHS, time_zone)
}

impl Waybill {
    /// Opens a waybill's account, or every violation at once.
    pub fn new(fields: &WaybillFields<'_>, now: DateTime<Utc>) -> Result<Waybill, FieldViolations> {
        let mut violations = FieldViolations::new();
        if !kefu_kit::text::is_code(fields.number, MAX_NUMBER_LEN) {
            violations.add("waybill.name", "waybills/{number}: letters, digits, '-' or '_', at most 22");
        }
        if !kefu_kit::text::is_code(fields.shipper, 64) {
            violations.add("waybill.shipper", "required: the shipper's customer code (letters, digits, '-', '_')");
        }
        // A late remittance is filed as a complaint of this branch: the same rule as a complaint's.
        if !kefu_kit::text::is_branch(fields.branch) {
            violations.add(
                "waybill.branch",
                format!("required, the branch that delivers and collects: {}", kefu_kit::text::BRANCH_RULE),
            );
        }
        if !(0..=MAX_AMOUNT_FEN).contains(&fields.freight_fen) {
            violations.add("waybill.freight_fen", "from 0 to 10,000,000 yuan, in fen");
        }
        let payment_method = PaymentMethod::parse(fields.payment_method);
        if payment_method.is_none() {
            violations.add("waybill.payment_method", "prepaid, collect or monthly");
        }
        if !(0..=MAX_AMOUNT_FEN).contains(&fields.cod_amount_fen) {
            violations.add("waybill.cod_amount_fen", "from 0 (no COD) to 10,000,000 yuan, in fen");
        }
        let cod_remit_days = match u32::try_from(fields.cod_remit_days) {
            Ok(0) => DEFAULT_COD_REMIT_DAYS,
            Ok(days) if days <= MAX_COD_REMIT_DAYS => days,
            _ => {
                violations.add("waybill.cod_remit_days", "0 (the default, 7 days) to 90 days");
                DEFAULT_COD_REMIT_DAYS
            }
        };
        if fields.consignee.chars().count() > 64 {
            violations.add("waybill.consignee", "at most 64 characters");
        }
        if !is_phone(fields.consignee_phone) {
            violations.add("waybill.consignee_phone", "digits, spaces and + - ( ) only, at most 32");
        }
        let Some(payment_method) = payment_method.filter(|_| violations.is_empty()) else {
            return Err(violations);
        };
        Ok(Waybill {
            number: fields.number.to_owned(),
            shipper: fields.shipper.to_owned(),
            branch: fields.branch.to_owned(),
            freight_fen: fields.freight_fen,
            payment_method,
            cod_amount_fen: fields.cod_amount_fen,
            cod_remit_days,
            consignee: fields.consignee.trim().to_owned(),
            consignee_phone: fields.consignee_phone.trim().to_owned(),
            cod: Cod::default(),
            seizure: None,
            change_requests: Vec::new(),
            create_time: now,
        })
    }

    pub fn name(&self) -> String {
        format!("waybills/{}", self.number)
    }

    /// Whether the company owes the COD to the shipper: collected, or charged to the branch.
    pub fn cod_owed(&self) -> bool {
        self.cod_amount_fen > 0
            && (self.cod.collect_time.is_some()
                || self.seizure.as_ref().is_some_and(|seizure| seizure.branch_bears_loss.is_some()))
    }

    fn written_off(&self) -> bool {
        self.seizure.as_ref().is_some_and(|seizure| seizure.write_off_time.is_some())
    }

    /// What the ledger holds for this waybill, by account; accounts at zero are left out.
    pub fn footprint(&self) -> BTreeMap<String, i64> {
        let mut balances = BTreeMap::new();
        let mut add = |account: &str, fen: i64| *balances.entry(account.to_owned()).or_insert(0) += fen;
        let branch = format!("branch:{}", self.branch);
        let shipper = format!("shipper:{}", self.shipper);
        let written_off = self.written_off();
        match self.payment_method {
            PaymentMethod::Prepaid => {}
            PaymentMethod::Collect => {
                add(if written_off { SEIZURE_WRITE_OFFS } else { &branch }, self.freight_fen);
                add(FREIGHT_INCOME, -self.freight_fen);
            }
            PaymentMethod::Monthly => {
                add(&shipper, self.freight_fen);
                add(FREIGHT_INCOME, -self.freight_fen);
            }
        }
        if !written_off {
            let cod = self.cod_amount_fen;
            add(&branch, cod);
            add(COD_PENDING, -cod);
            if self.cod_owed() {
                add(COD_PENDING, cod);
                add(&shipper, -cod);
            }
            if self.cod.remit_time.is_some() {
                add(&shipper, cod);
                add(&branch, -cod);
            }
        }
        balances.retain(|_, fen| *fen != 0);
        balances
    }

    /// Applies `command` by `caller` at `now`; on refusal the waybill is unchanged.
    pub fn apply(
        &mut self,
        command: Command,
        caller: &Caller,
        now: DateTime<Utc>,
        time_zone: Tz,
    ) -> Result<Applied, Refusal> {
        let mut next = self.clone();
        let applied = next.change(command, caller, now, time_zone)?;
        *self = next;
        Ok(applied)
    }

    fn change(
        &mut self,
        command: Command,
        caller: &Caller,
        now: DateTime<Utc>,
        time_zone: Tz,
    ) -> Result<Applied, Refusal> {
        let step =
            |action: &'static str, detail: String| Step { action, actor: caller.user.clone(), time: now, detail };
        let movement = |kind: &'static str, origin: &str| Some(Movement { kind, origin: origin.to_owned() });
        match command {
            Command::CollectCod { time } => {
                let time = past_or_now(time, now, "collect_time")?;
                if self.cod_amount_fen == 0 {
                    return precondition(format!("{} carries no cash on delivery", self.name()));
                }
                if let Some(collected) = self.cod.collect_time {
                    return precondition(format!(
                        "the COD of {} was collected on {}",
                        self.name(),
                        day(collected, time_zone)
                    ));
                }
                if self.seizure.is_some() {
                    return precondition(format!(
                        "the cargo of {} is seized: it is not delivered, nothing is collected",
                        self.name()
                    ));
                }
                let due = time + Duration::days(i64::from(self.cod_remit_days));
                self.cod.collect_time = Some(time);
                self.cod.remit_due_time = Some(due);
                Ok(Applied {
                    step: step(
                        "cod_collected",
                        format!(
                            "COD of {} collected by branch {} on {}; due to shipper {} by {}",
                            yuan(self.cod_amount_fen),
                            self.branch,
                            day(time, time_zone),
                            self.shipper,
                            day(due, time_zone)
                        ),
                    ),
                    movement: movement("cod_collection", "cod_collection"),
                })
            }
            Command::RemitCod { time } => {
                let time = past_or_now(time, now, "remit_time")?;
                if !self.cod_owed() {
                    return precondition(format!(
                        "no COD of {} is owed to the shipper: record its collection first",
                        self.name()
                    ));
                }
                if let Some(remitted) = self.cod.remit_time {
                    return precondition(format!(
                        "the COD of {} was remitted on {}",
                        self.name(),
                        day(remitted, time_zone)
                    ));
                }
                let late = self
                    .cod
                    .remit_due_time
                    .filter(|due| time > *due)
                    .map(|due| format!(", {} day(s) late", days_begun(time - due)))
                    .unwrap_or_default();
                self.cod.remit_time = Some(time);
                Ok(Applied {
                    step: step(
                        "cod_remitted",
                        format!(
                            "COD of {} remitted to shipper {} on {}{late}",
                            yuan(self.cod_amount_fen),
                            self.shipper,
                            day(time, time_zone)
                        ),
                    ),
                    movement: movement("cod_remittance", "cod_remittance"),
                })
            }
            Command::RequestChange { changes, reason } => {
                let changes = self.check_changes(&changes, "changes")?;
                if reason.trim().is_empty() || reason.chars().count() > MAX_TEXT {
                    return invalid(
                        "reason",
                        "required: why the customer asks for the change (at most 500 characters)",
                    );
                }
                if changes.iter().all(|change| change.field.is_service_centers()) {
                    return precondition(
                        "a change of consignee or consignee phone alone is made by the customer service center, \
                         not settlement (001 §8 4.9.1)",
                    );
                }
                let fields: Vec<&str> = changes.iter().map(|change| change.field.as_str()).collect();
                self.change_requests.push(ChangeRequest {
                    state: ChangeState::Pending,
                    changes,
                    reason: reason.trim().to_owned(),
                    requested_by: caller.user.clone(),
                    request_time: now,
                    decided_by: String::new(),
                    decision_reason: String::new(),
                    decide_time: None,
                });
                let n = self.change_requests.len();
                Ok(Applied {
                    step: step("change_requested", format!("change request {n}: {}", fields.join(", "))),
                    movement: None,
                })
            }
            Command::ApproveChange { index, reason } | Command::RejectChange { index, reason }
                if !caller.is_supervisor() =>
            {
                let _ = (index, reason);
                Err(Refusal::NotSupervisor(
                    "only a supervisor may decide a change request: the caller's roles do not include supervisor"
                        .into(),
                ))
            }
            Command::ApproveChange { index, reason } => {
                let pending = self.pending_change(index)?;
                if pending.requested_by == caller.user {
                    return Err(Refusal::NotSupervisor(format!(
                        "four eyes: {} asked for change request {}, so another supervisor approves it",
                        caller.user,
                        index + 1
                    )));
                }
                let wanted: Vec<(Field, String)> =
                    pending.changes.iter().map(|change| (change.field, change.after.clone())).collect();
                let changes = self.check_changes(&wanted, "name")?;
                for change in &changes {
                    self.set(change.field, &change.after);
                }
                let fields: Vec<&str> = changes.iter().map(|change| change.field.as_str()).collect();
                let request = &mut self.change_requests[index];
                request.state = ChangeState::Applied;
                request.changes = changes;
                request.decided_by = caller.user.clone();
                request.decision_reason = reason.trim().to_owned();
                request.decide_time = Some(now);
                let n = index + 1;
                Ok(Applied {
                    step: step(
                        "change_applied",
                        format!("change request {n} approved and applied: {}", fields.join(", ")),
                    ),
                    movement: movement("waybill_change", &format!("changeRequests/{n}")),
                })
            }
            Command::RejectChange { index, reason } => {
                self.pending_change(index)?;
                if reason.trim().is_empty() || reason.chars().count() > MAX_TEXT {
                    return invalid("reason", "required: why the change is refused, for the customer");
                }
                let request = &mut self.change_requests[index];
                request.state = ChangeState::Rejected;
                request.decided_by = caller.user.clone();
                request.decision_reason = reason.trim().to_owned();
                request.decide_time = Some(now);
                Ok(Applied {
                    step: step("change_rejected", format!("change request {}: {}", index + 1, reason.trim())),
                    movement: None,
                })
            }
            Command::Seize(facts) => {
                let mut violations = FieldViolations::new();
                let text = |violations: &mut FieldViolations, field: &str, value: &str, what: &str| {
                    if value.trim().is_empty() || value.chars().count() > 128 {
                        violations.add(field, what);
                    }
                };
                text(
                    &mut violations,
                    "seizure.authority",
                    &facts.authority,
                    "required: the authority that seized the cargo, e.g. 工商局",
                );
                text(
                    &mut violations,
                    "seizure.certificate_number",
                    &facts.certificate_number,
                    "required: the number of the seizure certificate (查扣证明) the branch obtained (001 §11 4.1)",
                );
                let by_branch_fault = match facts.cause.as_str() {
                    "customer" => false,
                    "branch" => true,
                    _ => {
                        violations.add("seizure.cause", "customer (the customer's own fault) or branch");
                        false
                    }
                };
                let seize_time = match facts.seize_time {
                    Some(time) if time <= now => Some(time),
                    Some(_) => {
                        violations.add("seizure.seize_time", "not in the future");
                        None
                    }
                    None => {
                        violations.add("seizure.seize_time", "required: when the cargo was seized");
                        None
                    }
                };
                if let (Some(notified), Some(seized)) = (facts.shipper_notify_time, seize_time)
                    && (notified < seized || notified > now)
                {
                    violations.add("seizure.shipper_notify_time", "after the seizure and not in the future");
                }
                if facts.shipper_notify_time.is_some() && facts.notified_by.trim().is_empty() {
                    violations.add("seizure.notified_by", "required with shipper_notify_time: who told the shipper");
                }
                let Some(seize_time) = seize_time.filter(|_| violations.is_empty()) else {
                    return Err(Refusal::Invalid(violations));
                };
                if self.seizure.is_some() {
                    return precondition(format!("the cargo of {} is already recorded as seized", self.name()));
                }
                if let Some(collected) = self.cod.collect_time {
                    return precondition(format!(
                        "the cargo of {} was delivered: its COD was collected on {}",
                        self.name(),
                        day(collected, time_zone)
                    ));
                }
                let branch_bears_loss = by_branch_fault
                    .then(|| "the cargo was seized through the branch's own fault (001 §11 4.3)".to_owned());
                self.seizure = Some(Seizure {
                    authority: facts.authority.trim().to_owned(),
                    certificate_number: facts.certificate_number.trim().to_owned(),
                    seize_time,
                    by_branch_fault,
                    shipper_notify_time: facts.shipper_notify_time,
                    notified_by: facts.notified_by.trim().to_owned(),
                    problem: None,
                    branch_bears_loss: branch_bears_loss.clone(),
                    write_off_from: write_off_from(seize_time, time_zone),
                    write_off_time: None,
                });
                if by_branch_fault {
                    self.owe_cod_from(now);
                }
                Ok(Applied {
                    step: step(
                        "seized",
                        format!(
                            "seized by {} on {} (certificate {}); {}",
                            facts.authority.trim(),
                            day(seize_time, time_zone),
                            facts.certificate_number.trim(),
                            branch_bears_loss.as_deref().unwrap_or("the customer's fault")
                        ),
                    ),
                    movement: by_branch_fault
                        .then(|| Movement { kind: "seizure_branch_loss", origin: "branch_loss".into() }),
                })
            }
            Command::NotifyShipper { time, by } => {
                let time = past_or_now(time, now, "notify_time")?;
                if by.trim().is_empty() || by.chars().count() > 128 {
                    return invalid("notified_by", "required: who told the shipper (001 §11 4.2)");
                }
                let seizure = self.seizure_mut()?;
                if time < seizure.seize_time {
                    return invalid("notify_time", "after the seizure");
                }
                seizure.shipper_notify_time = Some(time);
                seizure.notified_by = by.trim().to_owned();
                Ok(Applied {
                    step: step(
                        "shipper_notified",
                        format!("shipper told on {} by {}", day(time, time_zone), by.trim()),
                    ),
                    movement: None,
                })
            }
            Command::ReportProblem { problem } => {
                let Some((problem, why)) = SEIZURE_PROBLEMS.iter().find(|(code, _)| *code == problem) else {
                    return invalid("problem", "certificate_lost, cargo_lost or cargo_released");
                };
                let seizure = self.seizure_mut()?;
                if seizure.write_off_time.is_some() {
                    return precondition("the seizure was already written off");
                }
                seizure.problem = Some((*problem).to_owned());
                let newly = seizure.branch_bears_loss.is_none();
                if newly {
                    seizure.branch_bears_loss = Some((*why).to_owned());
                    self.owe_cod_from(now);
                }
                Ok(Applied {
                    step: step("seizure_problem", format!("{why}: the branch {} bears the loss", self.branch)),
                    movement: newly.then(|| Movement { kind: "seizure_branch_loss", origin: "branch_loss".into() }),
                })
            }
            Command::WriteOff { original_certificate } => {
                let seizure = self.seizure.as_ref().ok_or_else(|| {
                    Refusal::Precondition(format!("the cargo of {} is not recorded as seized", self.name()))
                })?;
                if seizure.write_off_time.is_some() {
                    return precondition("the seizure was already written off");
                }
                if let Some(why) = &seizure.branch_bears_loss {
                    return precondition(format!(
                        "nothing is written off: {why}, so the branch {} bears the loss",
                        self.branch
                    ));
                }
                if !original_certificate {
                    return precondition("a write-off needs the original seizure certificate (证明原件, 001 §11 4.5)");
                }
                if seizure.shipper_notify_time.is_none() {
                    return precondition(
                        "record when and by whom the shipper was told of the seizure first (001 §11 4.2)",
                    );
                }
                if now < seizure.write_off_from {
                    return precondition(format!(
                        "a write-off is possible from {}, six months after the seizure (001 §11 4.5)",
                        day(seizure.write_off_from, time_zone)
                    ));
                }
                if let Some(seizure) = self.seizure.as_mut() {
                    seizure.write_off_time = Some(now);
                }
                Ok(Applied {
                    step: step(
                        "written_off",
                        format!(
                            "freight and COD written off on the original certificate ({} freight, {} COD)",
                            yuan(self.freight_fen),
                            yuan(self.cod_amount_fen)
                        ),
                    ),
                    movement: movement("seizure_write_off", "write_off"),
                })
            }
        }
    }

    /// Charges the COD to the branch as owed to the shipper from `now`, due within the term.
    fn owe_cod_from(&mut self, now: DateTime<Utc>) {
        if self.cod_amount_fen > 0 && self.cod.remit_due_time.is_none() {
            self.cod.remit_due_time = Some(now + Duration::days(i64::from(self.cod_remit_days)));
        }
    }

    fn seizure_mut(&mut self) -> Result<&mut Seizure, Refusal> {
        let name = self.name();
        self.seizure
            .as_mut()
            .ok_or_else(|| Refusal::Precondition(format!("the cargo of {name} is not recorded as seized")))
    }

    fn pending_change(&self, index: usize) -> Result<&ChangeRequest, Refusal> {
        let request = self
            .change_requests
            .get(index)
            .ok_or_else(|| Refusal::Precondition(format!("{} has no change request {}", self.name(), index + 1)))?;
        if request.state != ChangeState::Pending {
            return precondition(format!("change request {} is already {}", index + 1, request.state.as_str()));
        }
        Ok(request)
    }

    /// Checks wanted changes against the rules and today's values; returns them with "before".
    fn check_changes(&self, wanted: &[(Field, String)], field: &str) -> Result<Vec<FieldChange>, Refusal> {
        let mut violations = FieldViolations::new();
        if wanted.is_empty() {
            violations.add(field, "at least one field to change");
        }
        let mut seen = Vec::new();
        let mut changes = Vec::new();
        for (i, (changed, after)) in wanted.iter().enumerate() {
            let at = format!("{field}[{i}].after");
            let after = after.trim();
            if seen.contains(changed) {
                violations.add(format!("{field}[{i}].field"), "each field at most once");
            }
            seen.push(*changed);
            let valid = match changed {
                Field::Shipper => kefu_kit::text::is_code(after, 64),
                Field::CodAmountFen | Field::FreightFen => {
                    after.parse::<i64>().is_ok_and(|fen| (0..=MAX_AMOUNT_FEN).contains(&fen))
                }
                Field::PaymentMethod => PaymentMethod::parse(after).is_some(),
                Field::Consignee => !after.is_empty() && after.chars().count() <= 64,
                Field::ConsigneePhone => !after.is_empty() && is_phone(after),
            };
            if !valid {
                let what = match changed {
                    Field::Shipper => "a shipper's customer code",
                    Field::CodAmountFen | Field::FreightFen => "an amount in fen, 0 to 1000000000",
                    Field::PaymentMethod => "prepaid, collect or monthly",
                    Field::Consignee => "a name, at most 64 characters",
                    Field::ConsigneePhone => "digits, spaces and + - ( ) only",
                };
                violations.add(at, what);
                continue;
            }
            let before = self.get(*changed);
            if before == after {
                violations.add(at, "the same as today's value: nothing to change");
                continue;
            }
            changes.push(FieldChange { field: *changed, before, after: after.to_owned() });
        }
        if !violations.is_empty() {
            return Err(Refusal::Invalid(violations));
        }
        let money = changes.iter().any(|change| !change.field.is_service_centers());
        if money && self.written_off() {
            return precondition("the waybill's freight and COD were written off: nothing of its money changes");
        }
        if money && self.seizure.is_some() {
            return precondition("the cargo is seized: its money is settled by the seizure rules (001 §11)");
        }
        for change in &changes {
            match change.field {
                Field::CodAmountFen if self.cod.collect_time.is_some() => {
                    return precondition("the COD was already collected: its amount cannot change");
                }
                Field::Shipper if self.cod.remit_time.is_some() => {
                    return precondition("the COD was already remitted to the shipper: the shipper cannot change");
                }
                _ => {}
            }
        }
        Ok(changes)
    }

    fn get(&self, field: Field) -> String {
        match field {
            Field::Shipper => self.shipper.clone(),
            Field::CodAmountFen => self.cod_amount_fen.to_string(),
            Field::FreightFen => self.freight_fen.to_string(),
            Field::PaymentMethod => self.payment_method.as_str().to_owned(),
            Field::Consignee => self.consignee.clone(),
            Field::ConsigneePhone => self.consignee_phone.clone(),
        }
    }

    /// Sets a value [`Waybill::check_changes`] accepted.
    fn set(&mut self, field: Field, value: &str) {
        match field {
            Field::Shipper => self.shipper = value.to_owned(),
            Field::CodAmountFen => self.cod_amount_fen = value.parse().unwrap_or(self.cod_amount_fen),
            Field::FreightFen => self.freight_fen = value.parse().unwrap_or(self.freight_fen),
            Field::PaymentMethod => self.payment_method = PaymentMethod::parse(value).unwrap_or(self.payment_method),
            Field::Consignee => self.consignee = value.to_owned(),
            Field::ConsigneePhone => self.consignee_phone = value.to_owned(),
        }
    }
}

/// Days begun: a remittance 25 hours late is 2 days late, one 48 hours late is 2.
fn days_begun(late: Duration) -> i64 {
    (late.num_seconds() + 86_399).div_euclid(86_400)
}

/// The time given, or now; a time in the future is refused.
fn past_or_now(time: Option<DateTime<Utc>>, now: DateTime<Utc>, field: &str) -> Result<DateTime<Utc>, Refusal> {
    match time {
        None => Ok(now),
        Some(time) if time <= now => Ok(time),
        Some(_) => invalid(field, "not in the future"),
    }
}

/// The difference `after − before`, by account, without zeros: what a step posts.
pub fn difference(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>) -> Vec<(String, i64)> {
    let mut moved: BTreeMap<&str, i64> = BTreeMap::new();
    for (account, fen) in after {
        *moved.entry(account).or_insert(0) += fen;
    }
    for (account, fen) in before {
        *moved.entry(account).or_insert(0) -= fen;
    }
    moved.into_iter().filter(|(_, fen)| *fen != 0).map(|(account, fen)| (account.to_owned(), fen)).collect()
}

#[cfg(test)]
mod tests;
