//! The request guard: before a call goes anywhere, its message is read once against its contract
//! (kefu's compiled descriptors), so that no service ever sees
//!
//! - a message that is not one: truncated, corrupt, or not the method's request type;
//! - text that is not UTF-8;
//! - text with a control character other than newline and tab (a NUL, which PostgreSQL refuses, an
//!   escape sequence, a carriage return).
//!
//! Each is `INVALID_ARGUMENT` naming the field as the services name theirs
//! (`complaint.description`, `webhook.events[3]`), and nothing is called. The guard knows only the
//! wire format and which fields are text; what a valid value is stays with the services.

use std::collections::HashMap;

use kefu_kit::error::FieldViolations;
use prost::Message as _;
use prost_types::{
    FileDescriptorSet,
    field_descriptor_proto::{Label, Type},
};

/// What the guard needs to know of one field.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    repeated: bool,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Text,
    /// A nested message, by its full name without the leading dot.
    Message(String),
    Bytes,
    /// A number, boolean or enum, sent with this wire type (or packed, if repeated).
    Scalar(u64),
}

/// Every method's request type, and every message's fields by number.
pub struct Guard {
    requests: HashMap<String, String>,
    messages: HashMap<String, HashMap<u32, Field>>,
}

/// Why a message is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a well-formed message of the method's request type.
    Malformed,
    /// A field whose text is unacceptable, and why.
    Field(String, &'static str),
}

impl Refusal {
    pub fn into_violations(self, request_type: &str) -> FieldViolations {
        let mut violations = FieldViolations::new();
        match self {
            Refusal::Malformed => violations.add(
                "request",
                format!(
                    "not a well-formed {request_type} message (truncated or corrupt): send the message the method takes"
                ),
            ),
            Refusal::Field(field, why) => violations.add(field, why),
        }
        violations
    }
}

const NOT_UTF8: &str = "not valid UTF-8 text";
const CONTROL: &str = "contains a control character; only newline and tab are allowed in text";

