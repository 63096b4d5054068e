//! Where a record goes when it cannot be handled: the next retry tier or the DLQ.
//! Pure, so the policy is tested without a broker.

use echo_catalog::topics::{dlq_topic, retry_topic};

use crate::dead_letter::capped_message;
use crate::envelope::SourcePosition;
use crate::handler::HandlerError;
use crate::headers::{echo, HeaderList};

/// Why a record failed, as written in `echo_error_class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The handler said it might work later.
    Transient,
    /// The handler said it never will.
    Permanent,
    /// The bytes are not Avro in Confluent framing, or the schema id is unknown.
    Undecodable,
    /// A known record type that this topic does not carry.
    WrongTopic,
    /// The record key is not what the record names (its resource, its chunk): handling it
    /// would touch another key's state. The message starts with [`KEY_MISMATCH`].
    KeyMismatch,
    /// Its transaction kept failing on replay for a reason nobody classified: quarantined.
    Poison,
    /// The sender may not act on the key (a command without the resource's owner token):
    /// counted apart from bad input, as it may be an attack.
    Unauthorized,
}

impl ErrorClass {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Undecodable => "undecodable",
            ErrorClass::WrongTopic => "wrong_topic",
            ErrorClass::KeyMismatch => "key_mismatch",
            ErrorClass::Poison => "poison",
            ErrorClass::Unauthorized => "unauthorized",
        }
    }
}

/// The reason code a record refused for its key carries in its DLQ message.
pub const KEY_MISMATCH: &str = "KEY_MISMATCH";

/// A failure to route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its class.
    pub class: ErrorClass,
    /// What went wrong, for operators.
    pub message: String,
}

impl Failure {
    /// A failure of `class` for `message`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Failure {
        Failure {
            class,
            message: message.into(),
        }
    }
}

impl From<HandlerError> for Failure {
    fn from(e: HandlerError) -> Failure {
        match e {
            HandlerError::Transient(message) => Failure {
                class: ErrorClass::Transient,
                message,
            },
            HandlerError::Permanent(message) => Failure {
                class: ErrorClass::Permanent,
                message,
            },
            HandlerError::Unauthorized(message) => Failure {
                class: ErrorClass::Unauthorized,
                message,
            },
        }
    }
}

/// Where a failed record is sent, and with which headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reroute {
    /// Catalogue name of the target topic (retry tier or DLQ).
    pub topic: String,
    /// The original headers plus echo's bookkeeping.
    pub headers: HeaderList,
}

/// Routes a failed record: transient failures climb the retry tiers (attempt `n` goes to
/// tier `n`, due after its backoff), everything else, a transient failure past the last
/// tier, and one too large to be forwarded whole (`forwardable` false) go to the DLQ.
#[allow(clippy::too_many_arguments)] // each is one fact about the failed record
pub fn reroute(
    processor: &str,
    backoff_ms: &[u64],
    failure: &Failure,
    attempt: u32,
    source: &SourcePosition,
    original: &HeaderList,
    now_ms: i64,
    forwardable: bool,
) -> Reroute {
    let next_attempt = attempt + 1;
    let mut headers = original.clone();
    headers.set(echo::ERROR_CLASS, failure.class.as_str());
    let message = capped_message(&failure.message);
    if forwardable {
        headers.set(echo::ERROR_MESSAGE, message);
    } else {
        headers.set(
            echo::ERROR_MESSAGE,
            format!("{message}; too large to be retried"),
        );
    }
    headers.set(echo::ORIGINAL_TOPIC, &source.topic);
    headers.set(echo::ORIGINAL_PARTITION, source.partition);
    headers.set(echo::ORIGINAL_OFFSET, source.offset);
    headers.set(echo::PROCESSOR, processor);
    headers.set(echo::ATTEMPT, next_attempt);
    let tier = next_attempt as usize;
    let topic = match (failure.class, backoff_ms.get(tier - 1)) {
        (ErrorClass::Transient, Some(backoff)) if forwardable => {
            headers.set(echo::DUE_AT, now_ms + *backoff as i64);
            retry_topic(processor, tier)
        }
        _ => dlq_topic(processor),
    };
    Reroute { topic, headers }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> SourcePosition {
        SourcePosition {
            topic: "echo.upload.requests".into(),
            partition: 2,
            offset: 41,
        }
    }

    fn transient() -> Failure {
        Failure {
            class: ErrorClass::Transient,
            message: "s3 down".into(),
        }
    }

    #[test]
    fn transient_failures_climb_the_tiers_then_land_in_the_dlq() {
        let tiers = [100, 1000];
        let first = reroute(
            "upload",
            &tiers,
            &transient(),
            0,
            &src(),
            &HeaderList::default(),
            5,
            true,
        );
        assert_eq!(first.topic, "echo.upload.retry.1");
        assert_eq!(first.headers.get(echo::DUE_AT), Some("105"));
        assert_eq!(first.headers.get(echo::ATTEMPT), Some("1"));
        let second = reroute(
            "upload",
            &tiers,
            &transient(),
            1,
            &src(),
            &first.headers,
            7,
            true,
        );
        assert_eq!(second.topic, "echo.upload.retry.2");
        assert_eq!(second.headers.get(echo::DUE_AT), Some("1007"));
        let last = reroute(
            "upload",
            &tiers,
            &transient(),
            2,
            &src(),
            &second.headers,
            9,
            true,
        );
        assert_eq!(last.topic, "echo.upload.dlq");
        assert_eq!(
            last.headers.get(echo::ORIGINAL_TOPIC),
            Some("echo.upload.requests")
        );
        assert_eq!(last.headers.get(echo::ORIGINAL_OFFSET), Some("41"));
        assert_eq!(last.headers.get(echo::ERROR_CLASS), Some("transient"));
    }

    #[test]
    fn a_transient_failure_too_large_to_forward_goes_to_the_dlq() {
        let r = reroute(
            "upload",
            &[100],
            &transient(),
            0,
            &src(),
            &HeaderList::default(),
            0,
            false,
        );
        assert_eq!(r.topic, "echo.upload.dlq");
        assert_eq!(r.headers.get(echo::DUE_AT), None);
        assert_eq!(
            r.headers.get(echo::ERROR_MESSAGE),
            Some("s3 down; too large to be retried")
        );
    }

    #[test]
    fn permanent_and_undecodable_go_straight_to_the_dlq() {
        for class in [
            ErrorClass::Permanent,
            ErrorClass::Undecodable,
            ErrorClass::WrongTopic,
            ErrorClass::Poison,
            ErrorClass::Unauthorized,
        ] {
            let f = Failure {
                class,
                message: "bad".into(),
            };
            let r = reroute(
                "upload",
                &[100],
                &f,
                0,
                &src(),
                &HeaderList::default(),
                0,
                true,
            );
            assert_eq!(r.topic, "echo.upload.dlq");
            assert_eq!(r.headers.get(echo::ERROR_CLASS), Some(class.as_str()));
            assert_eq!(r.headers.get(echo::ERROR_MESSAGE), Some("bad"));
        }
    }
}
