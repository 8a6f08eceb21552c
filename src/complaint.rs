//! `kefu complaint …` and `kefu request create`: the service center's daily operations as typed
//! commands, through the gateway like every caller ([`crate::call::Api`]). Each prints a table for
//! a person (times in the company's time zone), or `--output json` (protobuf's JSON, as
//! `kefu call` prints it) or `--output csv` (a header, then a row per case) for a script.

use clap::{Args, Subcommand, ValueEnum};
use kefu_kit::report::csv_field;
use serde_json::{Value, json};

use crate::{
    call::{Api, to_value},
    client::{Failure, GatewayArgs},
};

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Output {
    /// Aligned columns for a person; times in the company's time zone.
    #[default]
    Table,
    /// Protobuf's JSON mapping, one object (or one a line, for a list).
    Json,
    /// A header line, then one line per case; times in RFC 3339 (UTC).
    Csv,
}

#[derive(Debug, Args)]
pub struct ComplaintArgs {
    #[command(subcommand)]
    command: ComplaintCommand,
    /// How to print what comes back.
    #[arg(long, short, value_enum, global = true, default_value_t)]
    output: Output,
    #[command(flatten)]
    gateway: GatewayArgs,
}

/// What a complaint is about and who to answer, as the acceptance form 《投诉受理单》 asks.
#[derive(Debug, Args)]
struct Form {
    /// A category code from the routing policy: late_delivery, mis_sort, cargo_damage, staff_attitude, …
    #[arg(long)]
    category: String,
    /// The waybill (运单号) it is about.
    #[arg(long)]
    waybill: String,
    /// What the customer says happened.
    #[arg(long)]
    description: String,
    /// What the customer asks for.
    #[arg(long, default_value = "")]
    customer_request: String,
    /// Whom to answer.
    #[arg(long)]
    contact_name: String,
    /// The number to call back.
    #[arg(long)]
    phone: String,
    /// The branch office (分公司/网点) that reported it.
    #[arg(long)]
    branch: String,
    /// How it reached the service center: phone, letter, in_person or online.
    #[arg(long, default_value = "phone")]
    channel: String,
    /// An idempotency key: the same key never files twice (a new one is made if absent, and
    /// printed should the call fail, to retry with).
    #[arg(long)]
    request_id: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ComplaintCommand {
    /// File a complaint: it is given a case number and a deadline, and routed to its owner.
    ///
    /// Example:  kefu complaint create --category late_delivery --waybill YT1234567890
    ///             --description "三天未到" --contact-name 王先生 --phone 13800000000 --branch SH01
    Create {
        #[command(flatten)]
        form: Form,
        /// general (default), serious or critical: serious and critical outcomes need a manager's approval.
        #[arg(long)]
        severity: Option<String>,
    },
    /// Show one complaint: its owner, state, deadline and outcome.
    ///
    /// Example:  kefu complaint get 20261122-7K3M9Q
    Get {
        /// The case number, or `complaints/<case number>`.
        case: String,
    },
    /// List complaints, newest first.
    ///
    /// Example:  kefu complaint list --state routed --branch SH01 --output csv
    List {
        /// Only this category.
        #[arg(long)]
        category: Option<String>,
        /// Only this branch office.
        #[arg(long)]
        branch: Option<String>,
        /// Only this owner: intake, inspection, claims, settlement or archives.
        #[arg(long)]
        owner: Option<String>,
        /// Only this state: routed, accepted, resolved, closed, awaiting_approval, …
        #[arg(long)]
        state: Option<String>,
        /// Only about this waybill.
        #[arg(long)]
        waybill: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show what was done on a complaint, step by step.
    Timeline {
        /// The case number, or `complaints/<case number>`.
        case: String,
    },
    /// Record the outcome of a complaint the service center handles itself.
    Resolve {
        case: String,
        /// What the customer is told.
        #[arg(long)]
        resolution: String,
        /// The cause found (查明原因), where the rules ask for one.
        #[arg(long, default_value = "")]
        cause: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Reopen a resolved complaint: the customer is not satisfied.
    Reopen {
        case: String,
        /// Why it is reopened.
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Close a complaint once the customer was told: its file goes to archives.
    Close {
        case: String,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        request_id: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    #[command(subcommand)]
    command: RequestCommand,
    #[arg(long, short, value_enum, global = true, default_value_t)]
    output: Output,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Debug, Subcommand)]
enum RequestCommand {
    /// Record an inquiry (查询), consultation (咨询), suggestion (建议) or change request (更改),
    /// with a case number and a deadline like a complaint.
    ///
    /// Example:  kefu request create --kind inquiry --category late_delivery --waybill YT1
    ///             --description "货到哪了" --contact-name 李女士 --phone 13900000000 --branch SH01
    Create {
        /// inquiry, consultation, suggestion or change_request.
        #[arg(long)]
        kind: String,
        #[command(flatten)]
        form: Form,
    },
}

/// The complaint's name from a case number or a name.
fn name_of(case: &str) -> String {
    let case = case.trim();
    if case.starts_with("complaints/") { case.to_owned() } else { format!("complaints/{case}") }
}

pub(crate) fn request_id(given: Option<String>) -> String {
    given.unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

fn complaint_of(form: &Form) -> Value {
    json!({
        "category": form.category,
        "waybill_number": form.waybill,
        "description": form.description,
        "customer_request": form.customer_request,
        "contact": {"name": form.contact_name, "phone": form.phone},
        "branch": form.branch,
        "channel": form.channel.to_uppercase(),
    })
}

pub async fn run(args: ComplaintArgs, time_zone: chrono_tz::Tz) -> Result<(), Failure> {
    let printer = Printer { output: args.output, time_zone };
    let session = Session::new(&args.gateway)?;
    match args.command {
        ComplaintCommand::Create { form, severity } => {
            let id = request_id(form.request_id.clone());
            let mut complaint = complaint_of(&form);
            if let Some(severity) = severity {
                complaint["severity"] = Value::from(severity.to_uppercase());
            }
            let request = json!({"request_id": id, "complaint": complaint});
            let filed = session.call("kefu.gateway.v1.Complaints/CreateComplaint", request, Some(&id)).await?;
            printer.filed(&filed, session.acknowledgement(&filed).await);
        }
        ComplaintCommand::Get { case } => {
            let complaint =
                session.call("kefu.gateway.v1.Complaints/GetComplaint", json!({"name": name_of(&case)}), None).await?;
            printer.one(&complaint);
        }
        ComplaintCommand::List { category, branch, owner, state, waybill, limit } => {
            let filter: Vec<String> = [
                ("category", category.map(|value| value.to_lowercase())),
                ("branch", branch),
                ("owner", owner.map(|value| value.to_uppercase())),
                ("state", state.map(|value| value.to_uppercase())),
                ("waybill_number", waybill),
            ]
            .into_iter()
            .filter_map(|(field, value)| value.map(|value| format!("{field} = {}", json!(value))))
            .collect();
            let mut complaints = Vec::new();
            let mut page_token = String::new();
            while complaints.len() < limit {
                let page_size = (limit - complaints.len()).min(500);
                let request = json!({"page_size": page_size, "page_token": page_token, "filter": filter.join(" AND ")});
                let page = session.call("kefu.gateway.v1.Complaints/ListComplaints", request, None).await?;
                complaints.extend(page["complaints"].as_array().cloned().unwrap_or_default());
                page_token = page["next_page_token"].as_str().unwrap_or_default().to_owned();
                if page_token.is_empty() {
                    break;
                }
            }
            complaints.truncate(limit);
            printer.list(&complaints);
        }
        ComplaintCommand::Timeline { case } => {
            let timeline = session
                .call("kefu.intake.v1.Intake/GetComplaintTimeline", json!({"name": name_of(&case)}), None)
                .await?;
            printer.timeline(&timeline);
        }
        ComplaintCommand::Resolve { case, resolution, cause, request_id: id } => {
            let id = request_id(id);
            let request = json!({"name": name_of(&case), "request_id": id, "resolution": resolution, "cause": cause});
            printer.one(&session.call("kefu.intake.v1.Intake/ResolveComplaint", request, Some(&id)).await?);
        }
        ComplaintCommand::Reopen { case, reason, request_id: id } => {
            let id = request_id(id);
            let request = json!({"name": name_of(&case), "request_id": id, "reason": reason});
            printer.one(&session.call("kefu.intake.v1.Intake/ReopenComplaint", request, Some(&id)).await?);
        }
        ComplaintCommand::Close { case, note, request_id: id } => {
            let id = request_id(id);
            let request = json!({"name": name_of(&case), "request_id": id, "note": note});
            printer.one(&session.call("kefu.intake.v1.Intake/CloseComplaint", request, Some(&id)).await?);
        }
    }
    Ok(())
}

pub async fn run_request(args: RequestArgs, time_zone: chrono_tz::Tz) -> Result<(), Failure> {
    let printer = Printer { output: args.output, time_zone };
    let session = Session::new(&args.gateway)?;
    match args.command {
        RequestCommand::Create { kind, form } => {
            let id = request_id(form.request_id.clone());
            let mut request = complaint_of(&form);
            request["kind"] = Value::from(kind.to_uppercase());
            let request = json!({"request_id": id, "request": request});
            let filed = session.call("kefu.intake.v1.Intake/CreateRequest", request, Some(&id)).await?;
            printer.filed(&filed, session.acknowledgement(&filed).await);
        }
    }
    Ok(())
}

/// Calls through the gateway, a request given as JSON, the response as JSON.
pub(crate) struct Session<'a> {
    api: Api,
    gateway: &'a GatewayArgs,
}

impl<'a> Session<'a> {
    pub(crate) fn new(gateway: &'a GatewayArgs) -> Result<Session<'a>, Failure> {
        Ok(Session { api: Api::load()?, gateway })
    }

    /// Calls `method` with `request`; where it failed, says the request id to retry with.
    pub(crate) async fn call(&self, method: &str, request: Value, request_id: Option<&str>) -> Result<Value, Failure> {
        let method = self.api.method(method)?;
        let request = self.api.request(&method, &request.to_string())?;
        let result = match self.gateway.connect().await {
            Ok(gateway) => self.api.call(&gateway, &method, request).await,
            Err(failure) => Err(failure),
        };
        let response = result.map_err(|mut failure| {
            if let Some(id) = request_id.filter(|_| failure.exit == crate::client::Exit::Unavailable) {
                failure.message.push_str(&format!(" (add --request-id {id})"));
            }
            failure
        })?;
        to_value(&response).map_err(|error| Failure::from(format!("the response as JSON: {error}")))
    }

    /// The acknowledgement intake recorded for a case just filed, if the caller may read it.
    async fn acknowledgement(&self, case: &Value) -> Option<String> {
        let request = json!({"complaint": case["name"], "page_size": 10});
        let replies = self.call("kefu.intake.v1.Intake/ListReplies", request, None).await.ok()?;
        replies["replies"]
            .as_array()?
            .iter()
            .find(|reply| reply["purpose"] == "ACKNOWLEDGEMENT")
            .and_then(|reply| reply["text"].as_str())
            .map(str::to_owned)
    }
}

/// The columns of a complaint in a list, and in CSV.
const COLUMNS: [(&str, &str); 9] = [
    ("case_number", "name"),
    ("category", "category"),
    ("branch", "branch"),
    ("owner", "owner"),
    ("state", "state"),
    ("severity", "severity"),
    ("incident", "incident"),
    ("deadline", "deadline"),
    ("create_time", "create_time"),
];

pub(crate) struct Printer {
    pub(crate) output: Output,
    pub(crate) time_zone: chrono_tz::Tz,
}

impl Printer {
    /// A field of a complaint as text: the case number out of its name, a time in the company's
    /// time zone (table) or as sent (CSV), enums in lower case.
    pub(crate) fn cell(&self, complaint: &Value, field: &str) -> String {
        self.text_of(field, &complaint[field])
    }

    /// The value of a field named `field` as text, as [`Printer::cell`] shows it.
    fn text_of(&self, field: &str, value: &Value) -> String {
        match (field, value) {
            ("name", Value::String(name)) => name.trim_start_matches("complaints/").to_owned(),
            (_, Value::String(text)) if field.ends_with("time") || field == "deadline" => match self.output {
                Output::Table => chrono::DateTime::parse_from_rfc3339(text)
                    .map(|time| time.with_timezone(&self.time_zone).format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|_| text.clone()),
                _ => text.clone(),
            },
            ("owner" | "state" | "severity" | "channel" | "kind", Value::String(text)) => text.to_lowercase(),
            (_, Value::String(text)) => text.clone(),
            (_, Value::Bool(flag)) => if *flag { "yes" } else { "" }.to_owned(),
            (_, Value::Null) => String::new(),
            (_, Value::Array(items)) => {
                items.iter().map(|item| item.as_str().unwrap_or_default()).collect::<Vec<_>>().join(" ")
            }
            (_, other) => other.to_string(),
        }
    }

    /// A case just filed: the case number first, ready to read out, with the acknowledgement
    /// intake recorded in the handbook's words (where the caller may read replies).
    fn filed(&self, complaint: &Value, acknowledgement: Option<String>) {
        if let Output::Table = self.output {
            crate::say!("Case number / 受理编号:  {}", self.cell(complaint, "name"));
            if let Some(text) = acknowledgement {
                crate::say!("Say / 告知客户:  {text}");
            }
            crate::say!("");
        }
        self.one(complaint);
    }

    fn one(&self, complaint: &Value) {
        match self.output {
            Output::Json => crate::say!("{}", serde_json::to_string_pretty(complaint).unwrap_or_default()),
            Output::Csv => self.list(std::slice::from_ref(complaint)),
            Output::Table => {
                let fields = [
                    ("case number", "name"),
                    ("kind", "kind"),
                    ("category", "category"),
                    ("waybill", "waybill_number"),
                    ("channel", "channel"),
                    ("branch", "branch"),
                    ("owner", "owner"),
                    ("owner's record", "owner_reference"),
                    ("state", "state"),
                    ("severity", "severity"),
                    ("registered", "create_time"),
                    ("deadline", "deadline"),
                    ("incident", "incident"),
                    ("repeats", "first_complaint"),
                    ("escalated to", "escalated_to"),
                    ("received by", "received_by"),
                    ("description", "description"),
                    ("customer asks", "customer_request"),
                    ("resolution", "resolution"),
                    ("resolved", "resolve_time"),
                ];
                for (label, field) in fields {
                    let text = self.cell(complaint, field);
                    if !text.is_empty() {
                        crate::say!("{label:<15} {text}");
                    }
                }
                let contact = &complaint["contact"];
                if let (Some(name), Some(phone)) = (contact["name"].as_str(), contact["phone"].as_str()) {
                    crate::say!("{:<15} {name} {phone}", "contact");
                }
            }
        }
    }

    /// Any message as a person reads it (`--output table`): a field a line, nested messages'
    /// fields as `parent.field`, amounts (`…_fen`) in yuan, lists of messages as a count; or as
    /// JSON, or as one CSV row.
    pub(crate) fn fields(&self, message: &Value) {
        match self.output {
            Output::Json => crate::say!("{}", serde_json::to_string_pretty(message).unwrap_or_default()),
            Output::Csv | Output::Table => {
                let mut lines = Vec::new();
                self.flatten("", message, &mut lines);
                if let Output::Csv = self.output {
                    let headers: Vec<String> = lines.iter().map(|(field, _)| field.clone()).collect();
                    crate::say!("{}", headers.join(","));
                    crate::say!("{}", lines.iter().map(|(_, value)| csv_field(value)).collect::<Vec<_>>().join(","));
                } else {
                    let wide = lines.iter().map(|(field, _)| field.len()).max().unwrap_or(0);
                    for (field, value) in lines {
                        crate::say!("{field:<wide$}  {value}");
                    }
                }
            }
        }
    }

    fn flatten(&self, prefix: &str, message: &Value, lines: &mut Vec<(String, String)>) {
        let Some(fields) = message.as_object() else { return };
        for (field, value) in fields {
            let name = if prefix.is_empty() { field.clone() } else { format!("{prefix}.{field}") };
            let text = match value {
                Value::Object(_) => {
                    self.flatten(&name, value, lines);
                    continue;
                }
                Value::Array(items) if items.iter().all(Value::is_string) => {
                    items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")
                }
                Value::Array(items) => format!("({} entries; --output json shows them)", items.len()),
                Value::String(fen) if field.ends_with("_fen") => {
                    fen.parse::<i64>().map(kefu_kit::money::yuan).unwrap_or_else(|_| fen.clone())
                }
                _ => self.text_of(field, value),
            };
            lines.push((name, text));
        }
    }

    fn list(&self, complaints: &[Value]) {
        if let Output::Json = self.output {
            for complaint in complaints {
                crate::say!("{complaint}");
            }
            return;
        }
        self.rows(&COLUMNS, complaints);
        if let Output::Table = self.output {
            eprintln!("{} complaint(s)", complaints.len());
        }
    }

    fn timeline(&self, timeline: &Value) {
        if let Output::Json = self.output {
            crate::say!("{}", serde_json::to_string_pretty(timeline).unwrap_or_default());
            return;
        }
        let columns = [
            ("time", "time"),
            ("department", "department"),
            ("action", "action"),
            ("actor", "actor"),
            ("detail", "detail"),
        ];
        self.rows(&columns, timeline["steps"].as_array().map(Vec::as_slice).unwrap_or_default());
    }

    /// `items` a row each, `columns` (header, field) a column each: as CSV, or as a table.
    fn rows(&self, columns: &[(&str, &str)], items: &[Value]) {
        let rows: Vec<Vec<String>> =
            items.iter().map(|item| columns.iter().map(|(_, field)| self.cell(item, field)).collect()).collect();
        if let Output::Csv = self.output {
            crate::say!("{}", columns.iter().map(|(header, _)| *header).collect::<Vec<_>>().join(","));
            for row in rows {
                crate::say!("{}", row.iter().map(|cell| csv_field(cell)).collect::<Vec<_>>().join(","));
            }
        } else {
            let headers: Vec<String> = columns.iter().map(|(header, _)| header.replace('_', " ")).collect();
            print_table(&headers, &rows);
        }
    }
}

/// Columns padded to their widest cell (counting a Chinese character as two columns wide).
fn print_table(headers: &[String], rows: &[Vec<String>]) {
    let width = |text: &str| text.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum::<usize>();
    let mut widths: Vec<usize> = headers.iter().map(|header| width(header)).collect();
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            widths[column] = widths[column].max(width(cell));
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, wide)| format!("{cell}{}", " ".repeat(wide.saturating_sub(width(cell)))))
            .collect();
        crate::say!("{}", padded.join("  ").trim_end());
    };
    line(headers);
    for row in rows {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_number_or_a_name_names_the_complaint() {
        assert_eq!(name_of("20261122-7K3M9Q"), "complaints/20261122-7K3M9Q");
        assert_eq!(name_of(" complaints/20261122-7K3M9Q "), "complaints/20261122-7K3M9Q");
    }
}
