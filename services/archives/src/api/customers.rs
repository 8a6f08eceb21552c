//! The customers room (客户档案, `003 第18–19条`, 客户分级): opening a customer file, reading it with
//! its cases under an approved access request, scoring a customer on the scoring sheet, and the
//! grade intake serves them by.

use kefu_kit::{
    caller::Caller,
    config::ServiceName,
    error::{FieldViolations, check_request_id, idempotency_key},
    outbox,
    time::to_timestamp,
    trace::TraceContext,
};
use kefu_proto::{
    archives::v1 as pb,
    events::v1::{CustomerGraded, event::Payload},
    types::v1::CasePayment,
};

use super::{
    ArchivesApi, CUSTOMERS, case_file_to_proto, case_files::unseal, classification_from_proto, classification_to_proto,
    customer_id, invalid, is_code,
};
use crate::{
    access,
    audit::Record,
    custody,
    error::{Error, db},
    policy::{Classification, Score},
    store::{
        self, customer,
        customers::{NewCustomerFile, Opened},
    },
};

fn grade_to_proto(row: &customer::Model) -> pb::CustomerGrade {
    pb::CustomerGrade {
        customer: format!("{CUSTOMERS}{}", row.customer_id),
        grade: row.grade.clone(),
        total: row.total,
        score: row.score_time.map(|_| pb::CustomerScore {
            profit_contribution: row.profit_contribution,
            order_amount: row.order_amount,
            cooperation_years: row.cooperation_years,
            credit: row.credit,
            prospects: row.prospects,
        }),
        scored_by: row.scored_by.clone(),
        score_time: row.score_time.map(to_timestamp),
    }
}

/// A customer's file without its cases; contacts masked unless `personal_data`.
fn customer_to_proto(row: &customer::Model, personal_data: bool) -> pb::CustomerFile {
    let phones = row.phone_list();
    let (contact_name, phones) = if personal_data {
        (row.contact_name.clone(), phones)
    } else {
        (access::mask_name(&row.contact_name), phones.iter().map(|phone| access::mask_phone(phone)).collect())
    };
    pb::CustomerFile {
        name: format!("{CUSTOMERS}{}", row.customer_id),
        contact_name,
        phones,
        company: row.company.clone(),
        customer_type: row.customer_type.clone(),
        classification: classification_to_proto(row.level()) as i32,
        grade: Some(grade_to_proto(row)),
        cases: Vec::new(),
        payments: Vec::new(),
        create_time: Some(to_timestamp(row.create_time)),
    }
}

/// The scoring sheet's marks as the request gives them.
fn score_from_proto(score: pb::CustomerScore) -> Score {
    Score {
        profit_contribution: score.profit_contribution,
        order_amount: score.order_amount,
        cooperation_years: score.cooperation_years,
        credit: score.credit,
        prospects: score.prospects,
    }
}

