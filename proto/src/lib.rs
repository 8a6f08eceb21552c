//! kefu's gRPC contracts: the Rust code generated from `proto/kefu/<package>/v1/*.proto`.
//!
//! The `.proto` files are the source of truth; `build.rs` compiles them with protox (no `protoc`
//! is needed on any machine) and tonic-prost-build. [`FILE_DESCRIPTOR_SET`] is the encoded
//! descriptor set of every file, which servers hand to gRPC reflection.

#![allow(clippy::all, missing_docs, unreachable_pub)]

/// The encoded `FileDescriptorSet` of every kefu `.proto` file, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kefu_descriptor.bin"));

pub mod kefu {
    pub mod gateway {
        pub mod v1 {
            tonic::include_proto!("kefu.gateway.v1");
        }
    }
    pub mod intake {
        pub mod v1 {
            tonic::include_proto!("kefu.intake.v1");
        }
    }
    pub mod inspection {
        pub mod v1 {
            tonic::include_proto!("kefu.inspection.v1");
        }
    }
    pub mod claims {
        pub mod v1 {
            tonic::include_proto!("kefu.claims.v1");
        }
    }
    pub mod settlement {
        pub mod v1 {
            tonic::include_proto!("kefu.settlement.v1");
        }
    }
    pub mod archives {
        pub mod v1 {
            tonic::include_proto!("kefu.archives.v1");
        }
    }
    pub mod events {
        pub mod v1 {
            tonic::include_proto!("kefu.events.v1");
        }
    }
    pub mod r#type {
        pub mod v1 {
            tonic::include_proto!("kefu.r#type.v1");
        }
    }
}

pub use kefu::{archives, claims, events, gateway, inspection, intake, settlement, r#type as types};
