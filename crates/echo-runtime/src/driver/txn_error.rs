//! Why a transaction failed, and what that asks of the loop: broker and network trouble is
//! retried without end; anything else may lie in what the transaction carried.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode as Code;

use crate::dependency::Unavailable;

/// How long one Kafka call may wait.
pub(super) const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// A failure of one transaction attempt.
pub(super) enum TxnError {
    /// Broker, network or registry trouble: abort, rewind, back off and try again.
    Infra(anyhow::Error),
    /// A failure whose cause may lie in what the transaction carried (a record the broker
    /// refuses, an error nobody classified): abort, rewind and replay unit by unit.
    Suspect(anyhow::Error),
    /// This instance must stop (fenced by a newer one, or a bug in the catalogue).
    Fatal(anyhow::Error),
    /// A dependency besides Kafka does not answer: abort, rewind and wait until it does.
    Unavailable(Unavailable),
}

impl TxnError {
    /// The error, whatever its kind.
    pub(super) fn into_inner(self) -> anyhow::Error {
        match self {
            TxnError::Infra(e) | TxnError::Suspect(e) | TxnError::Fatal(e) => e,
            TxnError::Unavailable(down) => down.into(),
        }
    }
}

impl From<KafkaError> for TxnError {
    fn from(e: KafkaError) -> TxnError {
        let fatal_txn = matches!(&e, KafkaError::Transaction(t) if t.is_fatal());
        if fatal_txn || e.rdkafka_error_code() == Some(Code::Fatal) {
            return TxnError::Fatal(e.into());
        }
        match e.rdkafka_error_code() {
            Some(code) if !is_infrastructure(code) => TxnError::Suspect(e.into()),
            _ => TxnError::Infra(e.into()),
        }
    }
}

/// Whether an error code says the broker, the network or the group is in trouble, rather
/// than anything about the records: only those are retried without end.
pub(super) fn is_infrastructure(code: Code) -> bool {
    use Code::*;
    matches!(
        code,
        BrokerTransportFailure
            | BrokerDestroy
            | DestroyBroker
            | Resolve
            | MessageTimedOut
            | AllBrokersDown
            | OperationTimedOut
            | TimedOutQueue
            | QueueFull
            | WaitingForCoordinator
            | RequestTimedOut
            | BrokerNotAvailable
            | ReplicaNotAvailable
            | LeaderNotAvailable
            | NotLeaderForPartition
            | NetworkException
            | CoordinatorLoadInProgress
            | CoordinatorNotAvailable
            | NotCoordinator
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | ISRInsufficient
            | KafkaStorageError
            | FencedLeaderEpoch
            | UnknownLeaderEpoch
            | NotController
            | UnknownTopicOrPartition
            | UnknownTopic
            | UnknownPartition
            | IllegalGeneration
            | UnknownMemberId
            | RebalanceInProgress
            | FencedInstanceId
            | AssignmentLost
            | ConcurrentTransactions
            | TransactionCoordinatorFenced
            | InvalidProducerEpoch
            | ProducerFenced
            | Fenced
            | UnknownProducerId
            | OutOfOrderSequenceNumber
            | InvalidTransactionalState
            | State
            | InProgress
            | PreviousInProgress
            | Retry
            | PurgeQueue
            | PurgeInflight
            | Interrupted
            | ThrottlingQuotaExceeded
            | Authentication
            | TopicAuthorizationFailed
            | GroupAuthorizationFailed
            | ClusterAuthorizationFailed
            | TransactionalIdAuthorizationFailed
            | SaslAuthenticationFailed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_trouble_is_infrastructure_and_record_trouble_is_suspect() {
        let production = |code| TxnError::from(KafkaError::MessageProduction(code));
        for code in [
            Code::BrokerTransportFailure,
            Code::NotCoordinator,
            Code::MessageTimedOut,
        ] {
            assert!(matches!(production(code), TxnError::Infra(_)), "{code:?}");
        }
        for code in [
            Code::MessageSizeTooLarge,
            Code::InvalidRecord,
            Code::InvalidMessage,
            Code::PolicyViolation,
        ] {
            assert!(matches!(production(code), TxnError::Suspect(_)), "{code:?}");
        }
    }
}