impl ArchivesApi {
    /// Opens a customer file and files the customer's earlier cases under it, by phone.
    pub(super) async fn create_customer_file(
        &self,
        caller: &Caller,
        request: pb::CreateCustomerFileRequest,
    ) -> Result<pb::CustomerFile, Error> {
        custody::customer_file_keepers_only(caller)?;
        let asked = request.customer_file.unwrap_or_default();
        let mut violations = FieldViolations::new();
        if !is_code(&request.customer_id) {
            violations.add("customer_id", "required: the customer number (letters, digits, '-', '_', at most 64)");
        }
        if asked.contact_name.trim().is_empty() || asked.contact_name.chars().count() > 128 {
            violations.add("customer_file.contact_name", "required, at most 128 characters");
        }
        let phones: Vec<String> = asked.phones.iter().map(|phone| phone.trim().to_owned()).collect();
        if phones.is_empty() {
            violations.add("customer_file.phones", "at least one phone");
        }
        for (index, phone) in phones.iter().enumerate() {
            let digits = phone.chars().filter(char::is_ascii_digit).count();
            if !(5..=20).contains(&digits) || !phone.chars().all(|c| c.is_ascii_digit() || "+- ".contains(c)) {
                violations.add(format!("customer_file.phones[{index}]"), "5 to 20 digits, with '+', '-' or spaces");
            }
            if phones[..index].contains(phone) {
                violations.add(format!("customer_file.phones[{index}]"), "given twice");
            }
        }
        if asked.company.chars().count() > 128 || asked.customer_type.chars().count() > 32 {
            violations.add("customer_file.company", "at most 128 characters (customer_type at most 32)");
        }
        let level = match asked.classification {
            0 => Some(Classification::Ordinary),
            value => classification_from_proto(value),
        };
        if level.is_none() {
            violations.add("customer_file.classification", "ORDINARY, CONFIDENTIAL or TOP_SECRET");
        }
        check_request_id(&mut violations, "request_id", &request.request_id);
        violations.into_result()?;
        let level = level.unwrap_or(Classification::Ordinary);
        let request_id = idempotency_key(request.request_id.trim()).map(str::to_owned);
        let has_a_file = || Error::AlreadyExists(format!("customers/{} has a file already", request.customer_id));
        let tx = self.begin().await?;
        if let Some(existing) =
            store::customers::customer(&tx, &request.customer_id).await.map_err(db("reading a customer file"))?
        {
            if request_id.is_some() && existing.request_id == request_id {
                // The creator gave these details; they see them again.
                return Ok(customer_to_proto(&existing, true));
            }
            return Err(has_a_file());
        }
        for (index, phone) in phones.iter().enumerate() {
            if store::customers::customer_by_phone(&tx, phone).await.map_err(db("reading customer phones"))?.is_some() {
                let message = format!("customer_file.phones[{index}] belongs to another customer's file");
                return Err(Error::AlreadyExists(message));
            }
        }
        let now = self.now();
        let new = NewCustomerFile {
            customer_id: request.customer_id.clone(),
            request_id,
            contact_name: asked.contact_name.trim().to_owned(),
            phones: phones.clone(),
            company: asked.company.trim().to_owned(),
            customer_type: asked.customer_type.trim().to_owned(),
            classification: level,
            create_time: now,
        };
        match store::customers::open_customer_file(&tx, new).await.map_err(db("recording a customer file"))? {
            Opened::Opened => {}
            Opened::CustomerTaken => return Err(has_a_file()),
            Opened::PhoneTaken => return Err(Error::Conflict),
        }
        // The customer's earlier cases are filed under the new file.
        let linked = store::case_files::file_under_customer(&tx, &request.customer_id, &phones)
            .await
            .map_err(db("filing a customer's cases"))?;
        let name = format!("{CUSTOMERS}{}", request.customer_id);
        let detail = format!("{} phone(s); {} earlier case file(s) filed under it", phones.len(), linked);
        let record = Record { actor: &caller.user, action: "customer_filed", subject: &name, detail };
        self.audit(&tx, record, now, "auditing a customer file").await?;
        let row = store::customers::customer(&tx, &request.customer_id).await.map_err(db("reading a customer file"))?;
        tx.commit().await.map_err(db("recording a customer file"))?;
        let row = row.ok_or(Error::Conflict)?;
        Ok(customer_to_proto(&row, true))
    }

    /// Reads a customer file with its cases and payments; a refusal is audited in a transaction of its own.
    pub(super) async fn read_customer_file(
        &self,
        caller: &Caller,
        request: pb::ReadCustomerFileRequest,
    ) -> Result<pb::CustomerFile, Error> {
        let subject = request.name.clone();
        self.refusal_audited(caller, &subject, self.read_customer_file_with_cases(caller, request)).await
    }