impl Guard {
    /// The guard for every method of kefu's contracts.
    pub fn load() -> Guard {
        let set = FileDescriptorSet::decode(kefu_proto::FILE_DESCRIPTOR_SET).unwrap_or_default();
        let mut requests = HashMap::new();
        let mut messages = HashMap::new();
        for file in &set.file {
            let package = file.package();
            for service in &file.service {
                for method in &service.method {
                    requests.insert(
                        format!("/{package}.{}/{}", service.name(), method.name()),
                        method.input_type().trim_start_matches('.').to_owned(),
                    );
                }
            }
            let mut stack: Vec<(String, &prost_types::DescriptorProto)> =
                file.message_type.iter().map(|message| (format!("{package}.{}", message.name()), message)).collect();
            while let Some((name, message)) = stack.pop() {
                let fields = message
                    .field
                    .iter()
                    .map(|field| {
                        let kind = match field.r#type() {
                            Type::String => Kind::Text,
                            Type::Message | Type::Group => {
                                Kind::Message(field.type_name().trim_start_matches('.').to_owned())
                            }
                            Type::Bytes => Kind::Bytes,
                            Type::Double | Type::Fixed64 | Type::Sfixed64 => Kind::Scalar(1),
                            Type::Float | Type::Fixed32 | Type::Sfixed32 => Kind::Scalar(5),
                            _ => Kind::Scalar(0),
                        };
                        let repeated = field.label() == Label::Repeated;
                        (field.number() as u32, Field { name: field.name().to_owned(), repeated, kind })
                    })
                    .collect();
                stack.extend(message.nested_type.iter().map(|nested| (format!("{name}.{}", nested.name()), nested)));
                messages.insert(name, fields);
            }
        }
        Guard { requests, messages }
    }

    /// The request type of the method at `path`, if it is one of kefu's.
    pub fn request_type(&self, path: &str) -> Option<&str> {
        self.requests.get(path).map(String::as_str)
    }

    /// Checks a unary call's body (one gRPC frame) for the method at `path`.
    pub fn check(&self, path: &str, body: &[u8]) -> Result<(), Refusal> {
        let Some(request_type) = self.requests.get(path) else { return Ok(()) };
        if body.is_empty() {
            return Err(Refusal::Malformed);
        }
        let (&[compressed, a, b, c, d], message) = body.split_at_checked(5).ok_or(Refusal::Malformed)? else {
            return Err(Refusal::Malformed);
        };
        if compressed != 0 || u32::from_be_bytes([a, b, c, d]) as usize != message.len() {
            return Err(Refusal::Malformed);
        }
        self.walk(message, request_type, "", 0)
    }

    fn walk(&self, mut bytes: &[u8], message: &str, prefix: &str, depth: usize) -> Result<(), Refusal> {
        if depth > 32 {
            return Err(Refusal::Malformed);
        }
        let fields = self.messages.get(message);
        let mut seen: HashMap<u32, usize> = HashMap::new();
        while !bytes.is_empty() {
            let key = varint(&mut bytes)?;
            // A key is 32 bits at most (field numbers up to 2^29 - 1), as the services' decoder reads it.
            let key = u32::try_from(key).map_err(|_| Refusal::Malformed)?;
            let (number, wire_type) = (key >> 3, u64::from(key & 7));
            if number == 0 {
                return Err(Refusal::Malformed);
            }
            let field = fields.and_then(|fields| fields.get(&number));
            // A known field must come with its own wire type, or the services could not read it.
            let expected = match field.map(|field| (&field.kind, field.repeated)) {
                None => None,
                Some((Kind::Scalar(wire), true)) if wire_type == 2 => Some(2),
                Some((Kind::Scalar(wire), _)) => Some(*wire),
                Some(_) => Some(2),
            };
            if expected.is_some_and(|expected| expected != wire_type) {
                return Err(Refusal::Malformed);
            }
            match wire_type {
                0 => {
                    varint(&mut bytes)?;
                }
                1 => bytes = bytes.get(8..).ok_or(Refusal::Malformed)?,
                5 => bytes = bytes.get(4..).ok_or(Refusal::Malformed)?,
                2 => {
                    let length = usize::try_from(varint(&mut bytes)?).map_err(|_| Refusal::Malformed)?;
                    let value = bytes.get(..length).ok_or(Refusal::Malformed)?;
                    bytes = &bytes[length..];
                    let Some(field) = field else { continue };
                    let index = seen.entry(number).or_insert(0);
                    let path = match (prefix.is_empty(), field.repeated) {
                        (true, false) => field.name.clone(),
                        (true, true) => format!("{}[{index}]", field.name),
                        (false, false) => format!("{prefix}.{}", field.name),
                        (false, true) => format!("{prefix}.{}[{index}]", field.name),
                    };
                    *index += 1;
                    match &field.kind {
                        Kind::Text => check_text(value).map_err(|why| Refusal::Field(path, why))?,
                        Kind::Message(nested) => self.walk(value, nested, &path, depth + 1)?,
                        Kind::Scalar(wire) => packed(value, *wire)?,
                        Kind::Bytes => {}
                    }
                }
                _ => return Err(Refusal::Malformed),
            }
        }
        Ok(())
    }
}

fn varint(bytes: &mut &[u8]) -> Result<u64, Refusal> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(Refusal::Malformed)?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Refusal::Malformed)
}

/// Checks that a packed run of scalars of wire type `wire` reads to its end.
fn packed(mut value: &[u8], wire: u64) -> Result<(), Refusal> {
    match wire {
        0 => {
            while !value.is_empty() {
                varint(&mut value)?;
            }
            Ok(())
        }
        1 if value.len().is_multiple_of(8) => Ok(()),
        5 if value.len().is_multiple_of(4) => Ok(()),
        _ => Err(Refusal::Malformed),
    }
}

