//! The compensation standards (货物殘損、丟失等賠付標準, `001 §10`): how much the company pays for
//! cargo lost or damaged, which standard applied, and why, step by step.
//!
//! [`quote`] is a pure function of the [`Facts`] and the [`CompensationPolicy`]. The handbook's
//! table, read as arithmetic (`domain.md` §4), with `L` the market value of what was lost or
//! damaged, `D` the declared value, `S` the shipping-list value, `F` the freight of one piece and
//! `n` the pieces lost or damaged:
//!
//! 1. traffic accident or theft (`§10 4.4`): without both the shipping list and the invoice there is
//!    no amount yet ([`QuoteError::MissingDocuments`]); with both, the standards below apply;
//! 2. fragile goods (`§10 注`): never insured; with `V` the whole consignment's value and
//!    `r = n / pieces`, pay `50% × V × max(0, r − 3%)`;
//! 3. secondary or simple packaging counts as no declared value, not insured (`§10 4.3`);
//! 4. declared, insured, list (`4.1`): `100% × min(D, L)`; declared, not insured, list (`4.2`):
//!    `70% × min(D, L)`; no declared value, list (`4.3.1`): `50% × min(S, L)`; no list (`4.3.2`):
//!    `min(L, 10 × F × n)`;
//! 5. the amount is exact until the end, then rounded half up (四舍五入) to the fen, once.
//!
//! Every percentage, the freight multiple and the fragile allowance are policy; the numbers above
//! are its defaults.

use std::fmt;

use kefu_kit::error::FieldViolations;

use crate::policy::CompensationPolicy;

/// The largest amount of money the standards accept as input: 1,000,000,000 yuan, kefu's bound on
/// every amount. Anything larger is a typing error, not a shipment.
pub use kefu_kit::money::MAX_FEN;
/// The most pieces one consignment may have.
pub const MAX_PIECES: i32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packaging {
    /// Packed intact at shipment (包装完好).
    Intact,
    /// Secondary packaging (二次包装).
    Secondary,
    /// Simple packaging (简易包装).
    Simple,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccidentKind {
    TransitDamage,
    Loss,
    RoughHandling,
    TrafficAccident,
    Theft,
}

impl Packaging {
    pub fn as_str(self) -> &'static str {
        match self {
            Packaging::Intact => "intact",
            Packaging::Secondary => "secondary",
            Packaging::Simple => "simple",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Packaging::Intact, Packaging::Secondary, Packaging::Simple].into_iter().find(|p| p.as_str() == value)
    }
}

impl AccidentKind {
    pub const ALL: [AccidentKind; 5] = [
        AccidentKind::TransitDamage,
        AccidentKind::Loss,
        AccidentKind::RoughHandling,
        AccidentKind::TrafficAccident,
        AccidentKind::Theft,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccidentKind::TransitDamage => "transit_damage",
            AccidentKind::Loss => "loss",
            AccidentKind::RoughHandling => "rough_handling",
            AccidentKind::TrafficAccident => "traffic_accident",
            AccidentKind::Theft => "theft",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }

    /// Traffic accidents and vehicle theft are reported to the insurer (`001 §10 4.4`).
    pub fn involves_insurer(self) -> bool {
        matches!(self, AccidentKind::TrafficAccident | AccidentKind::Theft)
    }
}

/// The facts of a loss as a caller states them: enums not yet known to be given, numbers not yet
/// checked. [`Facts::parse`] turns them into [`Facts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UncheckedFacts {
    pub declared_value_fen: i64,
    pub insured: bool,
    pub packaging: Option<Packaging>,
    pub fragile: bool,
    pub shipping_list: bool,
    pub shipping_list_value_fen: i64,
    pub invoice: bool,
    pub loss_market_value_fen: i64,
    pub piece_freight_fen: i64,
    pub pieces: i32,
    pub pieces_affected: i32,
    pub consignment_value_fen: i64,
    pub accident: Option<AccidentKind>,
}

/// Facts that do not contradict each other: the inputs of [`quote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// 0: no value declared on the waybill (配送单).
    pub declared_value_fen: i64,
    pub insured: bool,
    pub packaging: Packaging,
    pub fragile: bool,
    pub shipping_list: bool,
    pub shipping_list_value_fen: i64,
    pub invoice: bool,
    pub loss_market_value_fen: i64,
    pub piece_freight_fen: i64,
    pub pieces: i32,
    pub pieces_affected: i32,
    pub consignment_value_fen: i64,
    pub accident: AccidentKind,
}