    async fn read_customer_file_with_cases(
        &self,
        caller: &Caller,
        request: pb::ReadCustomerFileRequest,
    ) -> Result<pb::CustomerFile, Error> {
        let customer_id = customer_id(&request.name, "name")?;
        let name = format!("{CUSTOMERS}{customer_id}");
        let tx = self.begin().await?;
        let row = self.visible_customer(&tx, &customer_id, caller).await?;
        // Customer information is the company's secret (第18–19条): every read needs permission.
        let access = self.approved_access(&tx, caller, &name, &request.access_request).await?;
        self.register_read(&tx, caller, &name, &access).await?;
        let clearance = Classification::clearance_of(caller);
        let files = store::case_files::files_of_customer(&tx, &customer_id, clearance.level())
            .await
            .map_err(db("reading a customer's cases"))?;
        tx.commit().await.map_err(db("recording a read"))?;
        let now = self.now();
        let payments: Vec<CasePayment> = files
            .iter()
            .filter(|file| file.destroy_time.is_none())
            .filter_map(|file| unseal(file).ok())
            .flat_map(|story| story.payments)
            .collect();
        Ok(pb::CustomerFile {
            cases: files.iter().map(|file| case_file_to_proto(file, now)).collect(),
            payments,
            ..customer_to_proto(&row, access.personal_data)
        })
    }

    /// Scores a customer on the scoring sheet and tells intake the grade, which orders their next cases.
    pub(super) async fn score_customer(
        &self,
        caller: &Caller,
        request: pb::ScoreCustomerRequest,
    ) -> Result<pb::CustomerGrade, Error> {
        custody::graders_only(caller)?;
        let customer_id = customer_id(&request.customer, "customer")?;
        let score = score_from_proto(request.score.unwrap_or_default());
        let mut violations = FieldViolations::new();
        for (part, max) in score.out_of_range() {
            violations.add(format!("score.{part}"), format!("from 0 to {max} on the scoring sheet"));
        }
        violations.into_result()?;
        let (total, grade) = (score.total(), score.grade());
        let tx = self.begin().await?;
        let row = self.visible_customer(&tx, &customer_id, caller).await?;
        let now = self.now();
        store::customers::record_score(&tx, row.seq, &score, &caller.user, now)
            .await
            .map_err(db("scoring a customer"))?;
        let was = if row.grade.is_empty() { "none" } else { &row.grade };
        let detail = format!("{total} points, grade {grade} (was {was})");
        let record = Record { actor: &caller.user, action: "scored", subject: &request.customer, detail };
        self.audit(&tx, record, now, "auditing a score").await?;
        let row = store::customers::customer(&tx, &customer_id)
            .await
            .map_err(db("reading a customer file"))?
            .ok_or(Error::Conflict)?;
        // Intake shortens the deadlines of the customer's next cases by their grade (A first).
        let phones = store::customers::phones_of(&tx, &customer_id).await.map_err(db("reading customer phones"))?;
        let graded = CustomerGraded { phones, grade: grade.to_owned(), score_time: Some(to_timestamp(now)) };
        let event =
            outbox::new_event(crate::NAME, now, &TraceContext::new_root(), caller, Payload::CustomerGraded(graded));
        outbox::enqueue(&tx, ServiceName::Intake, &event, now).await.map_err(db("telling intake the grade"))?;
        tx.commit().await.map_err(db("scoring a customer"))?;
        self.context.relay.wake();
        Ok(grade_to_proto(&row))
    }

    /// A customer's grade, by customer file or by phone, if the caller's clearance covers the file.
    pub(super) async fn get_customer_grade(
        &self,
        caller: &Caller,
        request: pb::GetCustomerGradeRequest,
    ) -> Result<pb::CustomerGrade, Error> {
        let conn = &self.context.db;
        let row = match request.key {
            Some(pb::get_customer_grade_request::Key::Customer(name)) => {
                let id = customer_id(&name, "customer")?;
                self.visible_customer(conn, &id, caller).await?
            }
            Some(pb::get_customer_grade_request::Key::Phone(phone)) => {
                let no_file = || Error::NotFound("no customer file has this phone".into());
                let row = store::customers::customer_by_phone(conn, phone.trim())
                    .await
                    .map_err(db("reading customer phones"))?
                    .ok_or_else(no_file)?;
                if !Classification::clearance_of(caller).covers(row.level()) {
                    return Err(no_file());
                }
                row
            }
            None => return Err(invalid("customer", "give customer or phone")),
        };
        Ok(grade_to_proto(&row))
    }
}
