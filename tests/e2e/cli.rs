//! The staff's command line, run as the real `kefu` binary against a running suite: a complaint
//! filed, looked up, listed and followed with the typed commands; a claim quoted in yuan; any
//! method with `kefu call`;
//! each kind of failure told with what to do next and the exit code the README documents.

use std::process::{Command, Output};

use crate::support::{BOOTSTRAP_TOKEN, Backend, TestSuite, eventually};

struct Kefu {
    gateway: String,
    token: String,
}

impl Kefu {
    async fn run(&self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let (gateway, token) = (self.gateway.clone(), self.token.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_kefu"))
                .args(&args)
                .env("KEFU_GATEWAY_URL", &gateway)
                .env("KEFU_TOKEN", &token)
                .env_remove("KEFU_LOG")
                .output()
                .expect("run kefu")
        })
        .await
        .expect("joined")
    }

    /// Runs a command that must succeed; its standard output.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(output.status.success(), "kefu {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("UTF-8")
    }

    /// Runs a command that must fail with `code`; its standard error.
    async fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args).await;
        let told = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(output.status.code(), Some(code), "kefu {args:?}: {told}");
        told
    }
}

fn case_number_in(table: &str) -> String {
    table
        .lines()
        .find_map(|line| line.strip_prefix("Case number / 受理编号:"))
        .map(|rest| rest.trim().to_owned())
        .unwrap_or_else(|| panic!("no case number in:\n{table}"))
}