impl Facts {
    /// Checks `facts`, naming each offending field as `{prefix}{field}` (the prefix is empty for a
    /// quote request, `facts.compensation.` within a claim).
    pub fn parse(facts: UncheckedFacts, prefix: &str) -> Result<Facts, FieldViolations> {
        let mut violations = FieldViolations::new();
        let mut violation = |field: &str, description: String| violations.add(format!("{prefix}{field}"), description);
        let amounts = [
            ("declared_value_fen", facts.declared_value_fen),
            ("shipping_list_value_fen", facts.shipping_list_value_fen),
            ("loss_market_value_fen", facts.loss_market_value_fen),
            ("piece_freight_fen", facts.piece_freight_fen),
            ("consignment_value_fen", facts.consignment_value_fen),
        ];
        for (field, amount) in amounts {
            if !(0..=MAX_FEN).contains(&amount) {
                violation(field, format!("must be between 0 and {MAX_FEN} fen, not {amount}"));
            }
        }
        if facts.packaging.is_none() {
            violation("packaging", "required: INTACT, SECONDARY or SIMPLE".into());
        }
        if facts.accident.is_none() {
            violation("accident", "required: TRANSIT_DAMAGE, LOSS, ROUGH_HANDLING, TRAFFIC_ACCIDENT or THEFT".into());
        }
        if !(1..=MAX_PIECES).contains(&facts.pieces) {
            violation("pieces", format!("the pieces in the consignment: between 1 and {MAX_PIECES}"));
        }
        if facts.pieces_affected < 1 || facts.pieces_affected > facts.pieces.max(1) {
            violation(
                "pieces_affected",
                format!("the pieces lost or damaged: between 1 and the pieces in the consignment ({})", facts.pieces),
            );
        }
        if facts.fragile && facts.insured {
            violation("insured", "fragile goods (glass, ceramics) are never accepted for insured transport".into());
        }
        if facts.insured && facts.declared_value_fen == 0 {
            violation("declared_value_fen", "insured transport requires a declared value".into());
        }
        if !facts.shipping_list && facts.shipping_list_value_fen != 0 {
            violation("shipping_list_value_fen", "a shipping-list value without a shipping list".into());
        }
        if facts.fragile && facts.consignment_value_fen == 0 {
            violation("consignment_value_fen", "required for fragile goods: the value of the whole consignment".into());
        }
        if !facts.fragile && facts.loss_market_value_fen == 0 {
            violation("loss_market_value_fen", "required: the market value of what was lost or damaged".into());
        }
        if facts.consignment_value_fen > 0 && facts.loss_market_value_fen > facts.consignment_value_fen {
            violation(
                "loss_market_value_fen",
                "the loss is worth more than the whole consignment (consignment_value_fen)".into(),
            );
        }
        let (Some(packaging), Some(accident), true) = (facts.packaging, facts.accident, violations.is_empty()) else {
            return Err(violations);
        };
        Ok(Facts {
            declared_value_fen: facts.declared_value_fen,
            insured: facts.insured,
            packaging,
            fragile: facts.fragile,
            shipping_list: facts.shipping_list,
            shipping_list_value_fen: facts.shipping_list_value_fen,
            invoice: facts.invoice,
            loss_market_value_fen: facts.loss_market_value_fen,
            piece_freight_fen: facts.piece_freight_fen,
            pieces: facts.pieces,
            pieces_affected: facts.pieces_affected,
            consignment_value_fen: facts.consignment_value_fen,
            accident,
        })
    }

    pub fn unchecked(&self) -> UncheckedFacts {
        UncheckedFacts {
            declared_value_fen: self.declared_value_fen,
            insured: self.insured,
            packaging: Some(self.packaging),
            fragile: self.fragile,
            shipping_list: self.shipping_list,
            shipping_list_value_fen: self.shipping_list_value_fen,
            invoice: self.invoice,
            loss_market_value_fen: self.loss_market_value_fen,
            piece_freight_fen: self.piece_freight_fen,
            pieces: self.pieces,
            pieces_affected: self.pieces_affected,
            consignment_value_fen: self.consignment_value_fen,
            accident: Some(self.accident),
        }
    }
}

