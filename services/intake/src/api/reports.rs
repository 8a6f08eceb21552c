//! The service center's reports: the weekly complaint and visit summaries, the monthly count of
//! refused and mis-delivered cargo. The counting is in `crate::reports`.

use kefu_kit::report::{Month, Week};
use kefu_proto::intake::v1 as pb;
use tonic::{Request, Response};

use super::{IntakeApi, Reply};
use crate::{
    error::{Error, db},
    reports,
};

impl IntakeApi {
    pub(super) async fn get_complaint_summary(
        &self,
        request: Request<pb::GetComplaintSummaryRequest>,
    ) -> Reply<pb::ComplaintSummary> {
        let week = Week::parse(&request.into_inner().week, self.context.time_zone).map_err(Error::from)?;
        let summary = reports::complaint_summary(&self.context.db, &week.label, week.start, week.end)
            .await
            .map_err(db("summarizing the week"))?;
        Ok(Response::new(summary))
    }

    pub(super) async fn get_visit_summary(
        &self,
        request: Request<pb::GetVisitSummaryRequest>,
    ) -> Reply<pb::VisitSummary> {
        let week = Week::parse(&request.into_inner().week, self.context.time_zone).map_err(Error::from)?;
        let summary = reports::visit_summary(&self.context.db, &week.label, week.start, week.end)
            .await
            .map_err(db("summarizing the week's visits"))?;
        Ok(Response::new(summary))
    }

    pub(super) async fn get_cargo_exception_report(
        &self,
        request: Request<pb::GetCargoExceptionReportRequest>,
    ) -> Reply<pb::CargoExceptionReport> {
        let month = Month::parse(&request.into_inner().month, self.context.time_zone).map_err(Error::from)?;
        let report = reports::cargo_exceptions(&self.context.db, &month.label, month.start, month.end)
            .await
            .map_err(db("counting refused and mis-delivered cargo"))?;
        Ok(Response::new(report))
    }
}
