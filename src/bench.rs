//! `kefu bench`: drives `CreateComplaint` through a running gateway with N concurrent callers for a
//! fixed time, and reports throughput, p50/p99 latency, errors, the CPU time the suite (and
//! PostgreSQL) spent per complaint, the suite's resident memory, and whether the handoff to the
//! owners kept up (complaints still waiting for their owner at the end, and how long they took to
//! drain). CPU and memory are read from /proc, so pass the suite's pid.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
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
    /// How long to wait, after a run, for every complaint to reach its owner.
    #[arg(long, default_value_t = 60)]
    drain_seconds: u64,
    /// Register this URL as the webhook of every branch the load uses (B00–B19), so that every
    /// complaint is also posted to it (e.g. `python3 bench/webhook-sink.py 8099`).
    #[arg(long)]
    webhook_url: Option<String>,
}

/// The branches the load files complaints for.
const BRANCHES: usize = 20;

pub async fn run(args: BenchArgs) -> Result<(), String> {
    let channel = args.gateway.connect().await?;
    let client = ComplaintsClient::new(channel.clone());
    println!("kefu bench against {} ({} s per run)", args.gateway.gateway, args.seconds);
    if let Some(url) = &args.webhook_url {
        register_webhooks(channel, url).await?;
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
        drive(&client, concurrency, Duration::from_secs(2)).await;
        let suite_before = args.suite_pid.and_then(cpu_ticks);
        let postgres_before = args.postgres.then(postgres_ticks);
        let started = Instant::now();
        let result = drive(&client, concurrency, Duration::from_secs(args.seconds)).await;
        let elapsed = started.elapsed().as_secs_f64();
        let suite_after = args.suite_pid.and_then(cpu_ticks);
        let postgres_after = args.postgres.then(postgres_ticks);
        let rss_loaded = args.suite_pid.and_then(rss);
        let backlog_at_end = backlog(&client).await;
        let ok = result.latencies_us.len() as u64;
        let per_complaint = |before: Option<u64>, after: Option<u64>| match (before, after) {
            (Some(before), Some(after)) if ok > 0 => format!("{:.3}", (after - before) as f64 * 10.0 / ok as f64),
            _ => "-".into(),
        };
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
        let drain_started = Instant::now();
        loop {
            match backlog(&client).await {
                Some(0) => {
                    println!(
                        "      all complaints reached their owners {:.1} s after the run",
                        drain_started.elapsed().as_secs_f64()
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
        "suite_cpu_ms and pg_cpu_ms are CPU milliseconds per complaint; backlog counts complaints not yet accepted by their owner when the run ended."
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
    latencies_us: Vec<u64>,
    errors: u64,
}

async fn drive(client: &ComplaintsClient<Channel>, concurrency: usize, duration: Duration) -> RunResult {
    let deadline = Instant::now() + duration;
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let mut client = client.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let categories = ["late_delivery", "cargo_damage", "late_remittance", "attitude", "mis_sort"];
            let mut n = 0usize;
            while Instant::now() < deadline {
                n += 1;
                let request = CreateComplaintRequest {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    complaint: Some(Complaint {
                        category: categories[(worker + n) % categories.len()].into(),
                        waybill_number: format!("YD{worker:03}{n:08}"),
                        channel: ComplaintChannel::Phone as i32,
                        description: "货物延误三天未到,客户多次查询无果".into(),
                        customer_request: "尽快送达并说明原因".into(),
                        contact: Some(Contact { name: "测试客户".into(), phone: "13800000000".into() }),
                        branch: format!("B{:02}", worker % BRANCHES),
                        ..Default::default()
                    }),
                    from_request: String::new(),
                };
                let started = Instant::now();
                match client.create_complaint(request).await {
                    Ok(_) => latencies.push(started.elapsed().as_micros() as u64),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies_us = Vec::new();
    for task in tasks {
        if let Ok(mut latencies) = task.await {
            latencies_us.append(&mut latencies);
        }
    }
    RunResult { latencies_us, errors: errors.load(Ordering::Relaxed) }
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

/// utime + stime of a process, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after it are fixed.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "postgres"))
        .filter_map(cpu_ticks)
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
