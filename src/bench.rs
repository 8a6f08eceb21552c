//! `kefu bench`: drives `CreateComplaint` through a running gateway with N concurrent callers for a
//! fixed time, and reports throughput, p50/p99 latency, errors, the CPU time the suite (and
//! PostgreSQL) spent per complaint, the suite's resident memory, and whether the handoff to the
//! owners kept up (complaints still waiting for their owner at the end, and how long they took to
//! drain). CPU and memory are read from /proc, so pass the suite's pid. The callers send
//! time-ordered request ids (UUIDv7), as the API recommends; `--request-ids random` sends UUIDv4.
//!
//! `--mix day` drives a service center's day instead of registrations alone: each caller, in every
//! ten calls, files four complaints through the gateway and one inquiry at intake, reads two
//! complaints back, reads a timeline, resolves the inquiry it filed, and asks for the overdue cases
//! (`ChaseOverdue`, which finds them by their deadline's index and chases them); the report gives
//! each call's count, rate and latency.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::client::{Gateway as Channel, GatewayArgs};
use clap::Args;
use kefu_proto::gateway::v1::{
    Channel as ComplaintChannel, Complaint, Contact, CreateComplaintRequest, ListComplaintsRequest,
    complaints_client::ComplaintsClient,
};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Concurrent callers; several runs with a comma-separated list, e.g. 1,16,64.
    #[arg(long, value_delimiter = ',', default_value = "16")]
    concurrency: Vec<usize>,
    /// Seconds each run lasts (after a 2-second warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// The pid of the `kefu up` process, to measure its CPU time and memory.
    #[arg(long)]
    suite_pid: Option<u32>,
    /// Also measure the CPU time of every PostgreSQL process on this machine.
    #[arg(long)]
    postgres: bool,
    /// Also print, every this many seconds of a run, its registrations per second, the suite's CPU
    /// per complaint (and PostgreSQL's, with `--postgres`) and its resident memory in that
    /// interval: for long runs (`--seconds 600 --interval 60` shows whether the last minute is as
    /// fast as the first, and memory flat).
    #[arg(long, default_value_t = 0)]
    interval: u64,
    /// How long to wait, after a run, for every complaint to reach its owner.
    #[arg(long, default_value_t = 60)]
    drain_seconds: u64,
    /// What each caller does: `create` (registrations only) or `day` (registrations with the reads
    /// and updates staff make: get, timeline, resolve, overdue; see the module's doc).
    #[arg(long, value_enum, default_value_t = Mix::Create)]
    mix: Mix,
    /// The request ids the callers send: `time-ordered` (UUIDv7, as the API recommends) or `random`
    /// (UUIDv4), to see what random keys cost a large database (docs/benchmarks.md, ninth round).
    #[arg(long, value_enum, default_value_t = RequestIds::TimeOrdered)]
    request_ids: RequestIds,
    /// Register this URL as the webhook of every branch the load uses (B00–B19), so that every
    /// complaint is also posted to it (e.g. `python3 bench/webhook-sink.py 8099`).
    #[arg(long)]
    webhook_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// `CreateComplaint` only.
    Create,
    /// A service center's day: creates, reads and updates (see the module's doc).
    Day,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RequestIds {
    /// UUIDv7: each new key sorts after the ones before, so it joins the request-id index at its end.
    TimeOrdered,
    /// UUIDv4: each new key lands at a random place in the index.
    Random,
}

/// Whether this run's callers send random request ids (`--request-ids random`).
static RANDOM_REQUEST_IDS: AtomicBool = AtomicBool::new(false);

/// A new request id, of the kind `--request-ids` chose.
fn request_id() -> String {
    if RANDOM_REQUEST_IDS.load(Ordering::Relaxed) { uuid::Uuid::new_v4() } else { uuid::Uuid::now_v7() }.to_string()
}

/// Complaints registered so far, for `--interval`.
static REGISTERED: AtomicU64 = AtomicU64::new(0);

/// The run's failed registrations by gRPC code: how many, and the first one's message. Printed
/// under the run's row, so a failure says why.
static FAILURES: Mutex<BTreeMap<String, (u64, String)>> = Mutex::new(BTreeMap::new());

/// Counts a failed registration under its code.
fn failed(status: &tonic::Status) {
    let mut failures = FAILURES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let entry = failures.entry(format!("{:?}", status.code())).or_insert_with(|| (0, status.message().to_owned()));
    entry.0 += 1;
}

