//! Conversions between the claims API's messages and the domain's types. Nothing else.

use kefu_proto::claims::v1 as pb;

use crate::compensation::{AccidentKind, Facts, Packaging, Quote, UncheckedFacts};

pub fn unchecked_facts(request: &pb::QuoteCompensationRequest) -> UncheckedFacts {
    let packaging = match pb::Packaging::try_from(request.packaging) {
        Ok(pb::Packaging::Intact) => Some(Packaging::Intact),
        Ok(pb::Packaging::Secondary) => Some(Packaging::Secondary),
        Ok(pb::Packaging::Simple) => Some(Packaging::Simple),
        Ok(pb::Packaging::Unspecified) | Err(_) => None,
    };
    let accident = match pb::AccidentKind::try_from(request.accident) {
        Ok(pb::AccidentKind::TransitDamage) => Some(AccidentKind::TransitDamage),
        Ok(pb::AccidentKind::Loss) => Some(AccidentKind::Loss),
        Ok(pb::AccidentKind::RoughHandling) => Some(AccidentKind::RoughHandling),
        Ok(pb::AccidentKind::TrafficAccident) => Some(AccidentKind::TrafficAccident),
        Ok(pb::AccidentKind::Theft) => Some(AccidentKind::Theft),
        Ok(pb::AccidentKind::Unspecified) | Err(_) => None,
    };
    UncheckedFacts {
        declared_value_fen: request.declared_value_fen,
        insured: request.insured,
        packaging,
        fragile: request.fragile,
        shipping_list: request.shipping_list,
        shipping_list_value_fen: request.shipping_list_value_fen,
        invoice: request.invoice,
        loss_market_value_fen: request.loss_market_value_fen,
        piece_freight_fen: request.piece_freight_fen,
        pieces: request.pieces,
        pieces_affected: request.pieces_affected,
        consignment_value_fen: request.consignment_value_fen,
        accident,
    }
}

pub fn facts_to_proto(facts: &Facts) -> pb::QuoteCompensationRequest {
    let packaging = match facts.packaging {
        Packaging::Intact => pb::Packaging::Intact,
        Packaging::Secondary => pb::Packaging::Secondary,
        Packaging::Simple => pb::Packaging::Simple,
    };
    let accident = match facts.accident {
        AccidentKind::TransitDamage => pb::AccidentKind::TransitDamage,
        AccidentKind::Loss => pb::AccidentKind::Loss,
        AccidentKind::RoughHandling => pb::AccidentKind::RoughHandling,
        AccidentKind::TrafficAccident => pb::AccidentKind::TrafficAccident,
        AccidentKind::Theft => pb::AccidentKind::Theft,
    };
    pb::QuoteCompensationRequest {
        declared_value_fen: facts.declared_value_fen,
        insured: facts.insured,
        packaging: packaging as i32,
        fragile: facts.fragile,
        shipping_list: facts.shipping_list,
        shipping_list_value_fen: facts.shipping_list_value_fen,
        invoice: facts.invoice,
        loss_market_value_fen: facts.loss_market_value_fen,
        piece_freight_fen: facts.piece_freight_fen,
        pieces: facts.pieces,
        pieces_affected: facts.pieces_affected,
        consignment_value_fen: facts.consignment_value_fen,
        accident: accident as i32,
    }
}

pub fn quote_to_proto(quote: &Quote) -> pb::CompensationQuote {
    pb::CompensationQuote {
        amount_fen: quote.amount_fen,
        rule: quote.rule.as_str().into(),
        reasons: quote.reasons.clone(),
    }
}
