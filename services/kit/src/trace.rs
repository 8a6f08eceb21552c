//! The W3C trace context (`traceparent`, `tracestate`), carried on every gRPC hop and inside every
//! event, so that one complaint is one trace from the gateway to the last department. The gateway
//! starts a trace when the caller did not send one; each hop below keeps the trace id.

use tonic::metadata::{MetadataMap, MetadataValue};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceContext {
    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; empty when there is none.
    pub traceparent: String,
    pub tracestate: String,
}

impl TraceContext {
    /// A new trace, sampled.
    pub fn new_root() -> Self {
        let trace_id = uuid::Uuid::new_v4().simple().to_string();
        let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
        TraceContext { traceparent: format!("00-{trace_id}-{span_id}-01"), tracestate: String::new() }
    }

    /// The trace context of an incoming call, if it has a well-formed one.
    pub fn from_metadata(metadata: &MetadataMap) -> Option<Self> {
        let traceparent = metadata.get(TRACEPARENT)?.to_str().ok()?.trim();
        if !is_valid_traceparent(traceparent) {
            return None;
        }
        let tracestate = metadata.get(TRACESTATE).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
        Some(TraceContext { traceparent: traceparent.to_owned(), tracestate })
    }

    /// The same trace with a new parent span id: the context for a call this hop makes.
    pub fn child(&self) -> Self {
        if !is_valid_traceparent(&self.traceparent) {
            return Self::new_root();
        }
        let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
        let traceparent = format!("{}{}{}", &self.traceparent[..36], span_id, &self.traceparent[52..]);
        TraceContext { traceparent, tracestate: self.tracestate.clone() }
    }

    pub fn trace_id(&self) -> &str {
        self.traceparent.get(3..35).unwrap_or_default()
    }

    pub fn write_metadata(&self, metadata: &mut MetadataMap) {
        if let Ok(value) = MetadataValue::try_from(self.traceparent.as_str()) {
            metadata.insert(TRACEPARENT, value);
        }
        if !self.tracestate.is_empty()
            && let Ok(value) = MetadataValue::try_from(self.tracestate.as_str())
        {
            metadata.insert(TRACESTATE, value);
        }
    }
}

fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1] != "00000000000000000000000000000000"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_span() {
        let root = TraceContext::new_root();
        assert!(is_valid_traceparent(&root.traceparent), "{}", root.traceparent);
        let child = root.child();
        assert!(is_valid_traceparent(&child.traceparent));
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.traceparent, root.traceparent);
    }

    #[test]
    fn malformed_traceparent_is_ignored() {
        let mut metadata = MetadataMap::new();
        metadata.insert(TRACEPARENT, MetadataValue::from_static("00-xyz-123-01"));
        assert_eq!(TraceContext::from_metadata(&metadata), None);
        metadata
            .insert(TRACEPARENT, MetadataValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        let context = TraceContext::from_metadata(&metadata).expect("valid traceparent");
        assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
