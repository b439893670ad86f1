//! Payment providers' lane: the requests pending payments make of a provider (an STK push, a B2C
//! payment, airtime), handed to its [`PaymentTransport`] by the shared queue [`worker`].
//!
//! A request the provider accepts is stored as accepted here (its reference kept on the
//! transaction, so that the result callback finds it; stored before anything else happens, since
//! a fast provider can call back at once); a refusal goes to the payment rules as a
//! [`PaymentRefused`], which end the transaction. The result itself (the customer paid, the
//! payout landed) comes by webhook; the ledger moves only then.

use std::future::Future;
use std::sync::Arc;

use tracing::{debug, info, warn};

use super::events::{PaymentRefused, PaymentSender};
use super::worker::{self, after_refusal, Lane, Next, Refusal};
use crate::config::providers::Limits;
use crate::store::payment_requests::PaymentRequest;
use crate::store::Store;

/// A way to make payment requests of a provider.
pub trait PaymentTransport: Send + Sync + 'static {
    /// Makes one request; on success, the provider's reference for it (what its result callback
    /// will name).
    fn request(&self, request: &PaymentRequest) -> impl Future<Output = Result<String, Refusal>> + Send;
}

/// Queued payment requests, handed to a payment transport.
pub struct Payments<T> {
    pub provider: String,
    pub limits: Limits,
    pub transport: Arc<T>,
    pub store: Store,
    pub refusals: PaymentSender,
}

impl<T> Payments<T> {
    async fn refuse(&self, transaction_id: String, expired: bool, reason: String) -> bool {
        let refused = PaymentRefused { provider: self.provider.clone(), transaction_id, expired, reason };
        self.refusals.send(refused).await.is_ok()
    }
}

impl<T: PaymentTransport> Lane for Payments<T> {
    type Item = PaymentRequest;

    fn id(item: &PaymentRequest) -> &str {
        &item.transaction_id
    }

    fn expires_at(item: &PaymentRequest) -> i64 {
        item.expires_at
    }

    async fn claim(&self, limit: i64, until: i64) -> anyhow::Result<Vec<PaymentRequest>> {
        self.store.claim_payment_requests(&self.provider, limit, until).await
    }

    async fn expire(&self, item: PaymentRequest) -> bool {
        self.refuse(item.transaction_id, true, "the provider did not take the request before it expired".into()).await
    }

    async fn hand_over(&self, request: PaymentRequest) -> bool {
        let provider = self.provider.as_str();
        let id = request.transaction_id.clone();
        match self.transport.request(&request).await {
            Ok(reference) => {
                match self.store.payment_request_accepted(&id, &reference).await {
                    Ok(true) => info!(provider, transaction_id = %id, reference, "payment request accepted"),
                    Ok(false) => debug!(provider, transaction_id = %id, "accepted after the payment ended"),
                    // The row stays claimed: after the claim runs out it is asked again, which
                    // the provider's duplicate checks (B2C's OriginatorConversationID) answer.
                    Err(e) => warn!(provider, transaction_id = %id, error = %e, "recording an accepted request"),
                }
                false
            }
            Err(refusal) => {
                let throttled = matches!(refusal, Refusal::Throttled(_));
                match after_refusal(&self.limits, request.attempts, refusal) {
                    Next::Retry { at, counts, why } => {
                        warn!(provider, transaction_id = %id, why, retry_at_ms = at, "payment request failed; will retry");
                        if let Err(e) = self.store.payment_request_retry(&id, at, &why, counts).await {
                            warn!(provider, transaction_id = %id, error = %e, "rescheduling a payment request");
                        }
                    }
                    Next::Fail(reason) => {
                        warn!(provider, transaction_id = %id, reason, "the provider refused the payment");
                        self.refuse(id, false, reason).await;
                    }
                }
                throttled
            }
        }
    }
}

/// Minor units as a decimal text in the currency's own precision (`KES 100.5` → `"100.50"`),
/// for providers that take amounts as text.
pub fn amount_text(currency: &str, minor: i64) -> String {
    let places = iso_currency::Currency::from_code(currency).and_then(|c| c.exponent()).map_or(2, u32::from);
    if places == 0 {
        return minor.to_string();
    }
    let scale = 10i64.pow(places);
    format!("{}.{:0width$}", minor / scale, minor % scale, width = places as usize)
}

/// Starts a worker for a payment provider.
pub fn spawn<T: PaymentTransport>(
    lane: Payments<T>,
    wake: Arc<tokio::sync::Notify>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let (name, limits) = (lane.provider.clone(), lane.limits.clone());
    tokio::spawn(worker::run(name, limits, Arc::new(lane), wake, shutdown));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_in_the_currency_s_precision() {
        assert_eq!(amount_text("KES", 10050), "100.50");
        assert_eq!(amount_text("KES", 5), "0.05");
        assert_eq!(amount_text("UGX", 5000), "5000");
        assert_eq!(amount_text("KWD", 1234), "1.234");
    }
}
