//! The standards case by case, their boundaries, and properties over generated facts.

use proptest::prelude::*;

use super::*;

fn policy() -> CompensationPolicy {
    CompensationPolicy::handbook()
}

/// An ordinary loss: intact packaging, a declared value of 1,000 yuan, insured, with the list.
fn facts() -> UncheckedFacts {
    UncheckedFacts {
        declared_value_fen: 100_000,
        insured: true,
        packaging: Some(Packaging::Intact),
        fragile: false,
        shipping_list: true,
        shipping_list_value_fen: 0,
        invoice: false,
        loss_market_value_fen: 80_000,
        piece_freight_fen: 2_000,
        pieces: 10,
        pieces_affected: 1,
        consignment_value_fen: 0,
        accident: Some(AccidentKind::TransitDamage),
    }
}

fn quote_of(facts: UncheckedFacts) -> Result<Quote, QuoteError> {
    let facts = Facts::parse(facts, "").map_err(QuoteError::Invalid)?;
    quote(&facts, &policy())
}

fn amount(facts: UncheckedFacts) -> (i64, Rule) {
    let quote = quote_of(facts).expect("a quote");
    (quote.amount_fen, quote.rule)
}

fn invalid_fields(facts: UncheckedFacts) -> Vec<String> {
    match quote_of(facts) {
        Err(QuoteError::Invalid(violations)) => violations.fields().map(str::to_owned).collect(),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

#[test]
fn declared_insured_with_list_pays_the_lower_of_declared_and_market_in_full() {
    assert_eq!(amount(facts()), (80_000, Rule::DeclaredInsured));
    assert_eq!(amount(UncheckedFacts { loss_market_value_fen: 150_000, ..facts() }), (100_000, Rule::DeclaredInsured));
}

#[test]
fn declared_uninsured_with_list_pays_at_most_seventy_percent() {
    let uninsured = UncheckedFacts { insured: false, ..facts() };
    assert_eq!(amount(uninsured.clone()), (56_000, Rule::DeclaredUninsured));
    // 70% of 333.33 yuan is 233.331 yuan: 23,333.1 fen rounds down.
    assert_eq!(amount(UncheckedFacts { loss_market_value_fen: 33_333, ..uninsured.clone() }).0, 23_333);
    // 70% of 0.05 yuan is 3.5 fen: half rounds up.
    assert_eq!(amount(UncheckedFacts { loss_market_value_fen: 5, ..uninsured }).0, 4);
}

#[test]
fn no_declared_value_with_list_pays_at_most_half_of_the_list_or_market() {
    let undeclared =
        UncheckedFacts { declared_value_fen: 0, insured: false, shipping_list_value_fen: 60_000, ..facts() };
    assert_eq!(amount(undeclared.clone()), (30_000, Rule::UndeclaredWithList));
    assert_eq!(amount(UncheckedFacts { loss_market_value_fen: 40_001, ..undeclared.clone() }).0, 20_001); // 20,000.5 rounds up
    // Without the list's value the rule cannot be computed.
    assert_eq!(
        invalid_fields(UncheckedFacts { shipping_list_value_fen: 0, ..undeclared }),
        ["shipping_list_value_fen"]
    );
}

#[test]
fn secondary_or_simple_packaging_counts_as_no_declared_value_not_insured() {
    for packaging in [Packaging::Secondary, Packaging::Simple] {
        let quote = quote_of(UncheckedFacts { packaging: Some(packaging), shipping_list_value_fen: 90_000, ..facts() })
            .expect("a quote");
        assert_eq!((quote.amount_fen, quote.rule), (40_000, Rule::UndeclaredWithList), "{packaging:?}");
        assert!(quote.reasons[0].contains(packaging.as_str()), "{:?}", quote.reasons);
    }
}

#[test]
fn without_a_list_at_most_ten_times_the_piece_freight() {
    let no_list = UncheckedFacts { declared_value_fen: 0, insured: false, shipping_list: false, ..facts() };
    // 10 × 20 yuan × 1 piece = 200 yuan, below the 800 yuan lost.
    assert_eq!(amount(no_list.clone()), (20_000, Rule::NoListFreightCap));
    // Three pieces: the cap is 600 yuan.
    assert_eq!(amount(UncheckedFacts { pieces_affected: 3, ..no_list.clone() }).0, 60_000);
    // A loss below the cap is paid as it is.
    assert_eq!(amount(UncheckedFacts { loss_market_value_fen: 12_345, ..no_list.clone() }).0, 12_345);
    // A declared value without the list does not help: the declared-value standards need the list.
    let quote = quote_of(UncheckedFacts { declared_value_fen: 100_000, ..no_list }).expect("a quote");
    assert_eq!((quote.amount_fen, quote.rule), (20_000, Rule::NoListFreightCap));
    assert!(quote.reasons.iter().any(|reason| reason.contains("need the list")), "{:?}", quote.reasons);
}

#[test]
fn zero_declared_value_is_no_declared_value() {
    let zero = UncheckedFacts { declared_value_fen: 0, insured: false, shipping_list_value_fen: 100_000, ..facts() };
    assert_eq!(amount(zero).1, Rule::UndeclaredWithList);
    // And insured transport needs a declared value.
    assert_eq!(invalid_fields(UncheckedFacts { declared_value_fen: 0, ..facts() }), ["declared_value_fen"]);
}

#[test]
fn traffic_accident_or_theft_needs_the_list_and_the_invoice() {
    for accident in [AccidentKind::TrafficAccident, AccidentKind::Theft] {
        let base = UncheckedFacts { accident: Some(accident), ..facts() };
        assert_eq!(quote_of(base.clone()), Err(QuoteError::MissingDocuments(vec!["invoice"])));
        assert_eq!(
            quote_of(UncheckedFacts { shipping_list: false, declared_value_fen: 100_000, ..base.clone() }),
            Err(QuoteError::MissingDocuments(vec!["shipping_list", "invoice"]))
        );
        let quote = quote_of(UncheckedFacts { invoice: true, ..base }).expect("then the standards apply");
        assert_eq!((quote.amount_fen, quote.rule), (80_000, Rule::DeclaredInsured));
        assert!(quote.reasons[0].contains("4.4"), "{:?}", quote.reasons);
    }
    // Other accidents need no invoice.
    assert!(quote_of(UncheckedFacts { accident: Some(AccidentKind::Loss), ..facts() }).is_ok());
}

fn fragile(pieces: i32, affected: i32) -> UncheckedFacts {
    UncheckedFacts {
        fragile: true,
        insured: false,
        declared_value_fen: 0,
        shipping_list: false,
        loss_market_value_fen: 0,
        pieces,
        pieces_affected: affected,
        consignment_value_fen: 1_000_000,
        ..facts()
    }
}

#[test]
fn fragile_goods_exactly_three_percent_broken_is_normal_loss() {
    let quote = quote_of(fragile(100, 3)).expect("a quote");
    assert_eq!((quote.amount_fen, quote.rule), (0, Rule::FragileBreakage));
    assert!(quote.reasons.last().is_some_and(|reason| reason.contains("nothing to pay")), "{:?}", quote.reasons);
    assert_eq!(amount(fragile(100, 2)).0, 0);
}

#[test]
fn fragile_goods_damage_beyond_three_percent_is_paid_at_half_the_value() {
    // 4% broken: 1% beyond normal loss of 10,000 yuan at 50% = 50 yuan.
    assert_eq!(amount(fragile(100, 4)), (5_000, Rule::FragileBreakage));
    // All broken: 97% × 10,000 yuan × 50% = 4,850 yuan.
    assert_eq!(amount(fragile(100, 100)).0, 485_000);
    // 1 of 3: (33.33…% − 3%) × 10,000 × 50% = 1,516.666… yuan, rounded half up once.
    assert_eq!(amount(fragile(3, 1)).0, 151_667);
}

#[test]
fn fragile_goods_are_never_insured() {
    assert_eq!(invalid_fields(UncheckedFacts { insured: true, declared_value_fen: 5, ..fragile(10, 2) }), ["insured"]);
    assert_eq!(
        invalid_fields(UncheckedFacts { consignment_value_fen: 0, ..fragile(10, 2) }),
        ["consignment_value_fen"]
    );
}

#[test]
fn contradictions_and_absurd_numbers_name_every_field() {
    let fields = invalid_fields(UncheckedFacts {
        shipping_list: false,
        shipping_list_value_fen: 10,
        declared_value_fen: -1,
        piece_freight_fen: MAX_FEN + 1,
        packaging: None,
        accident: None,
        pieces: 2,
        pieces_affected: 3,
        ..facts()
    });
    assert_eq!(
        fields,
        [
            "declared_value_fen",
            "piece_freight_fen",
            "packaging",
            "accident",
            "pieces_affected",
            "shipping_list_value_fen",
        ]
    );
    assert_eq!(
        invalid_fields(UncheckedFacts { pieces: 0, pieces_affected: 0, ..facts() }),
        ["pieces", "pieces_affected"]
    );
    assert_eq!(invalid_fields(UncheckedFacts { loss_market_value_fen: 0, ..facts() }), ["loss_market_value_fen"]);
    assert_eq!(
        invalid_fields(UncheckedFacts { consignment_value_fen: 1_000, ..facts() }),
        ["loss_market_value_fen"],
        "a loss larger than the whole consignment"
    );
    let prefixed = Facts::parse(UncheckedFacts { packaging: None, ..facts() }, "facts.compensation.").expect_err("x");
    assert_eq!(prefixed.fields().collect::<Vec<_>>(), ["facts.compensation.packaging"]);
}

#[test]
fn the_policy_changes_the_numbers() {
    let facts = Facts::parse(UncheckedFacts { insured: false, ..facts() }, "").expect("valid");
    let stricter = CompensationPolicy { declared_uninsured_percent: 60, ..policy() };
    assert_eq!(quote(&facts, &stricter).expect("a quote").amount_fen, 48_000);
}

#[test]
fn every_quote_explains_itself_with_its_numbers() {
    let quote = quote_of(UncheckedFacts { insured: false, ..facts() }).expect("a quote");
    let text = quote.reasons.join("\n");
    assert!(text.contains("70%") && text.contains("800.00 yuan") && text.contains("560.00 yuan"), "{text}");
    assert!(text.contains("001 §10 4.2"), "{text}");
}

/// Facts that pass validation: any packaging, accident, flags, amounts and pieces.
fn valid_facts() -> impl Strategy<Value = UncheckedFacts> {
    (
        (0..=3usize, 0..5usize, any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (0..=10_000_000i64, 1..=10_000_000i64, 1..=10_000_000i64, 0..=100_000i64),
        (1..=500i32, 0.0..=1.0f64),
    )
        .prop_map(
            |(
                (packaging, accident, insured, fragile, list, invoice),
                (declared, loss, list_value, freight),
                (pieces, share),
            )| {
                let fragile = fragile && !insured;
                UncheckedFacts {
                    declared_value_fen: if insured || packaging == 0 { declared.max(1) } else { declared },
                    insured,
                    packaging: Some([Packaging::Intact, Packaging::Secondary, Packaging::Simple][packaging % 3]),
                    fragile,
                    shipping_list: list,
                    shipping_list_value_fen: if list { list_value } else { 0 },
                    invoice,
                    loss_market_value_fen: loss,
                    piece_freight_fen: freight,
                    pieces,
                    pieces_affected: ((f64::from(pieces) * share).ceil() as i32).clamp(1, pieces),
                    consignment_value_fen: if fragile { loss.saturating_mul(2) } else { 0 },
                    accident: Some(AccidentKind::ALL[accident]),
                }
            },
        )
}

/// The most the rule that applied can ever pay for these facts.
fn cap(facts: &Facts, quote: &Quote, policy: &CompensationPolicy) -> i64 {
    let percent_of = |base: i64, percent: u32| (i128::from(base) * i128::from(percent) + 99) / 100;
    let cap = match quote.rule {
        Rule::DeclaredInsured => percent_of(facts.declared_value_fen.min(facts.loss_market_value_fen), 100),
        Rule::DeclaredUninsured => percent_of(facts.declared_value_fen, policy.declared_uninsured_percent),
        Rule::UndeclaredWithList => percent_of(facts.shipping_list_value_fen, policy.undeclared_with_list_percent),
        Rule::NoListFreightCap => {
            i128::from(facts.piece_freight_fen)
                * i128::from(policy.no_list_freight_multiple)
                * i128::from(facts.pieces_affected)
        }
        Rule::FragileBreakage => percent_of(facts.consignment_value_fen, policy.fragile_pay_percent),
    };
    i64::try_from(cap).unwrap_or(i64::MAX)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn the_amount_never_exceeds_the_applicable_cap_nor_the_loss(raw in valid_facts()) {
        let policy = policy();
        let facts = Facts::parse(raw, "").expect("the generator makes valid facts");
        match quote(&facts, &policy) {
            Ok(quote) => {
                prop_assert!(quote.amount_fen >= 0);
                prop_assert!(quote.amount_fen <= cap(&facts, &quote, &policy), "{quote:?} over the cap for {facts:?}");
                if !facts.fragile {
                    prop_assert!(quote.amount_fen <= facts.loss_market_value_fen, "{quote:?} pays more than was lost");
                }
                prop_assert!(!quote.reasons.is_empty());
            }
            Err(QuoteError::MissingDocuments(missing)) => {
                prop_assert!(facts.accident.involves_insurer());
                prop_assert!(!missing.is_empty());
            }
            Err(QuoteError::Invalid(violations)) => {
                // Only the list rule can still find a number missing.
                prop_assert_eq!(violations.fields().collect::<Vec<_>>(), ["shipping_list_value_fen"]);
            }
        }
    }

    #[test]
    fn more_damage_never_pays_less(raw in valid_facts(), more_loss in 0..=1_000_000i64, more_pieces in 0..=50i32) {
        let policy = policy();
        let facts = Facts::parse(raw.clone(), "").expect("valid");
        let worse = UncheckedFacts {
            loss_market_value_fen: raw.loss_market_value_fen + more_loss,
            pieces_affected: (raw.pieces_affected + more_pieces).min(raw.pieces),
            consignment_value_fen: if raw.fragile { raw.consignment_value_fen + 2 * more_loss } else { 0 },
            ..raw
        };
        let worse = Facts::parse(worse, "").expect("still valid");
        // Fragile goods are paid on the consignment's value; keep it fixed to compare breakage alone.
        let worse = if facts.fragile { Facts { consignment_value_fen: facts.consignment_value_fen, ..worse } } else { worse };
        if let (Ok(before), Ok(after)) = (quote(&facts, &policy), quote(&worse, &policy)) {
            prop_assert!(after.amount_fen >= before.amount_fen, "{before:?} then {after:?}");
        }
    }
}
