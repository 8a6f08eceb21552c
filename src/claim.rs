//! `kefu claim quote|get|approve`: the claims department's (理赔部) daily questions from the command
//! line, through the gateway ([`crate::complaint::Session`]). Amounts are typed and shown in yuan;
//! the API carries fen.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::{
    client::{Failure, GatewayArgs},
    complaint::{Output, Printer, Session, request_id},
};

#[derive(Debug, Args)]
pub struct ClaimArgs {
    #[command(subcommand)]
    command: ClaimCommand,
    /// How to print what comes back.
    #[arg(long, short, value_enum, global = true, default_value_t)]
    output: Output,
    #[command(flatten)]
    gateway: GatewayArgs,
}

/// An amount typed in yuan (`1000`, `1000.50`), in fen.
fn yuan(text: &str) -> Result<i64, String> {
    kefu_kit::money::parse_yuan(text).ok_or_else(|| format!("{text:?} is not an amount in yuan, e.g. 1000 or 1000.50"))
}

#[derive(Debug, Subcommand)]
enum ClaimCommand {
    /// What the compensation standards (001 §10) give for these facts, which rule and why, step by
    /// step; no claim needs to exist (anyone on staff may ask).
    ///
    /// Example:  kefu claim quote --declared 1000 --shipping-list --market-value 800
    ///             --pieces 4 --pieces-affected 1 --accident transit_damage
    Quote {
        /// The value declared on the waybill, in yuan (0: none declared).
        #[arg(long, value_parser = yuan, default_value = "0")]
        declared: i64,
        /// Insured transport (保值运输).
        #[arg(long)]
        insured: bool,
        /// intact, secondary or simple.
        #[arg(long, default_value = "intact")]
        packaging: String,
        /// Glass, ceramics.
        #[arg(long)]
        fragile: bool,
        /// The shipper provides the shipping list (发货清单).
        #[arg(long)]
        shipping_list: bool,
        /// The shipping list's value, in yuan.
        #[arg(long, value_parser = yuan, default_value = "0")]
        shipping_list_value: i64,
        /// The shipper has the invoice.
        #[arg(long)]
        invoice: bool,
        /// The market value of what was lost or damaged (the damaged part only), in yuan.
        #[arg(long, value_parser = yuan)]
        market_value: i64,
        /// Freight of one piece, in yuan.
        #[arg(long, value_parser = yuan, default_value = "0")]
        piece_freight: i64,
        /// Pieces in the consignment.
        #[arg(long, default_value_t = 1)]
        pieces: i32,
        /// Pieces lost or damaged.
        #[arg(long, default_value_t = 1)]
        pieces_affected: i32,
        /// The whole consignment's value, in yuan (for fragile goods).
        #[arg(long, value_parser = yuan, default_value = "0")]
        consignment_value: i64,
        /// transit_damage, loss, rough_handling, traffic_accident or theft.
        #[arg(long)]
        accident: String,
    },
    /// Show a claim: its facts, the quote and why, the offer, the approval.
    ///
    /// Example:  kefu claim get 20261122-7K3M9Q
    Get {
        /// The case number, or `claims/<case number>`.
        case: String,
    },
    /// Approve a claim's payout: a supervisor within the authority limit, above it the managers the
    /// rules name (others are refused).
    ///
    /// Example:  kefu claim approve 20261122-7K3M9Q --reason "核实无误，按标准赔付"
    Approve {
        case: String,
        /// Why; required.
        #[arg(long)]
        reason: String,
        /// An idempotency key: the same key never approves twice.
        #[arg(long)]
        request_id: Option<String>,
    },
}

/// A claim's name from a case number or a name.
fn name_of(case: &str) -> String {
    let case = case.trim();
    if case.starts_with("claims/") { case.to_owned() } else { format!("claims/{case}") }
}

pub async fn run(args: ClaimArgs, time_zone: chrono_tz::Tz) -> Result<(), Failure> {
    let printer = Printer { output: args.output, time_zone };
    let session = Session::new(&args.gateway)?;
    match args.command {
        ClaimCommand::Quote {
            declared,
            insured,
            packaging,
            fragile,
            shipping_list,
            shipping_list_value,
            invoice,
            market_value,
            piece_freight,
            pieces,
            pieces_affected,
            consignment_value,
            accident,
        } => {
            let request = json!({
                "declared_value_fen": declared,
                "insured": insured,
                "packaging": packaging.to_uppercase(),
                "fragile": fragile,
                "shipping_list": shipping_list,
                "shipping_list_value_fen": shipping_list_value,
                "invoice": invoice,
                "loss_market_value_fen": market_value,
                "piece_freight_fen": piece_freight,
                "pieces": pieces,
                "pieces_affected": pieces_affected,
                "consignment_value_fen": consignment_value,
                "accident": accident.to_uppercase(),
            });
            let quote = session.call("kefu.claims.v1.Claims/QuoteCompensation", request, None).await?;
            print_quote(&printer, &quote);
        }
        ClaimCommand::Get { case } => {
            printer
                .fields(&session.call("kefu.claims.v1.Claims/GetClaim", json!({"name": name_of(&case)}), None).await?);
        }
        ClaimCommand::Approve { case, reason, request_id: id } => {
            let id = request_id(id);
            let request = json!({"name": name_of(&case), "reason": reason, "request_id": id});
            printer.fields(&session.call("kefu.claims.v1.Claims/ApproveClaim", request, Some(&id)).await?);
        }
    }
    Ok(())
}

/// The amount, the rule, and each reason on a line of its own.
fn print_quote(printer: &Printer, quote: &Value) {
    if let Output::Table = printer.output {
        let fen = quote["amount_fen"].as_str().and_then(|fen| fen.parse::<i64>().ok()).unwrap_or(0);
        crate::say!("amount  {}", kefu_kit::money::yuan(fen));
        crate::say!("rule    {}", quote["rule"].as_str().unwrap_or_default());
        for reason in quote["reasons"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            crate::say!("  - {reason}");
        }
    } else {
        printer.fields(quote);
    }
}