/// The failed registrations counted so far, forgotten here.
fn take_failures() -> BTreeMap<String, (u64, String)> {
    std::mem::take(&mut *FAILURES.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Prints the run's failed registrations, one line per code, and forgets them for the next run.
fn print_failures() {
    for (code, (count, first)) in take_failures() {
        println!("      {count} failed with {code}, the first: {first}");
    }
}

/// The branches the load files complaints for.
const BRANCHES: usize = 20;

pub async fn run(args: BenchArgs) -> Result<(), crate::client::Failure> {
    let channel = args.gateway.connect().await?;
    let client = ComplaintsClient::new(channel.clone());
    RANDOM_REQUEST_IDS.store(args.request_ids == RequestIds::Random, Ordering::Relaxed);
    let ids = match args.request_ids {
        RequestIds::TimeOrdered => "time-ordered",
        RequestIds::Random => "random",
    };
    println!("kefu bench against {} ({} s per run, {ids} request ids)", args.gateway.gateway, args.seconds);
    if let Some(url) = &args.webhook_url {
        register_webhooks(channel.clone(), url).await?;
        println!("webhooks: every branch's events posted to {url}");
    }
    if let Some(pid) = args.suite_pid {
        println!(
            "suite pid {pid}: resident memory idle {}",
            rss(pid).map(format_kib).unwrap_or_else(|| "unknown".into())
        );
    }
    println!(
        "{:>5} {:>9} {:>9} {:>9} {:>7} {:>12} {:>12} {:>11} {:>9} {:>8}",
        "conc", "ok", "per_sec", "p50_ms", "p99_ms", "errors", "suite_cpu_ms", "pg_cpu_ms", "rss", "backlog"
    );
    for &concurrency in &args.concurrency {
        let concurrency = concurrency.max(1);
        drive(&channel, args.mix, concurrency, Duration::from_secs(2)).await;
        // The warm-up's failures are not the run's.
        take_failures();
        let suite_before = args.suite_pid.and_then(cpu_ticks);
        let postgres_before = args.postgres.then(postgres_ticks);
        let started = Instant::now();
        let reporter =
            (args.interval > 0).then(|| tokio::spawn(report_intervals(args.interval, args.suite_pid, args.postgres)));
        let progress = (args.interval == 0 && std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .then(|| tokio::spawn(show_progress(concurrency, args.seconds)));
        let result = drive(&channel, args.mix, concurrency, Duration::from_secs(args.seconds)).await;
        if let Some(reporter) = reporter {
            reporter.abort();
        }
        if let Some(progress) = progress {
            progress.abort();
            // Clear the progress line before the run's row is printed.
            eprint!("\r\x1b[K");
        }
        let elapsed = started.elapsed().as_secs_f64();
        let suite_after = args.suite_pid.and_then(cpu_ticks);
        let postgres_after = args.postgres.then(postgres_ticks);
        let rss_loaded = args.suite_pid.and_then(rss);
        let backlog_at_end = backlog(&client).await;
        let ok = result.latencies_us.len() as u64;
        let calls = result.calls;
        let per_complaint = |before, after| cpu_ms_per(before, after, ok);
        let mut latencies = result.latencies_us;
        latencies.sort_unstable();
        println!(
            "{:>5} {:>9} {:>9.0} {:>9.2} {:>7.2} {:>12} {:>12} {:>11} {:>9} {:>8}",
            concurrency,
            ok,
            ok as f64 / elapsed,
            percentile(&latencies, 0.50) as f64 / 1000.0,
            percentile(&latencies, 0.99) as f64 / 1000.0,
            result.errors,
            per_complaint(suite_before, suite_after),
            per_complaint(postgres_before, postgres_after),
            rss_loaded.map(format_kib).unwrap_or_else(|| "-".into()),
            backlog_at_end.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
        );
        print_failures();
        if args.mix == Mix::Day {
            print_calls(calls, elapsed);
        }
        // The backlog is counted by listing the routed complaints, which takes a while on a large
        // table; the database reads as of the start of its statement, so a count of none means
        // the backlog had drained by the time that count was asked for.
        let drain_started = Instant::now();
        loop {
            let asked = drain_started.elapsed();
            match backlog(&client).await {
                Some(0) => {
                    println!(
                        "      all complaints reached their owners {:.1} s after the run (counted in {:.1} s)",
                        asked.as_secs_f64(),
                        (drain_started.elapsed() - asked).as_secs_f64()
                    );
                    break;
                }
                Some(n) if drain_started.elapsed() > Duration::from_secs(args.drain_seconds) => {
                    println!("      {n} complaints still waiting for their owner after {} s", args.drain_seconds);
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    if let Some(pid) = args.suite_pid {
        println!(
            "suite pid {pid}: resident memory after the runs {}",
            rss(pid).map(format_kib).unwrap_or_else(|| "unknown".into())
        );
    }
    println!(
        "suite_cpu_ms and pg_cpu_ms are CPU milliseconds per complaint (in a mixed day, every call's CPU over the complaints filed); backlog counts complaints not yet accepted by their owner when the run ended."
    );
    Ok(())
}

/// Registers `url` for every branch of the load; a rerun registers nothing new (same request ids).
async fn register_webhooks(channel: Channel, url: &str) -> Result<(), String> {
    use kefu_proto::intake::v1::{RegisterWebhookRequest, Webhook, intake_client::IntakeClient};
    let mut intake = IntakeClient::new(channel);
    for branch in 0..BRANCHES {
        let request = RegisterWebhookRequest {
            request_id: format!("bench-webhook-B{branch:02}-{url}"),
            webhook: Some(Webhook { branch: format!("B{branch:02}"), url: url.to_owned(), ..Default::default() }),
            secret: "kefu-bench-webhook-secret".into(),
        };
        intake
            .register_webhook(request)
            .await
            .map_err(|status| format!("--webhook-url {url}: {}", status.message()))?;
    }
    Ok(())
}

struct RunResult {
    /// The latencies of `CreateComplaint`, the registrations every row counts.
    latencies_us: Vec<u64>,
    errors: u64,
    /// Every call of a mixed day, by kind.
    calls: Vec<(Call, Vec<u64>, u64)>,
}

/// The calls of a mixed day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    CreateComplaint,
    CreateInquiry,
    GetComplaint,
    GetTimeline,
    ResolveInquiry,
    ChaseOverdue,
}

impl Call {
    const ALL: [Call; 6] = [
        Call::CreateComplaint,
        Call::CreateInquiry,
        Call::GetComplaint,
        Call::GetTimeline,
        Call::ResolveInquiry,
        Call::ChaseOverdue,
    ];

    /// Ten calls of a caller's day, in order.
    const DAY: [Call; 10] = [
        Call::CreateComplaint,
        Call::GetComplaint,
        Call::CreateComplaint,
        Call::CreateInquiry,
        Call::GetTimeline,
        Call::CreateComplaint,
        Call::GetComplaint,
        Call::ResolveInquiry,
        Call::CreateComplaint,
        Call::ChaseOverdue,
    ];

    fn rpc(self) -> &'static str {
        match self {
            Call::CreateComplaint => "gateway CreateComplaint",
            Call::CreateInquiry => "intake CreateRequest (inquiry)",
            Call::GetComplaint => "gateway GetComplaint",
            Call::GetTimeline => "intake GetComplaintTimeline",
            Call::ResolveInquiry => "intake ResolveComplaint",
            Call::ChaseOverdue => "intake ChaseOverdue",
        }
    }
}

/// On a terminal, one line on standard error that says, every second, how far the run is.
async fn show_progress(concurrency: usize, seconds: u64) {
    let started = Instant::now();
    let first = REGISTERED.load(Ordering::Relaxed);
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        eprint!(
            "\r\x1b[K  {concurrency} callers: {} s of {seconds}, {} complaints so far",
            started.elapsed().as_secs().min(seconds),
            REGISTERED.load(Ordering::Relaxed) - first
        );
    }
}

/// Prints, every `seconds`, what the interval registered, the suite's CPU per complaint and its memory.
async fn report_intervals(seconds: u64, suite_pid: Option<u32>, postgres: bool) {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(seconds));
    ticks.tick().await;
    let read = || (REGISTERED.load(Ordering::Relaxed), suite_pid.and_then(cpu_ticks), postgres.then(postgres_ticks));
    let (mut count, mut cpu, mut postgres_cpu) = read();
    loop {
        ticks.tick().await;
        let (now_count, now_cpu, now_postgres_cpu) = read();
        let done = now_count - count;
        let postgres_part = if postgres {
            format!(", PostgreSQL {}", cpu_ms_per(postgres_cpu, now_postgres_cpu, done))
        } else {
            String::new()
        };
        println!(
            "      at {:>5} s: {:>6.0} complaints/s, suite {}{postgres_part} CPU ms per complaint, resident {}",
            started.elapsed().as_secs(),
            done as f64 / seconds as f64,
            cpu_ms_per(cpu, now_cpu, done),
            suite_pid.and_then(rss).map(format_kib).unwrap_or_else(|| "-".into())
        );
        (count, cpu, postgres_cpu) = (now_count, now_cpu, now_postgres_cpu);
    }
}

fn print_calls(calls: Vec<(Call, Vec<u64>, u64)>, elapsed: f64) {
    println!("      {:<32} {:>7} {:>8} {:>8} {:>8} {:>7}", "call", "ok", "per_sec", "p50_ms", "p99_ms", "errors");
    for (call, mut latencies, errors) in calls {
        latencies.sort_unstable();
        println!(
            "      {:<32} {:>7} {:>8.0} {:>8.2} {:>8.2} {:>7}",
            call.rpc(),
            latencies.len(),
            latencies.len() as f64 / elapsed,
            percentile(&latencies, 0.50) as f64 / 1000.0,
            percentile(&latencies, 0.99) as f64 / 1000.0,
            errors
        );
    }
}

/// A new complaint of caller `worker`, its `n`th, about a waybill no complaint named before: runs
/// (and the warm-up before each) have their own `run` tag, so a run's first complaints are not
/// second complaints about the warm-up's waybills — incidents, which lock the first complaint.
fn new_complaint(run: &str, worker: usize, n: usize) -> CreateComplaintRequest {
    let categories = ["late_delivery", "cargo_damage", "late_remittance", "attitude", "mis_sort"];
    CreateComplaintRequest {
        request_id: request_id(),
        complaint: Some(Complaint {
            category: categories[(worker + n) % categories.len()].into(),
            waybill_number: format!("YD{run}{worker:03}{n:08}"),
            channel: ComplaintChannel::Phone as i32,
            description: "货物延误三天未到,客户多次查询无果".into(),
            customer_request: "尽快送达并说明原因".into(),
            contact: Some(Contact { name: "测试客户".into(), phone: "13800000000".into() }),
            branch: format!("B{:02}", worker % BRANCHES),
            ..Default::default()
        }),
        from_request: String::new(),
    }
}

async fn drive(channel: &Channel, mix: Mix, concurrency: usize, duration: Duration) -> RunResult {
    let deadline = Instant::now() + duration;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (channel, run) = (channel.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            match mix {
                Mix::Create => create_only(channel, run, worker, deadline).await,
                Mix::Day => day(channel, run, worker, deadline).await,
            }
        }));
    }
    let mut result = RunResult { latencies_us: Vec::new(), errors: 0, calls: Vec::new() };
    for call in Call::ALL {
        result.calls.push((call, Vec::new(), 0));
    }
    for task in tasks {
        let Ok(calls) = task.await else { continue };
        for (call, mut latencies, errors) in calls {
            if call == Call::CreateComplaint {
                result.latencies_us.extend_from_slice(&latencies);
                result.errors += errors;
            }
            if let Some(entry) = result.calls.iter_mut().find(|(kind, _, _)| *kind == call) {
                entry.1.append(&mut latencies);
                entry.2 += errors;
            }
        }
    }
    result.calls.retain(|(_, latencies, errors)| !latencies.is_empty() || *errors > 0);
    result
}

