//! `kefu report`: a department's monthly report, fetched from a running gateway and printed as CSV
//! for a spreadsheet.

use clap::{Args, ValueEnum};
use kefu_proto::{
    claims::v1::{GetMonthlyClaimsReportRequest, claims_client::ClaimsClient},
    inspection::v1::{GetMonthlyReportRequest, inspection_client::InspectionClient},
    settlement::v1::{GetMonthlySummaryRequest, settlement_client::SettlementClient},
};

use crate::client::{Failure, GatewayArgs, explain};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportKind {
    /// 理赔报表及事故原因分析: claims approved in the month by cause, branch, responsible party, insurer.
    Claims,
    /// 监察奖罚明细报表: fines, warnings, criticism, incidents and award vetoes by person, department, branch.
    Inspection,
    /// 结算月报: money moved in the month by kind, COD outstanding and late, every account's balance at its end.
    Settlement,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Which report.
    #[arg(value_enum)]
    kind: ReportKind,
    /// The month, in the company's time zone: 2026-11.
    #[arg(long)]
    month: String,
    #[command(flatten)]
    gateway: GatewayArgs,
}

/// Prints the report's CSV on standard output.
pub async fn run(args: ReportArgs) -> Result<(), Failure> {
    let channel = args.gateway.connect().await?;
    let csv = match args.kind {
        ReportKind::Claims => {
            let request = GetMonthlyClaimsReportRequest { month: args.month };
            ClaimsClient::new(channel)
                .get_monthly_claims_report(request)
                .await
                .map_err(|status| explain("the claims report", &status))?
                .into_inner()
                .csv
        }
        ReportKind::Inspection => {
            let request = GetMonthlyReportRequest { month: args.month };
            InspectionClient::new(channel)
                .get_monthly_report(request)
                .await
                .map_err(|status| explain("the inspection report", &status))?
                .into_inner()
                .csv
        }
        ReportKind::Settlement => {
            let request = GetMonthlySummaryRequest { month: args.month };
            SettlementClient::new(channel)
                .get_monthly_summary(request)
                .await
                .map_err(|status| explain("the settlement summary", &status))?
                .into_inner()
                .csv
        }
    };
    print!("{csv}");
    Ok(())
}
