//! An OTLP/gRPC trace receiver that counts what it receives and prints it every second: the
//! collector `kefu bench` is measured against with traces exported (docs/benchmarks.md).
//!
//! cargo run --release --example otlp-sink -- 127.0.0.1:4317

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};

#[derive(Default, Clone)]
struct Sink {
    spans: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:4317".into()).parse()?;
    let sink = Sink::default();
    let spans = sink.spans.clone();
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let now = spans.load(Ordering::Relaxed);
            if now != last {
                println!("{now} spans received ({} in the last second)", now - last);
                last = now;
            }
        }
    });
    println!("OTLP trace receiver on {address}");
    tonic::transport::Server::builder().add_service(TraceServiceServer::new(sink)).serve(address).await?;
    Ok(())
}
