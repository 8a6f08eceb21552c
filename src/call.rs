//! `kefu call`: any method of kefu's public API, JSON in and JSON out, from the descriptors compiled
//! into the binary (`kefu_proto::FILE_DESCRIPTOR_SET`): a newcomer needs nothing but kefu to talk to
//! a running gateway. The typed commands (`kefu complaint …`) call through the same [`Api`].
//!
//! JSON is protobuf's canonical JSON mapping: field names as in the `.proto` files (`waybill_number`;
//! `waybillNumber` is accepted too), enums by name (`"PHONE"`), timestamps as RFC 3339 strings,
//! 64-bit integers as strings. A field the message does not have is an error, not ignored.

use std::{io::Read, str::FromStr};

use clap::Args;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MethodDescriptor, SerializeOptions};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::client::{Failure, Gateway, GatewayArgs, explain};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kefu call --list
  kefu call kefu.gateway.v1.Complaints/GetComplaint '{\"name\": \"complaints/20261122-7K3M9Q\"}'
  echo '{\"page_size\": 5}' | kefu call kefu.gateway.v1.Complaints/ListComplaints -
  kefu call --describe kefu.intake.v1.Intake/ResolveComplaint")]
pub struct CallArgs {
    /// The method, as `package.Service/Method` (`kefu call --list` shows them all).
    method: Option<String>,
    /// The request as JSON (`-` reads it from standard input). Default: `{}`.
    json: Option<String>,
    /// List every method of the public API, with what it does.
    #[arg(long, conflicts_with = "json")]
    list: bool,
    /// Show the method's request: each field with its type, and its comment.
    #[arg(long, conflicts_with = "json")]
    describe: bool,
    #[command(flatten)]
    gateway: GatewayArgs,
}

pub async fn run(args: CallArgs) -> Result<(), Failure> {
    let api = Api::load()?;
    if args.list {
        for method in api.public_methods() {
            crate::say!("{:<64} {}", path_of(&method), first_line(&method));
        }
        return Ok(());
    }
    let Some(name) = args.method else {
        return Err(Failure::usage("name a method (`kefu call --list` shows them), or --list"));
    };
    let method = api.method(&name)?;
    if args.describe {
        crate::say!("{}", describe(&method).trim_end());
        return Ok(());
    }
    let json = match args.json.as_deref() {
        None => "{}".to_owned(),
        Some("-") => {
            let mut json = String::new();
            std::io::stdin()
                .read_to_string(&mut json)
                .map_err(|error| Failure::usage(format!("reading the request from standard input: {error}")))?;
            json
        }
        Some(json) => json.to_owned(),
    };
    let request = api.request(&method, &json)?;
    let response = api.call(&args.gateway.connect().await?, &method, request).await?;
    crate::say!("{}", to_json(&response));
    Ok(())
}

/// The public API as the descriptors compiled into the binary describe it.
pub struct Api {
    pool: DescriptorPool,
}

/// `package.Service/Method`.
fn path_of(method: &MethodDescriptor) -> String {
    format!("{}/{}", method.parent_service().full_name(), method.name())
}

/// Whether a service is one callers reach through the gateway (events between kefu's own parts are not).
fn is_public(service: &str) -> bool {
    service.starts_with("kefu.") && !service.starts_with("kefu.events.")
}

impl Api {
    /// The API of the descriptors built into this binary. They were compiled from `proto/` with
    /// it, so failing to read them means a broken build, said as such rather than a panic.
    pub fn load() -> Result<Api, Failure> {
        let pool = DescriptorPool::decode(kefu_proto::FILE_DESCRIPTOR_SET).map_err(|error| {
            Failure::from(format!("this kefu binary's own API descriptors do not decode ({error}); rebuild it"))
        })?;
        Ok(Api { pool })
    }

    /// Every public method.
    fn public_methods(&self) -> Vec<MethodDescriptor> {
        self.pool
            .services()
            .filter(|service| is_public(service.full_name()))
            .flat_map(|service| service.methods().collect::<Vec<_>>())
            .collect()
    }

