//! Follow-up visits (回访): planned and recorded on the case's write path (a customer not
//! satisfied reopens it), signed by a supervisor, listed. The rules are in `crate::complaint`
//! (planning, recording) and `crate::visits` (the scale, the notice a face-to-face visit needs).

use kefu_kit::{
    error::{self, FieldViolations},
    paging,
    time::to_micros,
};
use kefu_proto::intake::v1 as pb;
use tonic::{Request, Response};

use super::{IntakeApi, Reply, case_number, check_text, child_name, optional_case_number, parts};
use crate::{
    complaint::Command,
    convert::{satisfaction, visit_method, visit_to_proto},
    error::{Error, db},
    visits,
};

impl IntakeApi {
    pub(super) async fn plan_visit(&self, request: Request<pb::PlanVisitRequest>) -> Reply<pb::Visit> {
        let (caller, trace, request) = parts(request);
        let visit = request.visit.unwrap_or_default();
        let mut violations = FieldViolations::new();
        let case_number = case_number(&request.parent, "parent")
            .map_err(|_| violations.add("parent", "expected complaints/{case_number}"))
            .ok();
        error::check_request_id(&mut violations, "request_id", &request.request_id);
        let method = visit_method(visit.method);
        if method.is_none() {
            violations.add("visit.method", "VISIT_PHONE, VISIT_EMAIL, VISIT_IN_PERSON or VISIT_INSTANT_MESSAGE");
        }
        let plan_time = visit.plan_time.as_ref().and_then(kefu_kit::time::from_timestamp).map(to_micros);
        if plan_time.is_none() {
            violations.add("visit.plan_time", "required: when the visit is to be made");
        }
        check_text(&mut violations, "visit.purpose", &visit.purpose, true);
        if visit.visitor.chars().count() > 128 {
            violations.add("visit.visitor", "at most 128 characters");
        }
        let (Some(case_number), Some(method), Some(plan_time)) = (case_number, method, plan_time) else {
            return Err(violations.into_status());
        };
        violations.into_result()?;
        // A visit's plan is idempotent by its own key, kept on the visit.
        let key = error::idempotency_key(request.request_id.trim()).map(|id| format!("{case_number}/{id}"));
        if let Some(key) = &key
            && let Some(planned) = visits::by_request_id(&self.context.db, key).await.map_err(db("reading visits"))?
        {
            return Ok(Response::new(visit_to_proto(planned)));
        }
        let plan = visits::NewVisit {
            request_id: key.clone(),
            method: method.into(),
            visitor: visit.visitor.trim().into(),
            plan_time,
            purpose: visit.purpose.trim().into(),
        };
        self.keeper.act(&self.context, case_number, None, &caller, &trace, Command::PlanVisit { visit: plan }).await?;
        let planned = match &key {
            Some(key) => visits::by_request_id(&self.context.db, key).await,
            None => visits::list(&self.context.db, Some(case_number), 500, None)
                .await
                .map(|(rows, _)| rows.into_iter().last()),
        }
        .map_err(db("reading visits"))?
        .ok_or_else(|| Error::NotFound(format!("the visit planned for {} is missing", request.parent)))?;
        Ok(Response::new(visit_to_proto(planned)))
    }

    pub(super) async fn record_visit(&self, request: Request<pb::RecordVisitRequest>) -> Reply<pb::Visit> {
        let (caller, trace, request) = parts(request);
        let mut violations = FieldViolations::new();
        let name = child_name(&request.name, "visits").map_err(|more| violations.extend(more)).ok();
        let service = satisfaction(request.service_satisfaction);
        if service.is_none() {
            violations.add("service_satisfaction", "VERY_GOOD, GOOD, FAIR, POOR or VERY_POOR (好/较好/一般/差/很差)");
        }
        let product = satisfaction(request.product_satisfaction);
        if product.is_none() {
            violations.add("product_satisfaction", "VERY_GOOD, GOOD, FAIR, POOR or VERY_POOR (好/较好/一般/差/很差)");
        }
        check_text(&mut violations, "opinions", &request.opinions, false);
        check_text(&mut violations, "counter_measures", &request.counter_measures, false);
        let (Some((case_number, seq)), Some(service), Some(product)) = (name, service, product) else {
            return Err(violations.into_status());
        };
        violations.into_result()?;
        let visit = visits::get(&self.context.db, case_number, seq)
            .await
            .map_err(db("reading a visit"))?
            .ok_or_else(|| Error::NotFound(format!("no visit named {}", request.name)))?;
        let command = Command::RecordVisit {
            visit: Box::new(visit),
            service,
            product,
            opinions: request.opinions.trim().into(),
            counter_measures: request.counter_measures.trim().into(),
        };
        self.keeper.act(&self.context, case_number, None, &caller, &trace, command).await?;
        let recorded = visits::get(&self.context.db, case_number, seq)
            .await
            .map_err(db("reading a visit"))?
            .ok_or_else(|| Error::NotFound(format!("no visit named {}", request.name)))?;
        Ok(Response::new(visit_to_proto(recorded)))
    }

    pub(super) async fn sign_visit(&self, request: Request<pb::SignVisitRequest>) -> Reply<pb::Visit> {
        let (caller, _, request) = parts(request);
        let (case_number, seq) = child_name(&request.name, "visits").map_err(Error::from)?;
        if !caller.is_supervisor() {
            return Err(Error::NotAllowed("a visit record is signed by a supervisor (role supervisor)".into()).into());
        }
        let visit = visits::get(&self.context.db, case_number, seq)
            .await
            .map_err(db("reading a visit"))?
            .ok_or_else(|| Error::NotFound(format!("no visit named {}", request.name)))?;
        if visit.state != visits::RECORDED {
            let why = format!("{} is {}: only a recorded visit is signed", request.name, visit.state);
            return Err(Error::Precondition(why).into());
        }
        let signed = visits::Model {
            state: visits::SIGNED.into(),
            signed_by: caller.user.clone(),
            sign_time: Some(to_micros(self.context.clock.now())),
            ..visit
        };
        if !visits::update(&self.context.db, &signed, visits::RECORDED).await.map_err(db("signing a visit"))? {
            return Err(Error::Failure(kefu_kit::error::Failure::Conflict { what: request.name }).into());
        }
        Ok(Response::new(visit_to_proto(signed)))
    }

    pub(super) async fn list_visits(&self, request: Request<pb::ListVisitsRequest>) -> Reply<pb::ListVisitsResponse> {
        let request = request.into_inner();
        let page_size = paging::page_size(request.page_size)?;
        let case_number = optional_case_number(&request.parent, "parent")?;
        let after = paging::decode_token(&request.page_token, &request.parent)?;
        let (rows, next) =
            visits::list(&self.context.db, case_number, page_size, after).await.map_err(db("listing visits"))?;
        Ok(Response::new(pb::ListVisitsResponse {
            visits: rows.into_iter().map(visit_to_proto).collect(),
            next_page_token: next.map(|seq| paging::encode_token(seq, &request.parent)).unwrap_or_default(),
        }))
    }
}