/// Which standard applied: a stable code callers may rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `001 §10 4.1`: declared value, insured transport, shipping list.
    DeclaredInsured,
    /// `001 §10 4.2`: declared value, not insured, shipping list.
    DeclaredUninsured,
    /// `001 §10 4.3.1`: no declared value (or unfit packaging), shipping list.
    UndeclaredWithList,
    /// `001 §10 4.3.2`: no shipping list.
    NoListFreightCap,
    /// `001 §10 注`: glass, ceramics.
    FragileBreakage,
}

impl Rule {
    pub const ALL: [Rule; 5] = [
        Rule::DeclaredInsured,
        Rule::DeclaredUninsured,
        Rule::UndeclaredWithList,
        Rule::NoListFreightCap,
        Rule::FragileBreakage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::DeclaredInsured => "declared_insured",
            Rule::DeclaredUninsured => "declared_uninsured",
            Rule::UndeclaredWithList => "undeclared_with_list",
            Rule::NoListFreightCap => "no_list_freight_cap",
            Rule::FragileBreakage => "fragile_breakage",
        }
    }

    pub fn parse(value: &str) -> Option<Rule> {
        Self::ALL.into_iter().find(|rule| rule.as_str() == value)
    }
}

/// What the standards allow, which standard applied, and each step with its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub amount_fen: i64,
    pub rule: Rule,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteError {
    /// The facts contradict each other or a number the rule needs is missing.
    Invalid(FieldViolations),
    /// Traffic accident or theft: the shipper has not yet provided these documents
    /// (`shipping_list`, `invoice`).
    MissingDocuments(Vec<&'static str>),
}

/// An amount of money in fen, shown as yuan: `1234.56 yuan`.
pub use kefu_kit::money::Yuan;

/// A share in basis points, shown as a percentage: `3.00%`.
struct Percent(i128);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}%", self.0 / 100, self.0 % 100)
    }
}