const FORM: [&str; 12] = [
    "--category",
    "late_delivery",
    "--waybill",
    "YT-CLI-1",
    "--description",
    "三天未到",
    "--contact-name",
    "王先生",
    "--phone",
    "13800000000",
    "--branch",
    "SH01",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_file_and_follow_a_complaint_from_the_command_line() {
    let suite = TestSuite::start(Backend::Sqlite, std::sync::Arc::new(kefu_kit::SystemClock)).await;
    let gateway = format!("http://{}", suite.config.gateway_addr);
    let admin = Kefu { gateway: gateway.clone(), token: BOOTSTRAP_TOKEN.into() };
    let secret = admin
        .ok(&["token", "create", "--subject", "A1024", "--department", "intake", "--role", "agent"])
        .await
        .trim()
        .to_owned();
    let agent = Kefu { gateway: gateway.clone(), token: secret };

    // Filed: the case number first, to read out, with the acknowledgement in the handbook's words.
    let create: Vec<&str> = ["complaint", "create"].into_iter().chain(FORM).chain(["--request-id", "cli-1"]).collect();
    let filed = agent.ok(&create).await;
    let case = case_number_in(&filed);
    assert!(filed.contains("鹏达物流A1024号为您服务") && filed.contains(&case), "{filed}");
    assert!(filed.contains("late_delivery") && filed.contains("inspection"), "routed to its owner:\n{filed}");
    // The same request id again: the same case, nothing new.
    assert_eq!(case_number_in(&agent.ok(&create).await), case);

    // Looked up as JSON: the owner accepts it.
    let accepted = eventually("the owner accepts the complaint", || {
        let agent = &agent;
        let case = case.clone();
        async move {
            let json = agent.ok(&["complaint", "get", &case, "--output", "json"]).await;
            let complaint: serde_json::Value = serde_json::from_str(&json).expect("JSON");
            (complaint["state"] == "ACCEPTED").then_some(complaint)
        }
    })
    .await;
    assert_eq!(accepted["name"], format!("complaints/{case}"));
    assert_eq!(accepted["contact"]["phone"], "13800000000");

    // Listed as CSV, by a filter; once only, though filed twice.
    let csv =
        agent.ok(&["complaint", "list", "--category", "late_delivery", "--state", "accepted", "--output", "csv"]).await;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("case_number,category,branch,owner,state,severity,incident,deadline,create_time"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{csv}");
    assert!(rows[0].starts_with(&format!("{case},late_delivery,SH01,inspection,accepted,")), "{csv}");
    let nothing = agent.ok(&["complaint", "list", "--branch", "NOWHERE"]).await;
    assert_eq!(nothing.lines().count(), 1, "only the header: {nothing}");

    // Its timeline, step by step.
    let timeline = agent.ok(&["complaint", "timeline", &case]).await;
    assert!(timeline.lines().next().is_some_and(|header| header.starts_with("time")), "{timeline}");
    assert!(timeline.lines().count() >= 3, "registered and accepted at least:\n{timeline}");

    // An inquiry is the service center's own: recorded, answered, and reopened.
    let inquiry: Vec<&str> = ["request", "create", "--kind", "inquiry"].into_iter().chain(FORM).collect();
    let inquiry = case_number_in(&agent.ok(&inquiry).await);
    let answered = agent.ok(&["complaint", "resolve", &inquiry, "--resolution", "明天送达", "-o", "json"]).await;
    let answered: serde_json::Value = serde_json::from_str(&answered).expect("JSON");
    assert_eq!((answered["state"].as_str(), answered["resolution"].as_str()), (Some("RESOLVED"), Some("明天送达")));

    // Any method, JSON in and out.
    let request = format!("{{\"name\": \"complaints/{case}\"}}");
    let called = agent.ok(&["call", "kefu.gateway.v1.Complaints/GetComplaint", &request]).await;
    let called: serde_json::Value = serde_json::from_str(&called).expect("JSON");
    assert_eq!(
        (called["name"].as_str(), called["owner"].as_str()),
        (Some(&*format!("complaints/{case}")), Some("INSPECTION"))
    );
    let listed = agent.ok(&["call", "--list"]).await;
    assert!(listed.lines().any(|line| line.starts_with("kefu.claims.v1.Claims/QuoteCompensation")), "{listed}");
    assert!(!listed.contains("kefu.events.v1"), "kefu's internal methods are not the public API");

    // Claims: what the standards give, in yuan, and why; approving is not an agent's to do.
    let quote = agent
        .ok(&[
            "claim",
            "quote",
            "--declared",
            "1000",
            "--shipping-list",
            "--market-value",
            "800",
            "--pieces",
            "4",
            "--pieces-affected",
            "1",
            "--accident",
            "transit_damage",
        ])
        .await;
    assert!(quote.starts_with("amount  560.00 yuan\nrule    declared_uninsured\n"), "{quote}");
    assert!(quote.contains("  - declared value, not insured"), "{quote}");
    let told = agent.fails(&["claim", "quote", "--market-value", "eight hundred", "--accident", "loss"], 2).await;
    assert!(told.contains("not an amount in yuan"), "{told}");
    let told = agent.fails(&["claim", "approve", &case, "--reason", "核实无误"], 6).await;
    assert!(told.contains("ask an administrator"), "{told}");

    // Completions know every command.
    let bash = agent.ok(&["completions", "bash"]).await;
    assert!(bash.contains("_kefu") && bash.contains("timeline") && bash.contains("--output"), "{bash}");

    // Failures: what went wrong, what to do, and the exit code a script relies on.
    let bad: Vec<&str> = ["complaint", "create"]
        .into_iter()
        .chain(FORM)
        .map(|arg| if arg == "late_delivery" { "no_such_category" } else { arg })
        .collect();
    let told = agent.fails(&bad, 3).await;
    assert!(told.contains("category") && told.contains("correct the fields named"), "{told}");
    let told = agent.fails(&["complaint", "get", "20200101-7K3M9Q"], 4).await;
    assert!(told.contains("NotFound"), "{told}");
    let told = agent.fails(&["complaint", "reopen", &case, "--reason", "不满意"], 5).await;
    assert!(told.contains("FailedPrecondition"), "a complaint not yet resolved cannot be reopened: {told}");
    let told = agent.fails(&["call", "kefu.gateway.v1.Complaints/GetComplaint", "{\"nmae\": \"x\"}"], 2).await;
    assert!(told.contains("nmae") && told.contains("--describe"), "{told}");
    let told = agent.fails(&["call", "kefu.gateway.v1.Complaints/Delete"], 2).await;
    assert!(told.contains("kefu call --list"), "{told}");
    let told = agent.fails(&["token", "list"], 6).await;
    assert!(told.contains("ask an administrator"), "{told}");
    let stranger = Kefu { gateway: gateway.clone(), token: "kefu_not_a_token".into() };
    let told = stranger.fails(&["complaint", "get", &case], 6).await;
    assert!(told.contains("KEFU_TOKEN"), "{told}");
    let nowhere = Kefu { gateway: format!("http://127.0.0.1:{}", crate::support::free_port()), token: "x".into() };
    let told = nowhere.fails(&["complaint", "get", &case], 7).await;
    assert!(told.contains("cannot reach the gateway"), "{told}");
}

/// `kefu bench` says why registrations failed: under the run's row, each gRPC code with its count
/// and the first message, adding up to the row's errors. Here the gateway keeps the bench's one
/// principal to 20 calls a second, so most of two callers' calls are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kefu_bench_tells_why_registrations_failed() {
    let suite =
        TestSuite::start_configured(Backend::Sqlite, std::sync::Arc::new(kefu_kit::SystemClock), |config, _| {
            config.limits.rate_per_principal = 20;
        })
        .await;
    let gateway = format!("http://{}", suite.config.gateway_addr);
    let admin = Kefu { gateway: gateway.clone(), token: BOOTSTRAP_TOKEN.into() };
    let secret = admin
        .ok(&["token", "create", "--subject", "bench", "--department", "intake", "--role", "agent"])
        .await
        .trim()
        .to_owned();
    let bench = Kefu { gateway, token: secret };
    let report = bench.ok(&["bench", "--concurrency", "2", "--seconds", "2", "--drain-seconds", "10"]).await;

    let row = report
        .lines()
        .find(|line| line.split_whitespace().next() == Some("2"))
        .unwrap_or_else(|| panic!("the run's row for 2 callers in:\n{report}"));
    let errors: u64 = row.split_whitespace().nth(5).and_then(|errors| errors.parse().ok()).expect("the errors column");
    let told: Vec<(u64, &str)> = report
        .lines()
        .filter_map(|line| {
            let (count, rest) = line.trim().split_once(" failed with ")?;
            Some((count.parse().ok()?, rest))
        })
        .collect();
    assert!(errors > 0, "the rate refused some calls:\n{report}");
    assert_eq!(told.iter().map(|(count, _)| count).sum::<u64>(), errors, "the lines add up to the row:\n{report}");
    let (_, why) = told.first().expect("a line");
    assert!(
        why.starts_with("ResourceExhausted, the first: too many calls from bench"),
        "the code and the gateway's message: {why}"
    );
    suite.stop().await;
}
