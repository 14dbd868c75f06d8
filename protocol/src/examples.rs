//! Example data used by documentation, tests (here and in the node) and the demo. Every value
//! here is valid; tests derive invalid variants from it by changing one field at a time.

use crate::request::{
    AssistanceRequest, Authority, Confidentiality, DataCategory, Instrument, Offence, RequestKind,
    Urgency,
};
use crate::selector::Selector;
use crate::{Jurisdiction, TimeWindow, Timestamp};

/// A valid request from France to Germany under a European Production Order, for the
/// subscriber data behind one e-mail address, at normal urgency.
///
/// The golden vectors in `tests/vectors/` are built from this request: changing it changes
/// them, and they must then be regenerated deliberately.
pub fn sample_request() -> AssistanceRequest {
    AssistanceRequest {
        requesting: jurisdiction("FR"),
        executing: jurisdiction("DE"),
        issuing_authority: Authority {
            name: "Parquet de Paris, section J3".into(),
            role: "public prosecutor".into(),
            contact: "j3.parquet-paris@justice.example.fr".into(),
        },
        validating_authority: None,
        instrument: Instrument::EuEpoc,
        kind: RequestKind::Disclosure,
        offence: Offence {
            category: "fraud".into(),
            description: "Phishing campaign impersonating a bank; victims in Paris".into(),
            max_penalty_months: Some(60),
        },
        data_categories: vec![DataCategory::Subscriber],
        selectors: vec![Selector::Email("alice@example.org".into())],
        time_window: Some(TimeWindow {
            from: Timestamp::from_millis(1_782_864_000_000), // 2026-07-01T00:00:00Z
            to: Timestamp::from_millis(1_790_812_800_000),   // 2026-10-01T00:00:00Z
        }),
        urgency: Urgency::Normal,
        necessity: "The account sent the phishing e-mails; its subscriber data is the only lead \
                    to the sender. Only subscriber data for one account is sought."
            .into(),
        confidentiality: Confidentiality {
            delay_user_notification: false,
            reason: None,
        },
        retention_days: 365,
        purpose: "Identification of the suspect in investigation 2026/1234 only".into(),
        language: "fr".into(),
        translations: Vec::new(),
    }
}

fn jurisdiction(code: &str) -> Jurisdiction {
    code.parse()
        .expect("example jurisdictions are assigned codes")
}

/// An approval of [`sample_request`] by a second officer (four-eyes).
pub fn sample_approval() -> crate::Approval {
    crate::Approval {
        drafted_by: "juge.martin".into(),
        approved_by: "procureure.dubois".into(),
        approved_at: Timestamp::from_millis(1_789_999_000_000),
    }
}
