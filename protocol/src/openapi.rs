//! OpenAPI schemas of the types whose JSON form is written by hand (feature `openapi`): how
//! they look in the admin API's JSON, for integrators who read the OpenAPI document rather
//! than Rust. Plain structs and enums derive theirs where they are defined.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, schema::SchemaType};

/// A text schema with a description and an example.
fn text(description: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .examples([example])
        .into()
}

macro_rules! text_schema {
    ($ty:ty, $description:literal, $example:literal) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                text($description, $example)
            }
        }
        impl utoipa::ToSchema for $ty {}
    };
}

text_schema!(
    crate::Jurisdiction,
    "A member's code: ISO 3166-1 alpha-2 in upper case, or a bloc body's code (e.g. FR-PNF).",
    "FR"
);
text_schema!(
    crate::CaseId,
    "A case's id: a ULID in its upper-case form.",
    "01JDV6Z9J5H0M6T8X8P3QY2W4K"
);
text_schema!(
    crate::MessageId,
    "A message's id: a ULID in its upper-case form.",
    "01JDV6Z9J5H0M6T8X8P3QY2W4K"
);
text_schema!(
    crate::Hash32,
    "A 32-byte hash (BLAKE3 for message bodies, events and evidence; SHA-256 in Merkle proofs), lower-case hex.",
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
);
text_schema!(
    crate::PublicKey,
    "An Ed25519 public key, lower-case hex (64 characters).",
    "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
);
text_schema!(
    crate::Signature64,
    "An Ed25519 signature, lower-case hex (128 characters).",
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
);

impl utoipa::PartialSchema for crate::Timestamp {
    fn schema() -> RefOr<Schema> {
        // Written as milliseconds since the Unix epoch; read from those or from RFC 3339 text.
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Integer))
            .format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                utoipa::openapi::schema::KnownFormat::Int64,
            )))
            .description(Some(
                "A point in time: milliseconds since the Unix epoch, UTC. Requests may also give it as RFC 3339 text (2026-11-30T09:00:00Z).",
            ))
            .examples([1_796_000_000_000_i64])
            .into()
    }
}
impl utoipa::ToSchema for crate::Timestamp {}

impl utoipa::PartialSchema for crate::SignedEnvelope {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(SchemaType::Type(Type::String));
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Object))
            .description(Some(
                "A signed object (COSE_Sign1, RFC 9052): its content type, its signer's key, and the COSE bytes in hex, which anyone can verify with the signer's key (docs/protocol.md).",
            ))
            .property("content_type", string().examples(["application/comity.receipt.v1+cbor"]))
            .property("signer", <crate::PublicKey as utoipa::PartialSchema>::schema())
            .property("cose", string().description(Some("The COSE_Sign1 object, lower-case hex.")))
            .required("content_type")
            .required("signer")
            .required("cose")
            .into()
    }
}
impl utoipa::ToSchema for crate::SignedEnvelope {}