/// `numerator / denominator` rounded half up (四舍五入) to a whole fen; both are not negative.
fn round_half_up(numerator: i128, denominator: i128) -> i64 {
    let rounded = (2 * numerator + denominator) / (2 * denominator);
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

/// The amount the standards allow for `facts` under `policy`, and why.
pub fn quote(facts: &Facts, policy: &CompensationPolicy) -> Result<Quote, QuoteError> {
    let mut reasons = Vec::new();
    if facts.accident.involves_insurer() {
        let missing: Vec<&'static str> = [(facts.shipping_list, "shipping_list"), (facts.invoice, "invoice")]
            .into_iter()
            .filter(|(given, _)| !given)
            .map(|(_, document)| document)
            .collect();
        if !missing.is_empty() {
            return Err(QuoteError::MissingDocuments(missing));
        }
        reasons.push(format!(
            "{}: the shipper provided the accompanying shipping list and the invoice, so the standards apply (001 §10 4.4)",
            facts.accident.as_str().replace('_', " ")
        ));
    }
    if facts.fragile {
        return Ok(fragile_breakage(facts, policy, reasons));
    }

    let loss = facts.loss_market_value_fen;
    let fit_packaging = facts.packaging == Packaging::Intact;
    if !fit_packaging {
        reasons.push(format!(
            "{} packaging is unfit for repeated handling: counted as no declared value, not insured (001 §10 4.3)",
            facts.packaging.as_str()
        ));
    }
    let declared = fit_packaging && facts.declared_value_fen > 0;
    let insured = declared && facts.insured;
    // (the rule, the base it applies to and its name, the percentage paid)
    let (rule, base, base_name, percent) = match (declared, facts.shipping_list) {
        (true, true) if insured => (
            Rule::DeclaredInsured,
            facts.declared_value_fen.min(loss),
            "the lower of the declared value and the market value",
            policy.declared_insured_percent,
        ),
        (true, true) => (
            Rule::DeclaredUninsured,
            facts.declared_value_fen.min(loss),
            "the lower of the declared value and the market value",
            policy.declared_uninsured_percent,
        ),
        (false, true) => {
            if facts.shipping_list_value_fen == 0 {
                let mut violations = FieldViolations::new();
                violations.add(
                    "shipping_list_value_fen",
                    "required when no value is declared: the standard pays a share of the shipping list's amount",
                );
                return Err(QuoteError::Invalid(violations));
            }
            (
                Rule::UndeclaredWithList,
                facts.shipping_list_value_fen.min(loss),
                "the lower of the shipping list's amount and the market value",
                policy.undeclared_with_list_percent,
            )
        }
        (_, false) => {
            if declared {
                reasons.push(
                    "a value is declared but the shipper provides no shipping list: the declared-value standards \
                     need the list (001 §10 4.1, 4.2)"
                        .into(),
                );
            }
            let cap = i128::from(policy.no_list_freight_multiple)
                * i128::from(facts.piece_freight_fen)
                * i128::from(facts.pieces_affected);
            let cap = i64::try_from(cap).unwrap_or(i64::MAX);
            let amount = loss.min(cap);
            reasons.push(format!(
                "no shipping list (001 §10 4.3.2): at most {} × the piece freight {} × {} piece(s) = {}",
                policy.no_list_freight_multiple,
                Yuan(facts.piece_freight_fen),
                facts.pieces_affected,
                Yuan(cap)
            ));
            reasons.push(format!(
                "the market value of what was lost or damaged is {}; paid: {}",
                Yuan(loss),
                Yuan(amount)
            ));
            return Ok(Quote { amount_fen: amount, rule: Rule::NoListFreightCap, reasons });
        }
    };
    let amount = round_half_up(i128::from(base) * i128::from(percent), 100);
    let section = match rule {
        Rule::DeclaredInsured => "declared value, insured transport, shipping list (001 §10 4.1)",
        Rule::DeclaredUninsured => "declared value, not insured, shipping list (001 §10 4.2)",
        _ => "no declared value, shipping list (001 §10 4.3.1)",
    };
    reasons.push(format!("{section}: {percent}% of {base_name}"));
    let compared = match rule {
        Rule::UndeclaredWithList => format!("list {} vs market {}", Yuan(facts.shipping_list_value_fen), Yuan(loss)),
        _ => format!("declared {} vs market {}", Yuan(facts.declared_value_fen), Yuan(loss)),
    };
    reasons.push(format!(
        "{compared}: base {}; {percent}% of it, rounded half up to the fen: {}",
        Yuan(base),
        Yuan(amount)
    ));
    Ok(Quote { amount_fen: amount, rule, reasons })
}

/// Glass and ceramics: the first share of breakage is normal loss; damage beyond it is paid at a
/// share of the consignment's value (`001 §10 注`).
fn fragile_breakage(facts: &Facts, policy: &CompensationPolicy, mut reasons: Vec<String>) -> Quote {
    let pieces = i128::from(facts.pieces);
    let affected = i128::from(facts.pieces_affected);
    let allowance = i128::from(policy.fragile_normal_breakage_basis_points);
    // Shares in basis points of a piece count: the damaged share is affected / pieces.
    let damaged_share = affected * 10_000;
    let allowed_share = allowance * pieces;
    reasons.push(format!(
        "fragile goods (glass, ceramics), never insured: {} of breakage is normal loss, damage beyond it is paid at {}% \
         of the goods' value (001 §10 注)",
        Percent(allowance),
        policy.fragile_pay_percent
    ));
    let broken = format!(
        "{} of {} piece(s) damaged: {}",
        facts.pieces_affected,
        facts.pieces,
        Percent((damaged_share + pieces / 2) / pieces)
    );
    if damaged_share <= allowed_share {
        reasons.push(format!("{broken}, within the normal loss of {}: nothing to pay", Percent(allowance)));
        return Quote { amount_fen: 0, rule: Rule::FragileBreakage, reasons };
    }
    let numerator = i128::from(facts.consignment_value_fen)
        * (damaged_share - allowed_share)
        * i128::from(policy.fragile_pay_percent);
    let amount = round_half_up(numerator, pieces * 10_000 * 100);
    reasons.push(format!(
        "{broken}; beyond the normal loss of {}, {}% of the consignment value {} on the excess, rounded half up to \
         the fen: {}",
        Percent(allowance),
        policy.fragile_pay_percent,
        Yuan(facts.consignment_value_fen),
        Yuan(amount)
    ));
    Quote { amount_fen: amount, rule: Rule::FragileBreakage, reasons }
}

#[cfg(test)]
mod tests;