fn check_text(value: &[u8]) -> Result<(), &'static str> {
    let text = std::str::from_utf8(value).map_err(|_| NOT_UTF8)?;
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(CONTROL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kefu_proto::gateway::v1::{Complaint, Contact, CreateComplaintRequest};

    use super::*;

    const CREATE: &str = "/kefu.gateway.v1.Complaints/CreateComplaint";

    fn framed(message: &impl prost::Message) -> Vec<u8> {
        let body = message.encode_to_vec();
        let mut framed = vec![0];
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
        framed.extend(body);
        framed
    }

    fn request(description: &str, phone: &str) -> CreateComplaintRequest {
        CreateComplaintRequest {
            request_id: "r-1".into(),
            complaint: Some(Complaint {
                category: "late_delivery".into(),
                description: description.into(),
                contact: Some(Contact { name: "王先生".into(), phone: phone.into() }),
                ..Default::default()
            }),
            from_request: String::new(),
        }
    }

    #[test]
    fn good_text_passes_and_newlines_and_tabs_are_text() {
        let guard = Guard::load();
        assert_eq!(guard.check(CREATE, &framed(&request("晚到三天\n\t客户很生气", "13800000000"))), Ok(()));
    }

    #[test]
    fn a_control_character_is_named_by_its_field() {
        let guard = Guard::load();
        let refused = guard.check(CREATE, &framed(&request("late\0", "13800000000")));
        assert_eq!(refused, Err(Refusal::Field("complaint.description".into(), CONTROL)));
        let refused = guard.check(CREATE, &framed(&request("late", "1380000\u{1b}[2J")));
        assert_eq!(refused, Err(Refusal::Field("complaint.contact.phone".into(), CONTROL)));
        let refused = guard.check(CREATE, &framed(&request("late\r\n", "1")));
        assert!(matches!(refused, Err(Refusal::Field(field, _)) if field == "complaint.description"));
    }

    #[test]
    fn repeated_text_is_named_with_its_index() {
        let guard = Guard::load();
        let webhook = kefu_proto::intake::v1::RegisterWebhookRequest {
            webhook: Some(kefu_proto::intake::v1::Webhook {
                events: vec!["resolved".into(), "accepted".into(), "bad\u{7}".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let refused = guard.check("/kefu.intake.v1.Intake/RegisterWebhook", &framed(&webhook));
        assert_eq!(refused, Err(Refusal::Field("webhook.events[2]".into(), CONTROL)));
    }

    #[test]
    fn invalid_utf8_truncation_and_bad_frames_are_refused() {
        let guard = Guard::load();
        let mut bytes = framed(&request("abc", "1"));
        let at = bytes.windows(3).position(|window| window == b"abc").expect("the description");
        bytes[at] = 0xff;
        assert_eq!(guard.check(CREATE, &bytes), Err(Refusal::Field("complaint.description".into(), NOT_UTF8)));
        let whole = framed(&request("abc", "1"));
        let mut truncated = whole[..whole.len() - 3].to_vec();
        let length = (truncated.len() - 5) as u32;
        truncated[1..5].copy_from_slice(&length.to_be_bytes());
        assert_eq!(guard.check(CREATE, &truncated), Err(Refusal::Malformed));
        assert_eq!(guard.check(CREATE, &whole[..whole.len() - 1]), Err(Refusal::Malformed), "frame length lies");
        assert_eq!(guard.check(CREATE, &[]), Err(Refusal::Malformed));
        assert_eq!(guard.check(CREATE, &[1, 0, 0, 0, 0]), Err(Refusal::Malformed), "compressed");
        // A key of more than 32 bits (field 2^29, fixed32), which the services' decoder refuses.
        let too_wide = [0, 0, 0, 0, 9, 133, 128, 128, 128, 16, 0, 0, 0, 0];
        assert_eq!(guard.check(CREATE, &too_wide), Err(Refusal::Malformed), "a key wider than 32 bits");
        assert_eq!(guard.check("/grpc.health.v1.Health/Check", &[9, 9]), Ok(()), "not a kefu method: not the guard's");
    }

    proptest::proptest! {
        /// Whatever the bytes, the guard answers (never panics), and what it lets through the
        /// services can read: it never passes a message their decoder refuses.
        #[test]
        fn what_the_guard_passes_the_services_can_read(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let guard = Guard::load();
            let mut framed = vec![0];
            framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            framed.extend(&bytes);
            if guard.check(CREATE, &framed).is_ok() {
                proptest::prop_assert!(CreateComplaintRequest::decode(bytes.as_slice()).is_ok(), "{bytes:?}");
            }
            let webhook = "/kefu.intake.v1.Intake/RegisterWebhook";
            if guard.check(webhook, &framed).is_ok() {
                proptest::prop_assert!(kefu_proto::intake::v1::RegisterWebhookRequest::decode(bytes.as_slice()).is_ok());
            }
        }

        /// Well-formed messages with any text pass exactly when the text has no control character
        /// but newline and tab.
        #[test]
        fn text_passes_exactly_without_control_characters(description in "\\PC*[\\x00-\\x1f]?\\PC*") {
            let guard = Guard::load();
            let clean = !description.chars().any(|c| c.is_control() && c != '\n' && c != '\t');
            proptest::prop_assert_eq!(guard.check(CREATE, &framed(&request(&description, "1"))).is_ok(), clean);
        }
    }
}