    /// The method named `name` (`package.Service/Method`, or with a `.` or a leading `/`).
    pub fn method(&self, name: &str) -> Result<MethodDescriptor, Failure> {
        let name = name.trim().trim_start_matches('/');
        let (service, method) = name
            .rsplit_once('/')
            .or_else(|| name.rsplit_once('.'))
            .ok_or_else(|| Failure::usage(format!("{name:?} is not a method: write package.Service/Method")))?;
        let found = self
            .pool
            .get_service_by_name(service)
            .filter(|service| is_public(service.full_name()))
            .and_then(|service| service.methods().find(|candidate| candidate.name() == method));
        found.ok_or_else(|| {
            let near: Vec<String> = self
                .public_methods()
                .iter()
                .map(path_of)
                .filter(|candidate| candidate.to_lowercase().contains(&method.to_lowercase()))
                .collect();
            let mut message = format!("no method {service}/{method} in kefu's public API");
            if !near.is_empty() {
                message.push_str(&format!("; did you mean {}?", near.join(" or ")));
            }
            Failure::usage(format!("{message} (`kefu call --list` shows them all)"))
        })
    }

    /// `json` as the method's request, or an error that names what is wrong with it.
    pub fn request(&self, method: &MethodDescriptor, json: &str) -> Result<DynamicMessage, Failure> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let request =
            DynamicMessage::deserialize_with_options(method.input(), &mut deserializer, &DeserializeOptions::new())
                .and_then(|request| deserializer.end().map(|()| request))
                .map_err(|error| {
                    Failure::usage(format!(
                        "the request is not a {}: {error}\n(`kefu call --describe {}/{}` shows its fields)",
                        method.input().full_name(),
                        method.parent_service().full_name(),
                        method.name()
                    ))
                })?;
        Ok(request)
    }

    /// Calls `method` at the gateway with `request`.
    pub async fn call(
        &self,
        gateway: &Gateway,
        method: &MethodDescriptor,
        request: DynamicMessage,
    ) -> Result<DynamicMessage, Failure> {
        self.call_status(gateway, method, request)
            .await
            .map_err(|status| explain(&format!("{} failed", method.name()), &status))
    }

    /// Calls `method` at the gateway with `request`; a failure is the gateway's status (a gateway
    /// that cannot be reached is `UNAVAILABLE`).
    pub async fn call_status(
        &self,
        gateway: &Gateway,
        method: &MethodDescriptor,
        request: DynamicMessage,
    ) -> Result<DynamicMessage, tonic::Status> {
        let path = format!("/{}", path_of(method));
        let path =
            http::uri::PathAndQuery::from_str(&path).map_err(|error| tonic::Status::internal(error.to_string()))?;
        let mut grpc = tonic::client::Grpc::new(gateway.clone());
        grpc.ready().await.map_err(|error| tonic::Status::unavailable(format!("the gateway is not ready: {error}")))?;
        let codec = DynamicCodec { output: method.output() };
        Ok(grpc.unary(tonic::Request::new(request), path, codec).await?.into_inner())
    }

    /// A message of kefu's generated types as a JSON value, through its descriptor (`full_name`,
    /// such as `kefu.intake.v1.Complaint`), with the `.proto` files' field names.
    pub fn value_of(&self, message: &impl prost::Message, full_name: &str) -> serde_json::Value {
        let Some(descriptor) = self.pool.get_message_by_name(full_name) else {
            return serde_json::Value::Null;
        };
        DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
            .ok()
            .and_then(|message| to_value(&message).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// A message as protobuf's canonical JSON, pretty, with the `.proto` files' field names in the
/// `.proto` files' order.
pub fn to_json(message: &DynamicMessage) -> String {
    let mut json = Vec::new();
    let mut serializer = serde_json::Serializer::pretty(&mut json);
    match message.serialize_with_options(&mut serializer, &field_names()) {
        Ok(()) => String::from_utf8_lossy(&json).into_owned(),
        Err(error) => format!("{{\"error\": \"the response as JSON: {error}\"}}"),
    }
}

fn field_names() -> SerializeOptions {
    SerializeOptions::new().use_proto_field_name(true)
}

/// A message as a JSON value (fields left at their default are left out).
pub fn to_value(message: &DynamicMessage) -> Result<serde_json::Value, serde_json::Error> {
    message.serialize_with_options(serde_json::value::Serializer, &field_names())
}

/// The method's comment in its `.proto` file.
fn comment_of(method: &MethodDescriptor) -> String {
    // A method's path in its file's source info: services (6), the service's place in the file,
    // methods (2), the method's place in the service.
    let file = method.parent_file();
    let service = method.parent_service();
    let place_of_service = file.services().position(|candidate| candidate.full_name() == service.full_name());
    let place_of_method = service.methods().position(|candidate| candidate.name() == method.name());
    let (Some(place_of_service), Some(place_of_method)) = (place_of_service, place_of_method) else {
        return String::new();
    };
    let path = [6, place_of_service as i32, 2, place_of_method as i32];
    file.file_descriptor_proto()
        .source_code_info
        .as_ref()
        .and_then(|info| info.location.iter().find(|location| location.path == path))
        .and_then(|location| location.leading_comments.as_deref())
        .map(|text| text.lines().map(str::trim).collect::<Vec<_>>().join(" ").trim().to_owned())
        .unwrap_or_default()
}

/// The first sentence of the method's comment.
fn first_line(method: &MethodDescriptor) -> String {
    let comment = comment_of(method);
    match comment.find(". ") {
        Some(end) => comment[..=end].to_owned(),
        None => comment,
    }
}

/// The request of `method` as a form can be built from it: each field with its type, its enum
/// values, and one level of a nested message's fields.
pub fn describe_value(method: &MethodDescriptor) -> serde_json::Value {
    fn field_value(field: &prost_reflect::FieldDescriptor, depth: usize) -> serde_json::Value {
        let mut value = serde_json::json!({"name": field.name(), "repeated": field.is_list() || field.is_map()});
        let kind = match field.kind() {
            prost_reflect::Kind::Message(message) => {
                if message.full_name() == "google.protobuf.Timestamp" {
                    "timestamp".to_owned()
                } else if message.full_name() == "google.protobuf.Duration" {
                    "duration".to_owned()
                } else {
                    if depth == 0 {
                        value["fields"] = message.fields().map(|inner| field_value(&inner, depth + 1)).collect();
                    }
                    "message".to_owned()
                }
            }
            prost_reflect::Kind::Enum(values) => {
                value["values"] = values
                    .values()
                    .filter(|value| value.number() != 0)
                    .map(|value| serde_json::Value::from(value.name()))
                    .collect();
                "enum".to_owned()
            }
            other => format!("{other:?}").to_lowercase(),
        };
        value["kind"] = kind.into();
        value
    }
    serde_json::json!({
        "method": path_of(method),
        "comment": comment_of(method),
        "fields": method.input().fields().map(|field| field_value(&field, 0)).collect::<Vec<_>>(),
    })
}

/// The request of `method`, a field a line.
fn describe(method: &MethodDescriptor) -> String {
    let input = method.input();
    let mut text = format!("{}: {}\nrequest {}:\n", path_of(method), comment_of(method), input.full_name());
    for field in input.fields() {
        let kind = match field.kind() {
            prost_reflect::Kind::Message(message) => message.full_name().to_owned(),
            prost_reflect::Kind::Enum(values) => {
                let names: Vec<String> = values.values().map(|value| value.name().to_owned()).collect();
                format!("one of {}", names.join(", "))
            }
            other => format!("{other:?}").to_lowercase(),
        };
        let repeated = if field.is_list() { "repeated " } else { "" };
        text.push_str(&format!("  {:<22} {repeated}{kind}\n", field.name()));
    }
    text
}

/// Encodes and decodes the messages of one method, known only by its descriptors.
struct DynamicCodec {
    output: prost_reflect::MessageDescriptor,
}

struct DynamicEncoder;

struct DynamicDecoder {
    output: prost_reflect::MessageDescriptor,
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> DynamicEncoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> DynamicDecoder {
        DynamicDecoder { output: self.output.clone() }
    }
}

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = tonic::Status;

    fn encode(&mut self, item: DynamicMessage, buffer: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        item.encode(buffer).map_err(|error| tonic::Status::internal(format!("encoding the request: {error}")))
    }
}

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = tonic::Status;

    fn decode(&mut self, buffer: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, tonic::Status> {
        DynamicMessage::decode(self.output.clone(), buffer)
            .map(Some)
            .map_err(|error| tonic::Status::internal(format!("decoding the response: {error}")))
    }
}