/// One caller registering complaints until `deadline`.
async fn create_only(channel: Channel, run: String, worker: usize, deadline: Instant) -> Vec<(Call, Vec<u64>, u64)> {
    let mut client = ComplaintsClient::new(channel);
    let (mut latencies, mut errors) = (Vec::new(), 0);
    let mut n = 0usize;
    while Instant::now() < deadline {
        n += 1;
        let started = Instant::now();
        match client.create_complaint(new_complaint(&run, worker, n)).await {
            Ok(_) => {
                latencies.push(started.elapsed().as_micros() as u64);
                REGISTERED.fetch_add(1, Ordering::Relaxed);
            }
            Err(status) => {
                failed(&status);
                errors += 1;
            }
        }
    }
    vec![(Call::CreateComplaint, latencies, errors)]
}

/// One caller's day until `deadline` ([`Call::DAY`], over and over).
async fn day(channel: Channel, run: String, worker: usize, deadline: Instant) -> Vec<(Call, Vec<u64>, u64)> {
    use kefu_proto::gateway::v1::GetComplaintRequest;
    use kefu_proto::intake::v1::{
        self as intake, ChaseOverdueRequest, CreateRequestRequest, GetComplaintTimelineRequest,
        ResolveComplaintRequest, intake_client::IntakeClient,
    };
    let mut complaints = ComplaintsClient::new(channel.clone());
    let mut intake = IntakeClient::new(channel);
    let mut results: Vec<(Call, Vec<u64>, u64)> = Call::ALL.iter().map(|call| (*call, Vec::new(), 0)).collect();
    let (mut filed, mut inquiries): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    let mut n = 0usize;
    while Instant::now() < deadline {
        for call in Call::DAY {
            n += 1;
            let started = Instant::now();
            let ok = match call {
                Call::CreateComplaint => match complaints.create_complaint(new_complaint(&run, worker, n)).await {
                    Ok(created) => {
                        filed.push(created.into_inner().name);
                        REGISTERED.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Err(status) => {
                        failed(&status);
                        false
                    }
                },
                Call::CreateInquiry => {
                    let request = CreateRequestRequest {
                        request_id: request_id(),
                        request: Some(intake::Complaint {
                            kind: intake::Kind::Inquiry as i32,
                            waybill_number: format!("YQ{run}{worker:03}{n:08}"),
                            channel: intake::Channel::Phone as i32,
                            description: "货物现在到哪里了".into(),
                            contact: Some(intake::Contact { name: "测试客户".into(), phone: "13800000001".into() }),
                            branch: format!("B{:02}", worker % BRANCHES),
                            ..Default::default()
                        }),
                    };
                    match intake.create_request(request).await {
                        Ok(created) => {
                            inquiries.push(created.into_inner().name);
                            true
                        }
                        Err(_) => false,
                    }
                }
                Call::GetComplaint => match filed.last() {
                    Some(name) => complaints.get_complaint(GetComplaintRequest { name: name.clone() }).await.is_ok(),
                    None => continue,
                },
                Call::GetTimeline => match filed.first() {
                    Some(name) => {
                        intake.get_complaint_timeline(GetComplaintTimelineRequest { name: name.clone() }).await.is_ok()
                    }
                    None => continue,
                },
                Call::ResolveInquiry => match inquiries.pop() {
                    Some(name) => {
                        let request = ResolveComplaintRequest {
                            name,
                            request_id: request_id(),
                            resolution: "已告知客户货物位置".into(),
                            cause: String::new(),
                        };
                        intake.resolve_complaint(request).await.is_ok()
                    }
                    None => continue,
                },
                Call::ChaseOverdue => intake.chase_overdue(ChaseOverdueRequest {}).await.is_ok(),
            };
            let elapsed = started.elapsed().as_micros() as u64;
            if let Some(entry) = results.iter_mut().find(|(kind, _, _)| *kind == call) {
                if ok {
                    entry.1.push(elapsed);
                } else {
                    entry.2 += 1;
                }
            }
            // A caller reads back what it filed lately, not everything it ever filed.
            if filed.len() > 8 {
                filed.remove(0);
            }
            if Instant::now() >= deadline {
                break;
            }
        }
    }
    results
}

/// Complaints not yet accepted by their owner.
async fn backlog(client: &ComplaintsClient<Channel>) -> Option<u64> {
    let mut client = client.clone();
    let mut count = 0;
    let mut page_token = String::new();
    loop {
        let page = client
            .list_complaints(ListComplaintsRequest { page_size: 500, page_token, filter: "state = ROUTED".into() })
            .await
            .ok()?
            .into_inner();
        count += page.complaints.len() as u64;
        if page.next_page_token.is_empty() {
            return Some(count);
        }
        page_token = page.next_page_token;
    }
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// CPU milliseconds per complaint between two readings of [`cpu_ticks`] (or of
/// [`postgres_ticks`]), over `complaints`; "-" when either reading is missing.
fn cpu_ms_per(before: Option<u64>, after: Option<u64>, complaints: u64) -> String {
    match (before, after) {
        (Some(before), Some(after)) if complaints > 0 => {
            format!("{:.3}", after.saturating_sub(before) as f64 * 10.0 / complaints as f64)
        }
        _ => "-".into(),
    }
}

/// utime + stime of a process, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    stat_ticks(pid, 11..13)
}

/// The sum of some clock-tick fields of a process's `/proc/{pid}/stat`, counted from the field after
/// its state: `11..13` its own utime and stime, `11..15` also its exited children's.
fn stat_ticks(pid: u32, fields: std::ops::Range<usize>) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after it are fixed.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let values: Vec<&str> = after_name.split_whitespace().collect();
    fields.map(|field| values.get(field)?.parse::<u64>().ok()).sum()
}

/// The CPU of PostgreSQL's processes, with that of those that have exited: server processes come
/// and go (sqlx's pool replaces a connection after 30 minutes), and the postmaster
/// counts each one's CPU among its exited children's, so a long run loses none of it.
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "postgres"))
        .filter_map(|pid| stat_ticks(pid, 11..15))
        .sum()
}

fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn format_kib(kib: u64) -> String {
    format!("{:.0}MiB", kib as f64 / 1024.0)
}
