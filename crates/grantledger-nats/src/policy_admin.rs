//! Policy administration of a running ledger: a catalog or a policy set is
//! published on `grants.policy.<tenant>` through JetStream, asking for a
//! receipt, and the ledger's answer is awaited. The client behind
//! `grantledger policy publish --nats` and `grantledger catalog publish
//! --nats`.
//!
//! The ledger decides the input in its next batch like any other input: the
//! receipt comes only once what it recorded is committed to the log and
//! published on `LEDGER_EVENTS` (`committed`, with the sequence and the hash
//! now in force), or names why it was refused (`rejected`, with the reason,
//! `policy_invalid` or `catalog_invalid` say, and Cedar's or the catalog's
//! message), in which case nothing was recorded.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind};
use futures::StreamExt;

use crate::ledger_service::{POLICY_INPUT_BYTES_MAX, PolicyInput, REPLY_TO_HEADER, ServiceReceipt};
use crate::subjects::policy_subject;

/// Where and how to publish.
#[derive(Clone, Debug)]
pub struct AdminConnection {
    /// The NATS server URL.
    pub url: String,
    /// The tenant whose ledger the input is for.
    pub tenant: String,
    /// A credentials file.
    pub creds_file: Option<PathBuf>,
    /// User and password.
    pub user_password: Option<(String, String)>,
    /// Inbox prefix: the receipt and JetStream's ack come there (the shipped
    /// config gives `policy_author` `_INBOX_POLICY`; `admin` may use the
    /// default `_INBOX`).
    pub inbox_prefix: Option<String>,
    /// Bound on connecting and on JetStream's acknowledgement of the input.
    pub timeout: Duration,
    /// How long to wait for the ledger's receipt once the input is stored.
    pub receipt_wait: Duration,
}

/// Why no receipt was had; each names the subject, inbox or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The tenant cannot be a subject token.
    #[error("{0}")]
    Tenant(crate::subjects::SubjectError),
    /// The body is larger than the ledger takes on `grants.policy.<tenant>`.
    #[error("the input is {size} bytes, more than the {max} bytes the ledger takes on `{subject}`: nothing was sent")]
    Oversized {
        /// The subject it was for.
        subject: String,
        /// The body's size.
        size: usize,
        /// [`POLICY_INPUT_BYTES_MAX`].
        max: usize,
    },
    /// Connecting failed.
    #[error("cannot connect to NATS at `{url}`: {reason}")]
    Connect {
        /// The server.
        url: String,
        /// Why.
        reason: String,
    },
    /// No stream captures the subject.
    #[error(
        "no stream captures `{subject}`: has `grantledger ledger` ever run against this server, and does \
         GRANT_INPUT capture `grants.policy.*`? (a stream made before policy inputs does not: add the subject \
         as the admin user, see deploy/README.md)"
    )]
    NotCaptured {
        /// The subject.
        subject: String,
    },
    /// JetStream did not acknowledge the input in time: most often the user
    /// may not publish on the subject (the server drops the message).
    #[error(
        "JetStream did not acknowledge the input on `{subject}` within {waited:?}: may this user publish there? \
         (the shipped config allows only `policy_author` and `admin`)"
    )]
    NotAcknowledged {
        /// The subject.
        subject: String,
        /// How long it waited.
        waited: Duration,
    },
    /// Publishing failed otherwise.
    #[error("publishing on `{subject}` failed: {reason}")]
    Publish {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// The input is stored, and no receipt came in time.
    #[error(
        "no receipt on `{inbox}` within {waited:?} for the input stored on `{subject}` (GRANT_INPUT sequence \
         {stream_sequence}): is `grantledger ledger` running for tenant `{tenant}`? The input stays in the stream \
         and is decided when the ledger takes it"
    )]
    NoReceipt {
        /// The subject the input was published on.
        subject: String,
        /// Where the receipt was awaited.
        inbox: String,
        /// The input's sequence in `GRANT_INPUT`.
        stream_sequence: u64,
        /// The tenant.
        tenant: String,
        /// How long it waited.
        waited: Duration,
    },
    /// Something came on the inbox that is not a receipt.
    #[error("the answer on `{inbox}` is not a receipt: {reason}")]
    BadReceipt {
        /// The inbox.
        inbox: String,
        /// Why.
        reason: String,
    },
}

/// Publishes `input` on `grants.policy.<tenant>` with a receipt asked for
/// ([`REPLY_TO_HEADER`] = a fresh inbox), waits for JetStream to store it,
/// then for the ledger's receipt, and returns it: `committed` (with
/// `sequences` and `policy_hash` or `catalog_hash`) or `rejected` (with
/// `reason` and `detail`). No `Nats-Msg-Id`: publishing the same text again
/// reaches the ledger, which answers that it is already in force.
pub async fn publish(connection: &AdminConnection, input: &PolicyInput) -> Result<ServiceReceipt, AdminError> {
    let subject = policy_subject(&connection.tenant).map_err(AdminError::Tenant)?;
    let body = serde_json::to_vec(input).expect("serializable");
    if body.len() > POLICY_INPUT_BYTES_MAX {
        return Err(AdminError::Oversized { subject, size: body.len(), max: POLICY_INPUT_BYTES_MAX });
    }
    let client = crate::connect::connect(crate::connect::Connection {
        url: &connection.url,
        name: "grantledger-policy-admin".to_owned(),
        timeout: connection.timeout,
        inbox_prefix: connection.inbox_prefix.as_ref(),
        user_password: connection.user_password.as_ref(),
        creds_file: connection.creds_file.as_ref(),
    })
    .await
    .map_err(|reason| AdminError::Connect { url: connection.url.clone(), reason })?;
    let publish_failed = |reason: String| AdminError::Publish { subject: subject.clone(), reason };

    // Subscribed before the input goes out: the server handles one
    // connection's messages in order, so the subscription is in place
    // before the ledger can have seen the input.
    let inbox = client.new_inbox();
    let mut receipts = client.subscribe(inbox.clone()).await.map_err(|error| publish_failed(error.to_string()))?;
    let js = jetstream::ContextBuilder::new().timeout(connection.timeout).build(client.clone());
    let mut headers = HeaderMap::new();
    headers.insert(REPLY_TO_HEADER, inbox.as_str());
    let ack = js
        .publish_with_headers(subject.clone(), headers, body.into())
        .await
        .map_err(|error| publish_failed(error.to_string()))?;
    let ack = ack.await.map_err(|error| match error.kind() {
        PublishErrorKind::StreamNotFound => AdminError::NotCaptured { subject: subject.clone() },
        PublishErrorKind::TimedOut => AdminError::NotAcknowledged { subject: subject.clone(), waited: connection.timeout },
        _ => publish_failed(error.to_string()),
    })?;

    let message = match tokio::time::timeout(connection.receipt_wait, receipts.next()).await {
        Ok(Some(message)) => message,
        Ok(None) | Err(_) => {
            return Err(AdminError::NoReceipt {
                subject,
                inbox,
                stream_sequence: ack.sequence,
                tenant: connection.tenant.clone(),
                waited: connection.receipt_wait,
            });
        }
    };
    serde_json::from_slice(&message.payload).map_err(|error| AdminError::BadReceipt { inbox, reason: error.to_string() })
}
